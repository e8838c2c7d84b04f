//! The operations behind the commands (DESIGN.md §6, §12): recording consent, erasure, the
//! reports a person or an auditor asks for, retention and import.
//!
//! They are kept apart from `crate::cli` so that two front ends run the very same code: the
//! command line (which parses arguments, calls an operation and prints its result as text or
//! `--json`) and the daemon's control socket (which identifies its caller and sends the result
//! back). An operation therefore takes domain values only, a [`Session`] plus what the
//! operation needs, never the command line's types, prints nothing, and returns a result
//! (`serde::Serialize` where `--json` shows it) that each front end renders its own way.

pub mod cat;
pub mod consent;
pub mod erase;
pub mod expiring;
pub mod import;
pub mod links;
mod new_store;
pub mod persons;
pub mod purposes;
pub mod receipt;
pub mod report;
mod report_html;
pub mod retention;
pub mod trash;
pub mod users;
pub mod versions;
pub mod visibility;

use crate::catalog::Catalog;
use crate::policy::Time;
use crate::store::Store;

/// What every operation works on: the opened store and catalog, who asks and when.
///
/// Borrowed, so that each front end keeps opening the store its own way (the command line per
/// command, with the key; the daemon once, for all its callers) and builds one of these per
/// request.
pub struct Session<'a> {
    pub store: &'a Store,
    pub catalog: &'a mut Catalog,
    /// The OS login of whoever asked, recorded as the actor of every change (the command
    /// line's own user; for the socket, the caller's uid as the kernel reports it).
    pub actor: &'a str,
    /// The moment the request is evaluated at, one for the whole operation.
    pub now: Time,
}
