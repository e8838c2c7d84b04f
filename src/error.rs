//! One error type for the whole crate. Every variant says what went wrong and, where the user
//! can act, what to do; `errno()` maps it for the filesystem and `exit_code()` for the CLI.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input on the command line or in a request: the message says what to do instead.
    #[error("{0}")]
    Invalid(String),
    /// A name, id or path that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The passphrase or key file does not open the store's keyring.
    #[error("wrong key: {0}")]
    WrongKey(String),
    /// Stored data failed authentication: tampering, truncation or corruption.
    #[error("integrity error in {what}: {detail}")]
    Integrity { what: String, detail: String },
    /// The caller is not allowed to do this.
    #[error("permission denied: {0}")]
    Denied(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// An SQLite error; a full disk says so (it is not damage, and not the catalog's fault).
    #[error("{}", catalog_message(.0))]
    Catalog(#[from] rusqlite::Error),
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Error {
        Error::NotFound(msg.into())
    }
    pub fn integrity(what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Integrity {
            what: what.into(),
            detail: detail.into(),
        }
    }
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
    /// An I/O error about a path the user gave us.
    pub fn io_path(action: &str, path: &Path, source: std::io::Error) -> Error {
        Error::io(format!("cannot {action} {}", path.display()), source)
    }

    /// The errno a filesystem request failing with this error returns.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Invalid(_) => libc::EINVAL,
            Error::NotFound(_) => libc::ENOENT,
            Error::Denied(_) => libc::EACCES,
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::Catalog(e) if is_disk_full(e) => libc::ENOSPC,
            Error::WrongKey(_) | Error::Integrity { .. } | Error::Catalog(_) => libc::EIO,
        }
    }

    /// Exit status for the CLI: 2 for every error (DESIGN.md §7).
    pub fn exit_code(&self) -> i32 {
        2
    }
}

/// An error and its causes, each said once ("HTTP error: … Connection refused"): the
/// outermost message alone often hides what really failed.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

/// True when SQLite could not write because the disk (or the user's quota) is full.
pub fn is_disk_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

fn catalog_message(e: &rusqlite::Error) -> String {
    if is_disk_full(e) {
        format!("disk full: the catalog cannot be written ({e}); free space on the filesystem that holds the store")
    } else {
        format!("catalog: {e}")
    }
}

/// Attach a path to an I/O result.
pub trait IoContext<T> {
    fn at(self, action: &str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, action: &str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io_path(action, &path.into(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_enospc_and_says_disk_full() {
        let full = Error::Catalog(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        ));
        assert_eq!(full.errno(), libc::ENOSPC);
        assert!(full.to_string().starts_with("disk full"), "{full}");
        let io = Error::Catalog(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            None,
        ));
        assert_eq!(io.errno(), libc::EIO);
        assert!(io.to_string().starts_with("catalog: "), "{io}");
    }
}
