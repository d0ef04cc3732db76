//! Who keeps a migration waiting for a lock: asked from a connection of its own while the
//! migration waits, because once its lock wait gives up the server no longer knows.

use std::time::Duration;

use crate::database::Database;

/// Sessions blocking a backend, looked up once after `after` by a task of
/// its own. The engine starts one for the last attempt of a migration whose
/// lock waits keep giving up, so that the final error can name the blocker.
#[derive(Debug)]
pub(crate) struct BlockerWatch {
    task: Option<tokio::task::JoinHandle<Option<String>>>,
}

impl BlockerWatch {
    /// Starts watching `pid`, the backend that runs the migration.
    pub fn start(db: &Database, pid: i32, after: Duration) -> BlockerWatch {
        let db = db.clone();
        BlockerWatch {
            task: Some(tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let conn = db.connect("dbops migrate (lock watch)").await.ok()?;
                let rows = conn
                    .query(
                        "SELECT b.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''),
                                coalesce(a.state, 'unknown'),
                                coalesce(extract(epoch FROM now() - a.xact_start)::bigint::text || ' s', 'unknown')
                         FROM unnest(pg_blocking_pids($1)) AS b(pid)
                         LEFT JOIN pg_stat_activity a ON a.pid = b.pid
                         ORDER BY b.pid",
                        &[&pid],
                    )
                    .await
                    .ok()?;
                let blockers: Vec<String> = rows
                    .iter()
                    .map(|row| {
                        format!(
                            "pid {} (user {:?}, application {:?}, state {}, transaction open for {})",
                            row.get::<_, i32>(0),
                            row.get::<_, String>(1),
                            row.get::<_, String>(2),
                            row.get::<_, String>(3),
                            row.get::<_, String>(4),
                        )
                    })
                    .collect();
                (!blockers.is_empty()).then(|| blockers.join("; "))
            })),
        }
    }

    /// What the watch saw, if it had looked by now; stops it otherwise.
    pub async fn finish(mut self) -> Option<String> {
        let task = self.task.take()?;
        if !task.is_finished() {
            task.abort();
        }
        task.await.ok().flatten()
    }
}

impl Drop for BlockerWatch {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
