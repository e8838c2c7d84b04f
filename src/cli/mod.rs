//! The command line (DESIGN.md §7): argument definitions and dispatch.
//!
//! Every command that changes something runs in one catalog transaction; on any error the
//! transaction is dropped and objects it wrote are removed, so a failed command leaves the store
//! exactly as it was. Errors exit with 2, checks that find something (`expiring`, `audit
//! verify`) with 1.

/// Every line the commands print for people goes through [`output::line`], which escapes
/// control and bidi characters (names come from other people and must not drive the
/// officer's terminal). This shadows `std::println!` in the whole `cli` module tree, so no
/// command can forget it; JSON goes through [`output::json`] and stays exact. A deliberate
/// multi-line text uses `std::println!`.
macro_rules! println {
    () => {
        $crate::cli::output::line(::std::string::String::new())
    };
    ($($arg:tt)*) => {
        $crate::cli::output::line(::std::format!($($arg)*))
    };
}

/// Messages on stderr get the same escaping as [`println!`].
macro_rules! eprintln {
    ($($arg:tt)*) => {
        $crate::cli::output::err_line(::std::format!($($arg)*))
    };
}

mod assets;
mod demo;
mod export;
pub mod fstab;
mod import;
mod ops;
mod output;
mod portal;
mod records;
pub mod remote;
mod retention;
mod review;
mod rights;
mod roles;
mod versions;

pub use ops::{KeyFileCmd, PassphraseCmd};
pub use output::printable;
mod views;

use crate::catalog::Catalog;
use crate::crypto::keyring::{self, Unlock};
use crate::error::{Error, Result};
use crate::policy::Time;
use crate::store::Store;
use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "consentfs",
    version,
    about = "Photo store whose views follow consent, per user and purpose"
)]
pub struct Cli {
    /// The store directory.
    #[arg(
        long,
        global = true,
        env = "CONSENTFS_STORE",
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub store: Option<PathBuf>,
    /// Where the store keeps its photos' encrypted objects: `s3://BUCKET/PREFIX` (endpoint and
    /// credentials from the AWS_* variables) or `file:///FOLDER`; chosen at `init`, recorded
    /// in the store (default: the store's own `objects/` folder).
    #[arg(
        long,
        global = true,
        env = "CONSENTFS_OBJECTS",
        value_name = "URL",
        help_heading = "Global options"
    )]
    pub objects: Option<String>,
    /// Key file that opens the store (created 0600 by `init` if missing).
    #[arg(
        long,
        global = true,
        env = "CONSENTFS_KEY_FILE",
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub key_file: Option<PathBuf>,
    /// File whose first line is the store's passphrase.
    #[arg(
        long,
        global = true,
        env = "CONSENTFS_PASSPHRASE_FILE",
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub passphrase_file: Option<PathBuf>,
    /// Print listings as JSON (an array of objects; one object for a single result).
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// The rollback anchor: where the newest committed audit entry is kept, outside the store
    /// (default /var/lib/consentfs/anchors/<store id>.json for root, else under
    /// ~/.local/state/consentfs/anchors/).
    #[arg(
        long,
        global = true,
        env = "CONSENTFS_ANCHOR",
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub anchor: Option<PathBuf>,
    /// Open a catalog that is behind its rollback anchor (after restoring a backup on
    /// purpose); recorded in the audit log.
    #[arg(long, global = true, help_heading = "Global options")]
    pub accept_rollback: bool,
    /// The running daemon's control socket: without a key, commands go through it (default
    /// /run/consentfs/control.sock); `mount` listens there.
    #[arg(
        long,
        global = true,
        env = "CONSENTFS_SOCKET",
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new store (with the purposes website, social-media, print and intranet).
    Init {
        /// The store's time zone (IANA name, e.g. Europe/Amsterdam): dates without a time and
        /// 16th birthdays are local midnights in it, and times are shown in it. Default: the
        /// system's (TZ, else /etc/localtime).
        #[arg(long)]
        timezone: Option<String>,
    },
    /// Encrypt files into the store. A directory's files keep their path relative to it.
    Import {
        /// Collection (folder path) to import into, e.g. events/2026.
        #[arg(long, default_value = "")]
        collection: String,
        /// Retention term of the imported assets, counted from now (e.g. 5y).
        #[arg(long, allow_hyphen_values = true)]
        retention: Option<String>,
        /// Files or folders to import (a folder's files keep their path below it).
        #[arg(required = true, value_name = "FILE|DIR")]
        paths: Vec<PathBuf>,
    },
    /// Persons who appear on photos, and their guardians.
    #[command(subcommand)]
    Person(PersonCmd),
    /// Purposes (channels) photos may be used for.
    #[command(subcommand)]
    Purpose(PurposeCmd),
    /// The consent page for the people in the photos: invitation links (DESIGN.md §15).
    #[command(subcommand)]
    Portal(PortalCmd),
    /// Where the consent page's links and receipts are mailed from: the organisation's mail
    /// server.
    #[command(subcommand)]
    Mail(MailCmd),
    /// Record and list consent events.
    #[command(subcommand)]
    Consent(ConsentCmd),
    /// Link persons to a photo (marks it reviewed), or many photos from a CSV file.
    Link {
        /// The asset: its id or its path (collection/name).
        #[arg(required_unless_present = "csv")]
        asset: Option<String>,
        /// The persons on it: ids, names or external references.
        #[arg(required_unless_present = "csv")]
        persons: Vec<String>,
        /// Which detected face the person is (see `consentfs faces show`); one person only.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10000))]
        face: Option<u32>,
        /// A CSV file of links, one per row: asset (path or id), person (reference, name or
        /// id), face number (may be empty); a header row is allowed. A dry run unless --apply.
        #[arg(long, conflicts_with_all = ["asset", "persons", "face"])]
        csv: Option<PathBuf>,
        /// With --csv: make every link of the file, or none if any row is wrong.
        #[arg(long, requires = "csv")]
        apply: bool,
    },
    /// Face detection: scan photos for faces, show and list what was found.
    #[command(subcommand)]
    Faces(FacesCmd),
    /// What waits for a reviewer's decision (unreviewed photos, unlinked faces, suggestions
    /// from metadata), each with the command that settles it; accept or reject suggestions.
    Review(ReviewArgs),
    /// Groups of photos that look alike (crops, resizes, re-exports of one picture).
    Duplicates,
    /// Remove a person from a photo.
    Unlink {
        /// The asset: its id or its path (collection/name).
        asset: String,
        /// The person to take off it.
        person: String,
    },
    /// Mark photos as showing no identifiable persons, or as revealing special categories.
    Mark(MarkArgs),
    /// OS users and what they may access.
    #[command(subcommand)]
    User(UserCmd),
    /// Roles for people without the key: admin, privacy-officer, editor, auditor.
    #[command(subcommand)]
    Role(RoleCmd),
    /// What is in the store: path, persons, reviewed or not, and the purposes in which the
    /// rules allow each photo now (no user needed).
    Assets,
    /// What a user sees in a purpose (what the mount shows), with reasons.
    Ls {
        /// Whose view: a user's login.
        #[arg(long)]
        user: String,
        /// Which purpose's view.
        #[arg(long)]
        purpose: String,
        /// Evaluate at another moment (date, RFC 3339 or span from now).
        #[arg(long, allow_hyphen_values = true)]
        at: Option<String>,
        /// Also list hidden assets, each with the reason it is hidden.
        #[arg(long)]
        hidden: bool,
        /// Only assets in this collection (prefix).
        #[arg(long)]
        collection: Option<String>,
    },
    /// Why an asset is or is not visible to a user in a purpose.
    Why {
        /// The asset: its id or its path (collection/name).
        asset: String,
        /// A user's login.
        #[arg(long)]
        user: String,
        /// The purpose.
        #[arg(long)]
        purpose: String,
        /// At another moment (date, RFC 3339 or span from now; default now).
        #[arg(long, allow_hyphen_values = true)]
        at: Option<String>,
    },
    /// Decrypt an asset to standard output.
    Cat {
        /// The asset: its id or its path (collection/name).
        asset: String,
        /// An earlier version's number (default: the current one).
        #[arg(long)]
        version: Option<i64>,
    },
    /// Versions of an asset, with what the version policy keeps and why; `versions policy`
    /// shows or sets the policy, `versions thin` applies it now.
    Versions(VersionsArgs),
    /// Make an earlier version the current one again (as a new version).
    Restore {
        /// The asset: its id or its path (collection/name).
        asset: String,
        /// The version to make current again.
        #[arg(long)]
        version: i64,
    },
    /// Make a draft a normal asset showing the same persons as ASSET (it was made from it).
    Derive {
        /// Your draft: its id or path.
        draft: String,
        /// The asset it was made from: its id or path.
        #[arg(long)]
        from: String,
    },
    /// Deleted assets: list, restore, purge (crypto-shredding).
    #[command(subcommand)]
    Trash(TrashCmd),
    /// Consents that end, minors who turn 16 and retention terms that end soon (exit 1 if any).
    Expiring {
        /// How far ahead to look (e.g. 30d, 6mo).
        #[arg(long, allow_hyphen_values = true, default_value = "30d")]
        within: String,
    },
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Decrypt what a user may use for a purpose now into DEST, with a manifest that proves
    /// the consent behind every file (`export verify DEST` checks it).
    Export(ExportArgs),
    /// Retention terms of assets; move assets past their term to the trash.
    #[command(subcommand)]
    Retention(RetentionCmd),
    /// Read and verify every object of the store against the catalog (a scrub): reports
    /// damaged objects and the assets they belong to, and orphan files (exit 1 if any).
    Check,
    /// Copy the store, still encrypted, into DEST while it may be mounted and in use: a
    /// consistent catalog copy plus the objects it needs; a later run into the same DEST
    /// copies only new objects. DEST is itself a store (copy it back to restore).
    Backup {
        /// The backup folder (created 0700; empty, or an earlier backup of this store).
        dest: PathBuf,
    },
    /// Whether the store is mounted (where, since when), what it holds, the next expiry,
    /// the last catalog change, and versions.
    Status,
    /// Move a store of its own into a new team library (`--to postgres://…` with `--objects`
    /// where its photos go: every object copied and verified, resumable), or make a store of
    /// its own from a team library (`--to DIR`).
    Migrate {
        /// `postgres://USER@HOST:PORT/DB` (an empty database), or a new folder.
        #[arg(long, value_name = "URL|DIR")]
        to: String,
    },
    /// Change or remove the passphrase that opens the store (the photos are not touched).
    #[command(subcommand)]
    Passphrase(PassphraseCmd),
    /// Add or remove a key file that opens the store (the photos are not touched).
    #[command(subcommand)]
    KeyFile(KeyFileCmd),
    /// Mount the store: MOUNTPOINT/<login>/<purpose>/<collection>/<file>, live.
    Mount {
        /// An empty folder to mount on.
        mountpoint: PathBuf,
        /// Stay in the foreground with logs on stderr (the default; kept for scripts).
        #[arg(long)]
        foreground: bool,
        /// FUSE worker threads (default: 2 per core, at least 4).
        #[arg(long)]
        threads: Option<usize>,
        /// A team library: how many seconds the mount may go without reaching the library
        /// before it stops serving photos (it cannot know of withdrawals made elsewhere).
        #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
        lease: u64,
    },
    /// Create a sample store with photos, persons and consents, mount it and show a tour.
    Demo {
        /// Where to put the store and the mount (default: a new folder under /tmp).
        dir: Option<PathBuf>,
    },
    /// Raw XChaCha20-Poly1305 speed of this machine, one core (for benchmarks).
    #[command(hide = true)]
    CipherSpeed {
        /// How many MiB to seal and open.
        #[arg(long, default_value_t = 1024)]
        mib: usize,
    },
    /// Generate a large synthetic catalog (for benchmarks).
    #[command(hide = true)]
    Generate {
        /// How many assets.
        #[arg(long, default_value_t = 100_000)]
        assets: usize,
        /// How many persons.
        #[arg(long, default_value_t = 10_000)]
        persons: usize,
        /// How many consent events.
        #[arg(long, default_value_t = 30_000)]
        events: usize,
        /// Every N-th asset is marked "no identifiable persons" (1: all of them).
        #[arg(long, default_value_t = 20)]
        no_persons_every: usize,
        /// The login that gets a read grant on every default purpose.
        #[arg(long, default_value = "bench")]
        user: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PersonCmd {
    /// Record a person.
    Add {
        /// The person's full name.
        name: String,
        /// Birth date (YYYY-MM-DD); below 16 only a guardian's consent counts.
        #[arg(long, allow_hyphen_values = true)]
        born: Option<String>,
        /// The organisation's own reference (student or employee number).
        #[arg(long = "ref")]
        ext_ref: Option<String>,
        /// Add the person even though another has the same name (and no --ref tells them
        /// apart); later commands must name them by id.
        #[arg(long)]
        same_name: bool,
    },
    /// Every person, with birth date, reference and guardians.
    List,
    /// One person: their links, consents and guardians.
    Show {
        /// The person: id, name or external reference.
        person: String,
    },
    /// Record where PERSON's consent-page links and receipts are mailed (`portal invite
    /// --send`), or remove it.
    Email {
        /// The person: id, name or external reference.
        person: String,
        /// The mail address.
        #[arg(required_unless_present = "remove", conflicts_with = "remove")]
        address: Option<String>,
        /// Remove the address recorded.
        #[arg(long)]
        remove: bool,
    },
    /// Register GUARDIAN as a parent or guardian of PERSON.
    Guardian {
        /// The person (below 16) the guardian decides for.
        person: String,
        /// The guardian, a person already recorded.
        guardian: String,
        /// No longer a guardian: grants given stay, their consent-page links die.
        #[arg(long)]
        remove: bool,
    },
    /// Write everything held about a person into DEST (index.json, index.html, evidence,
    /// photos): the answer to an access request.
    Report {
        /// The person: id, name or external reference.
        person: String,
        /// The folder to write the report into (created; must be empty).
        dest: PathBuf,
    },
    /// Erase a person: shred the photos only they are on, remove name and birth date, keep the
    /// consent history under a pseudonym (dry run unless --yes).
    Erase {
        /// The person: id, name or external reference.
        person: String,
        /// Really do it (without: show what would happen).
        #[arg(long)]
        yes: bool,
        /// Also shred group photos that show the person.
        #[arg(long)]
        include_group_photos: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PurposeCmd {
    /// Add a purpose (a channel photos may be used for).
    Add {
        /// The purpose's name, e.g. newsletter.
        name: String,
        /// The legal basis: consent, legitimate-interest, educational or contract.
        #[arg(long, default_value = "consent", value_parser = ["consent", "legitimate-interest", "educational", "contract"])]
        basis: String,
        /// Retention term counted from import (e.g. 5y); required for bases other than consent.
        #[arg(long, allow_hyphen_values = true)]
        retention: Option<String>,
        /// The Art. 9(2) GDPR ground under which special-category photos may be used in this
        /// purpose without explicit consent, e.g. "9(2)(h): medical records". Without it,
        /// special-category photos need every person's explicit grant, whatever the basis.
        #[arg(long, value_name = "GROUND")]
        art9_exception: Option<String>,
        /// Who its photos are for: `staff` (through the mount, by grant) or also `subjects`
        /// (the persons on each photo and their guardians, through the consent page).
        #[arg(long, default_value = "staff", value_parser = ["staff", "subjects"])]
        audience: String,
        /// What the photos are used for, in words a parent understands (see `purpose describe`).
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// Every purpose with its basis and retention.
    List,
    /// Set the text the people on a purpose's photos read and tick on the consent page.
    Describe {
        /// The purpose's name.
        purpose: String,
        /// The text (1 to 4000 bytes; line breaks allowed).
        text: String,
    },
    /// Set who a purpose's photos are for: `staff`, or also `subjects` (see `purpose add`).
    Audience {
        /// The purpose's name.
        purpose: String,
        /// `staff` or `subjects`.
        #[arg(value_parser = ["staff", "subjects"])]
        audience: String,
    },
    /// Change a purpose's retention term (counted from each asset's import), or `none`.
    Retention {
        /// The purpose's name.
        purpose: String,
        /// The term, e.g. 5y, or `none`.
        #[arg(allow_hyphen_values = true)]
        term: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PortalCmd {
    /// Serve the consent page (runs until stopped; TLS by a reverse proxy in front of it).
    Serve {
        /// Where to listen (loopback by default: put nginx or Caddy in front for the world).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The page's address as people reach it; an https address marks cookies Secure.
        #[arg(
            long,
            env = "CONSENTFS_PORTAL_URL",
            default_value = "http://127.0.0.1:8080"
        )]
        base_url: String,
        /// A reverse proxy in front of the page (repeatable): requests from it are from the
        /// address it puts in X-Forwarded-For.
        #[arg(long = "trusted-proxy", value_name = "IP")]
        trusted_proxies: Vec<std::net::IpAddr>,
    },
    /// Make a consent-page link for each person entitled to decide for PERSON: the person from
    /// 16 on, each registered guardian below 16. Prints the links once (only their hashes are
    /// kept).
    Invite {
        /// The person asked about: id, name or external reference.
        person: String,
        /// A purpose to ask about (repeatable; default: every purpose resting on consent).
        #[arg(long = "purpose")]
        purposes: Vec<String>,
        /// How long the links stay valid (at most 366d).
        #[arg(long, default_value = crate::domain::portal::DEFAULT_VALID)]
        valid: String,
        /// The page's address as people reach it.
        #[arg(
            long,
            env = "CONSENTFS_PORTAL_URL",
            default_value = "http://127.0.0.1:8080"
        )]
        base_url: String,
        /// Also write the links as CSV for a mail merge (decider, person, url, expires) into
        /// this new file (0600).
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Mail each link to its decider (`mail set`, `person email`); without an address for
        /// every decider no link is made.
        #[arg(long)]
        send: bool,
    },
    /// Every invitation with its state (open, expired, revoked, void).
    List {
        /// Only those about this person.
        #[arg(long)]
        person: Option<String>,
    },
    /// Revoke an invitation (its id from `portal list`), or with --person every open one about
    /// that person.
    Revoke {
        /// The invitation's id.
        #[arg(required_unless_present = "person", conflicts_with = "person")]
        id: Option<i64>,
        /// Every open invitation about this person instead.
        #[arg(long)]
        person: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum MailCmd {
    /// Mail through this server from this address (checked, then recorded in the catalog for
    /// every command and machine).
    Set {
        /// The server: smtp://host:587?tls=required, smtps://user:password@host:465, or
        /// smtp://host:25 (STARTTLS when offered). Best given in the environment: a password
        /// on the command line is visible to other users.
        #[arg(long, env = "CONSENTFS_SMTP_URL", hide_env_values = true)]
        smtp: String,
        /// The sender's address.
        #[arg(long)]
        from: String,
    },
    /// The server (its password hidden) and the sender.
    Show,
    /// Mail no more.
    Remove,
    /// Send a test mail to ADDRESS now.
    Test {
        /// Where the test mail goes.
        address: String,
    },
}

// by hand: the server's URL may hold a password, and a Debug of the command is made to name it
impl std::fmt::Debug for MailCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MailCmd::Set { .. } => "Set { .. }",
            MailCmd::Show => "Show",
            MailCmd::Remove => "Remove",
            MailCmd::Test { .. } => "Test { .. }",
        })
    }
}

#[derive(Args, Debug)]
pub struct EventArgs {
    /// The person the consent is about: id, name or external reference.
    pub person: String,
    /// Purposes, comma-separated.
    #[arg(long, required = true)]
    pub purpose: String,
    /// Only for photos in this collection (prefix).
    #[arg(long)]
    pub collection: Option<String>,
    /// Only for these photos (repeatable).
    #[arg(long = "asset")]
    pub assets: Vec<String>,
    /// Who gave it, when not the person themself (a registered guardian).
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ConsentCmd {
    /// Record a grant.
    Grant {
        #[command(flatten)]
        event: EventArgs,
        /// Start (default: now). May be in the past when recording a form signed earlier.
        #[arg(long, allow_hyphen_values = true)]
        from: Option<String>,
        /// End (exclusive), e.g. 5y or 2031-06-01.
        #[arg(long, allow_hyphen_values = true)]
        until: Option<String>,
        /// Explicit consent (needed for special-category photos).
        #[arg(long)]
        explicit: bool,
        /// The signed form or e-mail, stored encrypted as evidence.
        #[arg(long)]
        evidence: Option<PathBuf>,
    },
    /// Record a withdrawal (from now, or from a future --at).
    Withdraw {
        #[command(flatten)]
        event: EventArgs,
        /// From when (default now; a date, RFC 3339 or a span such as 7d).
        #[arg(long, allow_hyphen_values = true)]
        at: Option<String>,
    },
    /// Record a refusal.
    Refuse {
        #[command(flatten)]
        event: EventArgs,
        /// From when (default now; a date, RFC 3339 or a span such as 7d).
        #[arg(long, allow_hyphen_values = true)]
        at: Option<String>,
    },
    /// Record an objection (for purposes not based on consent).
    Object {
        #[command(flatten)]
        event: EventArgs,
        /// From when (default now; a date, RFC 3339 or a span such as 7d).
        #[arg(long, allow_hyphen_values = true)]
        at: Option<String>,
    },
    /// The consent history.
    List {
        /// Only this person's events.
        #[arg(long)]
        person: Option<String>,
    },
    /// A consent event as a receipt in the W3C Data Privacy Vocabulary (JSON-LD).
    Receipt {
        /// The consent event's number (see `consent list`).
        event: i64,
    },
}

#[derive(Args, Debug)]
#[group(required = true, multiple = true)]
pub struct MarkArgs {
    /// The assets: ids or paths.
    #[arg(required = true)]
    pub assets: Vec<String>,
    /// No identifiable person is on it (it needs no consent to be shown).
    #[arg(long, group = "flag")]
    pub no_persons: bool,
    /// It reveals a special category (health, religion, ...): explicit consent needed.
    #[arg(long, group = "flag")]
    pub special_category: bool,
    /// The detected faces no linked person accounts for are not recognisable (audited).
    #[arg(long, group = "flag")]
    pub faces_reviewed: bool,
    /// With --no-persons on a photo with detected faces: declare those faces not recognisable.
    #[arg(long)]
    pub force: bool,
    /// Clear the given flag instead of setting it.
    #[arg(long)]
    pub clear: bool,
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user: an OS account that gets a folder in the mount.
    Add {
        /// An OS account's login (the user must exist on this machine).
        login: String,
        /// The person this user is (for their own photos and audits).
        #[arg(long)]
        person: Option<String>,
    },
    /// Let a user read, write or delete in a purpose (optionally a collection only).
    Grant {
        /// The user's login.
        login: String,
        /// The purpose's name.
        #[arg(long, required = true)]
        purpose: String,
        /// read, write (save versions, create drafts) or delete (also remove and move out).
        #[arg(long, value_parser = ["read", "write", "delete"], default_value = "read")]
        access: String,
        /// Only this collection and below (default: everything).
        #[arg(long, default_value = "")]
        collection: String,
    },
    /// Take away a user's grants in a purpose (every one in it, or the one on --collection).
    /// The mount follows at once: open files stop writing and their pending saves are dropped.
    Revoke {
        /// The user's login.
        login: String,
        /// The purpose's name.
        #[arg(long, required = true)]
        purpose: String,
        /// Only the grant on this collection ("" for the one on everything).
        #[arg(long)]
        collection: Option<String>,
    },
    /// Remove a user and all their grants. Their drafts stay in the catalog (for persons'
    /// reports and erasure) but no one sees them, not a later account with the same login.
    Remove {
        /// The user's login.
        login: String,
    },
    /// Every user with their grants.
    List,
}

/// Roles: who may run which command through the daemon (see `crate::roles`).
#[derive(Subcommand, Debug)]
pub enum RoleCmd {
    /// Give a user a role: admin, privacy-officer, editor or auditor.
    Grant {
        /// The user's login (added with `user add`).
        login: String,
        /// admin, privacy-officer, editor or auditor.
        role: String,
    },
    /// Take a role from a user.
    Revoke {
        /// The user's login.
        login: String,
        /// admin, privacy-officer, editor or auditor.
        role: String,
    },
    /// Every role held, by login.
    List,
}

#[derive(Subcommand, Debug)]
pub enum TrashCmd {
    /// What is in the trash, and since when.
    List,
    /// Put an asset back where it was (if the name is free).
    Restore {
        /// The trashed asset's id (see `trash list`).
        asset: String,
    },
    /// Destroy the data keys of trashed assets (older than --older-than, default 30d).
    Purge {
        /// Only what has been in the trash this long (e.g. 30d).
        #[arg(long, allow_hyphen_values = true, default_value = "30d")]
        older_than: String,
        /// Purge everything in the trash now.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// The audit log's entries.
    List {
        /// Only entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        since: i64,
    },
    /// Check the hash chain (exit 1 if it is broken).
    Verify,
    /// Who used the photos of a person: opens through the mount, cat, exports.
    Report {
        /// The person: id, name or external reference.
        #[arg(long)]
        person: String,
        /// Only since this moment (date, RFC 3339, or a span back from now like 72h or 30d).
        #[arg(long, allow_hyphen_values = true)]
        since: Option<String>,
    },
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub check: Option<ExportCmd>,
    /// Whose view to export.
    #[arg(long, required = true)]
    pub user: Option<String>,
    /// Which purpose's view.
    #[arg(long, required = true)]
    pub purpose: Option<String>,
    /// The folder to write (created if missing; must be empty unless --sync).
    #[arg(required = true)]
    pub dest: Option<PathBuf>,
    /// Only this collection (prefix).
    #[arg(long)]
    pub collection: Option<String>,
    /// Make DEST equal to the view: add, replace, and remove files whose consent lapsed.
    #[arg(long)]
    pub sync: bool,
    /// Remove GPS metadata from the exported images (JPEG, TIFF, PNG, WebP; needs exiftool).
    #[arg(long)]
    pub strip_location: bool,
    /// Write each photo as a JPEG at most PX pixels on its long side, without any metadata
    /// (16 to 8192; files that are not pictures are refused).
    #[arg(long, value_name = "PX", value_parser = clap::value_parser!(u16).range(16..=8192))]
    pub max_size: Option<u16>,
    /// Write TEXT across each photo (with --max-size; at most 80 characters are drawn).
    #[arg(long, value_name = "TEXT", requires = "max_size")]
    pub watermark: Option<String>,
    /// Permissions of the exported files, in octal (default 0600, folders 0700: only you).
    /// 0640 or 0644 let your group or everyone read (folders 0750/0755), e.g. for a web
    /// server; nobody but you may ever write. --sync keeps the earlier export's mode.
    #[arg(long, value_name = "OCTAL")]
    pub mode: Option<String>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct VersionsArgs {
    #[command(subcommand)]
    pub cmd: Option<VersionsCmd>,
    /// The asset (id, or collection/name; an asset at the top level named like a subcommand:
    /// /policy).
    #[arg(required = true)]
    pub asset: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum VersionsCmd {
    /// Show or set which old versions are kept (the privacy officer's setting; audited).
    /// Without options: show it.
    Policy {
        /// Keep every version this young: days, weeks, months or years (7d, 2w, 1mo) or
        /// `forever` (nothing is ever thinned).
        #[arg(long, value_name = "SPAN")]
        keep_all: Option<String>,
        /// Then keep the newest version of each day for this long (e.g. 30d).
        #[arg(long, value_name = "SPAN")]
        daily: Option<String>,
        /// Then keep the newest version of each month for this long (e.g. 12mo, 2y, forever).
        #[arg(long, value_name = "SPAN")]
        monthly: Option<String>,
        /// The asset's first version (the import): `keep` (default) or `thin` like the others.
        #[arg(long, value_name = "keep|thin")]
        original: Option<String>,
        /// Go back to the default policy.
        #[arg(long, conflicts_with_all = ["keep_all", "daily", "monthly", "original"])]
        reset: bool,
        /// Show the policy (also the default without options).
        #[arg(long)]
        show: bool,
    },
    /// Thin old versions per the policy now (crypto-shredding them), as the mount does at start.
    Thin {
        /// Only list what would be thinned.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum FacesCmd {
    /// Detect faces on photos (these, or --all not scanned yet); resumable.
    Scan {
        /// The assets: ids or paths.
        #[arg(required_unless_present = "all")]
        assets: Vec<String>,
        /// Every photo whose current version was not scanned yet.
        #[arg(long, conflicts_with = "assets")]
        all: bool,
        /// Detection threads (default: one per core).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
        threads: Option<u16>,
    },
    /// Write the photo with numbered boxes around the detected faces to OUT (a JPEG).
    Show {
        /// The asset: its id or path.
        asset: String,
        /// Where to write the picture (a new file, 0600).
        out: PathBuf,
    },
    /// The detected faces of a photo and who is linked to which.
    List {
        /// The asset: its id or path.
        asset: String,
    },
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReviewArgs {
    #[command(subcommand)]
    pub action: Option<ReviewCmd>,
    /// Only photos in this collection (prefix).
    #[arg(long)]
    pub collection: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ReviewCmd {
    /// Apply suggestions: link the person each names (these, or --all open ones).
    Accept {
        /// Suggestion numbers (from `consentfs review`).
        #[arg(required_unless_present = "all")]
        ids: Vec<i64>,
        /// Every open suggestion whose name is exactly one person's.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// With --all: only photos in this collection (prefix).
        #[arg(long)]
        collection: Option<String>,
    },
    /// Drop suggestions.
    Reject {
        /// Suggestion numbers (from `consentfs review`).
        #[arg(required = true)]
        ids: Vec<i64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExportCmd {
    /// Check an export's files and its manifest's MAC (exit 1 if anything is off).
    Verify {
        /// The export folder to check.
        dest: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum RetentionCmd {
    /// Give assets a retention term (until a date, or a span from now), or remove it.
    Set {
        /// The assets: ids or paths.
        #[arg(required = true)]
        assets: Vec<String>,
        /// Until a date, or a span from now (e.g. 5y).
        #[arg(long, allow_hyphen_values = true, required_unless_present = "none")]
        until: Option<String>,
        /// Remove the asset's own retention term.
        #[arg(long, conflicts_with = "until")]
        none: bool,
    },
    /// Move assets past their retention term to the trash, purge what has been in the trash
    /// for 30 days and thin old versions per the version policy (dry run unless --yes).
    Apply {
        /// Really do it (without: show what would happen).
        #[arg(long)]
        yes: bool,
    },
}

/// An opened store and catalog plus the facts every command needs.
pub struct Ctx {
    pub store: Store,
    pub catalog: Catalog,
    pub json: bool,
    pub now: Time,
    pub actor: String,
    /// The running daemon's index, when the command runs in the daemon (through its control
    /// socket) and the index has caught up with the catalog: `ls` answers from it.
    pub view: Option<std::sync::Arc<std::sync::RwLock<crate::view::View>>>,
    /// This process in the store's registry of running commands (see `store::running`),
    /// for as long as the command runs.
    _running: crate::store::running::Registration,
}

impl Ctx {
    /// The store and catalog as the domain operations take them, acting as this command's user.
    pub fn session(&mut self) -> crate::domain::Session<'_> {
        crate::domain::Session {
            store: &self.store,
            catalog: &mut self.catalog,
            actor: &self.actor,
            now: self.now,
        }
    }
}

/// The OS login running this command, recorded as the actor of changes.
pub fn current_login() -> String {
    let uid = nix::unistd::getuid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid{uid}"));
    match std::env::var("SUDO_USER") {
        Ok(s) if uid.is_root() && !s.is_empty() => format!("{s} (sudo)"),
        _ => name,
    }
}

/// The team library named by `--store postgres://…`, if that is what it names.
fn team_url(cli: &Cli) -> Option<String> {
    let s = cli.store.as_deref()?.to_str()?;
    crate::catalog::team::is_url(s).then(|| s.to_string())
}

fn store_dir(cli: &Cli) -> Result<PathBuf> {
    cli.store
        .clone()
        .ok_or_else(|| Error::invalid("no store given: pass --store DIR or set CONSENTFS_STORE"))
}

fn prompt_passphrase(confirm: bool) -> Result<zeroize::Zeroizing<String>> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::invalid(
            "no key given: pass --key-file FILE or --passphrase-file FILE (or set CONSENTFS_KEY_FILE)",
        ));
    }
    let pass = zeroize::Zeroizing::new(
        rpassword::prompt_password("Passphrase: ")
            .map_err(|e| Error::io("cannot read passphrase", e))?,
    );
    if pass.is_empty() {
        return Err(Error::invalid("the passphrase is empty"));
    }
    if confirm {
        let again = zeroize::Zeroizing::new(
            rpassword::prompt_password("Passphrase again: ")
                .map_err(|e| Error::io("cannot read passphrase", e))?,
        );
        if *again != *pass {
            return Err(Error::invalid(
                "the passphrases differ; nothing was created",
            ));
        }
    }
    Ok(pass)
}

fn unlock_from(cli: &Cli) -> Result<Unlock> {
    if let Some(k) = &cli.key_file {
        return Ok(Unlock::KeyFile(k.clone()));
    }
    if let Some(p) = &cli.passphrase_file {
        return Ok(Unlock::Passphrase(keyring::read_passphrase_file(p)?));
    }
    Ok(Unlock::Passphrase(prompt_passphrase(false)?))
}

/// Open store and catalog as the command line's options say.
pub fn open_ctx(cli: &Cli) -> Result<Ctx> {
    let unlock = unlock_from(cli)?;
    let dir = match team_url(cli) {
        Some(url) => crate::domain::team::prepare(&url, &unlock)?,
        None => store_dir(cli)?,
    };
    let store = Store::open(&dir, &unlock)?;
    if !matches!(cli.command, Command::Migrate { .. }) {
        // (for `migrate` it names where the objects go)
        store.check_objects_flag(cli.objects.as_deref())?;
    }
    let anchor = anchor_of(cli, &store);
    ctx_for(cli, store, current_login(), anchor)
}

/// The rest of [`open_ctx`] for a store already open, acting as `actor` (the daemon, for a
/// client of its control socket: the daemon's store and anchor, the client's login).
pub(crate) fn ctx_for(
    cli: &Cli,
    store: Store,
    actor: String,
    anchor: crate::catalog::anchor::Anchor,
) -> Result<Ctx> {
    // Naming who holds the catalog is a courtesy: on a full disk (or any failure to write the
    // entry) the command still runs, unnamed, so a withdrawal can still get through.
    let running = crate::store::running::register(store.root(), &command_name(&cli.command))
        .unwrap_or_else(|e| {
            log::debug!("not registered as a running command: {e}");
            crate::store::running::Registration::none()
        });
    // files the mount saved a moment ago are in the catalog before this command reads it
    crate::vfs::queue::wait_for_new_files(&store, std::time::Duration::from_millis(500));
    let mut catalog = Catalog::open(
        &store.catalog_path(),
        &store.catalog_key(),
        store.audit_key(),
    )?;
    catalog.wait_naming_holders(store.root(), CATALOG_WAIT);
    let now = chrono::Utc::now();
    catalog.use_anchor(anchor, cli.accept_rollback, &actor, now)?;
    // files of objects shredded by a command that was killed before it removed them
    if let Err(e) = crate::shred::work_off(&store, &mut catalog, &actor) {
        log::warn!("cannot remove the files of shredded objects yet: {e}");
    }
    // objects written by commands that died before recording them (an import killed midway)
    match crate::store::intents::reap(&store, catalog.conn()) {
        Ok(0) => {}
        Ok(n) => log::info!("removed {n} object file(s) left by an interrupted command"),
        Err(e) => log::warn!("cannot remove the objects of an interrupted command yet: {e}"),
    }
    // Dates the user types and times shown to them are in the store's zone.
    crate::when::set_zone(crate::catalog::zone::get(catalog.conn())?);
    Ok(Ctx {
        store,
        catalog,
        json: cli.json,
        now,
        actor,
        view: None,
        _running: running,
    })
}

/// How long a command waits for the catalog's write lock before it gives up (exit 2). No
/// command holds it longer than a short transaction, so reaching this means something hangs.
const CATALOG_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The subcommand's name for the registry of running commands, e.g. `consent withdraw`: the
/// variant names only (from the derived `Debug`, which is cut before the first field, so no
/// argument, name or path gets into the store's registry).
fn command_name(cmd: &Command) -> String {
    // `export verify` and `review accept|reject` are subcommands inside a struct of arguments
    match cmd {
        Command::Export(ExportArgs {
            check: Some(ExportCmd::Verify { .. }),
            ..
        }) => return "export verify".into(),
        Command::Review(ReviewArgs {
            action: Some(ReviewCmd::Accept { .. }),
            ..
        }) => return "review accept".into(),
        Command::Review(ReviewArgs {
            action: Some(ReviewCmd::Reject { .. }),
            ..
        }) => return "review reject".into(),
        _ => {}
    }
    let dbg = format!("{cmd:?}");
    fn ident(s: &str) -> &str {
        let end = s
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(s.len());
        &s[..end]
    }
    fn kebab(s: &str) -> String {
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    }
    let first = ident(&dbg);
    let mut words = vec![kebab(first)];
    // a nested subcommand: `Consent(Withdraw { … })`, `Audit(Verify)`; a struct of
    // arguments (`Export(ExportArgs { … })`) is none
    if let Some(rest) = dbg[first.len()..].strip_prefix('(') {
        let second = ident(rest);
        if !second.is_empty() && !second.ends_with("Args") {
            words.push(kebab(second));
        }
    }
    words.join(" ")
}

/// The store's rollback anchor: `--anchor`, or the default for this store and account.
pub fn anchor_of(cli: &Cli, store: &Store) -> crate::catalog::anchor::Anchor {
    crate::catalog::anchor::Anchor::at(
        cli.anchor
            .clone()
            .unwrap_or_else(|| crate::catalog::anchor::default_path(&store.id())),
    )
}

fn init(cli: &Cli, timezone: Option<&str>) -> Result<i32> {
    let team = team_url(cli);
    let dir = match &team {
        Some(url) => crate::domain::team::replica_dir(url)?,
        None => store_dir(cli)?,
    };
    // Checked before anything is created, so a typo leaves nothing behind.
    let zone = timezone.map(crate::when::Zone::named).transpose()?;
    let pass = match &cli.passphrase_file {
        Some(p) => Some(keyring::read_passphrase_file(p)?),
        None if cli.key_file.is_none() => Some(prompt_passphrase(true)?),
        None => None,
    };
    let objects = match cli.objects.as_deref().filter(|o| !o.is_empty()) {
        Some(url) => crate::store::Location::parse(url)?,
        None => crate::store::Location::Own,
    };
    let now = chrono::Utc::now();
    let pass = pass.as_deref().map(|s| s.as_str());
    let store = match &team {
        Some(url) => crate::domain::team::init(
            url,
            &dir,
            pass,
            cli.key_file.as_deref(),
            now,
            &current_login(),
            &objects,
        )?,
        None => Store::init_at(
            &dir,
            pass,
            cli.key_file.as_deref(),
            now,
            &current_login(),
            &objects,
        )?,
    };
    // A new catalog holds the system's zone; replace it with the one asked for.
    let mut catalog = Catalog::open(
        &store.catalog_path(),
        &store.catalog_key(),
        store.audit_key(),
    )?;
    if let Some(zone) = &zone {
        let tx = catalog.begin(&current_login(), now)?;
        crate::catalog::zone::set(&tx, zone)?;
        tx.commit()?;
    }
    let zone = crate::catalog::zone::get(catalog.conn())?;
    match &team {
        Some(url) => eprintln!(
            "created team library {} (this machine's copy: {})",
            crate::catalog::team::shown(url),
            dir.display()
        ),
        None => eprintln!("created store {}", dir.display()),
    }
    if objects != crate::store::Location::Own {
        eprintln!("objects: {}", objects.url());
    }
    eprintln!(
        "time zone: {} (dates without a time and 16th birthdays are local midnights in it)",
        zone.name()
    );
    if let Some(k) = &cli.key_file {
        eprintln!(
            "key file: {} (keep it safe: without it the store cannot be opened)",
            k.display()
        );
    }
    Ok(0)
}

/// FUSE worker threads: enough to keep every core decrypting while others wait on the kernel.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(4)
        .max(4)
}

/// Commands that serve for a long time log at info level unless RUST_LOG says otherwise.
pub fn default_log_level(cli: &Cli) -> &'static str {
    match cli.command {
        Command::Mount { .. } | Command::Demo { .. } | Command::Portal(PortalCmd::Serve { .. }) => {
            "info"
        }
        _ => "warn",
    }
}

/// Run the parsed command; returns the exit status.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Init { ref timezone } => return init(&cli, timezone.as_deref()),
        Command::Demo { ref dir } => return demo::run(dir.clone()),
        Command::CipherSpeed { mib } => return views::cipher_speed(mib),
        _ => {}
    }
    let (name, socket) = (command_name(&cli.command), remote::socket_of(&cli));
    let ctx = open_ctx(&cli).map_err(|e| with_mount_state(&cli, e))?;
    let code = dispatch(cli, ctx)?;
    // with the key on the store directly: the running mount shows the change before we return
    remote::confirm_applied(&socket, &name);
    Ok(code)
}

/// A store that cannot be opened (a team library out of reach) may have a mount on this
/// machine that stopped serving because of it: the error says so, and why (`status` is where
/// an administrator looks first).
fn with_mount_state(cli: &Cli, e: Error) -> Error {
    let dir = match team_url(cli) {
        Some(url) => crate::domain::team::replica_dir(&url).ok(),
        None => cli.store.clone(),
    };
    let why = dir.and_then(|d| std::fs::read_to_string(d.join(crate::store::NOT_SERVING)).ok());
    match why {
        Some(why) => Error::invalid(format!(
            "{e}\nthe mount of this store is not serving photos: {}",
            why.trim()
        )),
        None => e,
    }
}

/// Run a command on an opened context (the CLI's own, or the daemon's for a socket client).
pub(crate) fn dispatch(cli: Cli, mut ctx: Ctx) -> Result<i32> {
    // the global options `mount` needs, taken before the command is taken apart
    let (socket, default_anchor) = (remote::socket_of(&cli), anchor_of(&cli, &ctx.store));
    match cli.command {
        Command::Init { .. } | Command::CipherSpeed { .. } | Command::Demo { .. } => Err(
            Error::invalid("this command does not run on an opened store"),
        ),
        Command::Portal(PortalCmd::Serve {
            listen,
            base_url,
            trusted_proxies,
        }) => {
            let base = crate::domain::portal::check_base_url(&base_url)?;
            crate::portal::serve(
                ctx.store,
                ctx.catalog,
                crate::portal::Options {
                    listen,
                    secure_cookies: base.starts_with("https://"),
                    base_url: base.clone(),
                    trusted_proxies,
                },
                |addr| {
                    use std::io::Write;
                    println!("consentfs portal: listening on http://{addr} (reached as {base})");
                    let _ = std::io::stdout().flush();
                },
            )?;
            Ok(0)
        }
        Command::Mount {
            mountpoint,
            foreground: _,
            threads,
            lease,
        } => {
            let threads = threads.unwrap_or_else(default_threads);
            let anchor = ctx.catalog.anchor().cloned();
            let anchor_path = anchor
                .as_ref()
                .map(|a| a.path().to_path_buf())
                .unwrap_or_else(|| default_anchor.path().to_path_buf());
            let control = Some((socket, remote::runner(ctx.store.clone(), anchor_path)));
            crate::daemon::run(
                ctx.store,
                crate::daemon::MountOptions {
                    mountpoint,
                    threads,
                    on_ready: None,
                    anchor,
                    control,
                    lease: std::time::Duration::from_secs(lease),
                },
            )?;
            Ok(0)
        }
        Command::Import {
            collection,
            retention,
            paths,
        } => import::run(&mut ctx, &collection, retention.as_deref(), &paths),
        Command::Person(cmd) => records::person(&mut ctx, cmd),
        Command::Purpose(cmd) => records::purpose(&mut ctx, cmd),
        Command::Portal(cmd) => portal::run(&mut ctx, cmd),
        Command::Mail(cmd) => portal::mail(&mut ctx, cmd),
        Command::Consent(cmd) => records::consent(&mut ctx, cmd),
        Command::Link {
            asset,
            persons,
            face,
            csv,
            apply,
        } => match (csv, asset) {
            (Some(csv), _) => review::link_csv(&mut ctx, &csv, apply),
            (None, Some(asset)) => records::link(&mut ctx, &asset, &persons, face),
            (None, None) => Err(Error::invalid("name the asset, or give --csv FILE")),
        },
        Command::Faces(cmd) => review::faces(&mut ctx, cmd),
        Command::Review(args) => review::run(&mut ctx, args),
        Command::Duplicates => review::duplicates(&mut ctx),
        Command::Unlink { asset, person } => records::unlink(&mut ctx, &asset, &person),
        Command::Mark(args) => records::mark(&mut ctx, args),
        Command::User(cmd) => records::user(&mut ctx, cmd),
        Command::Role(cmd) => roles::run(&mut ctx, cmd),
        Command::Assets => assets::run(&ctx),
        Command::Ls {
            user,
            purpose,
            at,
            hidden,
            collection,
        } => views::ls(
            &ctx,
            &user,
            &purpose,
            at.as_deref(),
            hidden,
            collection.as_deref(),
        ),
        Command::Why {
            asset,
            user,
            purpose,
            at,
        } => views::why(&ctx, &asset, &user, &purpose, at.as_deref()),
        Command::Cat { asset, version } => views::cat(&mut ctx, &asset, version),
        Command::Versions(VersionsArgs { cmd: Some(cmd), .. }) => versions::run(&mut ctx, cmd),
        Command::Versions(VersionsArgs { asset, cmd: None }) => {
            versions::show(&ctx, asset.as_deref().unwrap_or_default())
        }
        Command::Restore { asset, version } => records::restore(&mut ctx, &asset, version),
        Command::Derive { draft, from } => records::derive(&mut ctx, &draft, &from),
        Command::Trash(cmd) => records::trash(&mut ctx, cmd),
        Command::Expiring { within } => views::expiring(&ctx, &within),
        Command::Audit(AuditCmd::List { since }) => views::audit_list(&ctx, since),
        Command::Audit(AuditCmd::Verify) => views::audit_verify(&ctx),
        Command::Audit(AuditCmd::Report { person, since }) => {
            rights::audit_report(&mut ctx, &person, since.as_deref())
        }
        Command::Check => ops::check(&mut ctx),
        Command::Backup { dest } => ops::backup(&mut ctx, &dest),
        Command::Status => ops::status(&ctx),
        Command::Migrate { to } => ops::migrate(&mut ctx, &to, cli.objects.as_deref()),
        Command::Passphrase(cmd) => ops::passphrase(&mut ctx, cmd),
        Command::KeyFile(cmd) => ops::key_file(&mut ctx, cmd),
        Command::Export(args) => export::run(&mut ctx, args),
        Command::Retention(cmd) => retention::run(&mut ctx, cmd),
        Command::Generate {
            assets,
            persons,
            events,
            no_persons_every,
            user,
        } => import::generate(
            &mut ctx,
            crate::catalog::synthetic::Spec {
                assets,
                persons,
                events,
                no_persons_every,
                user,
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry of running commands holds subcommand names only, never an argument.
    #[test]
    fn command_names_carry_no_arguments() {
        let name = |args: &[&str]| {
            let mut all = vec!["consentfs"];
            all.extend_from_slice(args);
            command_name(&Cli::try_parse_from(all).unwrap().command)
        };
        assert_eq!(name(&["import", "/home/anna/secret.jpg"]), "import");
        assert_eq!(
            name(&[
                "consent",
                "withdraw",
                "Anna Example",
                "--purpose",
                "website"
            ]),
            "consent withdraw"
        );
        assert_eq!(name(&["person", "erase", "Anna", "--yes"]), "person erase");
        assert_eq!(name(&["audit", "verify"]), "audit verify");
        assert_eq!(
            name(&["export", "--user", "anna", "--purpose", "web", "/tmp/x"]),
            "export"
        );
        assert_eq!(name(&["export", "verify", "/tmp/x"]), "export verify");
    }

    /// Every command the CLI has is placed in the roles table (`crate::roles::need`): a new
    /// command cannot silently become runnable, or unrunnable, through the daemon.
    #[test]
    fn every_command_has_its_roles() {
        use clap::CommandFactory;
        fn walk(c: &clap::Command, prefix: &str, out: &mut Vec<String>) {
            for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{prefix}{}", sub.get_name()).trim().to_string();
                if sub.get_subcommands().any(|s| s.get_name() != "help") {
                    walk(sub, &format!("{path} "), out);
                    if !sub.is_subcommand_required_set() {
                        out.push(path);
                    }
                } else {
                    out.push(path);
                }
            }
        }
        let mut all = Vec::new();
        walk(&Cli::command(), "", &mut all);
        assert!(all.len() > 40, "{all:?}");
        let missing: Vec<&String> = all
            .iter()
            .filter(|c| crate::roles::need(c).is_none())
            .collect();
        assert!(missing.is_empty(), "commands without roles: {missing:?}");
    }

    /// A newcomer reads `--help`: every subcommand, argument and option says in a line what it
    /// is, and the options every command takes are listed apart from each command's own.
    #[test]
    fn every_command_argument_and_option_has_help() {
        use clap::CommandFactory;
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_arguments() {
                let id = a.get_id().as_str();
                if matches!(id, "help" | "version") || a.is_hide_set() {
                    continue;
                }
                if a.get_help().is_none() {
                    missing.push(format!("{path} <{id}>"));
                }
                if a.is_global_set() && a.get_help_heading() != Some("Global options") {
                    missing.push(format!("{path} --{id} (not under Global options)"));
                }
            }
            for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
                let p = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && !sub.is_hide_set() {
                    missing.push(p.clone());
                }
                walk(sub, &p, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "consentfs", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:#?}");
    }
}
