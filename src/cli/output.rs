//! Printing: JSON for scripts (`--json`), aligned text for people.

use crate::error::{Error, Result};
use serde::Serialize;
use std::io::Write;

/// Print `value` as pretty JSON on stdout.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)
        .map_err(|e| Error::invalid(format!("cannot write JSON: {e}")))?;
    writeln!(out).map_err(|e| Error::io("cannot write output", e))
}

/// Print rows as columns separated by two spaces; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| -> String {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(c);
            if i + 1 < n {
                let pad = widths[i] - c.chars().count() + 2;
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s
    };
    let w = |out: &mut std::io::StdoutLock, s: String| {
        writeln!(out, "{}", s.trim_end()).map_err(|e| Error::io("cannot write output", e))
    };
    w(&mut out, line(header.to_vec()))?;
    for r in rows {
        w(&mut out, line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

pub fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into())
}
