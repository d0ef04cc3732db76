//! Sparse logarithmic latency histograms: exact to add up, percentiles within 2%.
//!
//! Bin `i` (`i >= 1`) holds the latencies `v` with `GAMMA^(i-1) < v <= GAMMA^i`
//! milliseconds, `GAMMA = 1.02 / 0.98`; bin 0 holds 0 and 1 ms. Reading bin
//! `i` as `2 * GAMMA^i / (GAMMA + 1)` is within 2% of every latency in it
//! (the DDSketch construction with relative accuracy 0.02), so a percentile
//! read from a histogram is within 2% of the exact percentile of the events
//! it counts. Counts are exact integers, so the histogram of a day is the
//! bin-wise sum of its hours' histograms, and percentiles over any set of
//! rollup rows (a day, a month, an organization) are as accurate as over one
//! hour: unlike averaging hourly percentiles, nothing is lost by merging.
//!
//! Bins are stored as two parallel arrays (`latency_bins smallint[]`,
//! `latency_bin_counts bigint[]`) listing only the non-empty bins in
//! ascending order; `analytics.latency_quantile()` reads them in SQL with the
//! same rule as [`Histogram::quantile`].

/// The ratio between the upper bounds of consecutive bins.
pub const GAMMA: f64 = 1.02 / 0.98;

/// The largest relative error of a latency read back from its bin.
pub const RELATIVE_ACCURACY: f64 = 0.02;

/// The bin of a latency in milliseconds.
pub fn bin_of(latency_ms: i32) -> i16 {
    if latency_ms <= 1 {
        return 0;
    }
    let bin = (f64::from(latency_ms).ln() / GAMMA.ln()).ceil();
    // i32::MAX falls in bin 540, well inside i16.
    bin as i16
}

/// The latency a bin stands for: within [`RELATIVE_ACCURACY`] of every
/// latency in it.
pub fn bin_value(bin: i16) -> f64 {
    if bin <= 0 {
        1.0
    } else {
        2.0 * GAMMA.powi(i32::from(bin)) / (GAMMA + 1.0)
    }
}

/// A histogram: non-empty bins in ascending order and their counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    bins: Vec<i16>,
    counts: Vec<i64>,
}

impl Histogram {
    /// The histogram of some latencies.
    pub fn from_latencies(latencies_ms: &[i32]) -> Histogram {
        let mut bins: Vec<i16> = latencies_ms.iter().map(|&v| bin_of(v)).collect();
        bins.sort_unstable();
        let mut histogram = Histogram::default();
        for bin in bins {
            histogram.push_sorted(bin, 1);
        }
        histogram
    }

    /// The histogram of bins and counts listed in any order, bins possibly
    /// repeated (as concatenated histograms are): equal bins add up.
    ///
    /// # Panics
    /// When the two slices differ in length.
    pub fn from_unsorted(bins: &[i16], counts: &[i64]) -> Histogram {
        assert_eq!(
            bins.len(),
            counts.len(),
            "bins and counts are parallel arrays"
        );
        let mut pairs: Vec<(i16, i64)> = bins.iter().copied().zip(counts.iter().copied()).collect();
        pairs.sort_unstable_by_key(|&(bin, _)| bin);
        let mut histogram = Histogram::default();
        for (bin, count) in pairs {
            histogram.push_sorted(bin, count);
        }
        histogram
    }

    fn push_sorted(&mut self, bin: i16, count: i64) {
        match self.bins.last() {
            Some(&last) if last == bin => {
                *self.counts.last_mut().expect("parallel arrays") += count
            }
            _ => {
                self.bins.push(bin);
                self.counts.push(count);
            }
        }
    }

    /// The non-empty bins, ascending.
    pub fn bins(&self) -> &[i16] {
        &self.bins
    }

    /// The count of each bin of [`Histogram::bins`].
    pub fn counts(&self) -> &[i64] {
        &self.counts
    }

    /// Adds `other`'s counts to this histogram, bin by bin.
    pub fn merge(&mut self, other: &Histogram) {
        let mut merged = Histogram::default();
        let (mut i, mut j) = (0, 0);
        while i < self.bins.len() || j < other.bins.len() {
            let take_self =
                j == other.bins.len() || (i < self.bins.len() && self.bins[i] <= other.bins[j]);
            if take_self {
                merged.push_sorted(self.bins[i], self.counts[i]);
                i += 1;
            } else {
                merged.push_sorted(other.bins[j], other.counts[j]);
                j += 1;
            }
        }
        *self = merged;
    }

    /// How many latencies the histogram counts.
    pub fn total(&self) -> i64 {
        self.counts.iter().sum()
    }

    /// The `q`-quantile (`0 < q <= 1`) in milliseconds: the value of the
    /// first bin at which the running count reaches `q` of the total (the
    /// nearest-rank definition), or `None` for an empty histogram.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        let mut running = 0;
        for (&bin, &count) in self.bins.iter().zip(&self.counts) {
            running += count;
            if running as f64 >= q * total as f64 {
                return Some(bin_value(bin));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_latency_reads_back_within_the_accuracy() {
        for v in (2..20_000).chain([65_535, 600_000, i32::MAX]) {
            let read = bin_value(bin_of(v));
            let error = (read - f64::from(v)).abs() / f64::from(v);
            assert!(
                error <= RELATIVE_ACCURACY + 1e-12,
                "{v} ms reads back as {read}"
            );
        }
        assert_eq!(bin_value(bin_of(0)), 1.0);
        assert_eq!(bin_value(bin_of(1)), 1.0);
    }

    #[test]
    fn merging_hours_gives_the_histogram_of_the_day() {
        let morning = [120, 130, 5_000, 0];
        let evening = [121, 7, 7, 40_000];
        let a = Histogram::from_latencies(&morning);
        let b = Histogram::from_latencies(&evening);
        let concatenated_bins: Vec<i16> = a.bins().iter().chain(b.bins()).copied().collect();
        let concatenated_counts: Vec<i64> = a.counts().iter().chain(b.counts()).copied().collect();
        let merged = Histogram::from_unsorted(&concatenated_bins, &concatenated_counts);
        let day: Vec<i32> = morning.iter().chain(&evening).copied().collect();
        assert_eq!(merged, Histogram::from_latencies(&day));
        let mut incremental = a.clone();
        incremental.merge(&b);
        assert_eq!(incremental, merged);
        incremental.merge(&Histogram::default());
        assert_eq!(incremental, merged);
        assert_eq!(merged.total(), 8);
    }

    #[test]
    fn the_p95_is_within_two_percent_of_the_exact_value() {
        // A skewed day: 1,000 latencies from 50 ms to about 10 s.
        let mut latencies: Vec<i32> = (0..1_000_i64)
            .map(|i| 50 + (i * i * 7_919 % 1_000_000) as i32 / 100)
            .collect();
        let histogram = Histogram::from_latencies(&latencies);
        latencies.sort_unstable();
        for q in [0.5, 0.95, 0.99, 1.0] {
            let rank = (q * latencies.len() as f64).ceil() as usize;
            let exact = f64::from(latencies[rank - 1]);
            let read = histogram.quantile(q).unwrap();
            assert!(
                (read - exact).abs() / exact <= RELATIVE_ACCURACY,
                "q {q}: exact {exact}, read {read}"
            );
        }
        assert_eq!(Histogram::default().quantile(0.95), None);
    }
}
