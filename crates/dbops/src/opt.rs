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

fn humantime_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30s, 2min, 500ms)"))
}
