//! log2 histograms as the kernel side fills them, printed the way bcc's tools print them.

use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Counts per power-of-two bucket: `counts[b]` holds values in `[2^b, 2^(b+1))` (bucket 0
/// also holds 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Log2Hist {
    /// The unit of the values (`usecs`, `nsecs`).
    pub unit: String,
    /// Counts, trailing empty buckets trimmed.
    pub counts: Vec<u64>,
}

impl Log2Hist {
    /// A histogram of `counts` in `unit`.
    pub fn new(unit: &str, mut counts: Vec<u64>) -> Log2Hist {
        while counts.last() == Some(&0) {
            counts.pop();
        }
        Log2Hist {
            unit: unit.to_string(),
            counts,
        }
    }

    /// Number of values.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper bound of the bucket holding quantile `q` (0..=1), in the histogram's unit;
    /// None when empty. log2 buckets: the true value is within a factor of 2 below this.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some(1u64 << (b + 1).min(63));
            }
        }
        None
    }

    /// Adds another histogram's counts (same unit).
    pub fn merge(&mut self, other: &Log2Hist) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        if self.unit.is_empty() {
            self.unit.clone_from(&other.unit);
        }
    }

    /// bcc-style text: `     usecs : count    distribution` rows with a 40-column bar.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let max = self.counts.iter().copied().max().unwrap_or(0).max(1);
        let _ = writeln!(out, "{:>22} : count    distribution", self.unit);
        let first = self.counts.iter().position(|c| *c > 0).unwrap_or(0);
        for (b, c) in self.counts.iter().enumerate().skip(first) {
            let lo = if b == 0 { 0 } else { 1u64 << b };
            let hi = (1u64 << (b + 1)) - 1;
            let stars = ((*c as f64 / max as f64) * 40.0).round() as usize;
            let _ = writeln!(
                out,
                "{:>10} -> {:<10} : {:<8} |{:<40}|",
                lo,
                hi,
                c,
                "*".repeat(stars)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        // 90 values in [4, 8), 10 in [1024, 2048).
        let mut counts = vec![0; 11];
        counts[2] = 90;
        counts[10] = 10;
        let h = Log2Hist::new("usecs", counts);
        assert_eq!(h.quantile(0.5), Some(8));
        assert_eq!(h.quantile(0.99), Some(2048));
        assert_eq!(Log2Hist::default().quantile(0.5), None);
        assert!(h.render().contains("1024 -> 2047"));
    }
}
