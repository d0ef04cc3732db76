//! `dbops partitions ensure`: daily partition maintenance, with the retention taken from the classification map.

use std::io::Write;

use catalog::classification::{ClassificationMap, Retention};
use partitions::{EnsureConfig, Retire};

use crate::CliError;
use crate::context::{Context, connect_url, error_chain};
use crate::exit_code;
use crate::opt::PartitionsCommand;

/// Runs one `partitions` subcommand against the operational database.
pub async fn run(context: &Context<'_>, command: PartitionsCommand) -> Result<i32, CliError> {
    match command {
        PartitionsCommand::Ensure {
            ahead_days,
            table,
            classification,
            drop,
            json,
        } => {
            let classification = context.flag_or_project_path(
                classification.as_deref(),
                crate::context::CLASSIFICATION_MAP,
            );
            let map = ClassificationMap::load(&classification)
                .map_err(|e| CliError::Config(error_chain(&e)))?;
            let retention = match map.tables.get(&table) {
                Some(entry) => match &entry.retention {
                    Retention::Forever => None,
                    Retention::Period { duration, .. } => Some(*duration),
                },
                None => {
                    return Err(CliError::Config(format!(
                        "{}: table {table:?} has no entry, so its retention is unknown",
                        classification.display()
                    )));
                }
            };
            let url = context.database_url("operational")?;
            let mut client = connect_url(&url, "dbops partitions").await?;
            let config = EnsureConfig {
                table,
                ahead_days,
                retention,
                retire: if drop { Retire::Drop } else { Retire::Detach },
                now: time::OffsetDateTime::now_utc(),
            };
            let report = partitions::ensure(&mut client, &config).await?;
            if json {
                let mut out = std::io::stdout().lock();
                serde_json::to_writer_pretty(&mut out, &report)?;
                let _ = writeln!(out);
            } else {
                println!("{report}");
                for name in &report.created {
                    println!("  created {name}");
                }
                let verb = if drop { "dropped" } else { "detached" };
                for name in &report.retired {
                    println!("  {verb} {name}");
                }
            }
            Ok(exit_code::SUCCESS)
        }
    }
}
