//! Running the rules: parse files in parallel, check each migration set, apply severities and ignores.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use catalog::model::Schema;
use time::OffsetDateTime;

use crate::LiveInput;
use crate::config::Config;
use crate::ignore::FileIgnores;
use crate::model::{FileSpan, replay_over};
use crate::rules::{
    self, At, Finding, Findings, LiveView, MigrationSet, SchemaView, UNUSED_IGNORE,
};
use crate::source::{Source, set_key};
use crate::violation::{Location, SourceSpan, Violation};

/// One file after the parallel phase.
struct Prepared {
    source: Source,
    ignores: FileIgnores,
    findings: Findings,
}

/// Lints SQL files given as (path, text); files of the same directory form one migration set.
pub(crate) fn lint_sources(
    sources: Vec<(PathBuf, String)>,
    config: &Config,
    now: OffsetDateTime,
) -> Vec<Violation> {
    lint_sources_reporting(sources, None, None, config, now)
}

/// Like [`lint_sources`], reporting only findings located in `reported` files
/// (the others are context: they build the schema the reported ones change).
pub(crate) fn lint_sources_reporting(
    sources: Vec<(PathBuf, String)>,
    reported: Option<&HashSet<PathBuf>>,
    live: Option<&Schema>,
    config: &Config,
    now: OffsetDateTime,
) -> Vec<Violation> {
    let mut sources = sources;
    sources.sort_by(|a, b| (set_key(&a.0), &a.0).cmp(&(set_key(&b.0), &b.0)));
    // Contiguous ranges of files that share a directory.
    let mut sets: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, (path, _)) in sources.iter().enumerate() {
        match sets.last_mut() {
            Some(range) if set_key(&sources[range.start].0) == set_key(path) => range.end = i + 1,
            _ => sets.push(i..i + 1),
        }
    }
    let offsets: Vec<usize> = {
        let mut offsets = vec![0; sources.len()];
        for range in &sets {
            for i in range.clone() {
                offsets[i] = i - range.start;
            }
        }
        offsets
    };
    let prepared = prepare_in_parallel(sources, &offsets, reported, config);
    let (sources, mut per_file): (Vec<Source>, Vec<(FileIgnores, Findings)>) = prepared
        .into_iter()
        .map(|p| (p.source, (p.ignores, p.findings)))
        .unzip();

    let mut violations = Vec::new();
    for range in sets {
        let set = MigrationSet {
            sources: &sources[range.clone()],
            config,
            now,
            live,
        };
        violations.extend(lint_set(&set, &mut per_file[range]));
    }
    if let Some(reported) = reported {
        violations.retain(|v| v.location.path().is_some_and(|p| reported.contains(p)));
    }
    sort(&mut violations);
    violations
}

/// The rules that are not turned off.
fn enabled_rules(config: &Config) -> impl Iterator<Item = &&'static dyn rules::Rule> {
    rules::RULES
        .iter()
        .filter(|rule| config.severity(rule.info()).is_some())
}

/// Checks one migration set: its files' own findings (`files`, from the
/// parallel phase), the migration rules, and the schema rules on the model its
/// up files build; then applies the files' ignore comments.
fn lint_set(set: &MigrationSet<'_>, files: &mut [(FileIgnores, Findings)]) -> Vec<Violation> {
    let config = set.config;
    let mut findings = Findings::default();
    for rule in enabled_rules(config) {
        rule.check_migrations(set, &mut findings);
    }
    let (mut schema, origins) = replay_over(
        set.forward().map(|(i, s)| (i, &s.parse)),
        &config.ignored_schemas,
        set.live,
    );
    let gaps = classify(&mut schema, config);
    let view = SchemaView {
        schema: &schema,
        origins: Some(&origins),
        config,
        classification_gaps: &gaps,
    };
    for rule in enabled_rules(config) {
        rule.check_schema(&view, &mut findings);
    }
    let per_file: Vec<Finding> = files
        .iter_mut()
        .flat_map(|(_, f)| std::mem::take(&mut f.0))
        .collect();
    let mut kept = Findings::default();
    for finding in per_file.into_iter().chain(findings.0) {
        let file = match &finding.at {
            At::Span(span) => Some(span.file),
            At::File(file) => Some(*file),
            At::Path(_) | At::Object(_) => None,
        };
        if config.severity(finding.rule).is_none()
            || file.is_some_and(|f| files[f].0.suppresses(&finding))
        {
            continue;
        }
        kept.0.push(finding);
    }
    for (ignores, _) in files.iter() {
        ignores.report(&mut kept);
    }
    kept.0
        .into_iter()
        .filter_map(|f| to_violation(f, set.sources, config))
        .collect()
}

fn prepare_in_parallel(
    sources: Vec<(PathBuf, String)>,
    offsets: &[usize],
    reported: Option<&HashSet<PathBuf>>,
    config: &Config,
) -> Vec<Prepared> {
    let prepare = |(path, text): (PathBuf, String), file: usize| {
        let source = Source::new(path, text);
        let mut findings = Findings::default();
        let mut malformed = Vec::new();
        let ignores = FileIgnores::parse(file, &source, &mut malformed);
        for m in malformed {
            findings.report(&UNUSED_IGNORE, At::Span(m.span), m.problem);
        }
        let is_reported = reported.is_none_or(|r| r.contains(&source.path));
        if source.is_forward() && is_reported {
            rules::squawk::check_file(
                file,
                &source,
                |rule| config.severity(rule).is_some(),
                &mut findings,
            );
        }
        Prepared {
            source,
            ignores,
            findings,
        }
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(sources.len().div_ceil(16))
        .max(1);
    if workers == 1 {
        return sources
            .into_iter()
            .zip(offsets)
            .map(|(s, &file)| prepare(s, file))
            .collect();
    }
    let chunk = sources.len().div_ceil(workers);
    let mut jobs: Vec<Vec<((PathBuf, String), usize)>> = Vec::new();
    let mut items = sources.into_iter().zip(offsets.iter().copied()).peekable();
    while items.peek().is_some() {
        jobs.push(items.by_ref().take(chunk).collect());
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                scope.spawn(move || {
                    job.into_iter()
                        .map(|(s, file)| prepare(s, file))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a lint worker panicked"))
            .collect()
    })
}

/// Joins the classification map onto the model, returning the gaps.
fn classify(
    schema: &mut Schema,
    config: &Config,
) -> Vec<catalog::classification::ClassificationGap> {
    match &config.classification {
        Some(map) => map.apply(schema),
        None => Vec::new(),
    }
}

/// Lints the live database's schema and migration history.
pub(crate) fn lint_live(
    input: &LiveInput<'_>,
    config: &Config,
    now: OffsetDateTime,
) -> Vec<Violation> {
    let mut schema = input.schema.clone();
    let gaps = classify(&mut schema, config);
    let view = SchemaView {
        schema: &schema,
        origins: None,
        config,
        classification_gaps: &gaps,
    };
    let live = LiveView {
        schema: &schema,
        history: input.history,
        pending: input.pending,
        config,
        now,
    };
    let mut findings = Findings::default();
    for rule in enabled_rules(config) {
        rule.check_schema(&view, &mut findings);
        rule.check_live(&live, &mut findings);
    }
    rules::squawk::check_live_types(&view, &mut findings);
    let mut violations: Vec<Violation> = findings
        .0
        .into_iter()
        .filter_map(|f| to_violation(f, &[], config))
        .collect();
    sort(&mut violations);
    violations
}

fn to_violation(finding: Finding, sources: &[Source], config: &Config) -> Option<Violation> {
    let severity = config.severity(finding.rule)?;
    let location = match finding.at {
        At::Span(span) => source_location(&sources[span.file], span),
        At::File(file) => Location::File {
            path: sources[file].path.clone(),
        },
        At::Path(path) => Location::File { path },
        At::Object(name) => Location::Object { name },
    };
    Some(Violation {
        rule: finding.rule.id,
        severity,
        message: finding.message,
        help: finding.help,
        location,
    })
}

fn source_location(source: &Source, span: FileSpan) -> Location {
    let statement = source
        .statement_ranges()
        .iter()
        .copied()
        .find(|&(start, end)| start <= span.start && span.start < end.max(start + 1))
        .unwrap_or((span.start, span.end));
    Location::Source(SourceSpan {
        path: source.path.clone(),
        start: source.position(span.start),
        end: source.position(span.end),
        statement: source.excerpt(statement.0.min(span.start), statement.1.max(span.end)),
    })
}

fn sort(violations: &mut [Violation]) {
    // The key is built once per finding (a stable sort), not once per comparison.
    violations.sort_by_cached_key(|v| {
        let offset = match &v.location {
            Location::Source(span) => span.start.offset,
            _ => 0,
        };
        let object = match &v.location {
            Location::Object { name } => name.clone(),
            _ => String::new(),
        };
        (
            v.location.path().map(Path::to_path_buf),
            object,
            offset,
            v.rule,
        )
    });
}

/// Collects the `.sql` files under `paths` (files as given, directories recursively), read in parallel.
pub(crate) fn read_paths(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, crate::Error> {
    let mut files = Vec::new();
    for path in paths {
        collect_sql_files(path, &mut files)?;
    }
    files.sort();
    files.dedup();
    files
        .into_iter()
        .map(|path| match std::fs::read_to_string(&path) {
            Ok(text) => Ok((path, text)),
            Err(source) => Err(crate::Error::Read { path, source }),
        })
        .collect()
}

fn collect_sql_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), crate::Error> {
    let read_error = |source| crate::Error::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if !metadata.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let entry_path = entry.map_err(read_error)?.path();
        if entry_path.is_dir() {
            collect_sql_files(&entry_path, out)?;
        } else if entry_path.extension().is_some_and(|e| e == "sql") {
            out.push(entry_path);
        }
    }
    Ok(())
}
