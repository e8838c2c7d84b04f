//! The operations behind the commands (DESIGN.md §6, §12): recording consent, erasure, the
//! reports a person or an auditor asks for, retention and import.
//!
//! They are kept apart from the command line's module so that two front ends run the very same code: the
//! command line (which parses arguments, calls an operation and prints its result as text or
//! `--json`) and the daemon's control socket (which identifies its caller and sends the result
//! back). An operation therefore takes domain values only, a [`Session`] plus what the
//! operation needs, never the command line's types, prints nothing, and returns a result
//! (`serde::Serialize` where `--json` shows it) that each front end renders its own way.

pub mod cat;
pub mod consent;
pub mod consent_page;
pub mod erase;
pub mod expiring;
pub mod faces;
pub mod import;
pub mod links;
pub mod mail;
mod new_store;
pub mod persons;
pub mod portal;
pub mod purposes;
pub mod receipt;
pub mod report;
mod report_html;
pub mod retention;
pub mod review;
pub mod team;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Quiet;
    use crate::policy::EventKind;

    /// A new, empty store: the temporary folder (keep it), the store and its catalog.
    pub(crate) fn new_store() -> (tempfile::TempDir, Store, Catalog) {
        let d = tempfile::tempdir().unwrap();
        let store = Store::init(
            &d.path().join("s"),
            None,
            Some(&d.path().join("k")),
            chrono::Utc::now(),
            "t",
        )
        .unwrap();
        let catalog = Catalog::open(
            &store.catalog_path(),
            &store.catalog_key(),
            store.audit_key(),
        )
        .unwrap();
        (d, store, catalog)
    }

    /// A new store with `files` (name, content) imported into the root collection: the
    /// temporary folder (keep it), the store and its catalog.
    pub(crate) fn store_with(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Store, Catalog) {
        let (d, store, mut catalog) = new_store();
        let now = chrono::Utc::now();
        let src = d.path().join("in");
        std::fs::create_dir(&src).unwrap();
        for (name, content) in files {
            std::fs::write(src.join(name), content).unwrap();
        }
        let mut s = Session {
            store: &store,
            catalog: &mut catalog,
            actor: "t",
            now,
        };
        import::import(&mut s, "", None, &[src], &Quiet).unwrap();
        (d, store, catalog)
    }

    /// The operations run on domain values alone (what the control socket will do): a photo
    /// imported, linked and consented to is in the user's view; after a withdrawal recorded
    /// through the same operation it is not, and an erasure (dry run) names it.
    #[test]
    fn operations_run_without_the_command_line() {
        let (d, store, mut catalog) = new_store();
        let now = chrono::Utc::now();
        let photo = d.path().join("anna.jpg");
        std::fs::write(&photo, b"a photo of anna").unwrap();
        let mut s = Session {
            store: &store,
            catalog: &mut catalog,
            actor: "officer",
            now,
        };
        let imported = import::import(&mut s, "ev", None, &[photo], &Quiet).unwrap();
        assert_eq!(imported.outcomes.len(), 1);
        let asset = imported.outcomes[0].asset;
        persons::add(&mut s, "Anna", None, None, false).unwrap();
        links::link(&mut s, &asset.to_string(), &["Anna".to_string()], None).unwrap();
        users::add(&mut s, "root", None).unwrap();
        users::grant(&mut s, "root", "website", "", crate::policy::Access::Read).unwrap();
        let anna = consent::Subject {
            person: "Anna",
            purposes: "website",
            collection: None,
            assets: &[],
            by: None,
        };
        let at = consent::Moments::parse(EventKind::Grant, None, None, now).unwrap();
        consent::record(&mut s, EventKind::Grant, &anna, at, false, None).unwrap();
        let seen = |s: &Session| {
            visibility::ls(
                s.catalog.conn(),
                s.now,
                "root",
                "website",
                None,
                false,
                None,
                false,
            )
            .unwrap()
            .iter()
            .map(|i| i.path.clone())
            .collect::<Vec<_>>()
        };
        assert_eq!(seen(&s), ["ev/anna.jpg"]);

        s.now += chrono::Duration::seconds(2);
        let at = consent::Moments::parse(EventKind::Withdraw, None, None, s.now).unwrap();
        let w = consent::record(&mut s, EventKind::Withdraw, &anna, at, false, None).unwrap();
        assert_eq!(w.kind, EventKind::Withdraw);
        assert!(seen(&s).is_empty());
        let dry = erase::erase(&mut s, "Anna", false, false).unwrap();
        assert!(!dry.applied);
        assert_eq!(dry.shredded.len(), 1);
        assert_eq!(dry.shredded[0].path, "ev/anna.jpg");
    }
}
