//! Reports a person reads: aligned tables and latency percentiles.

use serde::Serialize;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// Percentiles (nearest rank) of samples in microseconds; sorts them in place.
    pub fn of_micros(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1] as f64 / 1000.0
        };
        Self {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
        }
    }
}

/// A plain-text table with aligned columns: the first column left, the others right.
#[derive(Debug)]
pub struct Table<const N: usize> {
    header: [String; N],
    rows: Vec<[String; N]>,
}

impl<const N: usize> Table<N> {
    pub fn new(header: [&str; N]) -> Self {
        Self {
            header: header.map(str::to_owned),
            rows: Vec::new(),
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: [S; N]) {
        self.rows.push(cells.map(Into::into));
    }

    fn widths(&self) -> [usize; N] {
        let mut widths = [0; N];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        widths
    }

    fn line(widths: &[usize; N], row: &[String; N]) -> String {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i > 0 {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        format!("{}\n", cells.join("  ").trim_end())
    }

    /// The rows only, aligned (for key / value reports).
    pub fn render_untitled(&self) -> String {
        let widths = self.widths();
        self.rows.iter().map(|r| Self::line(&widths, r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut samples: Vec<u64> = (1..=1000).map(|n| n * 1000).collect();
        let p = Percentiles::of_micros(&mut samples);
        assert_eq!((p.p50, p.p99, p.p999, p.max), (500.0, 990.0, 999.0, 1000.0));
        assert_eq!(Percentiles::of_micros(&mut []), Percentiles::default());
    }

    #[test]
    fn columns_align() {
        let mut t = Table::new(["", ""]);
        t.row(["a", "1"]);
        t.row(["longer", "100"]);
        assert_eq!(t.render_untitled(), "a         1\nlonger  100\n");
    }
}
