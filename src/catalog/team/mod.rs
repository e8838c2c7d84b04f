//! A team library: one catalog for several machines, its changes put in order by PostgreSQL.
//!
//! Every machine keeps a full copy of the catalog (the same SQLCipher file a store of its own
//! has, in its replica folder) and answers every question from it, so the mount's view, a
//! person's report and `ls` run exactly as on one machine. PostgreSQL holds what makes the
//! copies one library:
//!
//! - the **change log**: every command's transaction as an SQLite changeset (the rows it
//!   inserted, updated and deleted), numbered in commit order, sealed with a key derived from
//!   the master key (XChaCha20-Poly1305, the number bound in as associated data, so the log's
//!   keeper can neither read, alter, reorder nor replay a change);
//! - **snapshots**: the whole catalog file as of a change (already SQLCipher-encrypted, and
//!   sealed again per part), from which a new machine starts and after which older changes
//!   are deleted (an erasure does this at once, so no old change keeps a name or a data key);
//! - the **keyring** (the master key wrapped by passphrase and key file, as on disk) and where
//!   the objects are, so another machine can join with the passphrase alone.
//!
//! PostgreSQL never sees a name, a path or a consent, not even as a blind index: no question
//! is asked of it except "what changed after N". A write takes a transaction-level advisory
//! lock first, brings the local copy up to the log's head inside the local transaction, makes
//! its change, and appends it as number head+1 in the same PostgreSQL transaction that holds
//! the lock; only when PostgreSQL has committed does the local copy commit. A machine that
//! dies in between has its own change in the log and applies it on its next catch-up.
//! Daemons follow the log with `LISTEN`/`NOTIFY` and a poll (see `daemon::follow`).

pub mod log;
pub mod replica;

use crate::crypto::Key;
use crate::error::{Error, Result};
use std::path::Path;

pub use crate::store::TEAM_URL;

/// The notification channel on which every appended change is announced.
pub const CHANNEL: &str = "consentfs_changes";

/// Whether `s` names a team library (`--store postgres://…`) rather than a folder.
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// The URL recorded in a replica folder next to `catalog`, if it is one.
pub fn recorded_url(catalog: &Path) -> Result<Option<String>> {
    let Some(dir) = catalog.parent() else {
        return Ok(None);
    };
    let path = dir.join(TEAM_URL);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io_path("read", &path, e)),
    }
}

/// The URL as shown in messages: user, host, port and database, never a password.
pub fn shown(url: &str) -> String {
    match url.parse::<postgres::Config>() {
        Ok(c) => {
            let host = c
                .get_hosts()
                .first()
                .map(|h| match h {
                    postgres::config::Host::Tcp(s) => s.clone(),
                    postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_default();
            let port = c.get_ports().first().copied().unwrap_or(5432);
            format!(
                "postgres://{}@{host}:{port}/{}",
                c.get_user().unwrap_or(""),
                c.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "the team catalog (an unreadable URL)".into(),
    }
}

/// Check a URL given with `--store` before anything is done with it: it must parse, name a
/// database, and be of bounded length.
pub fn check_url(url: &str) -> Result<()> {
    if url.len() > 1024 || url.chars().any(char::is_control) {
        return Err(Error::invalid(
            "the team library's URL is longer than 1024 characters or holds control characters",
        ));
    }
    let c: postgres::Config = url.parse().map_err(|e| {
        Error::invalid(format!(
            "--store {}: not a PostgreSQL URL ({e}); expected postgres://USER@HOST:PORT/DATABASE",
            shown(url)
        ))
    })?;
    if c.get_dbname().is_none() {
        return Err(Error::invalid(format!(
            "--store {}: name the database (postgres://USER@HOST:PORT/DATABASE)",
            shown(url)
        )));
    }
    Ok(())
}

/// A connection to a team library's database, with the key its log is sealed with.
pub struct Link {
    client: postgres::Client,
    key: Key,
    shown: String,
    /// Whether a transaction (holding the write lock) is open on `client`.
    in_tx: bool,
    /// The catalog format the log's items are sealed as rows of: the library's recorded one
    /// (this consentfs's own until `init` records it).
    format: i64,
    /// Statements prepared once per connection: a query by text costs three round trips
    /// (prepare, execute, close), a prepared one a single one, and a write runs several.
    prepared: std::collections::HashMap<&'static str, postgres::Statement>,
}

impl Link {
    /// Connect (TLS as the URL's `sslmode` says; the password from the URL or `PGPASSWORD`)
    /// and bring the database's tables to the current version.
    pub fn connect(url: &str, catalog_key: &Key) -> Result<Link> {
        check_url(url)?;
        let shown = shown(url);
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| Error::invalid(format!("--store {shown}: {e}")))?;
        if config.get_password().is_none() {
            if let Ok(p) = std::env::var("PGPASSWORD") {
                config.password(p);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(3));
        }
        config.application_name("consentfs");
        // PostgreSQL's notices ("relation already exists, skipping") are not for the user
        config.options("-c client_min_messages=warning");
        let tls = tls_connector()?;
        let client = config
            .connect(tls)
            .map_err(|e| pg_error(&shown, "cannot connect", e))?;
        let mut link = Link {
            client,
            key: catalog_key.derive(crate::crypto::labels::TEAM_LOG),
            shown,
            in_tx: false,
            format: crate::catalog::schema::current_version(),
            prepared: std::collections::HashMap::new(),
        };
        log::migrate(&mut link)?;
        // a newer library's items are not opened as this format's (see `log::aad_head`)
        if let Some(f) = link.recorded_format()? {
            link.format = f.min(link.format);
        }
        Ok(link)
    }

    /// Seal and open the log with the key derived from `catalog_key` (a machine joining the
    /// library connects before it has unlocked the keyring it fetches).
    pub fn set_key(&mut self, catalog_key: &Key) {
        self.key = catalog_key.derive(crate::crypto::labels::TEAM_LOG);
    }

    /// `postgres://USER@HOST:PORT/DB`, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The catalog format this link seals and opens the log's items as.
    pub fn format(&self) -> i64 {
        self.format
    }

    /// Whether the server still answers (a cheap round trip).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// `sql`, prepared on this connection (once).
    fn prepared(&mut self, sql: &'static str) -> Result<postgres::Statement> {
        if let Some(st) = self.prepared.get(sql) {
            return Ok(st.clone());
        }
        let st = self
            .client
            .prepare(sql)
            .map_err(|e| pg_error(&self.shown, "cannot prepare a statement", e))?;
        self.prepared.insert(sql, st.clone());
        Ok(st)
    }

    fn err(&self, what: &str, e: postgres::Error) -> Error {
        pg_error(&self.shown, what, e)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if self.in_tx {
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

/// TLS for connections whose URL asks for it (`sslmode=require`), verifying the server's
/// certificate against the system's CAs; `sslmode=prefer` (the default) uses it when offered.
fn tls_connector() -> Result<postgres_openssl::MakeTlsConnector> {
    let mut b =
        openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).map_err(|e| {
            Error::io(
                "cannot set up TLS for the team catalog",
                std::io::Error::other(e.to_string()),
            )
        })?;
    b.set_verify(openssl::ssl::SslVerifyMode::PEER);
    Ok(postgres_openssl::MakeTlsConnector::new(b.build()))
}

/// A PostgreSQL error as this crate's: what was being done, where, and the server's or the
/// network's own words (its whole cause chain, e.g. "Connection refused").
pub(crate) fn pg_error(shown: &str, what: &str, e: postgres::Error) -> Error {
    let mut text = crate::error::with_causes(&e);
    if let Some(db) = e.as_db_error() {
        text = format!("{} ({})", db.message(), db.code().code());
    }
    Error::io(
        format!("the team catalog {shown}: {what}"),
        std::io::Error::other(text),
    )
}
