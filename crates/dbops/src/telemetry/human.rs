//! The human log format: one compact line per event, in which each field name appears once.
//!
//! tracing-subscriber's compact format writes an event's fields and then the
//! fields of every span around it, so a line inside a migration repeated the
//! `target` and `direction` of both the run's span and the migration's. Here
//! the innermost value of a name wins: the event's own, else the nearest
//! span's; within a span, the value recorded last.

use std::collections::HashSet;
use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Writes `TIME LEVEL span:span: message name=value ...` lines.
#[derive(Debug, Default)]
pub struct HumanFormat;

/// Keeps a span's fields one by one, each with its name, for [`HumanFormat`]
/// to pick from.
///
/// Each field is stored as `name NAME_END text FIELD_END`, where `text` is the
/// field as the compact format writes it (`name=value`, a message bare).
#[derive(Debug, Default)]
pub struct SpanFields;

const NAME_END: char = '\u{1f}';
const FIELD_END: char = '\u{1e}';

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        for (name, text) in rendered(fields) {
            write!(writer, "{name}{NAME_END}{text}{FIELD_END}")?;
        }
        Ok(())
    }

    /// Appends the fields a span records later; every stored field ends
    /// itself, so no separator is added between old and new.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        self.format_fields(current.as_writer(), fields)
    }
}

impl<S> FormatEvent<S, SpanFields> for HumanFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, SpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ansi = writer.has_ansi_escapes();
        let style = |code: &'static str| if ansi { code } else { "" };
        write!(writer, "{}", style(DIMMED))?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "{} ", style(RESET))?;
        let level = *event.metadata().level();
        write!(
            writer,
            "{}{level:>5}{} ",
            style(level_color(level)),
            style(RESET)
        )?;

        let mut fields: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for (name, text) in rendered(event) {
            seen.insert(name.to_owned());
            fields.push(text);
        }
        // Spans from the innermost out, so that an inner value hides an outer one;
        // written the other way round, outermost first, as the compact format does.
        let mut names = Vec::new();
        let mut span_fields = Vec::new();
        for span in ctx.event_scope().into_iter().flatten() {
            names.push(span.name());
            let extensions = span.extensions();
            let Some(stored) = extensions.get::<FormattedFields<SpanFields>>() else {
                continue;
            };
            let mut own: Vec<String> = stored
                .fields
                .split_terminator(FIELD_END)
                .filter_map(|field| field.split_once(NAME_END))
                .rev()
                .filter(|(name, _)| seen.insert((*name).to_owned()))
                .map(|(_, text)| text.to_owned())
                .collect();
            own.reverse();
            span_fields.push(own);
        }
        for name in names.iter().rev() {
            write!(writer, "{}{name}{}:", style(BOLD), style(RESET))?;
        }
        if !names.is_empty() {
            writer.write_char(' ')?;
        }
        let all = fields.iter().chain(span_fields.iter().rev().flatten());
        for (i, text) in all.enumerate() {
            if i > 0 {
                writer.write_char(' ')?;
            }
            writer.write_str(text)?;
        }
        writeln!(writer)
    }
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const DIMMED: &str = "\x1b[2m";

/// The level's color in the compact format.
fn level_color(level: Level) -> &'static str {
    match level {
        Level::TRACE => "\x1b[35m",
        Level::DEBUG => "\x1b[34m",
        Level::INFO => "\x1b[32m",
        Level::WARN => "\x1b[33m",
        Level::ERROR => "\x1b[31m",
    }
}

/// Each field with its name and its text as the compact format writes it.
fn rendered(fields: impl RecordFields) -> Vec<(&'static str, String)> {
    let mut visitor = OneByOne(Vec::new());
    fields.record(&mut visitor);
    visitor.0
}

/// Renders each field alone through tracing-subscriber's own visitor, which
/// quotes strings, writes a message bare and escapes terminal control sequences.
struct OneByOne(Vec<(&'static str, String)>);

impl OneByOne {
    fn push(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut text = String::new();
        record(&mut DefaultVisitor::new(Writer::new(&mut text), true));
        if !text.is_empty() {
            self.0.push((field.name(), text));
        }
    }
}

impl Visit for OneByOne {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, |v| v.record_str(field, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, |v| v.record_debug(field, value));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Collects what the log layer writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines `emit` logs, without their timestamps.
    fn lines(emit: impl FnOnce()) -> Vec<String> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let layer = tracing_subscriber::fmt::layer()
            .fmt_fields(SpanFields)
            .event_format(HumanFormat)
            .with_ansi(false)
            .with_writer(move || writer.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| line.split_once(' ').unwrap().1.to_owned())
            .collect()
    }

    #[test]
    fn each_field_once_the_innermost_wins() {
        let got = lines(|| {
            let run = tracing::info_span!(
                "migrate.run",
                target = "operational",
                direction = "up",
                outcome = tracing::field::Empty
            );
            let _run = run.enter();
            let migration = tracing::info_span!(
                "migrate.migration",
                target = "operational",
                direction = "up",
                version = 202501010000u64,
                outcome = tracing::field::Empty
            );
            let _migration = migration.enter();
            migration.record("outcome", "running");
            migration.record("outcome", "succeeded");
            run.record("outcome", "running");
            tracing::info!(version = 7, "up {} in {} ms", "202501010000_widgets", 3);
            tracing::warn!(note = %"a \"quoted\" note", "second");
        });
        assert_eq!(
            got,
            [
                r#" INFO migrate.run:migrate.migration: up 202501010000_widgets in 3 ms version=7 target="operational" direction="up" outcome="succeeded""#,
                r#" WARN migrate.run:migrate.migration: second note=a "quoted" note target="operational" direction="up" version=202501010000 outcome="succeeded""#,
            ]
        );
    }

    #[test]
    fn a_line_outside_spans_has_only_its_fields() {
        let got = lines(|| tracing::info!(files = 2, "read"));
        assert_eq!(got, [" INFO read files=2"]);
    }
}
