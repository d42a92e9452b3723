//! Reports a person reads: aligned tables.

/// A plain-text table with aligned columns: the first column (and any named text column)
/// left, the others (numbers) right.
#[derive(Debug)]
pub struct Table<const N: usize> {
    header: [String; N],
    rows: Vec<[String; N]>,
    left: [bool; N],
}

impl<const N: usize> Table<N> {
    pub fn new(header: [&str; N]) -> Self {
        let mut left = [false; N];
        if let Some(first) = left.first_mut() {
            *first = true;
        }
        Self {
            header: header.map(str::to_owned),
            rows: Vec::new(),
            left,
        }
    }

    /// Aligns these columns (0-based) to the left, as text.
    pub fn text_columns(mut self, columns: &[usize]) -> Self {
        for &c in columns {
            if let Some(l) = self.left.get_mut(c) {
                *l = true;
            }
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The header, a rule, and the rows.
    pub fn render(&self) -> String {
        let widths = self.widths();
        let rule: [String; N] = widths.map(|w| "-".repeat(w));
        let mut out = self.line(&widths, &self.header);
        out.push_str(&self.line(&widths, &rule));
        for row in &self.rows {
            out.push_str(&self.line(&widths, row));
        }
        out
    }

    /// Adds a row. Control characters in a cell (a reason or reference someone typed: a
    /// newline, a terminal escape) are shown escaped, as JSON shows them, never sent raw
    /// to the terminal.
    pub fn row<S: Into<String>>(&mut self, cells: [S; N]) {
        self.rows.push(cells.map(|c| escape_controls(c.into())));
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

    fn line(&self, widths: &[usize; N], row: &[String; N]) -> String {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .zip(&self.left)
            .map(|((cell, w), left)| {
                if *left {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        format!("{}\n", cells.join("  ").trim_end())
    }

    /// The rows only, aligned (for key / value reports).
    pub fn render_untitled(&self) -> String {
        let widths = self.widths();
        self.rows.iter().map(|r| self.line(&widths, r)).collect()
    }
}

/// `text` with every control character written as an escape (`\n`, `\u{1b}`).
fn escape_controls(text: String) -> String {
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .flat_map(|c| match c.is_control() {
            true => c.escape_default().collect::<Vec<_>>(),
            false => vec![c],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_cells_are_escaped() {
        let mut t = Table::new(["", ""]);
        t.row(["a\nb", "\u{1b}[31mred"]);
        assert_eq!(t.render_untitled(), "a\\nb  \\u{1b}[31mred\n");
    }

    #[test]
    fn columns_align() {
        let mut t = Table::new(["", ""]);
        t.row(["a", "1"]);
        t.row(["longer", "100"]);
        assert_eq!(t.render_untitled(), "a         1\nlonger  100\n");
        let mut t = Table::new(["n", "what", "qty"]).text_columns(&[1]);
        t.row(["1", "sold", "3"]);
        assert_eq!(t.render(), "n  what  qty\n-  ----  ---\n1  sold    3\n");
    }
}
