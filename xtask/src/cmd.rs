//! Running other programs: echo the command line, fail with what it printed.

use std::fmt::Write as _;
use std::process::{Command, Output, Stdio};

use crate::Result;

/// Runs `cmd` with the terminal as its stdout and stderr, after echoing it.
pub fn run(cmd: &mut Command) -> Result {
    eprintln!("$ {}", display(cmd));
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot start `{}`: {e}", display(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", display(cmd)).into())
    }
}

/// Runs `cmd` quietly and returns its stdout; on failure the error carries
/// its stderr.
pub fn read(cmd: &mut Command) -> Result<String> {
    let output = output(cmd)?;
    String::from_utf8(output.stdout)
        .map_err(|_| format!("`{}` printed something that is not UTF-8", display(cmd)).into())
}

/// Runs `cmd` quietly, failing with its stderr when it fails.
pub fn output(cmd: &mut Command) -> Result<Output> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start `{}`: {e}", display(cmd)))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(failure(cmd, &output).into())
    }
}

/// Describes a failed run: the command, its exit status and the end of its
/// stderr (or stdout, when stderr is empty).
pub fn failure(cmd: &Command, output: &Output) -> String {
    let mut text = format!("`{}` failed ({})", display(cmd), output.status);
    let said = if output.stderr.is_empty() {
        &output.stdout
    } else {
        &output.stderr
    };
    let said = String::from_utf8_lossy(said);
    let lines: Vec<&str> = said.lines().collect();
    for line in &lines[lines.len().saturating_sub(20)..] {
        let _ = write!(text, "\n    {line}");
    }
    text
}

/// Whether `program` can be found on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The command line as a person would type it. Passwords never reach it: the
/// tasks hand them to programs through the environment (`PGPASSWORD`).
pub fn display(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        line.push(' ');
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            line.push_str(&format!("'{}'", arg.replace('\'', r"'\''")));
        } else {
            line.push_str(&arg);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    #[test]
    fn display_quotes_arguments_a_shell_would_split() {
        let mut cmd = Command::new("psql");
        cmd.args(["-c", "SELECT 'a b'", "-X", ""]);
        assert_eq!(super::display(&cmd), r"psql -c 'SELECT '\''a b'\''' -X ''");
    }

    #[test]
    fn failure_names_the_command_and_quotes_its_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo oops >&2; exit 3"]);
        let err = super::read(&mut cmd).unwrap_err().to_string();
        assert!(
            err.starts_with("`sh -c 'echo out; echo oops >&2; exit 3'` failed"),
            "{err}"
        );
        assert!(err.ends_with("\n    oops"), "{err}");
    }
}
