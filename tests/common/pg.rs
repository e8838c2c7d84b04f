//! A real PostgreSQL server (Debian's, started with `contrib/pg-server.sh`) on loopback, for
//! team libraries: one per test that needs its own (stopped when the test ends), or the one
//! the test matrix names in `CONSENTFS_TEST_TEAM` (see `contrib/test.sh`), in which every
//! `TestStore` gets a database of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PgServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The URL of its database `consentfs`.
    pub url: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/pg-server.sh")
}

impl PgServer {
    /// Start a server on a free port.
    pub fn start() -> PgServer {
        for _ in 0..20 {
            let port = 40000 + super::s3::rand_port_offset() % 20000;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            let dir = tempfile::tempdir().expect("tempdir");
            let out = Command::new("bash")
                .arg(script())
                .args(["start", dir.path().to_str().unwrap(), &port.to_string()])
                .output()
                .expect("run contrib/pg-server.sh");
            if out.status.success() {
                let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
                return PgServer { dir, port, url };
            }
            eprintln!(
                "PostgreSQL on {port} did not start ({}); trying another port",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        panic!("no PostgreSQL server could be started: is the postgresql package installed?");
    }

    /// Stop the server (its data stays, for [`PgServer::restart`]).
    pub fn stop(&self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", self.dir.path().to_str().unwrap()])
            .status();
    }

    /// Start it again on the same port with the same data.
    pub fn restart(&self) {
        let out = Command::new("bash")
            .arg(script())
            .args([
                "start",
                self.dir.path().to_str().unwrap(),
                &self.port.to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new, empty database on this server, and its URL.
    pub fn database(&self) -> String {
        new_database(&self.url)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `pg_dump` of the database at `url` (everything its keeper could read), as SQL text.
pub fn dump(url: &str) -> Vec<u8> {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/pg_dump"))
        .find(|p| p.exists())
        .expect("pg_dump");
    let out = Command::new(bin).arg(url).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The server of the test matrix's team run, if this is one.
pub fn matrix() -> Option<String> {
    std::env::var("CONSENTFS_TEST_TEAM")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Create a database with a random name on the server of `base` (a URL of one of its
/// databases) and return its URL.
pub fn new_database(base: &str) -> String {
    let name = format!("t{:016x}", rand_u64());
    let mut c = postgres::Client::connect(base, postgres::NoTls).expect("connect to PostgreSQL");
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a database");
    let (head, _) = base.rsplit_once('/').expect("a URL with a database");
    format!("{head}/{name}")
}

/// Drop the database of `url` if it is on the server of `base` (connections to it are ended).
pub fn drop_database(base: &str, url: &str) {
    let (Some((head, _)), Some((their_head, name))) = (base.rsplit_once('/'), url.rsplit_once('/'))
    else {
        return;
    };
    if head != their_head || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return;
    }
    if let Ok(mut c) = postgres::Client::connect(base, postgres::NoTls) {
        let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    u64::from_le_bytes(b)
}
