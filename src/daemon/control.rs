//! The daemon's control socket: how people without the key run commands (DESIGN.md section
//! 12). This module is the transport only, both ends of it; what a request may do and how it
//! runs is the handler's business (the roles table, `crate::roles`, decides).
//!
//! A request is one line of JSON, `{"args": ["consent", "withdraw", ...]}`, the command line
//! without the program name; the answer is one line of JSON, `{"code": N, "stdout": "...",
//! "stderr": "..."}`, which the client prints as if it had run the command itself. The caller is
//! who the kernel says is at the other end (`SO_PEERCRED`): its uid, never a name it sends.
//!
//! The socket is open to every local user (0666 in a 0755 folder) because authorisation is the
//! handler's, per caller. A caller cannot stall the daemon: each connection has its own thread
//! (at most [`MAX_CLIENTS`] at once; more are told to try again), a request must arrive within
//! [`READ_WITHIN`] and be at most [`MAX_REQUEST`] bytes, and anything that is not a request
//! gets an error answer, not a crash. The mount never waits for the socket: they share no
//! lock.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where the daemon listens and the CLI connects when neither `--socket` nor
/// `CONSENTFS_SOCKET` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/consentfs/control.sock";

/// The largest request: a command line, not a payload.
pub const MAX_REQUEST: u64 = 64 * 1024;
/// An answer this long (bytes of output) had buffers worth giving back after it.
const BIG_ANSWER: usize = 1 << 20;
/// How long a connected client may take to send its request.
pub const READ_WITHIN: Duration = Duration::from_secs(5);
/// Connections served at once; one more is answered "busy" and closed.
pub const MAX_CLIENTS: usize = 64;
/// The exit status of a refused or failed request (as the CLI's for bad usage).
pub const REFUSED: i32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    pub args: Vec<String>,
    /// Only wait until the mount shows every change committed so far (a command run with the
    /// key on the store directly asks this after its change); `args` is then empty.
    #[serde(default)]
    pub sync: bool,
    /// The caller's working folder, against which the relative paths it names are resolved
    /// (only commands that use the caller's files need it).
    #[serde(default)]
    pub cwd: Option<String>,
    /// The client reads standard output as bytes after the answer's line ([`Header`]), not
    /// as a JSON string inside it: a listing of a million photos is not escaped, parsed and
    /// copied twice. A client that does not say so gets the whole answer in one line.
    #[serde(default)]
    pub raw: bool,
}

/// The answer's first line when the client asked for `raw`: `stdout_len` bytes of standard
/// output follow it.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    code: i32,
    #[serde(default)]
    stderr: String,
    #[serde(default)]
    stdout_len: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reply {
    pub code: i32,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
}

impl Reply {
    pub fn refused(message: impl Into<String>) -> Reply {
        let mut stderr = message.into();
        stderr.push('\n');
        Reply {
            code: REFUSED,
            stdout: String::new(),
            stderr,
        }
    }
}

/// Who is at the other end, as the kernel says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
}

pub type Handler = dyn Fn(Peer, Request) -> Reply + Send + Sync;

/// A listening control socket; dropping it (or [`Server::stop`]) stops accepting and removes
/// the socket file.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Listen at `path` (its folder is made 0755 if missing; a stale socket left by a killed
    /// daemon is replaced, a live one is refused) and answer each request with `handler`.
    pub fn start(path: &Path, handler: Arc<Handler>) -> std::io::Result<Server> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode_0755()
                    .create(dir)?;
            }
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!(
                        "{} is served by another daemon (one socket per store: give this one --socket)",
                        path.display()
                    ),
                ));
            }
            // nobody answers: a killed daemon's socket
            let md = std::fs::symlink_metadata(path)?;
            if !std::os::unix::fs::FileTypeExt::is_socket(&md.file_type()) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        // everyone may connect; the handler decides per caller
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("control".into())
                .spawn(move || accept_loop(listener, handler, stop))?
        };
        Ok(Server {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

trait Mode0755 {
    fn mode_0755(&mut self) -> &mut Self;
}

impl Mode0755 for std::fs::DirBuilder {
    fn mode_0755(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, 0o755)
    }
}

fn accept_loop(listener: UnixListener, handler: Arc<Handler>, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if active.load(Ordering::Acquire) >= MAX_CLIENTS {
                    log::warn!("control socket: {MAX_CLIENTS} clients at once; one more refused");
                    let _ = answer(
                        &stream,
                        &Reply::refused("consentfs: the daemon is busy; try again"),
                        false, // (read as a header with no output by a raw client)
                    );
                    continue;
                }
                active.fetch_add(1, Ordering::AcqRel);
                let (handler, active) = (handler.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name("control-client".into())
                    .spawn(move || {
                        serve_one(stream, &*handler);
                        active.fetch_sub(1, Ordering::AcqRel);
                    });
                if let Err(e) = spawned {
                    log::error!("control socket: cannot start a thread for a client: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                log::warn!("control socket: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn peer_of(stream: &UnixStream) -> std::io::Result<Peer> {
    let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(std::io::Error::from)?;
    Ok(Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
    })
}

fn serve_one(stream: UnixStream, handler: &Handler) {
    // accepted sockets inherit nothing from the listener's non-blocking mode on Linux, but
    // say it: a read must wait (up to the timeout)
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(READ_WITHIN));
    let _ = stream.set_write_timeout(Some(READ_WITHIN));
    let peer = match peer_of(&stream) {
        Ok(p) => p,
        Err(e) => {
            log::warn!("control socket: cannot tell who the caller is ({e}); refused");
            return;
        }
    };
    let mut raw = false;
    let reply = match read_request(&stream) {
        Ok(req) => {
            raw = req.raw;
            handler(peer, req)
        }
        Err(why) => {
            log::info!(
                "control socket: a request from uid {} refused: {why}",
                peer.uid
            );
            Reply::refused(format!("consentfs: {why}"))
        }
    };
    if let Err(e) = answer(&stream, &reply, raw) {
        log::info!(
            "control socket: the caller (uid {}) left before the answer: {e}",
            peer.uid
        );
    }
    if reply.stdout.len() > BIG_ANSWER {
        drop(reply);
        // a long listing's buffers are free now: give them back to the system rather than
        // keep the daemon's memory at its peak
        // SAFETY: malloc_trim only releases free heap pages; it touches no live allocation
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

fn read_request(stream: &UnixStream) -> Result<Request, String> {
    let mut line = Vec::new();
    let mut reader = BufReader::new(stream.take(MAX_REQUEST + 1));
    match reader.read_until(b'\n', &mut line) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Err(format!("no request within {} s", READ_WITHIN.as_secs()))
        }
        Err(e) => return Err(format!("cannot read the request: {e}")),
    }
    if line.len() as u64 > MAX_REQUEST {
        return Err(format!("a request is at most {MAX_REQUEST} bytes"));
    }
    if line.last() != Some(&b'\n') {
        return Err("the request ended before its end of line".into());
    }
    serde_json::from_slice::<Request>(&line).map_err(|e| format!("not a request ({e})"))
}

fn answer(mut stream: &UnixStream, reply: &Reply, raw: bool) -> std::io::Result<()> {
    let mut out = if raw {
        serde_json::to_vec(&Header {
            code: reply.code,
            stderr: reply.stderr.clone(),
            stdout_len: reply.stdout.len() as u64,
        })
    } else {
        serde_json::to_vec(reply)
    }
    .map_err(std::io::Error::other)?;
    out.push(b'\n');
    stream.write_all(&out)?;
    if raw {
        stream.write_all(reply.stdout.as_bytes())?;
    }
    stream.flush()
}

/// The client's side: send `args` to the daemon at `path` and wait for its answer (as long as
/// the command takes).
pub fn call(path: &Path, args: &[String]) -> std::io::Result<Reply> {
    send(
        path,
        &Request {
            args: args.to_vec(),
            sync: false,
            cwd: None,
            raw: true,
        },
        None,
    )
}

/// Send one request and read its answer, waiting at most `within` for it (`None`: as long as
/// it takes).
pub fn send(path: &Path, request: &Request, within: Option<Duration>) -> std::io::Result<Reply> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(within)?;
    let mut req = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    req.push(b'\n');
    stream.write_all(&req)?;
    let mut line = Vec::new();
    let mut reader = BufReader::new(&stream);
    reader.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        // killed, or stopped, while it worked on the request
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "it closed the connection without an answer (did it stop?)",
        ));
    }
    let not_understood = |e: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the daemon's answer is not understood: {e}"),
        )
    };
    if !request.raw {
        return serde_json::from_slice(&line).map_err(|e| not_understood(e.to_string()));
    }
    let head: Header = serde_json::from_slice(&line).map_err(|e| not_understood(e.to_string()))?;
    let mut stdout = Vec::new();
    stdout
        .try_reserve_exact(usize::try_from(head.stdout_len).unwrap_or(usize::MAX))
        .map_err(|e| not_understood(format!("{} bytes of output: {e}", head.stdout_len)))?;
    reader.take(head.stdout_len).read_to_end(&mut stdout)?;
    if stdout.len() as u64 != head.stdout_len {
        return Err(not_understood(format!(
            "{} of {} bytes of output arrived",
            stdout.len(),
            head.stdout_len
        )));
    }
    Ok(Reply {
        code: head.code,
        stdout: String::from_utf8(stdout).map_err(|e| not_understood(e.to_string()))?,
        stderr: head.stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn echo() -> Arc<Handler> {
        Arc::new(|peer: Peer, req: Request| Reply {
            code: 0,
            stdout: format!("{} {}", peer.uid, req.args.join(" ")),
            stderr: String::new(),
        })
    }

    #[test]
    fn a_request_is_answered_with_the_callers_real_uid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control.sock");
        let server = Server::start(&path, echo()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        let reply = call(&path, &["ls".into(), "--user".into(), "x".into()]).unwrap();
        assert_eq!(reply.code, 0);
        assert_eq!(
            reply.stdout,
            format!("{} ls --user x", nix::unistd::getuid().as_raw())
        );
        drop(server);
        assert!(
            !path.exists(),
            "the socket is removed when the daemon stops"
        );
    }

    /// A daemon killed while it works on a request (or cut off in the middle of its answer):
    /// the client says so instead of printing part of a listing as if it were all.
    #[test]
    fn a_daemon_that_dies_mid_answer_is_an_error_not_a_short_listing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            for answer in [
                &b""[..],
                b"{\"code\":0,\"stderr\":\"\",\"stdout_len\":100}\n0123456789",
            ] {
                let (mut conn, _) = listener.accept().unwrap();
                let mut line = Vec::new();
                BufReader::new(&conn).read_until(b'\n', &mut line).unwrap();
                conn.write_all(answer).unwrap();
            }
        });
        let req = Request {
            args: vec!["ls".into()],
            sync: false,
            cwd: None,
            raw: true,
        };
        let e = send(&path, &req, None).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
        assert!(e.to_string().contains("without an answer"), "{e}");
        let e = send(&path, &req, None).unwrap_err();
        assert!(e.to_string().contains("10 of 100 bytes"), "{e}");
        server.join().unwrap();
    }

    /// A long output with newlines, quotes and non-ASCII arrives byte for byte, after the
    /// answer's line (a client that asks for it raw) or inside it (one that does not).
    #[test]
    fn a_long_output_arrives_whole_raw_or_in_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let text: String = (0..100_000)
            .map(|i| format!("{i}\t\"Ré\\sumé {i}\"\n"))
            .collect();
        let expected = text.clone();
        let server = Server::start(
            &path,
            Arc::new(move |_: Peer, _: Request| Reply {
                code: 3,
                stdout: text.clone(),
                stderr: "warned\n".into(),
            }),
        )
        .unwrap();
        for raw in [true, false] {
            let request = Request {
                args: vec!["ls".into()],
                sync: false,
                cwd: None,
                raw,
            };
            let reply = send(&path, &request, None).unwrap();
            assert_eq!(reply.code, 3);
            assert_eq!(reply.stderr, "warned\n");
            assert!(reply.stdout == expected, "raw {raw}: output differs");
        }
        drop(server);
    }

    /// A client that connects and says nothing, one that sends garbage, and one that sends a
    /// huge line: none of them keeps another client from being answered at once, each gets
    /// an error or is dropped, and the server stays up.
    #[test]
    fn hanging_and_garbage_clients_do_not_stall_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let _server = Server::start(&path, echo()).unwrap();
        let _silent = UnixStream::connect(&path).unwrap();
        let mut garbage = UnixStream::connect(&path).unwrap();
        garbage.write_all(b"\x00\xffnot json at all\n").unwrap();
        let mut huge = UnixStream::connect(&path).unwrap();
        let big = vec![b'a'; (MAX_REQUEST as usize) + 10];
        let _ = huge.write_all(&big);
        let started = Instant::now();
        let reply = call(&path, &["status".into()]).unwrap();
        assert_eq!(reply.code, 0);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a silent client held up another"
        );
        let mut line = String::new();
        BufReader::new(&garbage).read_line(&mut line).unwrap();
        let r: Reply = serde_json::from_str(&line).unwrap();
        assert_eq!(r.code, REFUSED);
        assert!(r.stderr.contains("not a request"), "{}", r.stderr);
        let mut line = String::new();
        BufReader::new(&huge).read_line(&mut line).unwrap();
        let r: Reply = serde_json::from_str(&line).unwrap();
        assert!(r.stderr.contains("at most"), "{}", r.stderr);
    }

    #[test]
    fn a_live_socket_is_not_taken_over_and_a_stale_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let first = Server::start(&path, echo()).unwrap();
        let e = Server::start(&path, echo()).err().unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        // a killed daemon leaves its socket file behind with nobody listening
        std::mem::forget(first);
        let stale = UnixListener::bind(dir.path().join("other.sock")).unwrap();
        drop(stale);
        let again = Server::start(&dir.path().join("other.sock"), echo());
        assert!(again.is_ok());
        // a regular file where the socket goes is left alone
        std::fs::write(dir.path().join("file.sock"), b"x").unwrap();
        assert!(Server::start(&dir.path().join("file.sock"), echo()).is_err());
    }
}
