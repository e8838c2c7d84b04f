//! Schema migrations. `PRAGMA user_version` holds the number of migrations applied; each entry
//! of [`MIGRATIONS`] moves the schema one version up and is never edited once released (add a
//! new entry instead). A catalog from a newer consentfs is refused rather than misread.
//!
//! Times are stored as seconds since the epoch (UTC), dates as `YYYY-MM-DD`.

pub const MIGRATIONS: &[&str] = &[
    // 1: the initial schema
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE persons (
    id INTEGER PRIMARY KEY,
    name TEXT,                    -- NULL once erased
    born TEXT,                    -- YYYY-MM-DD, optional
    ext_ref TEXT,                 -- the organisation's own reference (student number ...)
    pseudonym TEXT NOT NULL,      -- stable id kept after erasure, as proof
    erased_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX persons_name ON persons(name);

CREATE TABLE guardians (
    person_id INTEGER NOT NULL REFERENCES persons(id),
    guardian_id INTEGER NOT NULL REFERENCES persons(id),
    PRIMARY KEY (person_id, guardian_id),
    CHECK (person_id <> guardian_id)
);

CREATE TABLE purposes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    basis TEXT NOT NULL,
    retention TEXT                -- a span like 5y, counted from the asset's import
);

CREATE TABLE objects (
    id TEXT PRIMARY KEY,          -- hex object id, also the file name under objects/
    wrapped_key BLOB,             -- NULL once shredded
    size INTEGER NOT NULL,
    content_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX objects_hash ON objects(content_hash);

CREATE TABLE assets (
    id INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,     -- e.g. events/2026, '' for the root
    name TEXT NOT NULL,
    no_persons INTEGER NOT NULL DEFAULT 0,
    special_category INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,         -- active | draft | trash
    creator TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    trashed_at INTEGER,
    retention_until INTEGER
);
CREATE UNIQUE INDEX assets_path ON assets(collection, name) WHERE status <> 'trash';

CREATE TABLE versions (
    asset_id INTEGER NOT NULL REFERENCES assets(id),
    version INTEGER NOT NULL,
    object_id TEXT NOT NULL REFERENCES objects(id),
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (asset_id, version)
);

CREATE TABLE links (
    asset_id INTEGER NOT NULL REFERENCES assets(id),
    person_id INTEGER NOT NULL REFERENCES persons(id),
    linked_by TEXT NOT NULL,
    linked_at INTEGER NOT NULL,
    PRIMARY KEY (asset_id, person_id)
);
CREATE INDEX links_person ON links(person_id);

CREATE TABLE consent_events (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES persons(id),
    kind TEXT NOT NULL,           -- grant | withdraw | refuse | object
    scope TEXT NOT NULL,          -- all | collection | assets
    scope_prefix TEXT,
    starts INTEGER NOT NULL,
    expires INTEGER,
    given_by INTEGER NOT NULL REFERENCES persons(id),
    explicit INTEGER NOT NULL DEFAULT 0,
    evidence_object TEXT REFERENCES objects(id),
    evidence_name TEXT,
    recorded_by TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX consent_events_person ON consent_events(person_id);

CREATE TABLE consent_event_purposes (
    event_id INTEGER NOT NULL REFERENCES consent_events(id),
    purpose_id INTEGER NOT NULL REFERENCES purposes(id),
    PRIMARY KEY (event_id, purpose_id)
);

CREATE TABLE consent_event_assets (
    event_id INTEGER NOT NULL REFERENCES consent_events(id),
    asset_id INTEGER NOT NULL REFERENCES assets(id),
    PRIMARY KEY (event_id, asset_id)
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    login TEXT NOT NULL UNIQUE,
    person_id INTEGER REFERENCES persons(id)
);

CREATE TABLE grants (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    purpose_id INTEGER NOT NULL REFERENCES purposes(id),
    prefix TEXT NOT NULL,
    access TEXT NOT NULL,         -- read | write | delete
    UNIQUE (user_id, purpose_id, prefix)
);

CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,         -- JSON: ids of what changed
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
"#,
    // 2: writes through the mount: drafts belong to the purpose folder they were created in,
    // versions may carry the modification time a tool set, and 'purged' assets (crypto-shredded
    // or merged into another asset) no longer hold their path.
    r#"
ALTER TABLE assets ADD COLUMN draft_purpose INTEGER REFERENCES purposes(id);
ALTER TABLE versions ADD COLUMN mtime INTEGER;
DROP INDEX assets_path;
CREATE UNIQUE INDEX assets_path ON assets(collection, name) WHERE status IN ('active', 'draft');
"#,
    // 3: which versions use an object (purge, a new file's first save) without a scan.
    r#"
CREATE INDEX versions_object ON versions(object_id);
"#,
    // 4: exports (which file of which asset version went where, under which manifest MAC), so
    // that a person's report and an access report can say which exports included their photos;
    // and an index to find accesses in the audit log without reading all of it.
    r#"
CREATE TABLE exports (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,          -- OS login that ran the export
    login TEXT NOT NULL,          -- the user whose view was exported
    purpose_id INTEGER NOT NULL REFERENCES purposes(id),
    collection TEXT NOT NULL,
    dest TEXT NOT NULL,
    files INTEGER NOT NULL,
    mac TEXT NOT NULL
);
CREATE TABLE export_items (
    export_id INTEGER NOT NULL REFERENCES exports(id),
    asset_id INTEGER NOT NULL REFERENCES assets(id),
    version INTEGER NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (export_id, asset_id)
);
CREATE INDEX export_items_asset ON export_items(asset_id);
CREATE INDEX audit_action ON audit(action, at);
"#,
    // 5: a purpose may record an Art. 9(2) GDPR exception (the ground, as text), under which
    // special-category photos need no explicit consent.
    r#"
ALTER TABLE purposes ADD COLUMN art9_exception TEXT;
"#,
    // 6: provenance of drafts: the assets a draft's content came from (same content, or read by
    // the process that wrote it shortly before). A draft is shown to its creator only while the
    // persons of its sources consent, and is in those persons' reports.
    r#"
CREATE TABLE draft_sources (
    draft_id INTEGER NOT NULL REFERENCES assets(id),
    source_id INTEGER NOT NULL REFERENCES assets(id),
    how TEXT NOT NULL,            -- content | read | backup | merge
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (draft_id, source_id)
);
CREATE INDEX draft_sources_source ON draft_sources(source_id);
"#,
    // 7: users are bound to the uid of their OS account (grants must not pass to a later
    // account that reuses a deleted login). Existing users get the uid their login has when
    // the catalog is migrated (`users::fill_uids`, run by the migration right after this).
    r#"
ALTER TABLE users ADD COLUMN uid INTEGER;
"#,
    // 8: object files whose data keys were destroyed, to be removed from disk: recorded in the
    // purge's own transaction, so a command killed after its commit leaves a list that the next
    // command (or mount) works off, not files nobody removes.
    r#"
CREATE TABLE shred_queue (object_id TEXT PRIMARY KEY, queued_at INTEGER NOT NULL);
"#,
    // 9: version thinning (`policy::thinning`): a thinned version keeps its row (numbers stay,
    // `versions` shows it was thinned and when, `cat --version` says so) but not its content;
    // its object is crypto-shredded unless another version still uses it. The policy itself
    // is a `meta` row (`version_policy`); without one the default applies. The index lets the
    // "does anything else use this object" check skip a scan of every consent.
    r#"
ALTER TABLE versions ADD COLUMN thinned_at INTEGER;
CREATE INDEX consent_events_evidence ON consent_events(evidence_object);
"#,
    // 10: file times as on a local filesystem: a version's modification time keeps its
    // nanoseconds (`touch -d 03:04:05.123456789`, `cp -p` and `rsync -t` give it back exact),
    // and the access time a tool set (`touch -a`, `rsync --atimes`) is kept, seconds plus
    // nanoseconds like `mtime`. `mtime` stays whole seconds, so readers of it are unchanged.
    r#"
ALTER TABLE versions ADD COLUMN mtime_nsec INTEGER CHECK (mtime_nsec BETWEEN 0 AND 999999999);
ALTER TABLE versions ADD COLUMN atime INTEGER;
ALTER TABLE versions ADD COLUMN atime_nsec INTEGER CHECK (atime_nsec BETWEEN 0 AND 999999999);
"#,
    // 11: roles (`crate::roles`): who may run which command through the daemon. Granted by an
    // admin; removed with the user.
    r#"
CREATE TABLE roles (
    user_id INTEGER NOT NULL REFERENCES users(id),
    role TEXT NOT NULL CHECK (role IN ('admin', 'privacy-officer', 'editor', 'auditor')),
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, role)
);
"#,
    // 12: linking at scale (DESIGN.md section 14). `face_scans`: what face detection found on
    // an asset's version (boxes as fractions of the image, JSON; no face templates: nothing is
    // compared with anyone); `assets.faces` is the count of the latest scan, kept on the asset row
    // so that the mount's start-up scan of every asset needs no join. `assets.faces_reviewed`: how many detected faces a reviewer
    // declared not recognisable (`mark --faces-reviewed`), so a later version with more faces
    // needs a new look. `links.face`: which detected face a linked person is. `suggestions`:
    // what embedded metadata (a name without a matching reference) or a near-duplicate
    // proposes, until someone accepts or rejects it. All of it goes when the photo is purged;
    // names in suggestions go when the person they name is erased.
    r#"
CREATE TABLE face_scans (
    asset_id INTEGER PRIMARY KEY REFERENCES assets(id),
    version INTEGER NOT NULL,
    faces INTEGER NOT NULL CHECK (faces BETWEEN 0 AND 10000),
    boxes TEXT NOT NULL,
    model TEXT NOT NULL,
    scanned_at INTEGER NOT NULL
);
ALTER TABLE assets ADD COLUMN faces INTEGER NOT NULL DEFAULT 0
    CHECK (faces BETWEEN 0 AND 10000);
ALTER TABLE assets ADD COLUMN faces_reviewed INTEGER NOT NULL DEFAULT 0
    CHECK (faces_reviewed BETWEEN 0 AND 10000);
ALTER TABLE links ADD COLUMN face INTEGER CHECK (face BETWEEN 1 AND 10000);
CREATE TABLE suggestions (
    id INTEGER PRIMARY KEY,
    asset_id INTEGER NOT NULL REFERENCES assets(id),
    kind TEXT NOT NULL CHECK (kind IN ('person', 'derive')),
    name TEXT CHECK (length(name) <= 256),
    person_id INTEGER REFERENCES persons(id),
    from_asset INTEGER REFERENCES assets(id),
    source TEXT NOT NULL,
    face INTEGER CHECK (face BETWEEN 1 AND 10000),
    created_at INTEGER NOT NULL,
    settled_at INTEGER,
    settled TEXT CHECK (settled IN ('accepted', 'rejected'))
);
CREATE INDEX suggestions_open ON suggestions(asset_id) WHERE settled_at IS NULL;
"#,
    // 13: near-duplicates (DESIGN.md section 14): a perceptual hash of each image's current
    // version (64 bits, stored as a signed integer), to find crops, resizes and re-exports of
    // photos already in the store. It says what the picture looks like in 8 bytes; it goes
    // when the photo is purged.
    r#"
CREATE TABLE image_hashes (
    asset_id INTEGER PRIMARY KEY REFERENCES assets(id),
    version INTEGER NOT NULL,
    phash INTEGER NOT NULL
);
"#,
    // 14: sidecars (issue 16): an XMP file beside a photo (`IMG_0042.CR2.xmp`, `IMG_0042.xmp`)
    // holds the photo's face regions, names and places, so it is the photo's: it has no links
    // or flags of its own, the rules read its photo's (see `assets::get`), it goes to the trash
    // and is purged with its photo. A companion of a companion is refused where it is set.
    r#"
ALTER TABLE assets ADD COLUMN companion_of INTEGER REFERENCES assets(id);
CREATE INDEX assets_companions ON assets(companion_of) WHERE companion_of IS NOT NULL;
"#,
    // 15: the trash, indexed. Every mount purges what has been in the trash for 30 days
    // before it serves; without an index that question read every asset (0.2 s of the mount's
    // start at a million photos, for a trash that is usually empty).
    r#"
CREATE INDEX assets_trash ON assets(trashed_at) WHERE status = 'trash';
"#,
    // 16: a team library's copy of the catalog (`catalog::team`): the number of the last change
    // from the library's log applied to it. One row, in this machine's copy only (it is never
    // part of a change sent to the others); a store of its own has none.
    r#"
CREATE TABLE IF NOT EXISTS team_replica (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL CHECK (seq >= 0));
"#,
    // 17: the consent page (DESIGN.md section 15). A purpose says in plain words what it is
    // for (the text a decider reads and ticks) and who sees its photos: the organisation's
    // staff through the mount, or also the persons on a photo and their guardians through the
    // page ("subjects"). An invitation lets one decider decide for one person; only the hash
    // of its token is kept, so a copy of the catalog opens no page.
    r#"
ALTER TABLE purposes ADD COLUMN description TEXT;
ALTER TABLE purposes ADD COLUMN audience TEXT NOT NULL DEFAULT 'staff' CHECK (audience IN ('staff', 'subjects'));
CREATE TABLE invitations (
    id INTEGER PRIMARY KEY,
    token_hash BLOB NOT NULL UNIQUE,
    person_id INTEGER NOT NULL REFERENCES persons(id),
    decider_id INTEGER NOT NULL REFERENCES persons(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    created_by TEXT NOT NULL
);
CREATE INDEX invitations_person ON invitations(person_id);
CREATE INDEX invitations_decider ON invitations(decider_id);
CREATE TABLE invitation_purposes (
    invitation_id INTEGER NOT NULL REFERENCES invitations(id),
    purpose_id INTEGER NOT NULL REFERENCES purposes(id),
    PRIMARY KEY (invitation_id, purpose_id)
);
"#,
    // 18: where a decider's consent-page links and receipts are mailed (`person email`); it
    // goes with the name at an erasure.
    r#"
ALTER TABLE persons ADD COLUMN email TEXT;
"#,
];

/// The format of the first team libraries (`catalog::team`): their log's changes and
/// snapshots are sealed without the format in their associated data; later formats bind it,
/// so that a machine still running an older consentfs cannot apply a newer format's change.
pub const FIRST_TEAM_FORMAT: i64 = 16;

/// The migration after which existing users' uids are filled in from the OS accounts.
pub const USERS_UID: usize = 7;

/// The catalog format this consentfs writes: the number of [`MIGRATIONS`]. The environment
/// variable `CONSENTFS_TEST_FORMAT` lowers it (to no less than [`FIRST_TEAM_FORMAT`]), so that
/// tests can run this binary as the release before it and upgrade a store or a team library
/// from it; a catalog it made is one of that older release in every respect.
pub fn current_version() -> i64 {
    let all = MIGRATIONS.len() as i64;
    match std::env::var("CONSENTFS_TEST_FORMAT") {
        Ok(v) => v
            .trim()
            .parse::<i64>()
            .map_or(all, |v| v.clamp(FIRST_TEAM_FORMAT, all)),
        Err(_) => all,
    }
}
