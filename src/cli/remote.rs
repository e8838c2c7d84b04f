//! The command line through the daemon's control socket (DESIGN.md section 12): a user
//! without the key runs the same command with the same arguments, and gets the same output,
//! `--json` and exit status; the daemon runs it with the same code, as that user, after the
//! roles table (`crate::roles`) allowed it.

use super::{command_name, ctx_for, dispatch, Cli, Command};
use crate::daemon::control::{self, Reply, REFUSED};
use crate::daemon::{Runner, Served};
use crate::roles::Role;
use crate::store::Store;
use clap::Parser;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Options that choose a store, a key or an anchor: the daemon serves its own store, so a
/// client may not name another (or the daemon's key file).
const STORE_OPTIONS: [&str; 6] = [
    "--store",
    "--key-file",
    "--passphrase-file",
    "--anchor",
    "--accept-rollback",
    "--socket",
];

/// Commands that read or write files the user names. Through the daemon they run with the
/// caller's own filesystem identity (`crate::caller`), so the kernel checks every file they
/// name as it would for the caller's own process, and what they create belongs to the caller.
const USES_YOUR_FILES: [&str; 7] = [
    "import",
    "export",
    "export verify",
    "person report",
    "consent grant",
    "link",
    "faces show",
];

/// `backup` copies the store's own files (root's) into DEST: through the socket it would mix
/// the two identities on every file, so it stays a command for root with the key.
const KEY_ONLY: [&str; 1] = ["backup"];

/// The paths a command names, made absolute against the caller's working folder (the daemon's
/// own is not the caller's).
fn paths_from(command: &mut Command, cwd: &Path) {
    let fix = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = cwd.join(&*p);
        }
    };
    match command {
        Command::Import { paths, .. } => paths.iter_mut().for_each(fix),
        Command::Export(a) => {
            if let Some(d) = a.dest.as_mut() {
                fix(d)
            }
            if let Some(super::ExportCmd::Verify { dest }) = a.check.as_mut() {
                fix(dest)
            }
        }
        Command::Person(super::PersonCmd::Report { dest, .. }) => fix(dest),
        Command::Consent(super::ConsentCmd::Grant {
            evidence: Some(e), ..
        }) => fix(e),
        Command::Backup { dest } => fix(dest),
        Command::Link { csv: Some(c), .. } => fix(c),
        Command::Faces(super::FacesCmd::Show { out, .. }) => fix(out),
        Command::Portal(super::PortalCmd::Invite { csv: Some(c), .. }) => fix(c),
        _ => {}
    }
}

/// The socket this command line talks to: `--socket` / `CONSENTFS_SOCKET`, else the default.
pub fn socket_of(cli: &Cli) -> PathBuf {
    cli.socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(control::DEFAULT_SOCKET))
}

/// When this command goes through the daemon: no key or passphrase given, and a command that
/// is not the machine's own (init, mount, demo). Then run it there and return its exit status.
pub fn via_daemon(cli: &Cli, args: &[OsString]) -> Option<i32> {
    if cli.key_file.is_some()
        || cli.passphrase_file.is_some()
        || matches!(
            cli.command,
            Command::Init { .. }
                | Command::Mount { .. }
                | Command::Demo { .. }
                | Command::CipherSpeed { .. }
        )
    {
        return None;
    }
    let socket = socket_of(cli);
    if cli.store.is_some() {
        // a store named and no daemon answering: work on it directly, as before there was a
        // daemon (with a passphrase typed at the prompt, or the error that says how to give one)
        if let Err(e) = std::os::unix::net::UnixStream::connect(&socket) {
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) {
                return None;
            }
        }
    }
    // the arguments as typed, without the options that only this side uses
    let mut forwarded = Vec::new();
    let mut skip_next = false;
    for a in args.iter().skip(1) {
        let a = a.to_string_lossy().into_owned();
        if skip_next {
            skip_next = false;
            continue;
        }
        if a == "--socket" {
            skip_next = true;
            continue;
        }
        if a.starts_with("--socket=") {
            continue;
        }
        forwarded.push(a);
    }
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|d| d.to_str().map(str::to_string));
    let request = control::Request {
        args: forwarded,
        sync: false,
        cwd,
        raw: true,
    };
    match control::send(&socket, &request, None) {
        Ok(reply) => {
            use std::io::Write;
            let _ = std::io::stdout().write_all(reply.stdout.as_bytes());
            let _ = std::io::stderr().write_all(reply.stderr.as_bytes());
            Some(reply.code)
        }
        Err(e) => {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => format!(
                    "the consentfs daemon is not running (nothing listens at {}): start it with `systemctl start consentfs` (or `consentfs mount`, as root with the key), or run this command as root with --key-file",
                    socket.display()
                ),
                std::io::ErrorKind::PermissionDenied => format!(
                    "cannot reach the consentfs daemon at {}: permission denied",
                    socket.display()
                ),
                _ => format!("the consentfs daemon at {} did not answer: {e}", socket.display()),
            };
            eprintln!("consentfs: {why}");
            Some(REFUSED)
        }
    }
}

/// The daemon's side: run `args` for `login` (who holds `roles`) on the daemon's `store`.
pub fn run_for_peer(
    store: &Store,
    anchor: &Path,
    peer: (u32, &str),
    roles: &[Role],
    request: &control::Request,
    served: Option<&Served>,
) -> Reply {
    let (uid, login) = peer;
    let args = &request.args;
    if let Some(opt) = args.iter().find(|a| {
        STORE_OPTIONS
            .iter()
            .any(|o| a.as_str() == *o || a.starts_with(&format!("{o}=")))
    }) {
        return Reply::refused(format!(
            "consentfs: {opt} cannot be given through the daemon: it serves its own store"
        ));
    }
    let mut cli = match Cli::try_parse_from(
        std::iter::once("consentfs".to_string()).chain(args.iter().cloned()),
    ) {
        Ok(c) => c,
        Err(e) => {
            let text = e.render().to_string();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Reply {
                    code: if e.use_stderr() { REFUSED } else { 0 },
                    stdout: if e.use_stderr() {
                        String::new()
                    } else {
                        text.clone()
                    },
                    stderr: if e.use_stderr() { text } else { String::new() },
                },
                _ => Reply::refused(text.trim_end().to_string()),
            };
        }
    };
    let name = command_name(&cli.command);
    let own = match &cli.command {
        Command::Ls { user, .. } | Command::Why { user, .. } => user == login,
        Command::Export(a) => a.user.as_deref() == Some(login),
        _ => false,
    };
    if let Err(why) = crate::roles::allowed(&name, roles, own) {
        log::info!("control socket: `{name}` refused to a user without the role it needs");
        return Reply::refused(format!("consentfs: {why}"));
    }
    if KEY_ONLY.contains(&name.as_str()) {
        return Reply::refused(format!(
            "consentfs: `{name}` copies the store's own files: run it as root with --key-file"
        ));
    }
    let acting = if USES_YOUR_FILES.contains(&name.as_str()) {
        // relative paths are the caller's, from where the caller is
        let Some(cwd) = request
            .cwd
            .as_deref()
            .map(Path::new)
            .filter(|d| d.is_absolute())
        else {
            return Reply::refused(format!(
                "consentfs: `{name}` through the daemon needs the caller's working folder as an absolute UTF-8 path"
            ));
        };
        paths_from(&mut cli.command, cwd);
        match crate::caller::Creds::of_uid(uid) {
            Ok(c) => Some(std::sync::Arc::new(c)),
            Err(e) => return Reply::refused(format!("consentfs: {e}")),
        }
    } else {
        None
    };
    log::info!("control socket: `{name}` run for a user");
    let began = std::time::Instant::now();
    let (result, out, err) = super::output::capture(|| {
        ctx_for(
            &cli,
            store.clone(),
            login.to_string(),
            crate::catalog::anchor::Anchor::at(anchor.to_path_buf()),
        )
        // the files the command names are opened as the caller (the catalog, opened above,
        // and the store's objects as the daemon)
        .and_then(|mut ctx| {
            // `ls` answers from the daemon's index once that has caught up with the catalog
            // (else from the catalog, as with the key)
            if name == "ls" {
                ctx.view = served.filter(|s| (s.catch_up)()).map(|s| s.view.clone());
            }
            crate::caller::act_for(acting, || dispatch(cli, ctx))
        })
    });
    log::debug!(
        "control socket: `{name}` ran in {} ms, {} bytes of output",
        began.elapsed().as_millis(),
        out.len()
    );
    let mut stderr = String::from_utf8_lossy(&err).into_owned();
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            stderr.push_str(&format!(
                "consentfs: {}\n",
                super::printable(&e.to_string())
            ));
            e.exit_code()
        }
    };
    Reply {
        code,
        // (not copied when it is UTF-8, as it is: a listing can be 100 MB)
        stdout: String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        stderr,
    }
}

/// What the daemon runs for each request on its socket: who the caller is (their login, from
/// the uid the kernel gave), which roles they hold (root: all of them), then the command.
pub fn runner(store: Store, anchor: PathBuf) -> std::sync::Arc<Runner> {
    std::sync::Arc::new(
        move |peer: control::Peer, req: control::Request, served: &Served| {
            let login = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(peer.uid)) {
                Ok(Some(u)) => u.name,
                _ => {
                    return Reply::refused(format!(
                        "consentfs: uid {} has no login on this machine",
                        peer.uid
                    ))
                }
            };
            let roles = if peer.uid == 0 {
                Role::ALL.to_vec()
            } else {
                let held = crate::catalog::Catalog::open(
                    &store.catalog_path(),
                    &store.catalog_key(),
                    store.audit_key(),
                )
                .and_then(|c| crate::catalog::roles::of(c.conn(), &login));
                match held {
                    Ok(r) => r,
                    Err(e) => {
                        log::error!("control socket: cannot read the roles: {e}");
                        return Reply::refused(
                            "consentfs: the catalog cannot be read now; try again",
                        );
                    }
                }
            };
            run_for_peer(
                &store,
                &anchor,
                (peer.uid, &login),
                &roles,
                &req,
                Some(served),
            )
        },
    )
}

/// Commands that change nothing: after them nothing needs to reach the mount.
const READ_ONLY: [&str; 20] = [
    "ls",
    "why",
    "assets",
    "status",
    "check",
    "cat",
    "versions",
    "expiring",
    "audit list",
    "audit verify",
    "audit report",
    "person list",
    "person show",
    "purpose list",
    "user list",
    "role list",
    "consent list",
    "consent receipt",
    "trash list",
    "export verify",
];

/// After a command run with the key on the store directly: when a daemon is running (its
/// socket answers), wait until its mount shows the change, at most a second, and say so if it
/// does not. Without a daemon there is nothing to wait for.
pub fn confirm_applied(cli_socket: &Path, command: &str) {
    if READ_ONLY.contains(&command) {
        return;
    }
    let asked = control::send(
        cli_socket,
        &control::Request {
            args: Vec::new(),
            sync: true,
            cwd: None,
            raw: false,
        },
        Some(std::time::Duration::from_secs(1)),
    );
    let confirmed = match asked {
        // no daemon to reach: nothing to wait for
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            return
        }
        Ok(reply) => reply.code == 0,
        Err(_) => false,
    };
    if !confirmed {
        eprintln!(
            "consentfs: note: the running daemon has not confirmed within 1 s that the mount shows this change; it will as soon as it reads the catalog"
        );
    }
}
