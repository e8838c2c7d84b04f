//! The `consentfs` binary: parse the command line and hand over to `consentfs::cli`.

use clap::Parser;

fn main() {
    // Everything consentfs creates (store, exports, reports, key files) is private unless a
    // command sets a wider mode explicitly: the store's own files also get their modes at
    // creation, this covers what libraries create on our behalf.
    // SAFETY: umask has no memory effects; no other thread exists yet.
    unsafe {
        libc::umask(0o077);
    }
    // from /etc/fstab or mount(8): `consentfs STORE MOUNTPOINT -o OPTIONS`
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = consentfs::cli::fstab::invoked_as_mount_helper(&args) {
        std::process::exit(code);
    }
    let cli = consentfs::cli::Cli::parse();
    // without a key: the running daemon runs the command, as this user
    if let Some(code) = consentfs::cli::remote::via_daemon(&cli, &args) {
        std::process::exit(code);
    }
    if !matches!(
        cli.command,
        consentfs::cli::Command::Mount { .. } | consentfs::cli::Command::Demo { .. }
    ) {
        // `consentfs ... | head` ends quietly, like any Unix tool, instead of reporting a
        // broken pipe. (Not for the daemon: it must not die because a log reader went away.)
        // SAFETY: setting a signal disposition to the default before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let level = consentfs::cli::default_log_level(&cli);
    consentfs::logging::init(level);
    let code = match consentfs::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // an error may quote a name from someone else's folder: no raw control characters
            eprintln!("consentfs: {}", consentfs::cli::printable(&e.to_string()));
            e.exit_code()
        }
    };
    std::process::exit(code);
}
