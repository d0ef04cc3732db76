//! Smoke step: every `dbops` command shown in `docs/quickstart.md` is one
//! that the smoke run has just run, so the quickstart cannot rot.

use super::Context;
use crate::{Result, workspace};

pub fn run(ctx: &Context) -> Result {
    let path = workspace::root().join("docs").join("quickstart.md");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let ran = ctx.ran.borrow();
    let missing: Vec<String> = commands(&text)
        .into_iter()
        .filter(|(_, args)| !ran.contains(args))
        .map(|(line, args)| format!("docs/quickstart.md:{line}: dbops {}", args.join(" ")))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the quickstart shows commands smoke does not run (run them in a smoke step, or change the quickstart):\n  {}",
            missing.join("\n  ")
        )
        .into())
    }
}

/// The `dbops` commands in the fenced code blocks of a Markdown text, with
/// their line numbers; a leading `$ ` prompt is ignored.
fn commands(markdown: &str) -> Vec<(usize, Vec<String>)> {
    let mut in_code = false;
    let mut found = Vec::new();
    for (i, line) in markdown.lines().enumerate() {
        let line = line.trim();
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let command = line.strip_prefix("$ ").unwrap_or(line);
        if let (true, Some(args)) = (in_code, command.strip_prefix("dbops ")) {
            let args = args.split('#').next().unwrap_or_default();
            found.push((i + 1, args.split_whitespace().map(str::to_owned).collect()));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_dbops_commands_in_code_blocks_only() {
        let text = "\
Run dbops migrate up in prose: not a command.
```sh
export DB_URL=$(cargo xtask pg)
dbops migrate up --target all   # applies both targets
$ dbops migrate status
```
dbops lint outside a block
";
        let commands = super::commands(text);
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            commands,
            [
                (4, args(&["migrate", "up", "--target", "all"])),
                (5, args(&["migrate", "status"]))
            ]
        );
    }
}
