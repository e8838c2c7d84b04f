//! Printing: JSON for scripts (`--json`), aligned text for people.
//!
//! Names in the catalog come from other people: file names from a photographer's card or a
//! user's save in the mount, person names typed from a form. In text for people every control
//! character (C0, DEL, C1) and every character that reorders or hides text (bidi overrides
//! and isolates, line separators) is shown escaped, so a name cannot move the cursor, recolour
//! or clear the officer's terminal, forge a line, or show `gpj.exe` as `exe.jpg`. JSON stays
//! exact: serde escapes control characters there, and scripts need the real names.

use crate::error::{Error, Result};
use serde::Serialize;
use std::borrow::Cow;
use std::io::Write;

/// Whether `c` must not reach a terminal raw. The private-use characters that stand for the
/// bytes of names that are not UTF-8 (see [`crate::names`]) are shown as those bytes.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || crate::names::is_escape(c)
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with control and bidi characters escaped: `\n`, `\r`, `\t`, `\x1b` for other ASCII
/// controls, `\u{202e}` for the rest. Other text (accents, scripts, emoji) stays as it is.
/// A backslash stays a backslash; `--json` tells the exact name when that is ambiguous.
pub fn printable(s: &str) -> Cow<'_, str> {
    // most cells are plain ASCII: one pass over the bytes (`ls` of a million photos prints
    // two million cells)
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) || !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if unsafe_char(c) && (c as u32) < 0x80 => o.push_str(&format!("\\x{:02x}", c as u32)),
            c if crate::names::is_escape(c) => o.push_str(&format!(
                "\\x{:02x}",
                crate::names::byte_of(c).unwrap_or_default()
            )),
            c if unsafe_char(c) => o.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => o.push(c),
        }
    }
    Cow::Owned(o)
}

thread_local! {
    /// While a command runs for a client of the daemon's control socket, what it prints is
    /// collected here (standard output, standard error) and sent back to the client, instead
    /// of going to the daemon's own streams (see [`capture`]).
    static CAPTURED: std::cell::RefCell<Option<(Vec<u8>, Vec<u8>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Run `f` with everything the command prints on this thread collected: `(result, stdout,
/// stderr)`.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<u8>, Vec<u8>) {
    CAPTURED.with(|c| *c.borrow_mut() = Some((Vec::new(), Vec::new())));
    let r = f();
    let (out, err) = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (r, out, err)
}

/// Write to the command's standard output: the process's, or the collected one.
fn to_stdout(f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> std::io::Result<()> {
    CAPTURED.with(|c| match c.borrow_mut().as_mut() {
        Some((out, _)) => f(out),
        None => f(&mut std::io::stdout().lock()),
    })
}

/// One line for people on standard error (every `eprintln!` in `cli`), escaped.
pub fn err_line(s: String) {
    CAPTURED.with(|c| match c.borrow_mut().as_mut() {
        Some((_, err)) => {
            let _ = writeln!(err, "{}", printable(&s));
        }
        None => std::eprintln!("{}", printable(&s)),
    })
}

/// Print one line for people, escaped with [`printable`]. Every `println!` in `cli` comes
/// here (see the macro in `cli/mod.rs`). A failed write to stdout (a closed pipe) ends the
/// output quietly, as it does for any Unix tool.
pub fn line(s: String) {
    let _ = to_stdout(|out| writeln!(out, "{}", printable(&s)));
}

/// Print `value` as pretty JSON on stdout.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    // written as it is made, not made into one string first (a listing can be 100 MB)
    to_stdout(|out| {
        let mut out = std::io::BufWriter::new(out);
        serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::other)?;
        writeln!(out)?;
        out.flush()
    })
    .map_err(|e| Error::io("cannot write output", e))
}

/// Print rows as columns separated by two spaces; the last column is not padded.
/// Every cell is shown with [`printable`].
pub fn table(header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    table_of(header, rows, |r, cells| {
        cells.extend(r.iter().map(|c| Cow::Borrowed(c.as_str())))
    })
}

/// [`table`] of any items, each item's cells made by `cells` when they are measured and again
/// when they are written: a listing of a million photos is held once, as its items, not again
/// as a million rows of strings.
pub fn table_of<T>(
    header: &[&str],
    items: &[T],
    cells: impl for<'a> Fn(&'a T, &mut Vec<Cow<'a, str>>),
) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    let mut row = Vec::new();
    for item in items {
        row.clear();
        cells(item, &mut row);
        for (i, c) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(width(&printable(c)));
            }
        }
    }
    to_stdout(|o| {
        let mut out = std::io::BufWriter::new(o);
        let mut line = String::new();
        let mut write = |cells: &mut dyn Iterator<Item = Cow<'_, str>>| -> std::io::Result<()> {
            line.clear();
            let mut cells = cells.peekable();
            let mut i = 0;
            while let Some(c) = cells.next() {
                line.push_str(&c);
                if cells.peek().is_some() {
                    let pad = widths
                        .get(i)
                        .copied()
                        .unwrap_or(0)
                        .saturating_sub(width(&c))
                        + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
                i += 1;
            }
            writeln!(out, "{}", line.trim_end())
        };
        write(&mut header.iter().map(|h| Cow::Borrowed(*h)))?;
        let mut row = Vec::new();
        for item in items {
            row.clear();
            cells(item, &mut row);
            write(&mut row.iter().map(|c| printable(c)))?;
        }
        out.flush()
    })
    .map_err(|e| Error::io("cannot write output", e))
}

/// The characters of a cell (its bytes when it is ASCII, as most are).
fn width(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

pub fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_and_bidi_characters_are_escaped_and_the_rest_is_kept() {
        // a name saved in the mount as Latin-1 bytes shows its bytes
        let latin1 = crate::names::from_bytes(b"caf\xe9.jpg");
        assert_eq!(printable(&latin1), "caf\\xe9.jpg");
        assert_eq!(printable("Zoë Ødegård 写真.jpg"), "Zoë Ødegård 写真.jpg");
        assert_eq!(
            printable("a\x1b[31mb\r\nc\td\u{7f}\u{85}\u{9b}"),
            "a\\x1b[31mb\\r\\nc\\td\\x7f\\u{85}\\u{9b}"
        );
        assert_eq!(printable("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(
            printable("\u{2066}\u{2069}\u{200f}"),
            "\\u{2066}\\u{2069}\\u{200f}"
        );
        assert_eq!(printable("\0"), "\\x00");
    }
}
