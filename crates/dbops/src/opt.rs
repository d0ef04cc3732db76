//! The command line, as clap derive types. Dispatch lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// dbops: migrations, lint, docs, seeds and rollups for the platform's PostgreSQL schema.
#[derive(Debug, Parser)]
#[command(name = "dbops", version, about, long_about = None)]
pub struct Opt {
    /// Settings shared by every command.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every command.
#[derive(Debug, Args)]
pub struct Global {
    /// The migration configuration file.
    #[arg(
        long,
        global = true,
        env = "DBOPS_CONFIG",
        default_value = "configs/migrate.toml"
    )]
    pub config: PathBuf,
    /// The operational database; overrides the variable named by the target's `url_env` (DB_URL).
    #[arg(long, global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// The analytics database; overrides ANALYTICS_URL, which defaults to DB_URL.
    #[arg(long, global = true, hide_env_values = true)]
    pub analytics_url: Option<String>,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Who is acting, for the audit log; defaults to DBOPS_ACTOR, then the OS user.
    #[arg(long, global = true, env = "DBOPS_ACTOR")]
    pub actor: Option<String>,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line, with the span fields.
    Json,
}

/// The command families.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply, roll back, inspect and repair migrations.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Generate the data dictionary and ER diagram, or validate them against the database.
    #[command(subcommand)]
    Docs(DocsCommand),
}

/// Which migration targets a command acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetChoice {
    /// The platform's operational schema (DB_URL).
    Operational,
    /// The analytics schema (ANALYTICS_URL, defaulting to DB_URL).
    Analytics,
    /// Both: operational then analytics (the reverse when rolling back).
    All,
}

/// Options every `migrate` subcommand takes.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The target.
    #[arg(long, value_enum, default_value_t = TargetChoice::Operational)]
    pub target: TargetChoice,
    /// A migrations folder to use in place of the configured one (one target only).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// How long to wait for another run's migration lock (e.g. 30s); overrides the config file.
    #[arg(long, value_parser = humantime_duration)]
    pub lock_wait: Option<std::time::Duration>,
}

/// `dbops migrate ...`
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Apply pending migrations.
    Up {
        /// Shared target options.
        #[command(flatten)]
        target: TargetArgs,
        /// Stop after this version.
        #[arg(long)]
        to: Option<i64>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply pending migrations older than the newest applied one.
        #[arg(long)]
        allow_out_of_order: bool,
    },
    /// Roll back applied migrations, newest first.
    Down {
        /// Shared target options.
        #[command(flatten)]
        target: TargetArgs,
        /// Roll back every migration newer than this version; 0 rolls back everything.
        #[arg(long, conflicts_with = "steps")]
        to: Option<i64>,
        /// Roll back this many migrations (default 1).
        #[arg(long)]
        steps: Option<usize>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show version, pending, partial and drifted migrations.
    Status {
        /// Shared target options.
        #[command(flatten)]
        target: TargetArgs,
        /// Print JSON: one object for one target, an array for `--target all`.
        #[arg(long)]
        json: bool,
    },
    /// Print the pending SQL in order and the plan hash.
    Plan {
        /// Shared target options.
        #[command(flatten)]
        target: TargetArgs,
        /// Plan up to this version.
        #[arg(long)]
        to: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resolve a partial (interrupted non-transactional) migration.
    Repair {
        /// Shared target options.
        #[command(flatten)]
        target: TargetArgs,
        /// The partial migration's version.
        version: i64,
        /// Why, for the run log and audit.
        #[arg(long)]
        reason: String,
        /// What to do.
        #[arg(long, value_enum, default_value_t = RepairChoice::Rerun)]
        action: RepairChoice,
    },
}

/// `dbops migrate repair --action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RepairChoice {
    /// Run the interrupted script again from its first statement.
    Rerun,
    /// Record it as applied (finished by hand).
    MarkApplied,
    /// Record it as not applied (undone by hand).
    MarkNotApplied,
}

/// Options every `docs` subcommand takes.
#[derive(Debug, Args)]
pub struct DocsArgs {
    /// The docs folder: `dictionary.md` and `erd/schema.puml` inside it.
    #[arg(long, default_value = "docs")]
    pub docs_dir: PathBuf,
    /// The data-classification map joined onto the schema.
    #[arg(long, default_value = "configs/data-classification.toml")]
    pub classification: PathBuf,
    /// Which databases to document: the operational one (DB_URL), the analytics one (ANALYTICS_URL), or both.
    #[arg(long, value_enum, default_value_t = TargetChoice::All)]
    pub target: TargetChoice,
    /// A schema of the operational database to document (repeatable); `public` when none is given.
    #[arg(long = "schema", value_name = "SCHEMA")]
    pub schemas: Vec<String>,
    /// The schema of the analytics database to document.
    #[arg(long, default_value = "analytics")]
    pub analytics_schema: String,
}

/// `dbops docs ...`
#[derive(Debug, Subcommand)]
pub enum DocsCommand {
    /// Write docs/dictionary.md and docs/erd/schema.puml from the live schema.
    Generate {
        /// Shared docs options.
        #[command(flatten)]
        docs: DocsArgs,
        /// Also render docs/erd/schema.svg, when a `plantuml` executable is installed.
        #[arg(long)]
        render: bool,
    },
    /// Compare the committed docs with the live schema, object by object, and check every foreign key is enforced.
    Validate {
        /// Shared docs options.
        #[command(flatten)]
        docs: DocsArgs,
        /// Regenerate the docs when they are out of date, then report what remains.
        #[arg(long)]
        fix: bool,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn humantime_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30s, 2min, 500ms)"))
}
