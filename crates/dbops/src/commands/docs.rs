//! `dbops docs`: generate the data dictionary and ER diagram, and validate them against the database.

use std::io::Write;

use catalog::introspect::IntrospectOptions;
use docgen::erd::SvgOutcome;
use docgen::{Config, Finding, FindingKind, Source};

use crate::CliError;
use crate::context::{Context, connect_url};
use crate::exit_code;
use crate::opt::{DocsArgs, DocsCommand, TargetChoice};

/// Runs one `docs` subcommand against the operational and analytics databases.
pub async fn run(context: &Context<'_>, command: DocsCommand) -> Result<i32, CliError> {
    match command {
        DocsCommand::Generate { docs, render } => {
            let config = config(context, &docs);
            let databases = Databases::connect(context, &docs).await?;
            let generated = docgen::generate(&databases.sources(), &config).await?;
            report_written(&generated);
            if render {
                match docgen::erd::render_svg(&config.erd_path()) {
                    SvgOutcome::Rendered(path) => println!("rendered {}", path.display()),
                    SvgOutcome::Skipped { reason } => eprintln!("docs: SVG not rendered: {reason}"),
                    SvgOutcome::Failed { reason } => {
                        eprintln!("docs: SVG rendering failed: {reason}")
                    }
                    other => eprintln!("docs: SVG: {other:?}"),
                }
            }
            Ok(exit_code::SUCCESS)
        }
        DocsCommand::Validate { docs, fix, json } => {
            let config = config(context, &docs);
            let databases = Databases::connect(context, &docs).await?;
            let sources = databases.sources();
            let mut findings = docgen::validate(&sources, &config).await?;
            if fix && findings.iter().any(|f| f.kind.fixed_by_regenerating()) {
                report_written(&docgen::generate(&sources, &config).await?);
                findings = docgen::validate(&sources, &config).await?;
            }
            if json {
                let mut out = std::io::stdout().lock();
                serde_json::to_writer_pretty(&mut out, &findings)?;
                let _ = writeln!(out);
            } else if findings.is_empty() {
                println!(
                    "docs: {} and {} match the database; every foreign key is enforced",
                    config.dictionary_path().display(),
                    config.erd_path().display()
                );
            } else {
                for finding in &findings {
                    println!("{finding}");
                }
            }
            Ok(validate_exit_code(&findings))
        }
    }
}

fn config(context: &Context<'_>, args: &DocsArgs) -> Config {
    Config {
        docs_dir: context.flag_or_project_path(args.docs_dir.as_deref(), "docs"),
        classification_map: context.flag_or_project_path(
            args.classification.as_deref(),
            crate::context::CLASSIFICATION_MAP,
        ),
    }
}

/// The connections the docs are read through: one when the analytics schema
/// lives in the operational database (ANALYTICS_URL unset or equal to
/// DB_URL), two otherwise.
struct Databases {
    connections: Vec<(tokio_postgres::Client, IntrospectOptions)>,
}

impl Databases {
    async fn connect(context: &Context<'_>, args: &DocsArgs) -> Result<Databases, CliError> {
        let operational_schemas = if args.schemas.is_empty() {
            IntrospectOptions::default().schemas
        } else {
            args.schemas.clone()
        };
        let mut wanted: Vec<(String, Vec<String>)> = Vec::new();
        if matches!(args.target, TargetChoice::Operational | TargetChoice::All) {
            wanted.push((context.database_url("operational")?, operational_schemas));
        }
        if matches!(args.target, TargetChoice::Analytics | TargetChoice::All) {
            let url = context.database_url("analytics")?;
            match wanted.iter_mut().find(|(other, _)| *other == url) {
                Some((_, schemas)) => schemas.push(args.analytics_schema.clone()),
                None => wanted.push((url, vec![args.analytics_schema.clone()])),
            }
        }
        let mut connections = Vec::new();
        for (url, schemas) in wanted {
            connections.push((
                connect_url(&url, "dbops docs").await?,
                IntrospectOptions { schemas },
            ));
        }
        Ok(Databases { connections })
    }

    fn sources(&self) -> Vec<Source<'_>> {
        self.connections
            .iter()
            .map(|(client, options)| Source { client, options })
            .collect()
    }
}

fn report_written(generated: &docgen::Generated) {
    for path in &generated.written {
        println!("wrote {}", path.display());
    }
    for path in &generated.unchanged {
        println!("unchanged {}", path.display());
    }
    for gap in &generated.classification_gaps {
        eprintln!("warning: {gap}");
    }
}

/// Stale docs or an incomplete classification map: the docs cannot be
/// trusted. Otherwise an unenforced foreign key is a failed data check.
fn validate_exit_code(findings: &[Finding]) -> i32 {
    if findings
        .iter()
        .any(|f| f.kind.fixed_by_regenerating() || f.kind == FindingKind::Classification)
    {
        exit_code::DOCS_OUT_OF_DATE
    } else if findings.is_empty() {
        exit_code::SUCCESS
    } else {
        exit_code::CHECK_FAILED
    }
}
