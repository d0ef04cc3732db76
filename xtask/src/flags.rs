//! Command-line arguments of the tasks: a handful of flags, parsed by hand.

use crate::Result;

/// The arguments after `cargo xtask`, consumed by the task that reads them.
#[derive(Debug)]
pub struct Args {
    rest: Vec<String>,
}

impl Args {
    pub fn from_env() -> Args {
        Args::new(std::env::args().skip(1).collect())
    }

    pub fn new(rest: Vec<String>) -> Args {
        Args { rest }
    }

    /// Takes the first argument that is not a flag. Take the flags with
    /// values first, or a flag's value may be taken for a positional.
    pub fn positional(&mut self) -> Option<String> {
        let at = self.rest.iter().position(|arg| !arg.starts_with('-'))?;
        Some(self.rest.remove(at))
    }

    /// Takes `--name`, telling whether it was there.
    pub fn flag(&mut self, name: &str) -> bool {
        match self.rest.iter().position(|arg| arg == name) {
            Some(at) => {
                self.rest.remove(at);
                true
            }
            None => false,
        }
    }

    /// Takes `--name VALUE` or `--name=VALUE`.
    pub fn value(&mut self, name: &str) -> Result<Option<String>> {
        let prefix = format!("{name}=");
        if let Some(at) = self.rest.iter().position(|arg| arg.starts_with(&prefix)) {
            return Ok(Some(self.rest.remove(at)[prefix.len()..].to_owned()));
        }
        let Some(at) = self.rest.iter().position(|arg| arg == name) else {
            return Ok(None);
        };
        if at + 1 >= self.rest.len() {
            return Err(format!("{name} needs a value").into());
        }
        self.rest.remove(at);
        Ok(Some(self.rest.remove(at)))
    }

    /// Takes `--name N` as a positive number.
    pub fn count(&mut self, name: &str) -> Result<Option<usize>> {
        match self.value(name)? {
            None => Ok(None),
            Some(text) => match text.parse() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(format!("{name} wants a positive whole number, not `{text}`").into()),
            },
        }
    }

    /// Fails on anything the task did not take.
    pub fn finish(&mut self) -> Result {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!("unexpected arguments: {}", self.rest.join(" ")).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Args;

    fn args(line: &str) -> Args {
        Args::new(line.split_whitespace().map(str::to_owned).collect())
    }

    #[test]
    fn takes_flags_values_and_positionals_in_any_order() {
        let mut a = args("--rounds 5 apply --keep --env=staging");
        assert!(a.flag("--keep"));
        assert!(!a.flag("--keep"));
        assert_eq!(a.value("--env").unwrap().as_deref(), Some("staging"));
        assert_eq!(a.count("--rounds").unwrap(), Some(5));
        assert_eq!(a.positional().as_deref(), Some("apply"));
        assert_eq!(a.positional(), None);
        a.finish().unwrap();
    }

    #[test]
    fn rejects_leftovers_missing_values_and_bad_counts() {
        let err = args("--frobnicate").finish().unwrap_err();
        assert_eq!(err.to_string(), "unexpected arguments: --frobnicate");
        let err = args("--env").value("--env").unwrap_err();
        assert_eq!(err.to_string(), "--env needs a value");
        let err = args("--rounds 0").count("--rounds").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--rounds wants a positive whole number, not `0`"
        );
    }
}
