//! Who may run which command (DESIGN.md section 12): the roles kept in the catalog and the
//! table of what each command needs. Pure: the control socket checks a caller against it
//! before running anything; the catalog only stores who holds which role
//! (`catalog::roles`).
//!
//! - `admin`: users, roles, grants, purposes, keys;
//! - `privacy-officer`: persons, guardians, consents and their evidence, links, reports,
//!   erasure, retention (and version thinning, which is retention of versions), the audit log,
//!   the expiry report;
//! - `editor`: import, link, mark, derive, versions and restoring them, the trash's restore,
//!   within the collections of their grants;
//! - `auditor`: read-only: the audit log, the expiry report, `ls`/`why` for anyone;
//! - every user with a grant: `ls`/`why` for themselves and `export` of their own views.
//!
//! Commands that are the machine's own business (`init`, `mount`, `demo`, benchmarks) and
//! `cat` (an asset's plaintext outside any view: recovery) run only with the key, on the store
//! directly, never through the socket.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Admin,
    PrivacyOfficer,
    Editor,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Admin,
        Role::PrivacyOfficer,
        Role::Editor,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::PrivacyOfficer => "privacy-officer",
            Role::Editor => "editor",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What running a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// One of these roles.
    AnyOf(&'static [Role]),
    /// Any user of the catalog for their own views; these roles for anyone's.
    OwnViewsOr(&'static [Role]),
    /// Any user of the catalog (nothing personal is shown).
    AnyUser,
    /// Only with the key, on the store directly.
    KeyOnly,
}

use Role::*;

const PO: &[Role] = &[PrivacyOfficer];
const ED: &[Role] = &[Editor];
const AD: &[Role] = &[Admin];

/// What `command` (its words without arguments: "consent withdraw", "ls") needs; `None` for a
/// command this table does not know, which the socket refuses (a new command must be placed
/// here before anyone but root can run it; the CLI's test checks every one is).
pub fn need(command: &str) -> Option<Need> {
    Some(match command {
        "init" | "mount" | "demo" | "cipher-speed" | "generate" | "cat" | "passphrase change"
        | "passphrase remove" | "key-file add" | "key-file remove" | "migrate" | "portal serve" => {
            Need::KeyOnly
        }
        "user add" | "user grant" | "user revoke" | "user remove" | "user list" | "role grant"
        | "role revoke" | "role list" | "purpose add" => Need::AnyOf(AD),
        // the text people sign and who sees a purpose's photos: the admin who set the purpose
        // up, or the privacy officer who answers for the consents
        "purpose describe" | "purpose audience" => Need::AnyOf(&[Admin, PrivacyOfficer]),
        "portal invite" | "portal list" | "portal revoke" | "person email" => Need::AnyOf(PO),
        // the organisation's mail server (its password): the admin who runs the machines
        "mail set" | "mail remove" | "mail test" => Need::AnyOf(AD),
        "mail show" => Need::AnyOf(&[Admin, PrivacyOfficer]),
        "check" | "backup" => Need::AnyOf(AD),
        "status" | "purpose list" => Need::AnyUser,
        "person add" | "person list" | "person show" | "person guardian" | "person report"
        | "person erase" | "consent grant" | "consent withdraw" | "consent refuse"
        | "consent object" | "consent list" | "consent receipt" | "retention set"
        | "retention apply" | "purpose retention" | "versions policy" | "versions thin"
        | "trash purge" => Need::AnyOf(PO),
        "link" | "unlink" => Need::AnyOf(&[PrivacyOfficer, Editor]),
        // linking at scale: the people who link persons to photos
        "faces scan" | "faces show" | "faces list" | "review" | "review accept"
        | "review reject" | "duplicates" => Need::AnyOf(&[PrivacyOfficer, Editor]),
        "import" | "mark" | "derive" | "versions" | "restore" | "trash list" | "trash restore" => {
            Need::AnyOf(ED)
        }
        "audit list" | "audit verify" | "audit report" | "expiring" => {
            Need::AnyOf(&[PrivacyOfficer, Auditor])
        }
        "ls" | "why" => Need::OwnViewsOr(&[Auditor]),
        // every photo and who is on it: the people who govern the photos
        "assets" => Need::AnyOf(&[PrivacyOfficer, Editor, Auditor]),
        "export" => Need::OwnViewsOr(&[]),
        // reads only a folder the caller names, as the caller, and says whether its files
        // match their manifest: nothing the caller does not hold already
        "export verify" => Need::AnyUser,
        _ => return None,
    })
}

/// May a caller holding `roles` run `command`, for their own views (`own`) or someone else's?
/// The refusal names the role that is needed.
pub fn allowed(command: &str, roles: &[Role], own: bool) -> Result<(), String> {
    let needed = |of: &[Role]| {
        let names: Vec<&str> = of.iter().map(|r| r.as_str()).collect();
        format!(
            "`{command}` needs the role {}; ask an admin (`consentfs role grant LOGIN ROLE`)",
            names.join(" or ")
        )
    };
    match need(command) {
        None => Err(format!("`{command}` cannot be run through the daemon")),
        Some(Need::KeyOnly) => Err(format!(
            "`{command}` runs only with the store's key (as root, on the store directly)"
        )),
        Some(Need::AnyUser) => Ok(()),
        Some(Need::AnyOf(of)) if of.iter().any(|r| roles.contains(r)) => Ok(()),
        Some(Need::AnyOf(of)) => Err(needed(of)),
        Some(Need::OwnViewsOr(_)) if own => Ok(()),
        Some(Need::OwnViewsOr(of)) if of.iter().any(|r| roles.contains(r)) => Ok(()),
        Some(Need::OwnViewsOr([])) => Err(format!(
            "`{command}` is for your own views only (--user must be your own login)"
        )),
        Some(Need::OwnViewsOr(of)) => Err(needed(of)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The roles of DESIGN.md section 12, command by command, as each role would try them.
    #[test]
    fn each_role_may_run_exactly_its_commands() {
        let cases: &[(&str, &[Role], bool)] = &[
            // (command, roles that may, for own views only?)
            ("user grant", &[Admin], false),
            ("role grant", &[Admin], false),
            ("purpose add", &[Admin], false),
            ("purpose describe", &[Admin, PrivacyOfficer], false),
            ("portal invite", &[PrivacyOfficer], false),
            ("portal revoke", &[PrivacyOfficer], false),
            ("backup", &[Admin], false),
            ("consent withdraw", &[PrivacyOfficer], false),
            ("person erase", &[PrivacyOfficer], false),
            ("person report", &[PrivacyOfficer], false),
            ("retention apply", &[PrivacyOfficer], false),
            ("link", &[PrivacyOfficer, Editor], false),
            ("faces scan", &[PrivacyOfficer, Editor], false),
            ("faces show", &[PrivacyOfficer, Editor], false),
            ("review accept", &[PrivacyOfficer, Editor], false),
            ("import", &[Editor], false),
            ("mark", &[Editor], false),
            ("trash restore", &[Editor], false),
            ("audit verify", &[PrivacyOfficer, Auditor], false),
            ("expiring", &[PrivacyOfficer, Auditor], false),
            ("ls", &[Auditor], false),
            ("why", &[Auditor], false),
            ("export", &[], false),
        ];
        for (cmd, may, _) in cases {
            for role in Role::ALL {
                let got = allowed(cmd, &[role], false).is_ok();
                assert_eq!(got, may.contains(&role), "{role} running {cmd}");
            }
            // no role at all: only for one's own views
            assert_eq!(
                allowed(cmd, &[], true).is_ok(),
                matches!(need(cmd), Some(Need::OwnViewsOr(_))),
                "a plain user running {cmd} for themselves"
            );
        }
        // the refusal names the role needed
        let e = allowed("consent withdraw", &[Editor], false).unwrap_err();
        assert!(e.contains("privacy-officer"), "{e}");
        // never through the daemon: the key's own commands, and what is not in the table
        for cmd in ["mount", "init", "cat", "passphrase change", "no such thing"] {
            for role in Role::ALL {
                assert!(allowed(cmd, &[role], true).is_err(), "{cmd} as {role}");
            }
        }
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
