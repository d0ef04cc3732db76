//! Resolving settings: flags, then environment, then `configs/migrate.toml`.
//!
//! The configuration file is `--config` / `DBOPS_CONFIG`, else the nearest
//! `configs/migrate.toml` walking up from the working directory. Relative
//! paths inside it, and the files found beside it (`configs/lint.toml`),
//! start from its project root ([`crate::config::project_root`]), so dbops
//! behaves the same from any directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use migrate_core::{AuditSettings, Database, Migrator, Settings, Source};

use crate::CliError;
use crate::config::{self, ConfigFile};
use crate::opt::{Global, GuardArgs, TargetArgs, TargetChoice};

/// What every command needs: the configuration and the global flags.
#[derive(Debug)]
pub struct Context<'a> {
    /// The parsed configuration file.
    pub config: ConfigFile,
    /// Where it was read from.
    pub config_path: PathBuf,
    /// The folder its relative paths start from: relative to the working
    /// directory when under it (empty when it is the working directory).
    pub project_root: PathBuf,
    /// The global flags.
    pub global: &'a Global,
}

impl<'a> Context<'a> {
    /// Finds and loads the configuration file (see the module documentation).
    pub fn load(global: &'a Global) -> Result<Context<'a>, CliError> {
        let cwd = std::env::current_dir().map_err(|source| CliError::Io {
            context: "reading the working directory".into(),
            source,
        })?;
        let config_path = config::find(global.config.as_deref(), &cwd)?;
        let mut config = ConfigFile::load(&config_path)?;
        // Under the working directory, the root stays relative to it, so
        // that reports name files as before (`migrations/operational/...`,
        // which GitHub annotations need); elsewhere it is absolute.
        let project_root = config::project_root(&config_path);
        let project_root = match project_root.strip_prefix(&cwd) {
            Ok(relative) => relative.to_path_buf(),
            Err(_) => project_root,
        };
        for policy in config.environments.values_mut() {
            if let Some(path) = &mut policy.allowed_signers {
                *path = project_root.join(&*path);
            }
        }
        Ok(Context {
            config,
            config_path,
            project_root,
            global,
        })
    }

    /// A path from the configuration, or a default beside it, made absolute
    /// from the project root.
    pub fn project_path(&self, path: &Path) -> PathBuf {
        self.project_root.join(path)
    }

    /// A file or folder named by a flag, taken as given (relative to the
    /// working directory), else its default under the project root.
    pub fn flag_or_project_path(&self, flag: Option<&Path>, default: &str) -> PathBuf {
        match flag {
            Some(path) => path.to_path_buf(),
            None => self.project_path(Path::new(default)),
        }
    }

    /// The target names a `--target` choice stands for, in apply order.
    pub fn targets(choice: TargetChoice) -> &'static [&'static str] {
        match choice {
            TargetChoice::Operational => &["operational"],
            TargetChoice::Analytics => &["analytics"],
            TargetChoice::All => &["operational", "analytics"],
        }
    }

    /// The targets a choice stands for that the configuration has, in apply
    /// order: `All` is every configured target.
    pub fn configured(&self, choice: TargetChoice) -> Vec<&'static str> {
        Context::targets(choice)
            .iter()
            .copied()
            .filter(|name| choice != TargetChoice::All || self.config.targets.contains_key(*name))
            .collect()
    }

    /// The database URL of a target: the flag, then its variable, then its
    /// fallback variable, then libpq's own variables (an empty connection
    /// string, completed from `PGHOST`, `PGSERVICE`, `PGDATABASE` and the
    /// rest; see docs/connections.md).
    pub fn database_url(&self, target: &str) -> Result<String, CliError> {
        let flag = match target {
            "operational" => &self.global.database_url,
            "analytics" => &self.global.analytics_url,
            _ => &None,
        };
        if let Some(url) = flag {
            return Ok(url.clone());
        }
        let config = self.config.target(target)?;
        let variables = std::iter::once(&config.url_env).chain(config.fallback_url_env.as_ref());
        for variable in variables.clone() {
            if let Ok(url) = std::env::var(variable)
                && !url.is_empty()
            {
                return Ok(url);
            }
        }
        if ["PGHOST", "PGSERVICE", "PGDATABASE"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
        {
            return Ok(String::new());
        }
        let names: Vec<&str> = variables.map(String::as_str).collect();
        Err(CliError::Config(format!(
            "no database for target {target:?}: set {} (or PGHOST, PGSERVICE or PGDATABASE) or pass --{}",
            names.join(" or "),
            if target == "analytics" {
                "analytics-url"
            } else {
                "database-url"
            }
        )))
    }

    /// A plain connection to a target's database, for the tools beside the migrator.
    pub async fn connect(
        &self,
        target: &str,
        application_name: &str,
    ) -> Result<tokio_postgres::Client, CliError> {
        Ok(migrate_core::connect_url(&self.database_url(target)?, application_name).await?)
    }

    /// The database of a target.
    pub fn database(&self, target: &str) -> Result<Database, CliError> {
        Ok(Database::from_url(&self.database_url(target)?)?)
    }

    /// The migrations folder of a target, `--dir` taking precedence.
    pub fn migrations_dir(&self, target: &str, args: &TargetArgs) -> Result<PathBuf, CliError> {
        if let Some(dir) = &args.dir {
            if args.target == Some(TargetChoice::All) {
                return Err(CliError::Config("--dir names one folder: use it with --target operational or --target analytics".into()));
            }
            return Ok(dir.clone());
        }
        Ok(self.project_path(&self.config.target(target)?.dir))
    }

    /// A migrator for a target, with `--dir` and `--lock-wait` applied, for reading and approving.
    pub fn migrator(&self, target: &str, args: &TargetArgs) -> Result<Migrator, CliError> {
        let source = Source::load(&self.migrations_dir(target, args)?)?;
        let settings = self.settings(args, |name| std::env::var_os(name))?;
        let migrator = Migrator::new(target, source, self.database(target)?, settings)?;
        Ok(match audit_key()? {
            Some(key) => migrator.with_audit_key(key),
            None => migrator,
        })
    }

    /// The engine's settings with every layer merged, flags over environment
    /// variables over the configuration file, and then checked as a whole:
    /// an error names the flag, variable or file setting the bad value came
    /// from. `var` reads a variable (the process environment, or a test's).
    fn settings(
        &self,
        args: &TargetArgs,
        var: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Settings, CliError> {
        type Field = fn(&mut Settings) -> &mut Duration;
        let layers: [(&str, &str, &str, Option<Duration>, Field); 3] = [
            (
                "settings.lock_wait",
                "--lock-wait",
                "DBOPS_LOCK_WAIT",
                args.lock_wait,
                |s| &mut s.lock_wait,
            ),
            (
                "settings.lock_timeout",
                "--lock-timeout",
                "DBOPS_LOCK_TIMEOUT",
                args.lock_timeout,
                |s| &mut s.lock_timeout,
            ),
            (
                "settings.statement_timeout",
                "--statement-timeout",
                "DBOPS_STATEMENT_TIMEOUT",
                args.statement_timeout,
                |s| &mut s.statement_timeout,
            ),
        ];
        let mut settings = self.config.settings.clone();
        let mut origins = Vec::new();
        for (key, flag, variable, flag_value, field) in layers {
            let (value, origin) = match (flag_value, var(variable)) {
                (Some(value), _) => (value, flag),
                (None, Some(text)) => {
                    let text = text.to_string_lossy();
                    let value = humantime::parse_duration(text.trim()).map_err(|e| {
                        CliError::Config(format!(
                            "{variable}: {text:?} is not a duration: {e} (examples: 30s, 2min, 500ms)"
                        ))
                    })?;
                    (value, variable)
                }
                (None, None) => continue,
            };
            *field(&mut settings) = value;
            origins.push((key, origin));
        }
        settings.validate().map_err(|error| match error {
            migrate_core::Error::Config { origin, message } => {
                let named = origins
                    .iter()
                    .find(|(key, _)| *key == origin.as_str())
                    .map_or_else(
                        || format!("{}: {origin}", self.config_path.display()),
                        |(_, layer)| (*layer).to_string(),
                    );
                CliError::Config(format!("{named}: {message}"))
            }
            other => other.into(),
        })?;
        Ok(settings)
    }

    /// A migrator that changes the schema: the standard hooks from `[hooks]`
    /// and the audit trail, with the actor and environment on every entry.
    pub fn changing_migrator(
        &self,
        target: &str,
        args: &TargetArgs,
        actor: &str,
        guard: &GuardArgs,
    ) -> Result<Migrator, CliError> {
        let mut metadata = serde_json::Map::new();
        metadata.insert("environment".into(), guard.environment.clone().into());
        let audit = AuditSettings {
            actor: actor.to_string(),
            metadata,
        };
        let migrator = self.migrator(target, args)?.with_audit(audit);
        Ok(with_hooks(migrator, &self.hooks_config()?))
    }

    /// A migrator for a dry run's preflight: the standard hooks report
    /// blocking sessions at once instead of waiting for them to go.
    pub fn preflight_migrator(
        &self,
        target: &str,
        args: &TargetArgs,
    ) -> Result<Migrator, CliError> {
        let mut hooks = self.hooks_config()?;
        hooks.blocking_sessions.action = migrate_hooks::OnBlocked::Warn;
        Ok(with_hooks(self.migrator(target, args)?, &hooks))
    }

    fn hooks_config(&self) -> Result<migrate_hooks::HooksConfig, CliError> {
        match &self.config.hooks {
            Some(table) => migrate_hooks::HooksConfig::from_table(table).map_err(|e| {
                CliError::Config(format!("{}: [hooks]: {e}", self.config_path.display()))
            }),
            None => Ok(migrate_hooks::HooksConfig::default()),
        }
    }

    /// The lint configuration, `configs/lint.toml` under the project root
    /// (it names the data-classification map); the rules' defaults when the
    /// project has none.
    pub fn lint_config(&self) -> Result<schema_lint::Config, CliError> {
        let path = self.project_path(Path::new(LINT_CONFIG));
        if !path.exists() {
            return Ok(schema_lint::Config::default());
        }
        schema_lint::Config::load(&path).map_err(|e| CliError::Config(error_chain(&e)))
    }
}

/// An error and its causes as dbops prints them: the error's message, then
/// one `  caused by: ...` line per cause (docs/exit-codes.md). The one place
/// the binary walks a `source()` chain, for the error that ends a run as for
/// an error folded into another's message.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    for cause in std::iter::successors(error.source(), |cause| cause.source()) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    text
}

/// The variable holding the key that authenticates audit entries
/// (docs/security.md); unset, entries are hash-chained only.
pub const AUDIT_KEY_VARIABLE: &str = "DBOPS_AUDIT_KEY";

/// The audit key from [`AUDIT_KEY_VARIABLE`], when set: its UTF-8 bytes, at
/// least 32 of them. The error never shows the value.
pub fn audit_key() -> Result<Option<migrate_core::audit::AuditKey>, CliError> {
    match std::env::var_os(AUDIT_KEY_VARIABLE) {
        // Empty counts as unset, as an env file's `DBOPS_AUDIT_KEY=` line.
        None => Ok(None),
        Some(value) if value.is_empty() => Ok(None),
        Some(value) => migrate_core::audit::AuditKey::new(value.as_encoded_bytes())
            .map(Some)
            .map_err(|e| match e {
                migrate_core::Error::Config { message, .. } => {
                    CliError::Config(format!("{AUDIT_KEY_VARIABLE}: {message}"))
                }
                other => other.into(),
            }),
    }
}

/// The lint configuration file, relative to the project root.
pub const LINT_CONFIG: &str = "configs/lint.toml";

/// The data-classification map, relative to the project root.
pub const CLASSIFICATION_MAP: &str = "configs/data-classification.toml";

/// Opens one connection, telling an unreachable server from refused
/// credentials and never echoing the password; the connection lives as long
/// as the client.
pub async fn connect_url(
    url: &str,
    application_name: &str,
) -> Result<tokio_postgres::Client, CliError> {
    Ok(migrate_core::connect_url(url, application_name).await?)
}

fn with_hooks(migrator: Migrator, config: &migrate_hooks::HooksConfig) -> Migrator {
    migrate_hooks::standard_hooks(config)
        .into_iter()
        .fold(migrator, Migrator::with_hook)
}

/// Parses a database URL for a library that opens its own connections,
/// never echoing the URL's password.
pub fn connection_config(url: &str) -> Result<pgconn::ConnConfig, CliError> {
    pgconn::ConnConfig::parse(url).map_err(|e| CliError::Config(error_chain(&e)))
}

impl TargetArgs {
    /// `--target`; else, with `--dir`, the operational target; else `default`.
    pub fn choice(&self, default: TargetChoice) -> TargetChoice {
        match (self.target, &self.dir) {
            (Some(choice), _) => choice,
            (None, Some(_)) => TargetChoice::Operational,
            (None, None) => default,
        }
    }

    /// `--target` (or `--dir`'s operational target) for a command that is
    /// never run on a target by default, such as a rollback.
    pub fn required(&self, command: &str) -> Result<TargetChoice, CliError> {
        match (self.target, &self.dir) {
            (Some(choice), _) => Ok(choice),
            (None, Some(_)) => Ok(TargetChoice::Operational),
            (None, None) => Err(CliError::Config(format!(
                "{command} names its target: pass --target operational, --target analytics or --target all"
            ))),
        }
    }
}
