//! A real S3-compatible server (SeaweedFS, started with `contrib/s3-server.sh`) on loopback,
//! one per test that needs it, stopped when the test ends.

use super::TestStore;
use std::path::{Path, PathBuf};
use std::process::Command;

/// In a test's folder: the AWS_* settings its commands get (see `TestStore::cmd`).
pub const ENV_FILE: &str = "aws.env";
pub const BUCKET: &str = "photos";

pub struct S3Server {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// `KEY=VALUE` lines for AWS_ENDPOINT and the rest.
    pub env: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/s3-server.sh")
}

impl S3Server {
    /// Start a server on a free port (its ports are PORT..PORT+5 and 10000 above).
    pub fn start() -> S3Server {
        for _ in 0..20 {
            let port = 20000 + (rand_u16() % 3000) * 10;
            let free = (0..6).all(|i| {
                [port + i, port + i + 10000]
                    .iter()
                    .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
            });
            if !free {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let out = Command::new("bash")
                .arg(script())
                .args([
                    "start",
                    dir.path().to_str().unwrap(),
                    &port.to_string(),
                    BUCKET,
                ])
                .output()
                .expect("run contrib/s3-server.sh");
            let s = S3Server {
                dir,
                port,
                env: String::from_utf8_lossy(&out.stdout).into_owned(),
            };
            if out.status.success() {
                return s;
            }
            eprintln!(
                "S3 server on {port} did not start ({}); trying another port",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        panic!("no S3 server could be started: is `contrib/s3-server.sh install` done?");
    }

    /// Stop the server (its data stays, for [`S3Server::restart`]).
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
                BUCKET,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The object keys in the bucket below `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let out = Command::new("curl")
            .args([
                "-s",
                &format!(
                    "http://127.0.0.1:{}/{BUCKET}?list-type=2&prefix={prefix}",
                    self.port
                ),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// The bytes of one object key.
    pub fn get(&self, key: &str) -> Vec<u8> {
        Command::new("curl")
            .args([
                "-s",
                &format!("http://127.0.0.1:{}/{BUCKET}/{key}", self.port),
            ])
            .output()
            .unwrap()
            .stdout
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A random number for picking a port.
pub fn rand_port_offset() -> u16 {
    rand_u16()
}

fn rand_u16() -> u16 {
    let mut b = [0u8; 2];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    u16::from_le_bytes(b)
}

/// A new store whose objects are in `server`'s bucket under `prefix`.
pub fn store_in_bucket(server: &S3Server, prefix: &str) -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(ENV_FILE), &server.env).unwrap();
    let t = TestStore {
        store: dir.path().join("store"),
        key: dir.path().join("key"),
        dir,
    };
    t.ok(&["--objects", &format!("s3://{BUCKET}/{prefix}"), "init"]);
    t
}
