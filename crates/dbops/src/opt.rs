//! The command line, as clap derive types. Dispatch lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// dbops: migrations, lint, docs, seeds and rollups for the platform's PostgreSQL schema.
#[derive(Debug, Parser)]
#[command(name = "dbops", version = VERSION, about, long_about = None)]
pub struct Opt {
    /// Settings shared by every command.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `dbops --version`: the package version and the git commit it was built
/// from (crates/dbops/build.rs; "unknown" when built outside a checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("DBOPS_GIT_COMMIT"),
    ")"
);

/// Settings shared by every command.
#[derive(Debug, Args)]
pub struct Global {
    /// The migration configuration file [default: the nearest configs/migrate.toml
    /// in the working directory or a directory above it].
    #[arg(long, global = true, env = "DBOPS_CONFIG")]
    pub config: Option<PathBuf>,
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
    /// Load deterministic, idempotent seed data (API keys hashed with DBOPS_API_KEY_PEPPERS or DBOPS_API_KEY_PEPPER; refused where allow_seed forbids).
    #[command(subcommand)]
    Seed(SeedCommand),
    /// Maintain daily partitions: create ahead, empty the default partition, retire old days.
    #[command(subcommand)]
    Partitions(PartitionsCommand),
    /// Hourly and daily usage rollups: run them, check them, reconcile them with the events, show their runs.
    #[command(subcommand)]
    Rollup(RollupCommand),
    /// Check the hash chain of the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Lint migration files (and with --db the live schemas): locks, naming, indexes, partitions, sensitive fields.
    Lint(LintArgs),
    /// Readiness probe: exit 0 when every target is reachable, current, and neither partial nor drifted.
    Health {
        /// The targets to probe.
        #[arg(long, value_enum, default_value_t = TargetChoice::All)]
        target: TargetChoice,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script: `dbops completions bash > /etc/bash_completion.d/dbops`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `dbops man > /usr/local/share/man/man1/dbops.1`.
    Man,
}

/// `dbops lint` options.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Files or folders to lint (default: every target's migrations folder).
    pub paths: Vec<PathBuf>,
    /// Also lint the live databases: schema, migration history, partitions ahead.
    #[arg(long)]
    pub db: bool,
    /// Report format.
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
    /// Accept every finding of the migration files: write them to the lint
    /// baseline (configs/lint-baseline.toml unless lint.toml's `baseline`
    /// names another file), so that only new findings block `lint` and `migrate up`.
    #[arg(long, conflicts_with = "paths")]
    pub update_baseline: bool,
}

/// `dbops lint --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// For terminals: each finding with the offending statement underlined.
    Human,
    /// A JSON array of findings.
    Json,
    /// GitHub Actions workflow annotations.
    Github,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
}

/// `dbops audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit chains and report edited, deleted, forged or
    /// unhashed entries and disabled append-only triggers; with
    /// DBOPS_AUDIT_KEY, check every entry's authentication code.
    Verify {
        /// The targets whose databases to check.
        #[arg(long, value_enum, default_value_t = TargetChoice::All)]
        target: TargetChoice,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// A head published earlier (`SEQ:HASH`, from `dbops audit head` or
        /// the `audit.head` log field): it must still be in the chain.
        #[arg(long, value_name = "SEQ:HASH", value_parser = published_head)]
        expect_head: Vec<migrate_core::audit::PublishedHead>,
        /// A file of published heads: every `SEQ:HASH` in it (log lines
        /// carrying `audit.head=SEQ:HASH` will do) must still be in the chain.
        #[arg(long, value_name = "FILE")]
        heads: Option<PathBuf>,
    },
    /// Print the newest entry of each audit chain as `SEQ:HASH`, to keep outside the database.
    Head {
        /// The targets whose databases to read.
        #[arg(long, value_enum, default_value_t = TargetChoice::All)]
        target: TargetChoice,
    },
}

fn published_head(text: &str) -> Result<migrate_core::audit::PublishedHead, String> {
    text.parse()
}

/// Guardrails of `migrate up` and `migrate down`.
#[derive(Debug, Args)]
pub struct GuardArgs {
    /// The deployment environment whose policy applies (configs/migrate.toml `[environments]`).
    #[arg(long = "env", default_value = "local")]
    pub environment: String,
    /// Answer yes to the confirmation (for CI).
    #[arg(long)]
    pub yes: bool,
    /// Run even though linting the pending migrations found errors (audited; not allowed everywhere).
    #[arg(long)]
    pub allow_lint_errors: bool,
    /// The actor's SSH signature of the run (namespace dbops-run), where the
    /// environment requires approvals; once per target (docs/security.md).
    #[arg(long)]
    pub run_signature: Vec<PathBuf>,
}

/// A plan's direction, for `migrate approve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectionChoice {
    /// Applying migrations.
    Up,
    /// Rolling them back.
    Down,
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
    /// The target: by default every configured target for `status`, `plan`
    /// and `up`, the operational one for `approve` and `repair`; `down` and
    /// `redo` need it named (or `--dir`, which is the operational target's).
    #[arg(long, value_enum)]
    pub target: Option<TargetChoice>,
    /// A migrations folder to use in place of the configured one (one target only).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    // The variables of these three (DBOPS_LOCK_WAIT, DBOPS_LOCK_TIMEOUT,
    // DBOPS_STATEMENT_TIMEOUT) are read by `Context::migrator`, not by clap,
    // so that a bad value is a configuration error (exit 3) naming the
    // variable, checked with the file's and the flags' values merged.
    /// How long to wait for another run's migration lock (e.g. 30s); overrides DBOPS_LOCK_WAIT and `settings.lock_wait`.
    #[arg(long, value_parser = humantime_duration)]
    pub lock_wait: Option<std::time::Duration>,
    /// `lock_timeout` of every migration statement; overrides DBOPS_LOCK_TIMEOUT and `settings.lock_timeout`.
    #[arg(long, value_parser = humantime_duration)]
    pub lock_timeout: Option<std::time::Duration>,
    /// `statement_timeout` of every migration statement; overrides DBOPS_STATEMENT_TIMEOUT and `settings.statement_timeout`.
    #[arg(long, value_parser = humantime_duration)]
    pub statement_timeout: Option<std::time::Duration>,
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
        /// Environment, confirmation and lint guardrails.
        #[command(flatten)]
        guard: GuardArgs,
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
        /// Environment, confirmation and lint guardrails.
        #[command(flatten)]
        guard: GuardArgs,
    },
    /// Write a new migration's pair of files, `VERSION_SLUG.up.sql` and
    /// `.down.sql`, from templates; the version is the current UTC minute (or
    /// the minute after the folder's newest migration, if that is later).
    New {
        /// What the migration does, in lowercase letters, digits and `_` (e.g. add_widgets).
        slug: String,
        /// The target whose migrations folder gets the files.
        #[arg(long, value_enum, default_value_t = TargetChoice::Operational)]
        target: TargetChoice,
        /// A migrations folder to write to in place of the target's.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The migration runs outside a transaction (for CREATE INDEX CONCURRENTLY).
        #[arg(long)]
        no_transaction: bool,
    },
    /// Record the migrations up to a version as applied on a database built
    /// without dbops, once a scratch database built from them has the same
    /// catalog (tables, columns, constraints, indexes, views, functions,
    /// triggers, types); differences are listed object by object.
    Baseline {
        /// Shared target options.
        #[command(flatten)]
        target: TargetArgs,
        /// The newest migration the database already has.
        #[arg(long)]
        to: i64,
        /// Verification and policy options.
        #[command(flatten)]
        baseline: BaselineArgs,
    },
    /// Convert another tool's migrations folder into dbops migrations in the
    /// target's folder, with a mapping file; with --database-url (or
    /// --analytics-url), also record the migrations that tool's history table
    /// says are applied, verified as `baseline` does.
    Import {
        /// The tool the folder was written for.
        #[arg(long = "from", value_parser = clap::builder::PossibleValuesParser::new(migrate_import::Tool::ALL.map(migrate_import::Tool::name)))]
        tool: String,
        /// The tool's migrations folder.
        source_dir: PathBuf,
        /// The tool's history table, when it was configured with another
        /// name than its default (`schema.table` or `table`).
        #[arg(long)]
        history_table: Option<String>,
        /// Shared target options.
        #[command(flatten)]
        target: TargetArgs,
        /// Verification and policy options.
        #[command(flatten)]
        baseline: BaselineArgs,
    },
    /// Roll back the newest applied migration and apply it again, in one
    /// process: the shortest window for testing a down migration on a copy of production.
    Redo {
        /// Shared target options.
        #[command(flatten)]
        target: TargetArgs,
        /// Environment, confirmation and lint guardrails.
        #[command(flatten)]
        guard: GuardArgs,
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
    /// Approve a plan (by its hash, from `dbops migrate plan`) for an environment.
    Approve {
        /// Shared target options.
        #[command(flatten)]
        target: TargetArgs,
        /// The plan hash.
        #[arg(long)]
        plan: String,
        /// The environment the approval is for.
        #[arg(long = "env", default_value = "production")]
        environment: String,
        /// The plan's direction.
        #[arg(long, value_enum, default_value_t = DirectionChoice::Up)]
        direction: DirectionChoice,
        /// The approver's SSH signature of the plan (`ssh-keygen -Y sign -n dbops-approval`), or - for standard input.
        #[arg(long, required_unless_present = "message")]
        signature: Option<PathBuf>,
        /// Print the text to sign, and nothing else: pipe it to `ssh-keygen -Y sign`.
        #[arg(long, conflicts_with = "signature")]
        message: bool,
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

/// Options of `migrate baseline` and `migrate import` when they record history.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Record the history even though the database differs from what the
    /// migrations build (audited; refused where the environment does not
    /// allow overrides).
    #[arg(long)]
    pub accept_differences: bool,
    /// An empty database to build the expected schema in, instead of one
    /// created and dropped on the same server (which needs CREATEDB).
    #[arg(long, env = "DBOPS_SCRATCH_URL", hide_env_values = true)]
    pub scratch_url: Option<String>,
    /// The deployment environment whose policy applies (configs/migrate.toml `[environments]`).
    #[arg(long = "env", default_value = "local")]
    pub environment: String,
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

/// `dbops seed ...`
#[derive(Debug, Subcommand)]
pub enum SeedCommand {
    /// A few organizations with users, API keys (secrets printed once) and budgets, and the model registry.
    Operational {
        /// The seed: the same seed gives the same rows.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How many organizations (1 to 100,000).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        orgs: u32,
        #[command(flatten)]
        env: SeedEnvArgs,
    },
    /// Organizations, models, budgets and usage events at scale, loaded with binary COPY.
    Analytics {
        /// How many usage events.
        #[arg(long)]
        events: u64,
        /// The seed: the same seed and settings give the same rows.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How many days (ending at --until) the events spread over.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// How many organizations the events belong to (1 to 1,000,000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        orgs: u32,
        /// Share of events ingested 1 to 48 hours after they occurred.
        #[arg(long, default_value_t = 0.02)]
        late_share: f64,
        /// End of the window (RFC 3339); default: an earlier run's, else the start of this hour.
        #[arg(long, value_parser = rfc3339)]
        until: Option<time::OffsetDateTime>,
        /// Parallel COPY connections.
        #[arg(long, default_value_t = 2)]
        streams: usize,
        #[command(flatten)]
        env: SeedEnvArgs,
    },
}

/// The environment `dbops seed` writes to.
#[derive(Debug, Args)]
pub struct SeedEnvArgs {
    /// The deployment environment (configs/migrate.toml `[environments]`) whose `allow_seed` applies; default local.
    #[arg(long = "env")]
    pub environment: Option<String>,
}

/// `dbops partitions ...`
#[derive(Debug, Subcommand)]
pub enum PartitionsCommand {
    /// Create the next days' partitions, move rows out of the default partition, retire days past retention.
    Ensure {
        /// Days after today (UTC) that must have a partition.
        #[arg(long, default_value_t = 7)]
        ahead_days: u32,
        /// The partitioned table.
        #[arg(long, default_value = "usage_events")]
        table: String,
        /// The classification map whose table retention decides which days are retired
        /// [default: configs/data-classification.toml in the project root].
        #[arg(long)]
        classification: Option<PathBuf>,
        /// Drop partitions past retention instead of detaching them.
        #[arg(long)]
        drop: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn rfc3339(text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{e} (example: 2025-11-15T00:00:00Z)"))
}

/// Options every `docs` subcommand takes.
#[derive(Debug, Args)]
pub struct DocsArgs {
    /// The docs folder: `dictionary.md` and `erd/schema.puml` inside it
    /// [default: docs in the project root].
    #[arg(long)]
    pub docs_dir: Option<PathBuf>,
    /// The data-classification map joined onto the schema
    /// [default: configs/data-classification.toml in the project root].
    #[arg(long)]
    pub classification: Option<PathBuf>,
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

/// Options every `rollup` subcommand takes.
#[derive(Debug, Args)]
pub struct RollupArgs {
    /// The rollup target from the rollup configuration: local (rollups in DB_URL), warehouse (in ANALYTICS_URL) or clickhouse (a ClickHouse cluster).
    #[arg(long, default_value = "local")]
    pub target: String,
    /// The rollup configuration: engine settings and targets
    /// [default: analytics/transforms/config.toml in the project root, else the built-in one].
    #[arg(long, env = "DBOPS_ROLLUP_CONFIG")]
    pub rollup_config: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `dbops rollup ...`
#[derive(Debug, Subcommand)]
pub enum RollupCommand {
    /// Recompute the hours touched by events ingested since the last run, then their days (the first run rebuilds all).
    Run {
        /// Shared rollup options.
        #[command(flatten)]
        args: RollupArgs,
        /// Rebuild every hour and day from all events.
        #[arg(long)]
        full: bool,
        /// Also recompute the hours from this time (RFC 3339), e.g. after a backfill with old ingested_at.
        #[arg(long, value_parser = rfc3339, requires = "recompute_to")]
        recompute_from: Option<time::OffsetDateTime>,
        /// End (exclusive) of the hours to recompute.
        #[arg(long, value_parser = rfc3339, requires = "recompute_from")]
        recompute_to: Option<time::OffsetDateTime>,
    },
    /// Run the data-quality assertions (analytics/tests/hourly_rollup.toml; on a clickhouse target analytics/tests/clickhouse/hourly_rollup.toml); exit 15 when an error-level one fails.
    Check {
        /// Shared rollup options.
        #[command(flatten)]
        args: RollupArgs,
        /// An assertions file to use in place of the configured one.
        #[arg(long)]
        assertions: Option<PathBuf>,
    },
    /// Compare every (organization, hour) bucket with the raw events; exit 15 on any mismatch.
    Reconcile {
        /// Shared rollup options.
        #[command(flatten)]
        args: RollupArgs,
        /// How many mismatches to print (all of them with --json).
        #[arg(long, default_value_t = 50)]
        show: usize,
    },
    /// Show the watermark, queued hours and recent runs with durations; flag runs slower than 5 minutes per hour of data.
    Status {
        /// Shared rollup options.
        #[command(flatten)]
        args: RollupArgs,
        /// How many recent runs to show (1 to 10,000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
    },
    /// Apply the schema migrations of a clickhouse target (migrations/clickhouse) on every server, or revert them with --down-to.
    Migrate {
        /// Shared rollup options (--target names a target whose rollups_database is "clickhouse").
        #[command(flatten)]
        args: RollupArgs,
        /// Revert every applied migration newer than this version (0 for all) instead of applying.
        #[arg(long, value_name = "VERSION")]
        down_to: Option<i64>,
    },
}
