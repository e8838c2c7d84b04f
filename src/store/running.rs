//! Which consentfs processes use the store right now: so a command that waits for the
//! catalog can say who holds it ("in use by: consentfs import (pid 4242)") instead of failing
//! with "database is locked".
//!
//! Every CLI command and the daemon registers itself in `STORE/running/<pid>-<random>`, a file
//! (0600) held with an exclusive `flock` for the process's life and holding only its pid and
//! subcommand name: no arguments, which may name persons or files. A file whose lock is free
//! was left by a process that died and is removed by the next look.

use super::held::{self, Held, Probe};
use crate::error::{IoContext, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The folder of the registrations, in the store.
pub const RUNNING: &str = "running";

pub fn dir(root: &Path) -> PathBuf {
    root.join(RUNNING)
}

/// This process's registration; removed when dropped.
pub struct Registration {
    held: Option<Held>,
}

impl Registration {
    /// No registration (it could not be written): the process runs unnamed.
    pub fn none() -> Registration {
        Registration { held: None }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(h) = self.held.take() {
            let _ = h.remove();
        }
    }
}

/// Register this process as running `command` (a subcommand name such as `consent withdraw`).
pub fn register(root: &Path, command: &str) -> Result<Registration> {
    let pid = std::process::id();
    let mut h = held::create(&dir(root), &format!("{pid}-"))?;
    let text = format!("{pid}\n{command}\n");
    h.file.write_all(text.as_bytes()).at("write", &h.path)?;
    // entries of processes that died are removed on the way
    let _ = others(root);
    Ok(Registration { held: Some(h) })
}

/// One running process other than this one.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub pid: u32,
    pub command: String,
}

impl std::fmt::Display for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "consentfs {} (pid {})", self.command, self.pid)
    }
}

/// The other consentfs processes registered in the store at `root` (stale entries of dead
/// ones are removed on the way). Best effort: what cannot be read is left out.
pub fn others(root: &Path) -> Vec<Running> {
    let me = std::process::id();
    let mut out = Vec::new();
    for path in held::list(&dir(root)).unwrap_or_default() {
        match held::probe(&path) {
            Ok(Probe::Live(mut f)) => {
                let mut s = String::new();
                if f.read_to_string(&mut s).is_err() {
                    continue;
                }
                let mut lines = s.lines();
                let pid = lines.next().and_then(|p| p.parse::<u32>().ok());
                let command = lines.next().unwrap_or("").to_string();
                match pid {
                    Some(pid) if pid != me => out.push(Running { pid, command }),
                    _ => {}
                }
            }
            Ok(Probe::Dead(_)) => {
                // still locked by us while it is removed
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_is_seen_while_alive_and_removed_when_stale() {
        let d = tempfile::tempdir().unwrap();
        let r = register(d.path(), "import").unwrap();
        // this process never lists itself
        assert!(others(d.path()).is_empty());
        let path = r.held.as_ref().unwrap().path.clone();
        // what another process would see: a live lock (a second open file description)
        let other = std::fs::File::open(&path).unwrap();
        assert!(matches!(held::probe(&path).unwrap(), Probe::Live(_)));
        drop(other);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\nimport\n", std::process::id()));
        // a registration left unlocked (its process died) is removed by the next look
        let stale = dir(d.path()).join("1-dead");
        std::fs::write(&stale, "1\nimport\n").unwrap();
        assert!(others(d.path()).is_empty());
        assert!(!stale.exists());
        drop(r);
        assert!(!path.exists());
    }
}
