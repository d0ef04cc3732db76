//! `dbops completions SHELL` and `dbops man`: generated from the clap
//! definition itself, so they list exactly the commands and flags `--help` does.
//! Neither reads the configuration file.

use std::io::Write;

use crate::CliError;
use crate::exit_code;

/// Prints the completion script for `shell` on standard output.
pub fn completions(
    shell: clap_complete::Shell,
    mut command: clap::Command,
) -> Result<i32, CliError> {
    let name = command.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    print(&script, "writing the completion script")
}

/// Prints the man page, in roff, on standard output.
pub fn man(command: clap::Command) -> Result<i32, CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|source| CliError::Io {
            context: "rendering the man page".into(),
            source,
        })?;
    print(&page, "writing the man page")
}

/// Writes generated text to standard output. A reader that stops early
/// (`dbops man | head`) is not an error.
fn print(text: &[u8], context: &str) -> Result<i32, CliError> {
    match std::io::stdout().lock().write_all(text) {
        Err(source) if source.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Io {
            context: context.into(),
            source,
        }),
        _ => Ok(exit_code::SUCCESS),
    }
}
