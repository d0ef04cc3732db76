//! The error type of `migrate-hooks`.

/// What can go wrong in the standard hooks. Findings are not errors: a
/// blocking session or a table rewrite is reported as a [`migrate_core::hooks::Finding`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting of the `[hooks]` section is wrong; `setting` is its full
    /// dotted name, such as `hooks.blocking_sessions.max_wait`.
    #[error("{setting}: {message}")]
    Config {
        /// The setting at fault.
        setting: String,
        /// What is wrong with it.
        message: String,
    },
    /// A catalog query failed.
    #[error("{context}")]
    Database {
        /// What the hook was doing.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// What a hook's `before` handed to its `after` cannot be read back.
    #[error("the memo of the before-check cannot be read")]
    Memo(#[source] serde_json::Error),
}

impl Error {
    /// A closure wrapping a driver error with what the hook was doing.
    pub(crate) fn db(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
        move |source| Error::Database { context, source }
    }

    /// The error as the engine takes it from a hook: the message carries the
    /// whole chain, as [`migrate_core::hooks::HookError`] has no source.
    pub(crate) fn into_hook_error(self, hook: &str) -> migrate_core::hooks::HookError {
        let mut message = self.to_string();
        let mut cause = std::error::Error::source(&self);
        while let Some(error) = cause {
            message = format!("{message}: {error}");
            cause = error.source();
        }
        migrate_core::hooks::HookError {
            hook: hook.to_string(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_error_carries_each_cause_once() {
        let memo = serde_json::from_str::<u32>("x").unwrap_err();
        let error = Error::Memo(memo).into_hook_error("standard-checks");
        assert_eq!(
            error.message,
            "the memo of the before-check cannot be read: expected value at line 1 column 1"
        );
    }
}
