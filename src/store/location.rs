//! Where a store keeps its objects: its own `objects/` folder (the default), a shared folder
//! (`file:///srv/photos`), or a bucket of S3-compatible object storage (`s3://BUCKET/PREFIX`).
//!
//! The choice is made once, by `init --objects URL`, and recorded in the store as
//! `objects.url` (the URL only: endpoint and credentials stay in the environment). Every later
//! command reads it from there, so no command can forget it and find every photo "missing".
//! A shared folder is used with the same code as the store's own folder (objects fsynced and
//! renamed into place, mode 0600, positional reads), not through `object_store`'s local
//! backend, which writes files with the umask's mode.

use super::remote::Remote;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file in the store that names where its objects are (absent: in its own folder).
pub const OBJECTS_AT: &str = "objects.url";
/// Where the blocks of remote objects are cached, inside the store.
pub const CACHE: &str = "cache";
/// The longest URL accepted (and read back from `objects.url`).
const MAX_URL: usize = 1024;

/// Where objects live, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The store's own `objects/` folder.
    Own,
    /// A folder elsewhere (`file:///…`), e.g. on a file server every machine mounts.
    Folder(PathBuf),
    /// `s3://BUCKET/PREFIX`.
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// Parse `--objects`: `s3://BUCKET[/PREFIX]` or `file:///ABSOLUTE/PATH`.
    pub fn parse(url: &str) -> Result<Location> {
        let bad = |why: &str| {
            Error::invalid(format!(
                "--objects {url:?}: {why}; give s3://BUCKET/PREFIX or file:///ABSOLUTE/FOLDER"
            ))
        };
        if url.len() > MAX_URL {
            return Err(bad("too long"));
        }
        if url.chars().any(|c| c.is_control()) {
            return Err(bad("it holds control characters"));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            // S3's rules for bucket names: 3–63 of a-z, 0-9, '.', '-'
            let ok = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
            if !ok {
                return Err(bad(
                    "the bucket name must be 3 to 63 of a-z, 0-9, '.' and '-'",
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|p| p == "." || p == "..")
                || prefix.contains("//")
                || prefix.contains('\\')
            {
                return Err(bad("the prefix must be plain names separated by '/'"));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            let p = Path::new(path);
            if !p.is_absolute() {
                return Err(bad(
                    "a folder must be an absolute path (file:///srv/photos)",
                ));
            }
            if p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(bad("the folder must not contain '..'"));
            }
            return Ok(Location::Folder(p.to_path_buf()));
        }
        Err(bad("unknown kind of location"))
    }

    /// The URL as given to `--objects` (empty for the store's own folder).
    pub fn url(&self) -> String {
        match self {
            Location::Own => String::new(),
            Location::Folder(p) => format!("file://{}", p.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// What the store at `root` recorded.
    pub fn recorded(root: &Path) -> Result<Location> {
        let path = root.join(OBJECTS_AT);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Location::Own),
            Err(e) => return Err(Error::io_path("read", &path, e)),
        };
        if text.len() > MAX_URL + 1 {
            return Err(Error::invalid(format!(
                "{} is damaged (too long)",
                path.display()
            )));
        }
        let text = String::from_utf8_lossy(&text);
        Location::parse(text.trim())
            .map_err(|e| Error::invalid(format!("{} is damaged: {e}", path.display())))
    }

    /// Record this location in the new store at `root` (nothing for its own folder).
    pub(crate) fn record(&self, root: &Path) -> Result<()> {
        if *self == Location::Own {
            return Ok(());
        }
        let path = root.join(OBJECTS_AT);
        let mut f = super::private::create_file(&path, false)?;
        use std::io::Write;
        writeln!(f, "{}", self.url())
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io_path("write", &path, e))
    }
}

/// A store's objects, opened: where object files are written, and where they end up.
#[derive(Clone, Debug)]
pub(crate) enum Objects {
    /// Object files in a folder: the store's own `objects/`, or a shared one.
    Dir(PathBuf),
    /// A bucket; `staging` (the store's own `objects/`) holds only objects being sealed.
    Remote {
        staging: PathBuf,
        remote: Arc<Remote>,
    },
}

impl Objects {
    pub(crate) fn open(root: &Path, at: &Location) -> Result<Objects> {
        let own = root.join(super::OBJECTS);
        Ok(match at {
            Location::Own => Objects::Dir(own),
            Location::Folder(dir) => Objects::Dir(dir.clone()),
            Location::S3 { bucket, prefix } => Objects::Remote {
                staging: own,
                remote: Arc::new(Remote::connect(bucket, prefix, &root.join(CACHE))?),
            },
        })
    }

    /// The local folder object files are written in (and, for a folder, kept in).
    pub(crate) fn dir(&self) -> &Path {
        match self {
            Objects::Dir(d) => d,
            Objects::Remote { staging, .. } => staging,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_strictly_and_print_back() {
        for url in ["s3://photos", "s3://photos/main/2026", "file:///srv/photos"] {
            assert_eq!(Location::parse(url).unwrap().url(), url);
        }
        assert_eq!(
            Location::parse("s3://photos/lib/").unwrap().url(),
            "s3://photos/lib"
        );
        for bad in [
            "",
            "photos",
            "s3://",
            "s3://ab",
            "s3://Photos",
            "s3://photos/../x",
            "s3://photos/a//b",
            "file://relative/dir",
            "file:///srv/../etc",
            "http://example.org/x",
            "s3://photos/a\nb",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Location::parse(&format!("s3://photos/{}", "a".repeat(2000))).is_err());
    }

    #[test]
    fn a_store_remembers_where_its_objects_are() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Location::recorded(d.path()).unwrap(), Location::Own);
        let at = Location::parse("s3://photos/lib").unwrap();
        at.record(d.path()).unwrap();
        assert_eq!(Location::recorded(d.path()).unwrap(), at);
        std::fs::write(d.path().join(OBJECTS_AT), "s3://X\n").unwrap();
        let e = Location::recorded(d.path()).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }
}
