//! `dbops lint [PATHS...] [--db] [--format human|json|github|sarif]`: schema-lint on migration files, and with `--db` on the live schemas.

use std::io::Write;
use std::path::{Path, PathBuf};

use catalog::introspect::{IntrospectOptions, introspect};
use migrate_core::status::DriftKind;

use crate::CliError;
use crate::context::{Context, connect_url, error_chain};
use crate::exit_code;
use crate::opt::{LintArgs, LintFormat, TargetArgs, TargetChoice};

/// Lints the given paths (default: every target's migrations folder) and, with `--db`, each target's database.
pub async fn run(context: &Context<'_>, args: LintArgs) -> Result<i32, CliError> {
    let config = context.lint_config()?;
    let targets = Context::targets(TargetChoice::All);
    let paths: Vec<PathBuf> = if args.paths.is_empty() {
        targets
            .iter()
            .map(|t| Ok(context.project_path(&context.config.target(t)?.dir)))
            .collect::<Result<_, CliError>>()?
    } else {
        args.paths.clone()
    };
    let sources = schema_lint::read_paths(&paths).map_err(|e| CliError::Config(error_chain(&e)))?;
    // With --db, each target's schema is read first: a column type change in
    // the files is judged from the column's live type when no file creates it.
    let mut live = Vec::new();
    let mut audit_problems = Vec::new();
    let mut databases = std::collections::BTreeSet::new();
    if args.db {
        for &target in targets {
            live.push((target, introspect_target(context, target).await?));
            // Not a schema-lint rule: the audit tables are dbops's bookkeeping,
            // which the linter ignores. Reported beside its findings, once
            // per database.
            if !databases.insert(context.database_url(target)?) {
                continue;
            }
            let client = context.connect(target, "dbops lint").await?;
            audit_problems.extend(
                migrate_core::audit::trigger_problems(&client)
                    .await?
                    .into_iter()
                    .map(|p| format!("{target}: {}: {}", p.table, p.problem)),
            );
        }
    }
    let found = if args.db {
        let all = catalog::model::Schema {
            tables: live.iter().flat_map(|(_, s)| s.tables.clone()).collect(),
        };
        schema_lint::lint_sources_against(&sources, &all, &config)
    } else {
        schema_lint::lint_sources(&sources, &config)
    };
    let baseline_path = baseline_path(context, &config);
    if args.update_baseline {
        let baseline = schema_lint::Baseline::record(&found, &sources, &context.project_root);
        std::fs::write(&baseline_path, baseline.to_toml()).map_err(|source| CliError::Io {
            context: format!("writing the lint baseline {}", baseline_path.display()),
            source,
        })?;
        eprintln!(
            "lint baseline {}: {} finding(s) accepted",
            baseline_path.display(),
            baseline.len()
        );
        return Ok(exit_code::SUCCESS);
    }
    let split = load_baseline(&baseline_path)?.apply(found, &sources);
    let mut violations = split.new;
    if !split.accepted.is_empty() {
        eprintln!(
            "{} finding(s) accepted by the lint baseline {}",
            split.accepted.len(),
            baseline_path.display()
        );
    }
    for (target, schema) in &live {
        violations.extend(lint_database(context, target, schema, &config).await?);
    }
    let rendered = match args.format {
        LintFormat::Human => schema_lint::render::human(&violations),
        LintFormat::Json => schema_lint::render::json(&violations),
        LintFormat::Github => schema_lint::render::github(&violations),
        LintFormat::Sarif => schema_lint::render::sarif(&violations),
    };
    std::io::stdout()
        .write_all(rendered.as_bytes())
        .map_err(|source| CliError::Io {
            context: "writing the lint report".into(),
            source,
        })?;
    for problem in &audit_problems {
        eprintln!("error: audit trail: {problem}");
    }
    Ok(
        if schema_lint::has_errors(&violations) || !audit_problems.is_empty() {
            exit_code::LINT_ERRORS
        } else {
            exit_code::SUCCESS
        },
    )
}

/// The lint baseline file: lint.toml's `baseline`, else configs/lint-baseline.toml.
pub fn baseline_path(context: &Context<'_>, config: &schema_lint::Config) -> PathBuf {
    config
        .baseline
        .clone()
        .unwrap_or_else(|| context.project_path(Path::new(LINT_BASELINE)))
}

/// Reads the lint baseline; none yet is an empty one.
pub fn load_baseline(path: &Path) -> Result<schema_lint::Baseline, CliError> {
    schema_lint::Baseline::load(path).map_err(|e| CliError::Config(error_chain(&e)))
}

/// The default lint baseline, relative to the project root.
const LINT_BASELINE: &str = "configs/lint-baseline.toml";

/// The schemas a target's database holds.
fn target_schemas(target: &str) -> Vec<String> {
    match target {
        "analytics" => vec!["analytics".to_owned()],
        _ => vec![catalog::model::DEFAULT_SCHEMA.to_owned()],
    }
}

/// One target's schemas, as `catalog` introspects them.
async fn introspect_target(
    context: &Context<'_>,
    target: &str,
) -> Result<catalog::model::Schema, CliError> {
    let url = context.database_url(target)?;
    let client = connect_url(&url, "dbops lint").await?;
    let schemas = target_schemas(target);
    introspect(&client, &IntrospectOptions { schemas })
        .await
        .map_err(|e| {
            CliError::Config(format!(
                "introspecting the {target} database: {}",
                error_chain(&e)
            ))
        })
}

/// The live checks of one target: its schemas introspected, its history from the migration engine's status.
async fn lint_database(
    context: &Context<'_>,
    target: &str,
    schema: &catalog::model::Schema,
    config: &schema_lint::Config,
) -> Result<Vec<schema_lint::Violation>, CliError> {
    let schemas = target_schemas(target);
    // The map covers every target; this database holds only this target's
    // schemas, so the map's other tables are not "missing" here.
    let mut config = config.clone();
    if let Some(map) = config.classification.as_mut() {
        map.tables.retain(|table, _| {
            let schema = table
                .split_once('.')
                .map_or(catalog::model::DEFAULT_SCHEMA, |(schema, _)| schema);
            schemas.iter().any(|s| s == schema)
        });
    }
    let config = &config;
    let target_args = TargetArgs {
        target: Some(TargetChoice::All),
        dir: None,
        lock_wait: None,
        lock_timeout: None,
        statement_timeout: None,
    };
    let status = context.migrator(target, &target_args)?.status().await?;
    let history: Vec<schema_lint::AppliedMigration> = status
        .drifted
        .iter()
        .filter(|d| d.kind == DriftKind::Changed)
        .map(|d| schema_lint::AppliedMigration {
            version: d.version as u64,
            name: d.name.clone(),
            changed_since_applied: true,
            path: d.file.clone(),
        })
        .chain(
            status
                .schema_version
                .map(|version| schema_lint::AppliedMigration {
                    version: version as u64,
                    name: String::new(),
                    changed_since_applied: false,
                    path: None,
                }),
        )
        .collect();
    let pending: Vec<schema_lint::PendingMigration> = status
        .pending
        .iter()
        .map(|p| schema_lint::PendingMigration {
            version: p.version as u64,
            path: p.file.clone(),
        })
        .collect();
    Ok(schema_lint::lint_live(
        &schema_lint::LiveInput {
            schema,
            history: &history,
            pending: &pending,
        },
        config,
    ))
}
