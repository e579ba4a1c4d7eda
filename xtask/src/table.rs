//! A minimal CSV table: every experiment writes one, the report and plots read them back, so
//! every number in `REPORT.md` comes from a file the run wrote.
//!
//! Fields are plain tokens (numbers, method and schedule names); a field holding a comma, a
//! quote or a line break is rejected rather than quoted. Numbers are written with Rust's
//! shortest round-trip formatting (`{}` of `f64`), so parsing a field gives back the exact
//! `f64` that was computed.

use anyhow::{Context, Result, anyhow, bail};
use std::path::Path;

/// A header and rows of string fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Rows, each as long as the header.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; it must have one field per column and no field may contain `,`, `"` or a
    /// line break.
    pub fn push(&mut self, row: Vec<String>) -> Result<()> {
        if row.len() != self.header.len() {
            bail!(
                "row has {} fields, the header {} ({:?})",
                row.len(),
                self.header.len(),
                self.header
            );
        }
        if let Some(f) = row.iter().find(|f| f.contains([',', '"', '\n', '\r'])) {
            bail!("CSV field {f:?} contains a comma, quote or line break");
        }
        self.rows.push(row);
        Ok(())
    }

    /// Index of column `name`.
    pub fn col(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| anyhow!("no column {name:?} in {:?}", self.header))
    }

    /// Field `name` of row `i`.
    pub fn get<'a>(&'a self, row: &'a [String], name: &str) -> Result<&'a str> {
        Ok(row[self.col(name)?].as_str())
    }

    /// Field `name` of `row` as `f64` (exact: the field is a round-trip decimal).
    pub fn num(&self, row: &[String], name: &str) -> Result<f64> {
        let s = self.get(row, name)?;
        s.parse::<f64>()
            .with_context(|| format!("column {name}: {s:?} is not a number"))
    }

    /// Field `name` of `row` as `Option<f64>` (empty field → `None`).
    pub fn opt_num(&self, row: &[String], name: &str) -> Result<Option<f64>> {
        let s = self.get(row, name)?;
        if s.is_empty() {
            Ok(None)
        } else {
            self.num(row, name).map(Some)
        }
    }

    /// The CSV text: header line, then one line per row.
    pub fn to_csv(&self) -> String {
        let mut out = self.header.join(",");
        out.push('\n');
        for r in &self.rows {
            out.push_str(&r.join(","));
            out.push('\n');
        }
        out
    }

    /// Parses CSV text written by [`Table::to_csv`].
    pub fn parse(text: &str) -> Result<Self> {
        let mut lines = text.lines();
        let header = lines.next().ok_or_else(|| anyhow!("empty CSV"))?;
        let mut t = Table {
            header: header.split(',').map(str::to_string).collect(),
            rows: Vec::new(),
        };
        for (i, line) in lines.enumerate() {
            let row: Vec<String> = line.split(',').map(str::to_string).collect();
            t.push(row).with_context(|| format!("CSV line {}", i + 2))?;
        }
        Ok(t)
    }

    /// Reads a CSV file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Table::parse(&text).with_context(|| format!("in {}", path.display()))
    }
}

/// Formats an `f64` for a CSV field: shortest round-trip decimal (never an exponent).
pub fn f(x: f64) -> String {
    format!("{x}")
}

/// Formats an optional value: empty when absent.
pub fn opt<T: std::fmt::Display>(x: Option<T>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(t: &Table) {
        let back = Table::parse(&t.to_csv()).unwrap();
        assert_eq!(&back, t);
    }

    #[test]
    fn round_trips_exact_numbers() {
        let mut t = Table::new(&["a", "b"]);
        let x = 0.1 + 0.2;
        t.push(vec![f(x), f(1e-300)]).unwrap();
        t.push(vec![opt::<f64>(None), "lr-bsr".into()]).unwrap();
        check(&t);
        let back = Table::parse(&t.to_csv()).unwrap();
        assert_eq!(back.num(&back.rows[0], "a").unwrap().to_bits(), x.to_bits());
        assert_eq!(back.opt_num(&back.rows[1], "a").unwrap(), None);
    }

    #[test]
    fn rejects_bad_rows() {
        let mut t = Table::new(&["a", "b"]);
        assert!(t.push(vec!["1".into()]).is_err());
        assert!(t.push(vec!["1,2".into(), "3".into()]).is_err());
        assert!(t.col("c").is_err());
    }
}
