//! Every command that takes a time or a span, fed arbitrary text through the real binary
//! (issue 11, finding 2: `purpose retention website 99999999999w` was accepted and then made
//! the daemon and every later `ls`, `why`, `expiring` panic on a chrono overflow).
//!
//! Each input must either be accepted (exit 0, or 1 for a check that found something) or be
//! refused with exit 2 and a message; never a panic (exit 101, "panicked"). After each input the
//! commands that evaluate the rules must still work, so a value that was accepted and stored
//! cannot break them later.

mod common;

use common::{Run, TestStore};
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A store with a person, a photo, a user and a trashed photo, so every command has something
/// to work on.
fn store() -> TestStore {
    let t = TestStore::with_timezone("Europe/Amsterdam");
    t.write("shoot/p.jpg", b"portrait");
    t.write("shoot/q.jpg", b"to be trashed");
    t.ok(&[
        "import",
        "--collection",
        "events",
        t.path("shoot").to_str().unwrap(),
    ]);
    t.ok(&["person", "add", "Anna", "--born", "1990-01-01"]);
    t.ok(&["link", "events/p.jpg", "Anna"]);
    t.add_user("web");
    t.ok(&["user", "grant", "web", "--purpose", "website"]);
    // something in the trash for `trash purge` (only the mount can trash)
    {
        let (_store, mut cat) = t.open_catalog();
        let tx = cat.begin("test", chrono::Utc::now()).unwrap();
        let q = consentfs::catalog::assets::resolve(&tx, "events/q.jpg").unwrap();
        consentfs::catalog::assets::set_status(&tx, q.id, consentfs::policy::Status::Trash)
            .unwrap();
        tx.commit().unwrap();
    }
    t
}

static N: AtomicUsize = AtomicUsize::new(0);

/// Every command line that takes a time or a span, with `v` in its place.
fn command_lines(t: &TestStore, v: &str) -> Vec<Vec<String>> {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let file = t.write(&format!("in/{n}/f{n}.jpg"), format!("file {n}").as_bytes());
    let s = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        s(&["purpose", "retention", "website", v]),
        s(&["purpose", "add", &format!("p{n}"), "--retention", v]),
        s(&[
            "purpose",
            "add",
            &format!("li{n}"),
            "--basis",
            "legitimate-interest",
            "--retention",
            v,
        ]),
        s(&[
            "consent",
            "grant",
            "Anna",
            "--purpose",
            "website",
            "--until",
            v,
        ]),
        s(&[
            "consent",
            "grant",
            "Anna",
            "--purpose",
            "print",
            "--from",
            v,
        ]),
        s(&[
            "consent",
            "withdraw",
            "Anna",
            "--purpose",
            "intranet",
            "--at",
            v,
        ]),
        s(&[
            "consent",
            "object",
            "Anna",
            "--purpose",
            "intranet",
            "--at",
            v,
        ]),
        s(&[
            "consent",
            "refuse",
            "Anna",
            "--purpose",
            "intranet",
            "--at",
            v,
        ]),
        s(&["expiring", "--within", v]),
        s(&["trash", "purge", "--older-than", v]),
        s(&["audit", "report", "--person", "Anna", "--since", v]),
        s(&[
            "import",
            "--collection",
            &format!("imp/{n}"),
            "--retention",
            v,
            file.to_str().unwrap(),
        ]),
        s(&["retention", "set", "events/p.jpg", "--until", v]),
        s(&["ls", "--user", "web", "--purpose", "website", "--at", v]),
        s(&[
            "why",
            "events/p.jpg",
            "--user",
            "web",
            "--purpose",
            "website",
            "--at",
            v,
        ]),
        s(&["person", "add", &format!("P{n}"), "--born", v]),
    ]
}

fn no_panic(args: &[String], r: &Run) {
    assert!(
        r.code != 101 && !r.stderr.contains("panicked"),
        "consentfs {args:?} panicked: {}",
        r.stderr
    );
    assert!(
        matches!(r.code, 0..=2),
        "consentfs {args:?} exited {}: {}{}",
        r.code,
        r.stdout,
        r.stderr
    );
    if r.code == 2 {
        assert!(
            r.stderr.trim().len() > 10,
            "consentfs {args:?} failed without a message"
        );
    }
}

/// Feed `v` to every command, then check the rules still evaluate.
fn feed(t: &TestStore, v: &str) {
    for args in command_lines(t, v) {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = t.run(&refs);
        no_panic(&args, &r);
    }
    for args in [
        vec!["ls", "--user", "web", "--purpose", "website", "--hidden"],
        vec![
            "why",
            "events/p.jpg",
            "--user",
            "web",
            "--purpose",
            "website",
        ],
        vec!["expiring", "--within", "200y"],
        vec!["consent", "list"],
        vec!["purpose", "list"],
        vec!["retention", "apply"],
        vec!["trash", "list"],
    ] {
        let r = t.run(&args);
        let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        no_panic(&owned, &r);
        assert_ne!(r.code, 2, "{args:?} fails after input {v:?}: {}", r.stderr);
    }
}

/// The inputs that panicked in the attack, and their neighbours at every bound.
#[test]
fn known_bad_and_edge_inputs() {
    let t = store();
    for v in [
        "99999999999w",
        "9223372036854775807s",
        "-9223372036854775808s",
        "922337203685477h",
        "9999999999999d",
        "99999999999999999999999999999y",
        "201y",
        "200y",
        "2400mo",
        "2401mo",
        "73050d",
        "73051d",
        "6311520000s",
        "-200y",
        "-201y",
        "0s",
        "",
        " ",
        "-",
        "+",
        "+1d",
        "-1d",
        "--1d",
        "1",
        "d",
        "1.5d",
        "1e9d",
        "١٢d",
        "５d",
        "1日",
        "2027-03-01",
        "1900-01-01",
        "1899-12-31",
        "1600-01-01",
        "2999-12-31",
        "3000-01-01",
        "9999-12-31",
        "+10000-01-01",
        "-0001-01-01",
        "0000-00-00",
        "2027-02-30",
        "2027-06-01T12:00:00+02:00",
        "2027-06-01T12:00:00.123456789Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "1970-01-01T00:00:00Z",
        "2262-04-11T23:47:16.854775807Z",
    ] {
        feed(&t, v);
    }
}

fn arb_input() -> impl Strategy<Value = String> {
    let units = prop::sample::select(vec!["s", "m", "min", "h", "d", "w", "mo", "y", "", "x"]);
    let sign = prop::sample::select(vec!["", "+", "-", "--", "+-"]);
    prop_oneof![
        // numbers of any size with any unit and sign
        (sign.clone(), any::<u64>(), units.clone()).prop_map(|(s, n, u)| format!("{s}{n}{u}")),
        (sign, 0u64..100_000, units).prop_map(|(s, n, u)| format!("{s}{n}{u}")),
        // dates with any year, month and day
        (-20_000i64..20_000, 0u32..14, 0u32..33)
            .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        // RFC 3339 with any offset and fraction
        (
            -1000i64..12_000,
            1u32..13,
            1u32..29,
            0u32..24,
            -24i32..24,
            0u32..1_000_000_000
        )
            .prop_map(|(y, m, d, h, off, frac)| format!(
                "{y:04}-{m:02}-{d:02}T{h:02}:00:00.{frac:09}{}{:02}:00",
                if off < 0 { '-' } else { '+' },
                off.abs()
            )),
        // anything at all (but NUL, which no command line can carry)
        "[^\x00]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        // each case runs ~23 commands; PROPTEST_CASES=500 for a deeper hunt
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_times_and_spans_never_panic(inputs in prop::collection::vec(arb_input(), 1..4)) {
        let t = store();
        for v in &inputs {
            feed(&t, v);
        }
    }
}
