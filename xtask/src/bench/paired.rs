//! Paired, interleaved timing of two commands, reported as medians and the
//! median of the per-round ratios.
//!
//! Each round runs both cases, alternating which goes first, after one
//! untimed warm-up round. A case prepares its command untimed (a fresh
//! database, say) and only the command itself is timed. Both commands write
//! their output to a file. Pairing by round cancels most of the machine's
//! drift: both commands of a round see the same background load.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, cmd};

/// One side of a comparison.
pub struct Case<'a> {
    label: String,
    prepare: Box<dyn FnMut() -> Result<Command> + 'a>,
}

impl<'a> Case<'a> {
    /// A case named `label` (shown in the report) whose `prepare` does the
    /// untimed set-up of a round and returns the command to time.
    pub fn new(
        label: impl Into<String>,
        prepare: impl FnMut() -> Result<Command> + 'a,
    ) -> Case<'a> {
        Case {
            label: label.into(),
            prepare: Box::new(prepare),
        }
    }

    fn time(&mut self) -> Result<Duration> {
        let mut command =
            (self.prepare)().map_err(|e| format!("preparing `{}`: {e}", self.label))?;
        // The command writes to a file, not to a pipe: a reader process
        // woken by every line would compete for the cores with the command
        // and the server (hyperfine discards output for the same reason).
        // The file is read back only when the command fails.
        let log = std::env::temp_dir().join(format!("xtask-bench-{}.log", std::process::id()));
        let out =
            std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("opening {} twice: {e}", log.display()))?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let started = Instant::now();
        let status = command
            .status()
            .map_err(|e| format!("cannot start `{}`: {e}", cmd::display(&command)))?;
        let elapsed = started.elapsed();
        let said = std::fs::read(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        if status.success() {
            Ok(elapsed)
        } else {
            let output = std::process::Output {
                status,
                stdout: Vec::new(),
                stderr: said,
            };
            Err(cmd::failure(&command, &output).into())
        }
    }
}

/// The timings of both cases.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub baseline_label: String,
    pub candidate_label: String,
    pub baseline: Vec<Duration>,
    pub candidate: Vec<Duration>,
}

/// Times `baseline` and `candidate` over `rounds` paired rounds.
pub fn paired(
    rounds: usize,
    mut baseline: Case<'_>,
    mut candidate: Case<'_>,
) -> Result<Comparison> {
    let mut comparison = Comparison {
        baseline_label: baseline.label.clone(),
        candidate_label: candidate.label.clone(),
        baseline: Vec::with_capacity(rounds),
        candidate: Vec::with_capacity(rounds),
    };
    eprint!("bench: {} vs {}: warm-up", candidate.label, baseline.label);
    baseline.time()?;
    candidate.time()?;
    for round in 0..rounds {
        eprint!(" {}", round + 1);
        if round % 2 == 0 {
            comparison.baseline.push(baseline.time()?);
            comparison.candidate.push(candidate.time()?);
        } else {
            comparison.candidate.push(candidate.time()?);
            comparison.baseline.push(baseline.time()?);
        }
    }
    eprintln!();
    Ok(comparison)
}

impl Comparison {
    /// The median of candidate / baseline over the rounds.
    pub fn median_ratio(&self) -> f64 {
        let ratios: Vec<f64> = self
            .baseline
            .iter()
            .zip(&self.candidate)
            .map(|(base, cand)| cand.as_secs_f64() / base.as_secs_f64())
            .collect();
        median(&ratios)
    }

    /// `goal: at most 1.30×: met`, or `NOT met`.
    pub fn goal(&self, at_most: f64) -> String {
        let met = self.median_ratio() <= at_most;
        format!("goal: at most {at_most:.2}×: {}", super::verdict(met))
    }

    /// The candidate's median wall time.
    pub fn candidate_median(&self) -> Duration {
        Duration::from_secs_f64(median(&secs(&self.candidate)))
    }

    /// A Markdown table of both cases and the median ratio.
    pub fn report(&self) -> String {
        let mut text = String::from("| command | median | min | max |\n|---|---|---|---|\n");
        for (label, times) in [
            (&self.baseline_label, &self.baseline),
            (&self.candidate_label, &self.candidate),
        ] {
            let secs = secs(times);
            let min = secs.iter().copied().fold(f64::INFINITY, f64::min);
            let max = secs.iter().copied().fold(0.0, f64::max);
            let _ = writeln!(
                text,
                "| `{label}` | {} | {} | {} |",
                seconds(median(&secs)),
                seconds(min),
                seconds(max)
            );
        }
        let _ = writeln!(
            text,
            "\nmedian ratio `{}` / `{}`, paired by round: **{:.2}×** over {} rounds",
            self.candidate_label,
            self.baseline_label,
            self.median_ratio(),
            self.baseline.len()
        );
        text
    }
}

fn secs(times: &[Duration]) -> Vec<f64> {
    times.iter().map(Duration::as_secs_f64).collect()
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `1.52 s` or `48.3 ms`.
pub fn seconds(secs: f64) -> String {
    if secs >= 1.0 {
        format!("{secs:.2} s")
    } else {
        format!("{:.1} ms", secs * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::Duration;

    use super::{Case, Comparison, median, paired, seconds};

    #[test]
    fn median_of_odd_even_and_unsorted_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn ratio_is_the_median_of_per_round_ratios() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect();
        let comparison = Comparison {
            baseline_label: "psql".into(),
            candidate_label: "dbops".into(),
            // Ratios 1.1, 2.0, 0.5: the median is 1.1, not a ratio of medians.
            baseline: ms(&[1000, 100, 2000]),
            candidate: ms(&[1100, 200, 1000]),
        };
        assert!((comparison.median_ratio() - 1.1).abs() < 1e-9);
        assert_eq!(comparison.candidate_median(), Duration::from_millis(1000));
        let report = comparison.report();
        assert!(
            report.contains("| `psql` | 1.00 s | 100.0 ms | 2.00 s |"),
            "{report}"
        );
        assert!(report.contains("**1.10×** over 3 rounds"), "{report}");
        assert_eq!(seconds(0.0483), "48.3 ms");
    }

    #[test]
    fn rounds_interleave_after_a_warm_up_and_failures_name_the_command() {
        let order = std::cell::RefCell::new(Vec::new());
        let case = |name: &'static str| {
            let order = &order;
            Case::new(name, move || {
                order.borrow_mut().push(name);
                Ok(Command::new("true"))
            })
        };
        let comparison = paired(3, case("a"), case("b")).unwrap();
        assert_eq!(
            order.borrow().as_slice(),
            ["a", "b", "a", "b", "b", "a", "a", "b"]
        );
        assert_eq!(
            (comparison.baseline.len(), comparison.candidate.len()),
            (3, 3)
        );

        let failing = Case::new("sh", || {
            let mut sh = Command::new("sh");
            sh.args(["-c", "echo broken >&2; exit 1"]);
            Ok(sh)
        });
        let err = paired(1, failing, case("b")).unwrap_err().to_string();
        assert!(err.contains("broken"), "{err}");
    }
}
