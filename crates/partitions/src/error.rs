//! The one error type of partition maintenance.

/// Everything that can stop a maintenance run. The run's transaction is
/// rolled back, so nothing has changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The table does not exist, or is not range-partitioned on one
    /// `timestamptz` column.
    #[error("cannot maintain the daily partitions of {table}: {reason}")]
    NotDailyPartitioned {
        /// The table as it was named.
        table: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A day the run would need lies outside the calendar (an `ahead_days`
    /// or a retention far too large).
    #[error("{0}")]
    OutOfCalendar(String),
    /// A statement failed.
    #[error("database error while {context}")]
    Database {
        /// What the run was doing.
        context: String,
        /// The cause.
        source: tokio_postgres::Error,
    },
}

impl Error {
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Database { context, source }
    }
}
