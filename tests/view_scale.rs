//! Issue 14 (4): the compact view index (slots, shared folder tree, visibility bits, timers
//! filed per person) agrees with the consent rules evaluated directly, asset by asset, on a
//! generated catalog: now, after withdrawals, and at later moments when grants end and
//! children turn 16.

mod common;
use chrono::{Duration, Utc};
use common::TestStore;
use consentfs::catalog::snapshot::World;
use consentfs::catalog::{purposes, users};
use consentfs::view::View;

fn agree(view: &View, cat: &consentfs::catalog::Catalog, at: consentfs::policy::Time) -> usize {
    let world = World::load(cat.conn()).unwrap();
    let bench = users::resolve(cat.conn(), "bench").unwrap().to_policy();
    let mut visible = 0;
    for purpose in purposes::list(cat.conn()).unwrap() {
        let mut listed = 0;
        for (a, d) in world.decide_all(&bench, &purpose, at) {
            assert_eq!(
                view.file_visible("bench", purpose.id, a.id),
                d.visible,
                "asset {} in {} at {at}: the rules say {:?}",
                a.id,
                purpose.name,
                d.reason
            );
            if d.visible {
                listed += 1;
                assert_eq!(
                    view.file_in("bench", purpose.id, &a.collection, &a.name),
                    Some(a.id),
                    "asset {} not found by name in {}",
                    a.id,
                    purpose.name
                );
            }
        }
        // what the folders list is exactly what is visible, and no folder is listed with
        // nothing visible below it
        let in_folders = files_below(view, purpose.id, "", at);
        assert_eq!(in_folders, listed, "listing of {} at {at}", purpose.name);
        visible += listed;
    }
    visible
}

/// Files listed in `dir` and below; every folder listed must hold at least one.
fn files_below(
    view: &View,
    purpose: consentfs::policy::PurposeId,
    dir: &str,
    at: consentfs::policy::Time,
) -> usize {
    let (subs, files) = view.list_dir("bench", purpose, dir);
    let mut n = files.len();
    for s in subs {
        let sub = if dir.is_empty() {
            s.to_string()
        } else {
            format!("{dir}/{s}")
        };
        let below = files_below(view, purpose, &sub, at);
        assert!(
            below > 0,
            "folder '{sub}' listed at {at} with nothing visible in it"
        );
        n += below;
    }
    n
}

#[test]
fn the_index_agrees_with_the_rules_now_after_withdrawals_and_later() {
    let t = TestStore::new();
    t.ok(&[
        "generate",
        "--assets",
        "3000",
        "--persons",
        "300",
        "--events",
        "900",
    ]);
    let (_store, cat) = t.open_catalog();
    let now = Utc::now();
    let mut view = View::load(cat.conn(), now).unwrap();
    assert!(
        agree(&view, &cat, now) > 1000,
        "a generated catalog shows photos"
    );

    // withdrawals (a child's own withdrawal is refused by the command: skipped)
    for person in (3..300).step_by(37) {
        t.run(&[
            "consent",
            "withdraw",
            &person.to_string(),
            "--purpose",
            "website",
        ]);
    }
    let at = Utc::now();
    view.refresh(cat.conn(), at).unwrap();
    view.expire(at);
    agree(&view, &cat, at);

    // time passes: grants end (generated ones end up to five years ahead), children turn 16
    let mut transitions = 0;
    for days in [1, 45, 200, 400, 900, 1500, 2000, 4000] {
        let later = at + Duration::days(days);
        transitions += view.expire(later).len();
        agree(&view, &cat, later);
    }
    assert!(transitions > 0, "some photo changed by time alone");
}
