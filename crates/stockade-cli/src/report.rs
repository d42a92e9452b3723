//! Reports a person reads: aligned tables.

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
    fn columns_align() {
        let mut t = Table::new(["", ""]);
        t.row(["a", "1"]);
        t.row(["longer", "100"]);
        assert_eq!(t.render_untitled(), "a         1\nlonger  100\n");
    }
}
