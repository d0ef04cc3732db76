//! Adopting a database that dbops did not build: the verified baseline, and
//! the guard that stops `up` from running a history's first migrations over
//! a schema that is already there.
//!
//! A baseline applies the target's files up to a version to a scratch
//! database, compares that catalog with the live one (the `catalog` crate's
//! fingerprint: tables, views, columns, constraints, indexes, triggers,
//! functions, types, extensions, in the target's schemas), and only when they
//! agree (or the caller accepts the differences) records those migrations in
//! the history, with the checksums a run would have written, and one audit
//! entry, in one transaction under the target's lock.

use std::collections::BTreeSet;

use catalog::fingerprint::{Difference, Fingerprint};
use serde::Serialize;
use tokio_postgres::Client;
use tracing::Instrument;

use crate::database::Database;
use crate::error::Error;
use crate::history::BOOKKEEPING_SCHEMA;
use crate::migrator::Migrator;
use crate::plan::UpOptions;
use crate::schemas::BuiltIn;
use crate::session::Session;
use crate::source::{Direction, Migration};

/// How many objects the refusal of an unadopted database names.
const NAMED_OBJECTS: usize = 5;

/// Options of [`Migrator::baseline`].
#[derive(Debug, Clone)]
pub struct BaselineOptions {
    /// Record the migrations up to and including this version.
    pub to: i64,
    /// Where to build the expected schema. `None`: a database created for
    /// the purpose on the live database's server (`CREATE DATABASE`, from
    /// `template0`) and dropped afterwards. A database given here must be
    /// empty; it is left as built.
    pub scratch: Option<Database>,
    /// Record the history even though the live schema differs from the one
    /// the files build. The differences go into the audit entry.
    pub accept_differences: bool,
    /// Tables of the live database to leave out of the comparison, as
    /// `schema.table`: another tool's history table, say.
    pub ignore_tables: Vec<String>,
}

/// What [`Migrator::baseline`] did.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineReport {
    /// The target.
    pub target: String,
    /// The versions recorded as applied, oldest first.
    pub recorded: Vec<i64>,
    /// The schemas compared.
    pub schemas: Vec<String>,
    /// The objects only the scratch build has (`only_in_first`) or only the
    /// live database has; empty when they agree.
    #[serde(serialize_with = "serialize_differences")]
    pub differences: Vec<Difference>,
    /// The scratch database, redacted.
    pub scratch: String,
}

fn serialize_differences<S: serde::Serializer>(
    differences: &[Difference],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(differences.iter().map(describe_difference))
}

/// One difference as an operator reads it.
pub fn describe_difference(difference: &Difference) -> String {
    let side = if difference.only_in_first {
        "missing from the database (the migrations build it)"
    } else {
        "only in the database (the migrations do not build it)"
    };
    format!("{}: {} -- {side}", difference.section, difference.object)
}

impl Migrator {
    /// Records the migrations up to `options.to` as applied on a database
    /// built without dbops, once its schema is verified to be what those
    /// migrations build.
    ///
    /// Refuses when the target's history is not empty, when `to` is not a
    /// migration on disk, and, unless `accept_differences`, when the schemas
    /// differ ([`Error::BaselineDiffers`], listing every object).
    pub async fn baseline(&self, options: &BaselineOptions) -> Result<BaselineReport, Error> {
        self.check_actor()?;
        let source = self.source();
        if source.get(options.to).is_none() {
            return Err(Error::UnknownVersion {
                version: options.to,
                dir: source.dir().to_path_buf(),
            });
        }
        let mut session =
            Session::open(&self.db, &self.target, &self.settings, self.audit.is_some()).await?;
        let applied = self.target.applied(session.client()).await?;
        if let Some(newest) = applied.last() {
            return Err(Error::HistoryNotEmpty {
                target: self.target.name.clone(),
                applied: applied.len(),
                newest: newest.version,
            });
        }
        let (expected, scratch) = self.build_scratch(session.client(), options).await?;
        let live = catalog::fingerprint::take(session.client())
            .await
            .map_err(catalog_error("reading the live catalog"))?;
        let mut schemas: BTreeSet<String> = expected.schemas_in_use().into_iter().collect();
        schemas.extend(BuiltIn::of(source).all());
        schemas.remove(BOOKKEEPING_SCHEMA);
        let schemas: Vec<String> = schemas.into_iter().collect();
        let names: Vec<&str> = schemas.iter().map(String::as_str).collect();
        let mut live = live.within(&names);
        for table in &options.ignore_tables {
            let (schema, name) = table.split_once('.').unwrap_or(("public", table));
            live = live.without_table(schema, name);
        }
        let differences = expected.within(&names).compare(&live);
        if !differences.is_empty() && !options.accept_differences {
            return Err(Error::BaselineDiffers {
                target: self.target.name.clone(),
                to: options.to,
                differences: differences.iter().map(describe_difference).collect(),
            });
        }
        let migrations: Vec<&Migration> = source
            .migrations()
            .iter()
            .filter(|m| m.version <= options.to)
            .collect();
        let recorded: Vec<i64> = migrations.iter().map(|m| m.version).collect();
        let metadata = serde_json::json!({
            "to": options.to,
            "migrations": recorded.len(),
            "schemas": schemas,
            "differences": differences.len(),
            "accepted_differences": differences.iter().map(describe_difference).collect::<Vec<_>>(),
        });
        self.record_baseline(session.client(), &migrations, metadata)
            .await?;
        tracing::info!(
            target = %self.target.name,
            to = options.to,
            migrations = recorded.len(),
            differences = differences.len(),
            "recorded a verified baseline"
        );
        session.close(Direction::Up, "", 0, false).await?;
        Ok(BaselineReport {
            target: self.target.name.clone(),
            recorded,
            schemas,
            differences,
            scratch,
        })
    }

    /// Writes the history rows of `migrations`, as `up` writes them, and the
    /// baseline's audit entry, in one transaction that waits for its flush.
    async fn record_baseline(
        &self,
        client: &Client,
        migrations: &[&Migration],
        metadata: serde_json::Value,
    ) -> Result<(), Error> {
        let mut sql = String::from("BEGIN; SET LOCAL synchronous_commit = on; ");
        for migration in migrations {
            sql.push_str(&self.target.record(migration, Direction::Up));
            sql.push_str("; ");
        }
        let recording = async {
            client
                .batch_execute(&sql)
                .await
                .map_err(Error::db("recording the baseline"))?;
            let head = match self.audit_event_entry("migration.baseline", "target", metadata) {
                Some(entry) => Some(
                    crate::audit::record_in_transaction(client, &entry, self.audit_key.as_ref())
                        .await?,
                ),
                None => None,
            };
            client
                .batch_execute("COMMIT")
                .await
                .map_err(Error::db("committing the baseline"))?;
            if let Some(head) = head {
                head.publish();
            }
            Ok(())
        };
        let result = recording.await;
        if result.is_err() {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        result
    }

    /// Applies the migrations up to `options.to` to the scratch database and
    /// returns its fingerprint and its redacted name. A scratch database
    /// created here is dropped again, whatever happened.
    async fn build_scratch(
        &self,
        live: &Client,
        options: &BaselineOptions,
    ) -> Result<(Fingerprint, String), Error> {
        if let Some(scratch) = &options.scratch {
            let fingerprint = self.apply_to_scratch(scratch.clone(), options.to).await?;
            return Ok((fingerprint, scratch.redacted_url()));
        }
        let name = scratch_name(&self.target.name);
        let scratch = self.db.on_same_server(&name).ok_or_else(|| Error::Config {
            origin: "baseline".into(),
            message: "a database reached through a connection pool has no URL to create a scratch database beside it; give a scratch database".into(),
        })?;
        live.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
            .await
            .map_err(Error::db(format!(
                "creating the scratch database {name} (the role needs CREATEDB, or give a scratch database)"
            )))?;
        let built = self.apply_to_scratch(scratch.clone(), options.to).await;
        let dropped = live
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .map_err(Error::db(format!("dropping the scratch database {name}")));
        let fingerprint = built?;
        dropped?;
        Ok((fingerprint, scratch.redacted_url()))
    }

    async fn apply_to_scratch(&self, scratch: Database, to: i64) -> Result<Fingerprint, Error> {
        let described = scratch.redacted_url();
        let wrap = |source: Error| Error::Scratch {
            database: described.clone(),
            source: Box::new(source),
        };
        let builder = Migrator::new(
            &self.target.name,
            self.source().clone(),
            scratch.clone(),
            self.settings.clone(),
        )?;
        // Its runs log under a span of their own, so that nobody reads them
        // as migrations applied to the live database.
        builder
            .up(&UpOptions {
                to: Some(to),
                ..UpOptions::default()
            })
            .instrument(tracing::info_span!("migrate.baseline.scratch", database = %described))
            .await
            .map_err(wrap)?;
        let client = scratch
            .connect(&format!("dbops baseline {}", self.target.name))
            .await
            .map_err(wrap)?;
        catalog::fingerprint::take(&client)
            .await
            .map_err(catalog_error("reading the scratch database's catalog"))
    }

    /// Refuses to start a history on a database whose target schemas already
    /// hold objects: the first migrations would run over them.
    ///
    /// The history and the catalog are read in one snapshot, so a runner
    /// that started the history meanwhile (another member of a fleet) is not
    /// mistaken for objects built without dbops. The schemas looked at are
    /// those the migrations build in ([`BuiltIn`]): the ones they create, and
    /// the others they create objects in, `public` for unqualified names.
    /// Those others are shared: once another target of the database has a
    /// history, their objects may be that target's, and they are not looked at.
    pub(crate) async fn refuse_unadopted(&self, client: &Client) -> Result<(), Error> {
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(Error::db("looking for objects built without dbops"))?;
        let found = self.unadopted_objects(client).await;
        let _ = client.batch_execute("COMMIT").await;
        let Some((schemas, objects)) = found? else {
            return Ok(());
        };
        Err(Error::NotAdopted {
            target: self.target.name.clone(),
            schemas,
            total: objects.len(),
            objects: objects.into_iter().take(NAMED_OBJECTS).collect(),
        })
    }

    /// The schemas looked at and the objects in them, when the history is
    /// still empty and there are any.
    async fn unadopted_objects(
        &self,
        client: &Client,
    ) -> Result<Option<(Vec<String>, Vec<String>)>, Error> {
        if !self.target.applied(client).await?.is_empty() {
            return Ok(None);
        }
        let built = BuiltIn::of(self.source());
        let mut schemas = built.created.clone();
        // Schemas the target does not create may hold another target's
        // objects once that target has a history: they are not looked at then.
        let shared: Vec<String> = built.all().difference(&built.created).cloned().collect();
        if !shared.is_empty() && !self.other_histories_started(client).await? {
            schemas.extend(shared);
        }
        if schemas.is_empty() {
            return Ok(None);
        }
        let schemas: Vec<String> = schemas.into_iter().collect();
        let names: Vec<&str> = schemas.iter().map(String::as_str).collect();
        let objects = catalog::fingerprint::take(client)
            .await
            .map_err(catalog_error("looking for objects built without dbops"))?
            .within(&names)
            .user_objects();
        Ok((!objects.is_empty()).then_some((schemas, objects)))
    }

    /// Whether another target's history in this database records anything.
    async fn other_histories_started(&self, client: &Client) -> Result<bool, Error> {
        let tables = client
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname LIKE '%\\_schema\\_history'
                   AND format('%I.%I', n.nspname, c.relname) <> $2",
                &[&BOOKKEEPING_SCHEMA, &self.target.history_table],
            )
            .await
            .map_err(Error::db("looking for other targets' histories"))?;
        for table in tables {
            let table: String = table.get(0);
            let started: bool = client
                .query_one(&format!("SELECT EXISTS (SELECT FROM {table})"), &[])
                .await
                .map_err(Error::db(format!("reading {table}")))?
                .get(0);
            if started {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

fn scratch_name(target: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("dbops_scratch_{target}_{}_{nanos}", std::process::id())
        .chars()
        .take(63)
        .collect()
}

fn catalog_error(context: &'static str) -> impl FnOnce(catalog::Error) -> Error {
    move |error| match error {
        catalog::Error::Query { source, .. } => Error::Database {
            context: context.to_string(),
            source,
        },
        other => Error::Config {
            origin: context.to_string(),
            message: crate::error::chain(&other),
        },
    }
}
