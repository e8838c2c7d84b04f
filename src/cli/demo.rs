//! `consentfs demo [DIR]`: a sample store with generated photos, persons (one of them a minor
//! with a guardian), consents for different purposes (one expiring two minutes from now),
//! mounted, with a short tour printed once the mount is up.

use super::current_login;
use crate::catalog::consents::{self, NewEvent};
use crate::catalog::{assets, persons, purposes, users, Catalog};
use crate::daemon::{self, MountOptions};
use crate::error::{Error, Result};
use crate::policy::{Access, EventKind, Scope, Status};
use crate::store::Store;
use std::path::PathBuf;

/// A generated "photo": a soft gradient with a disc per person on it.
fn photo(seed: u32, faces: usize) -> Result<Vec<u8>> {
    let (w, h) = (480u16, 320u16);
    let mut px = Vec::with_capacity(w as usize * h as usize * 3);
    let centres: Vec<(i32, i32, [u8; 3])> = (0..faces)
        .map(|i| {
            let x = (i as i32 + 1) * i32::from(w) / (faces as i32 + 1);
            let c = [
                (200 + 37 * i as u32 + seed * 13) as u8,
                (160 + seed * 29) as u8,
                (120 + 71 * i as u32) as u8,
            ];
            (x, i32::from(h) / 2, c)
        })
        .collect();
    for y in 0..i32::from(h) {
        for x in 0..i32::from(w) {
            let mut rgb = [
                (40 + (x * 120 / i32::from(w)) as u32 + seed * 17 % 60) as u8,
                (60 + (y * 100 / i32::from(h)) as u32 + seed * 31 % 50) as u8,
                (110 + seed * 47 % 100) as u8,
            ];
            for (cx, cy, c) in &centres {
                if (x - cx).pow(2) + (y - cy).pow(2) < 55 * 55 {
                    rgb = *c;
                }
            }
            px.extend_from_slice(&rgb);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 85)
        .encode(&px, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| Error::invalid(format!("cannot generate a sample photo: {e}")))?;
    Ok(out)
}

/// The logins that get a view: the user running the demo, and the one behind sudo.
fn demo_logins() -> Vec<String> {
    let mut logins = Vec::new();
    if let Ok(s) = std::env::var("SUDO_USER") {
        if !s.is_empty() && s != "root" {
            logins.push(s);
        }
    }
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name);
    if let Some(me) = me {
        if !logins.contains(&me) {
            logins.push(me);
        }
    }
    logins
}

pub fn run(dir: Option<PathBuf>) -> Result<i32> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!(
            "consentfs-demo-{}",
            hex::encode(crate::crypto::random_bytes::<3>())
        )),
    };
    let store_dir = dir.join("store");
    let key_file = dir.join("store.key");
    let mnt = dir.join("mnt");
    if store_dir.exists() {
        return Err(Error::invalid(format!(
            "{} already holds a demo; give another DIR or remove it (rm -r {})",
            dir.display(),
            dir.display()
        )));
    }
    std::fs::create_dir_all(&mnt).map_err(|e| Error::io_path("create", &mnt, e))?;
    // The other demo users must reach the mount; the store and key inside stay 0700/0600.
    for d in [&dir, &mnt] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io_path("chmod", d, e))?;
    }
    let now = chrono::Utc::now();
    let actor = current_login();
    let store = Store::init(&store_dir, None, Some(&key_file), now, &actor)?;
    let mut catalog = Catalog::open(
        &store.catalog_path(),
        &store.catalog_key(),
        store.audit_key(),
    )?;
    // the tour shows times in the store's zone, like every command
    crate::when::set_zone(crate::catalog::zone::get(catalog.conn())?);
    let logins = demo_logins();
    let expires_soon = now + chrono::Duration::minutes(2);
    let mut written = Vec::new();
    let built = (|| -> Result<()> {
        let tx = catalog.begin(&actor, now)?;
        let person = |name: &str, born: &str| -> Result<i64> {
            let born = chrono::NaiveDate::parse_from_str(born, "%Y-%m-%d").ok();
            persons::add(&tx, name, born, None)
        };
        let anna = person("Anna de Vries", "1990-03-01")?;
        let sem = person("Sem Bakker", "2015-09-12")?;
        let ilse = person("Ilse Bakker", "1984-06-30")?;
        let noor = person("Noor El Amrani", "2001-11-05")?;
        let daan = person("Daan Visser", "1978-02-14")?;
        persons::add_guardian(&tx, sem, ilse)?;
        let photos: [(&str, &str, Vec<i64>, bool); 7] = [
            ("events/2026/open-day", "anna.jpg", vec![anna], false),
            (
                "events/2026/open-day",
                "group.jpg",
                vec![anna, sem, noor],
                false,
            ),
            ("events/2026/open-day", "sem.jpg", vec![sem], false),
            ("events/2026/sports-day", "noor.jpg", vec![noor], false),
            ("events/2026/sports-day", "daan.jpg", vec![daan], false),
            ("building", "hall.jpg", vec![], true),
            ("building", "unreviewed.jpg", vec![], false),
        ];
        for (i, (collection, name, linked, no_persons)) in photos.iter().enumerate() {
            let bytes = photo(i as u32, linked.len().max(usize::from(!no_persons)))?;
            let obj = store.put(&mut bytes.as_slice())?;
            written.push(obj.id);
            let id = assets::add(&tx, collection, name, Status::Active, &obj)?;
            for p in linked {
                assets::link(&tx, id, *p)?;
            }
            if *no_persons {
                assets::mark(&tx, id, Some(true), None)?;
            }
        }
        let pid = |n: &str| purposes::resolve(&tx, n).map(|p| p.id);
        let (website, social, print) = (pid("website")?, pid("social-media")?, pid("print")?);
        let event =
            |person: i64, kind: EventKind, purposes: Vec<i64>, expires, given_by| NewEvent {
                person,
                kind,
                purposes,
                scope: Scope::All,
                starts: now,
                expires,
                given_by,
                explicit: false,
                evidence: None,
            };
        consents::record(
            &tx,
            &event(
                anna,
                EventKind::Grant,
                vec![website, print],
                Some(now + chrono::Duration::days(5 * 365)),
                anna,
            ),
        )?;
        consents::record(
            &tx,
            &event(anna, EventKind::Refuse, vec![social], None, anna),
        )?;
        consents::record(
            &tx,
            &event(sem, EventKind::Grant, vec![website], None, ilse),
        )?;
        consents::record(
            &tx,
            &event(
                noor,
                EventKind::Grant,
                vec![website, social],
                Some(expires_soon),
                noor,
            ),
        )?;
        consents::record(
            &tx,
            &event(daan, EventKind::Grant, vec![website, print], None, daan),
        )?;
        consents::record(
            &tx,
            &event(daan, EventKind::Withdraw, vec![website], None, daan),
        )?;
        for login in &logins {
            users::add(&tx, login, None)?;
            let u = users::resolve(&tx, login)?;
            users::grant(&tx, &u, website, "", Access::Delete)?;
            users::grant(&tx, &u, social, "", Access::Read)?;
            users::grant(&tx, &u, print, "events", Access::Read)?;
        }
        tx.commit()
    })();
    if let Err(e) = built {
        for id in &written {
            let _ = store.remove_object(id);
        }
        return Err(e);
    }
    drop(catalog);

    let me = logins.last().cloned().unwrap_or_else(|| "you".into());
    let m = mnt.display();
    let env = format!(
        "CONSENTFS_STORE={} CONSENTFS_KEY_FILE={}",
        store_dir.display(),
        key_file.display()
    );
    let tour = format!(
        r#"
consentfs demo — a sample store with 7 photos and 5 persons, mounted at {m}

  ls -R {m}/{me}/website
  ls -R {m}/{me}/social-media
  ls -R {m}/{me}/print
  getfattr -d {m}/{me}/website/events/2026/open-day/anna.jpg

What to watch:
  * website: everyone on these photos consented to the website.
  * social-media: Anna refused it, so the group photo is missing there.
  * print: your print grant covers events/ only.
  * Sem (born 2015) is on the website through his guardian Ilse's consent; his own would not count.
  * Daan withdrew his website consent: daan.jpg is only in print.
  * building/unreviewed.jpg has no persons linked and is not marked: it is in no view.
  * Noor's consent ends at {until}: noor.jpg and group.jpg disappear from website
    and social-media at that moment, without remounting.

Save from your own tools into website/ (you may write and delete there):
  mogrify -resize 50% {m}/{me}/website/events/2026/open-day/anna.jpg
  {env} \
    consentfs versions events/2026/open-day/anna.jpg
  a new file you create there is your draft, visible to you only, until
  `consentfs link` or `consentfs derive DRAFT --from ASSET`; `rm` moves a photo to the trash.

Try a withdrawal from another terminal and see the photo vanish at once:
  {env} \
    consentfs consent withdraw "Anna de Vries" --purpose website
  {env} \
    consentfs ls --user {me} --purpose website --hidden

Prove and govern (the mogrify above opened anna.jpg: that open is in the audit log):
  {env} \
    consentfs export --user {me} --purpose website {dir}/website-export --strip-location
  {env} \
    consentfs audit report --person "Anna de Vries"
  {env} \
    consentfs person report "Anna de Vries" {dir}/anna-request   # then open index.html
  {env} \
    consentfs expiring --within 30d

Press Ctrl-C to unmount. The store stays in {dir}.
"#,
        until = crate::when::show_seconds(expires_soon),
        dir = dir.display(),
    );
    let opts = MountOptions {
        mountpoint: mnt.clone(),
        threads: super::default_threads(),
        // the tour is our own multi-line text: printed as it is
        on_ready: Some(Box::new(move || std::println!("{tour}"))),
        anchor: Some(crate::catalog::anchor::Anchor::at(
            crate::catalog::anchor::default_path(&store.id()),
        )),
        // the demo's store is its own: commands reach it with its key, not a shared socket
        control: None,
        lease: std::time::Duration::from_secs(5),
    };
    daemon::run(store, opts)?;
    Ok(0)
}
