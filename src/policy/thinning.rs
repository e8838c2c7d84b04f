//! Which old versions of an asset to keep: the thinning policy, as a pure function.
//!
//! Every save through the mount records a version, and every version is a full encrypted copy
//! kept until its asset is purged: a file edited all day piles up thousands of copies (issue
//! 13: 1,648 versions of one 1 MiB file). Old copies of a photo are personal data as much as
//! the current one, so keeping them all is also a privacy cost. The policy keeps
//!
//! 1. every version of the last `keep_all` (default 7 days),
//! 2. then, for `daily` more (default 30 days), the newest version of each calendar day,
//! 3. then, for `monthly` more (default 12 months), the newest version of each calendar month,
//!
//! and thins the rest (the caller crypto-shreds them). Each tier may be `forever`. Days and
//! months are calendar days and months in the store's time zone, counted back from the moment
//! of the run; a tier's buckets only hold the versions that fall into that tier, so a day that
//! straddles the edge of the recent window keeps its newest version on each side.
//!
//! Whatever the tiers say, these versions are never thinned:
//!
//! * the **current** version (what the file holds now);
//! * a version an **export** recorded (`export_items`): it left the store under a manifest, and
//!   a person's report and an access report must be able to show exactly what was published
//!   (accountability, GDPR Art. 5(2)); the copy outside is beyond thinning anyway;
//! * by default the **original** (the asset's first version, normally the import): it is what
//!   the camera or photographer delivered and what the persons were linked and consents were
//!   given against; every later version is an edit of it. Keeping it costs one copy per asset
//!   whatever the number of saves. The privacy officer can let it be thinned like any other
//!   (`keep_original: false`).
//!
//! There are no legal holds in the catalog; when they come they are one more pin here.
//!
//! The decision depends only on the versions, their times, the policy, the moment and the
//! zone, so it is idempotent: thinning what was kept changes nothing (the newest version of a
//! bucket stays the newest of what is left).

use crate::error::{Error, Result};
use crate::policy::Time;
use crate::when::{Span, Zone};
use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use std::collections::HashMap;

/// How long one tier of the policy lasts.
#[derive(Debug, Clone, PartialEq)]
pub enum Tier {
    For(Span),
    Forever,
}

impl Tier {
    /// A tier as typed: `forever`, or a span in whole days, weeks, months or years (`7d`, `2w`,
    /// `12mo`, `1y`). Hours and minutes are refused: versions are kept per day, and `12m` (12
    /// minutes) typed for 12 months would thin a year of history.
    pub fn parse(s: &str, what: &str) -> Result<Tier> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("forever") {
            return Ok(Tier::Forever);
        }
        let unit = t.trim_start_matches(|c: char| c.is_ascii_digit());
        if !matches!(unit, "d" | "w" | "mo" | "y") {
            let hint = if unit == "m" || unit == "min" {
                format!(" ('{t}' would be minutes; months are 'mo', e.g. 12mo)")
            } else {
                String::new()
            };
            return Err(Error::invalid(format!(
                "{what} '{t}' is not usable: give days, weeks, months or years (e.g. 7d, 2w, 12mo, 1y) or 'forever'{hint}"
            )));
        }
        Ok(Tier::For(
            Span::parse(t).map_err(|e| Error::invalid(format!("{what}: {e}")))?,
        ))
    }

    /// The canonical text (`7d`, `12mo`, `forever`), as stored and shown.
    pub fn to_text(&self) -> String {
        match self {
            // `0s` would not parse back as a tier
            Tier::For(s) if *s == Span::ZERO => "0d".into(),
            Tier::For(s) => s.to_text(),
            Tier::Forever => "forever".into(),
        }
    }

    /// The moment this tier reaches back to from `t`; `None`: the beginning of time.
    fn before(&self, t: Option<Time>, zone: &Zone) -> Option<Time> {
        match self {
            Tier::For(s) => t.and_then(|t| s.before_in(t, zone)),
            Tier::Forever => None,
        }
    }
}

/// The thinning policy (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Keep every version this young.
    pub keep_all: Tier,
    /// Then keep the newest version of each day for this long.
    pub daily: Tier,
    /// Then keep the newest version of each month for this long.
    pub monthly: Tier,
    /// Never thin an asset's first version.
    pub keep_original: bool,
}

impl Default for Policy {
    /// All of the last 7 days (undo a bad edit of last week), the newest of each day for 30
    /// days more, the newest of each month for 12 months more, and the original. An asset
    /// edited every day for years holds about 7 + 30 + 12 + 1 = 50 versions, not thousands.
    fn default() -> Policy {
        Policy {
            keep_all: Tier::For(Span::parse("7d").unwrap_or(Span::ZERO)),
            daily: Tier::For(Span::parse("30d").unwrap_or(Span::ZERO)),
            monthly: Tier::For(Span::parse("12mo").unwrap_or(Span::ZERO)),
            keep_original: true,
        }
    }
}

#[derive(Serialize, serde::Deserialize)]
struct Stored {
    keep_all: String,
    daily: String,
    monthly: String,
    keep_original: bool,
}

impl Policy {
    /// The policy as kept in the catalog (JSON with the canonical spans).
    pub fn to_stored(&self) -> String {
        serde_json::json!({
            "keep_all": self.keep_all.to_text(),
            "daily": self.daily.to_text(),
            "monthly": self.monthly.to_text(),
            "keep_original": self.keep_original,
        })
        .to_string()
    }

    /// A policy read back from the catalog. One that cannot be read is an error, not the
    /// default: thinning destroys data, so it must not run on a guess.
    pub fn from_stored(s: &str) -> Result<Policy> {
        let bad = || {
            Error::invalid(
                "the stored version policy cannot be read; set it again with `consentfs versions policy`",
            )
        };
        let st: Stored = serde_json::from_str(s).map_err(|_| bad())?;
        Ok(Policy {
            keep_all: Tier::parse(&st.keep_all, "keep-all").map_err(|_| bad())?,
            daily: Tier::parse(&st.daily, "daily").map_err(|_| bad())?,
            monthly: Tier::parse(&st.monthly, "monthly").map_err(|_| bad())?,
            keep_original: st.keep_original,
        })
    }

    /// One line for people: `all of 7d, then daily for 30d, then monthly for 12mo; the
    /// original is kept`.
    pub fn describe(&self) -> String {
        format!(
            "all versions of the last {}, then the newest of each day for {}, then the newest of each month for {}; the original is {}",
            self.keep_all.to_text(),
            self.daily.to_text(),
            self.monthly.to_text(),
            if self.keep_original { "kept" } else { "thinned like the others" }
        )
    }
}

/// One version as the policy sees it.
#[derive(Debug, Clone)]
pub struct Version {
    pub version: i64,
    pub created_at: Time,
    /// What the file holds now.
    pub current: bool,
    /// The asset's first version.
    pub original: bool,
    /// Recorded by an export (never thinned).
    pub exported: bool,
}

/// Why a version is kept, first reason that applies in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    Current,
    Original,
    Exported,
    /// Younger than the `keep_all` span.
    Recent,
    /// The newest version of its day in the daily tier.
    Daily,
    /// The newest version of its month in the monthly tier.
    Monthly,
}

impl Keep {
    pub fn as_str(self) -> &'static str {
        match self {
            Keep::Current => "current",
            Keep::Original => "original",
            Keep::Exported => "exported",
            Keep::Recent => "recent",
            Keep::Daily => "daily",
            Keep::Monthly => "monthly",
        }
    }
}

/// The tier a version falls into at a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bucket {
    Recent,
    Day(NaiveDate),
    Month(i32, u32),
    Beyond,
}

/// The tier boundaries of a run at `now`: versions at or after `recent_from` are recent, then
/// days down to `daily_from`, then months down to `monthly_from`; `None` means no lower bound.
struct Bounds {
    recent_from: Option<Time>,
    daily_from: Option<Time>,
    monthly_from: Option<Time>,
    /// A tier that reaches back forever ends the ones after it.
    recent_forever: bool,
    daily_forever: bool,
}

impl Bounds {
    fn new(p: &Policy, now: Time, zone: &Zone) -> Bounds {
        let recent_from = p.keep_all.before(Some(now), zone);
        let daily_from = p.daily.before(recent_from, zone);
        let monthly_from = p.monthly.before(daily_from, zone);
        Bounds {
            recent_from,
            daily_from,
            monthly_from,
            recent_forever: recent_from.is_none(),
            daily_forever: daily_from.is_none(),
        }
    }

    fn bucket(&self, t: Time, zone: &Zone) -> Bucket {
        let at_or_after = |from: Option<Time>| from.is_none_or(|f| t >= f);
        if self.recent_forever || at_or_after(self.recent_from) {
            return Bucket::Recent;
        }
        let date = zone.date_of(t).unwrap_or_else(|| t.date_naive());
        if self.daily_forever || at_or_after(self.daily_from) {
            return Bucket::Day(date);
        }
        if at_or_after(self.monthly_from) {
            return Bucket::Month(date.year(), date.month());
        }
        Bucket::Beyond
    }
}

/// What to do with each version: `Some(reason)` keeps it, `None` thins it. Decisions come in
/// the order of `versions`. Versions already thinned or shredded are not passed in: they hold
/// nothing that could count for a bucket.
pub fn decide(
    versions: &[Version],
    policy: &Policy,
    now: Time,
    zone: &Zone,
) -> Vec<(i64, Option<Keep>)> {
    let bounds = Bounds::new(policy, now, zone);
    let buckets: Vec<Bucket> = versions
        .iter()
        .map(|v| bounds.bucket(v.created_at, zone))
        .collect();
    // the newest of each day and month bucket (ties: the higher version number, the later save)
    let mut newest: HashMap<Bucket, (Time, i64)> = HashMap::new();
    for (v, b) in versions.iter().zip(&buckets) {
        if matches!(b, Bucket::Day(_) | Bucket::Month(..)) {
            let key = (v.created_at, v.version);
            newest
                .entry(*b)
                .and_modify(|n| *n = (*n).max(key))
                .or_insert(key);
        }
    }
    versions
        .iter()
        .zip(&buckets)
        .map(|(v, b)| {
            let keep = if v.current {
                Some(Keep::Current)
            } else if v.original && policy.keep_original {
                Some(Keep::Original)
            } else if v.exported {
                Some(Keep::Exported)
            } else {
                match b {
                    Bucket::Recent => Some(Keep::Recent),
                    Bucket::Day(_) if newest.get(b) == Some(&(v.created_at, v.version)) => {
                        Some(Keep::Daily)
                    }
                    Bucket::Month(..) if newest.get(b) == Some(&(v.created_at, v.version)) => {
                        Some(Keep::Monthly)
                    }
                    _ => None,
                }
            };
            (v.version, keep)
        })
        .collect()
}

/// For each version kept now: when, if nothing is saved meanwhile, a later run would first
/// thin it (`None`: never, e.g. the current version). Decisions only change when a version
/// crosses a tier edge, so the policy is evaluated at exactly those moments. Meant for
/// showing; costs a policy evaluation per version and edge.
pub fn kept_until(
    versions: &[Version],
    policy: &Policy,
    now: Time,
    zone: &Zone,
) -> HashMap<i64, Option<Time>> {
    let tiers = [&policy.keep_all, &policy.daily, &policy.monthly];
    let mut moments: Vec<Time> = Vec::new();
    for v in versions {
        // leaving the recent tier, then the daily, then the monthly one
        for n in 1..=3 {
            if let Some(m) = edge(v.created_at, &tiers[..n], zone) {
                if m > now {
                    moments.push(m);
                }
            }
        }
    }
    moments.sort();
    moments.dedup();
    let mut out: HashMap<i64, Option<Time>> = decide(versions, policy, now, zone)
        .into_iter()
        .filter(|(_, k)| k.is_some())
        .map(|(v, _)| (v, None))
        .collect();
    let mut open: usize = out.len();
    for m in moments {
        if open == 0 {
            break;
        }
        for (v, keep) in decide(versions, policy, m, zone) {
            if keep.is_none() {
                if let Some(slot @ None) = out.get_mut(&v) {
                    *slot = Some(m);
                    open -= 1;
                }
            }
        }
    }
    out
}

/// The first moment at which a version made at `c` is older than `tiers` together, i.e. the
/// tier edge counted back from then lies after `c`; `None` if a tier is forever. Counting back
/// calendar months is not the inverse of counting forward (31 March less a month is 28 or 29
/// February), so the forward sum is only a first guess, refined by bisection on the moment
/// (counting back is monotone in it).
fn edge(c: Time, tiers: &[&Tier], zone: &Zone) -> Option<Time> {
    let back = |t: Time| -> Option<Time> {
        tiers.iter().try_fold(t, |t, tier| match tier {
            Tier::For(s) => s.before_in(t, zone),
            Tier::Forever => None,
        })
    };
    let guess = tiers.iter().rev().try_fold(c, |t, tier| match tier {
        Tier::For(s) => s.after_in(t, zone),
        Tier::Forever => None,
    })?;
    let past = |t: Time| back(t).is_some_and(|b| b > c);
    let mut lo = guess - chrono::Duration::days(10);
    let mut hi = guess + chrono::Duration::days(10);
    if past(lo) || !past(hi) {
        // not where calendar arithmetic can put it; show nothing rather than a wrong time
        return None;
    }
    // invariant: not past at lo, past at hi; whole seconds
    while (hi - lo).num_seconds() > 1 {
        let mid = lo + chrono::Duration::seconds((hi - lo).num_seconds() / 2);
        if past(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration, Utc};
    use proptest::prelude::*;

    fn utc(s: &str) -> Time {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn v(version: i64, at: Time) -> Version {
        Version {
            version,
            created_at: at,
            current: false,
            original: false,
            exported: false,
        }
    }

    fn kept(d: &[(i64, Option<Keep>)]) -> Vec<i64> {
        d.iter()
            .filter(|(_, k)| k.is_some())
            .map(|(n, _)| *n)
            .collect()
    }

    #[test]
    fn tiers_parse_in_days_weeks_months_years_or_forever() {
        assert_eq!(Tier::parse("forever", "x").unwrap(), Tier::Forever);
        assert_eq!(Tier::parse("12mo", "x").unwrap().to_text(), "1y");
        assert_eq!(Tier::parse("18mo", "x").unwrap().to_text(), "18mo");
        assert_eq!(Tier::parse("2w", "x").unwrap().to_text(), "14d");
        assert_eq!(Tier::parse("0d", "x").unwrap().to_text(), "0d");
        let e = Tier::parse("12m", "--monthly").unwrap_err().to_string();
        assert!(e.contains("minutes") && e.contains("12mo"), "{e}");
        assert!(Tier::parse("12h", "x").is_err());
        assert!(Tier::parse("-1d", "x").is_err());
        assert!(Tier::parse("", "x").is_err());
        assert!(Tier::parse("201y", "x").is_err());
    }

    #[test]
    fn a_policy_survives_the_catalog() {
        let p = Policy {
            keep_all: Tier::parse("3d", "x").unwrap(),
            daily: Tier::Forever,
            monthly: Tier::parse("2y", "x").unwrap(),
            keep_original: false,
        };
        assert_eq!(Policy::from_stored(&p.to_stored()).unwrap(), p);
        assert_eq!(
            Policy::from_stored(&Policy::default().to_stored()).unwrap(),
            Policy::default()
        );
        assert!(Policy::from_stored("{").is_err());
        assert!(Policy::from_stored(
            r#"{"keep_all":"7m","daily":"1d","monthly":"1d","keep_original":true}"#
        )
        .is_err());
    }

    /// The default on a file saved every hour for 100 days: all of the last 7 days, one a day
    /// before that, the current version and the original.
    #[test]
    fn the_default_keeps_a_week_then_one_a_day_then_one_a_month() {
        let now = utc("2026-06-30T12:00:00Z");
        let zone = Zone::utc();
        let mut list: Vec<Version> = (0..2400)
            .map(|h| v(h + 1, now - Duration::hours(2400 - h)))
            .collect();
        list[0].original = true;
        list.last_mut().unwrap().current = true;
        let d = decide(&list, &Policy::default(), now, &zone);
        let k = kept(&d);
        let recent = list
            .iter()
            .filter(|x| x.created_at >= now - Duration::days(7))
            .count();
        // 7 days of hourly versions, 30 days (one each), the months before, the original
        assert!(k.contains(&1) && k.contains(&2400));
        let days_kept = d.iter().filter(|(_, r)| *r == Some(Keep::Daily)).count();
        // 30 days back from 12:00 touch 31 calendar days (the first and last in part)
        assert_eq!(days_kept, 31);
        let months = d.iter().filter(|(_, r)| *r == Some(Keep::Monthly)).count();
        // 100 days back from 30 June: 37 days in the daily tiers, the rest in March..May
        assert!((2..=4).contains(&months), "{months}");
        assert_eq!(
            k.len(),
            recent + days_kept + months + 1,
            "recent {recent}, daily {days_kept}, monthly {months}, original"
        );
    }

    #[test]
    fn pinned_versions_are_kept_whatever_their_age() {
        let now = utc("2026-06-30T12:00:00Z");
        let old = now - Duration::days(3000);
        let mut list = vec![v(1, old), v(2, old), v(3, old), v(4, old)];
        list[0].original = true;
        list[1].exported = true;
        list[3].current = true;
        let d = decide(&list, &Policy::default(), now, &Zone::utc());
        assert_eq!(
            d,
            vec![
                (1, Some(Keep::Original)),
                (2, Some(Keep::Exported)),
                (3, None),
                (4, Some(Keep::Current))
            ]
        );
        let no_orig = Policy {
            keep_original: false,
            ..Policy::default()
        };
        assert_eq!(decide(&list, &no_orig, now, &Zone::utc())[0], (1, None));
    }

    #[test]
    fn days_are_the_stores_calendar_days() {
        // 21:30 and 22:30 UTC on 10 June: one day in UTC, two in Amsterdam (23:30 CEST on 10
        // June and 00:30 CEST on 11 June)
        let ams = Zone::named("Europe/Amsterdam").unwrap();
        let now = utc("2026-06-30T12:00:00Z");
        let list = [
            v(1, utc("2026-06-10T21:30:00Z")),
            v(2, utc("2026-06-10T22:30:00Z")),
        ];
        let p = Policy::default();
        assert_eq!(
            decide(&list, &p, now, &ams),
            vec![(1, Some(Keep::Daily)), (2, Some(Keep::Daily))]
        );
        assert_eq!(
            decide(&list, &p, now, &Zone::utc()),
            vec![(1, None), (2, Some(Keep::Daily))]
        );
    }

    /// Three saves on one day, 4 days ago: all kept now (recent); after the 7 days two of them
    /// go (the newest of the day stays for 30 more days, then as the newest of its month; the
    /// current version is of the next month).
    #[test]
    fn kept_until_says_when_a_version_would_go() {
        let now = utc("2026-07-02T12:00:00Z");
        let day = utc("2026-06-28T09:00:00Z");
        let mut list = vec![
            v(1, day - Duration::days(400)),
            v(2, day),
            v(3, day + Duration::hours(1)),
            v(4, day + Duration::hours(2)),
            v(5, now),
        ];
        list[0].original = true;
        list[4].current = true;
        let until = kept_until(&list, &Policy::default(), now, &Zone::utc());
        assert_eq!(until[&1], None);
        assert_eq!(until[&5], None);
        // version 2 goes when version 3, newer on the same day, leaves the recent week too;
        // version 3 when version 4 does
        let t2 = until[&2].unwrap();
        assert!(
            t2 > day + Duration::days(7) + Duration::hours(1)
                && t2 <= day + Duration::days(7) + Duration::hours(1) + Duration::seconds(1),
            "{t2}"
        );
        assert_eq!(until[&3], Some(t2 + Duration::hours(1)));
        // version 4 stays as the day's newest, then the month's, for about 7 d + 30 d + 12 mo
        let t4 = until[&4].unwrap();
        assert!(
            t4 > utc("2027-08-01T00:00:00Z") && t4 < utc("2027-08-10T00:00:00Z"),
            "{t4}"
        );
    }

    // ---------------------------------------------------------------------------------------
    // Properties
    // ---------------------------------------------------------------------------------------

    fn tier() -> impl Strategy<Value = Tier> {
        prop_oneof![
            (0i64..60).prop_map(|n| Tier::parse(&format!("{n}d"), "t").unwrap()),
            (0i64..30).prop_map(|n| Tier::parse(&format!("{n}mo"), "t").unwrap()),
            Just(Tier::Forever),
        ]
    }

    fn policy() -> impl Strategy<Value = Policy> {
        (tier(), tier(), tier(), any::<bool>()).prop_map(|(keep_all, daily, monthly, o)| Policy {
            keep_all,
            daily,
            monthly,
            keep_original: o,
        })
    }

    /// Up to 80 versions at increasing times over up to ~3 years (several per day at times),
    /// numbered in order; the last is current, the first original; some exported.
    fn history() -> impl Strategy<Value = Vec<Version>> {
        proptest::collection::vec((0i64..40 * 3600, proptest::bool::weighted(0.05)), 1..80)
            .prop_map(|steps| {
                let start = utc("2024-01-01T00:00:00Z");
                let mut t = start;
                let n = steps.len();
                steps
                    .into_iter()
                    .enumerate()
                    .map(|(i, (gap, exported))| {
                        t += Duration::seconds(gap * (1 + (i as i64 % 7) * 3));
                        Version {
                            version: i as i64 + 1,
                            created_at: t,
                            current: i + 1 == n,
                            original: i == 0,
                            exported,
                        }
                    })
                    .collect()
            })
    }

    fn zone() -> impl Strategy<Value = Zone> {
        prop_oneof![
            Just(Zone::utc()),
            Just(Zone::named("Europe/Amsterdam").unwrap()),
            Just(Zone::named("Pacific/Auckland").unwrap()),
        ]
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn current_exported_and_original_are_never_thinned(
            list in history(), p in policy(), zone in zone(), after in 0i64..1500
        ) {
            let now = list.last().unwrap().created_at + Duration::days(after);
            for (v, (n, keep)) in list.iter().zip(decide(&list, &p, now, &zone)) {
                prop_assert_eq!(v.version, n);
                if v.current || v.exported || (v.original && p.keep_original) {
                    prop_assert!(keep.is_some(), "version {} thinned", n);
                }
            }
        }

        #[test]
        fn thinning_twice_is_thinning_once(
            list in history(), p in policy(), zone in zone(), after in 0i64..1500
        ) {
            let now = list.last().unwrap().created_at + Duration::days(after);
            let once = decide(&list, &p, now, &zone);
            let left: Vec<Version> = list
                .iter()
                .zip(&once)
                .filter(|(_, (_, k))| k.is_some())
                .map(|(v, _)| v.clone())
                .collect();
            let twice = decide(&left, &p, now, &zone);
            prop_assert!(twice.iter().all(|(_, k)| k.is_some()), "a second run thinned more: {:?}", twice);
            let kept_once: Vec<_> = once.into_iter().filter(|(_, k)| k.is_some()).collect();
            prop_assert_eq!(kept_once, twice);
        }

        /// What `versions` shows as "kept until" is when a run would thin the version, and
        /// a version that tiers with an end would thin is never shown as kept forever.
        #[test]
        fn kept_until_is_when_a_run_would_thin_it(
            list in history(), p in policy(), zone in zone(), after in 0i64..400
        ) {
            let now = list.last().unwrap().created_at + Duration::days(after);
            let kept: Vec<Version> = list
                .iter()
                .zip(decide(&list, &p, now, &zone))
                .filter(|(_, (_, k))| k.is_some())
                .map(|(v, _)| v.clone())
                .collect();
            let until = kept_until(&kept, &p, now, &zone);
            let finite = [&p.keep_all, &p.daily, &p.monthly]
                .iter()
                .all(|t| matches!(t, Tier::For(_)));
            for v in &kept {
                match until[&v.version] {
                    Some(t) => {
                        prop_assert!(t > now);
                        let d = decide(&kept, &p, t, &zone);
                        prop_assert!(d.contains(&(v.version, None)), "version {} kept at {}", v.version, t);
                    }
                    None => prop_assert!(
                        !finite || v.current || v.exported || (v.original && p.keep_original),
                        "version {} never thinned under {:?}", v.version, p
                    ),
                }
            }
        }

        /// Every version in the recent window is kept, every day of the daily tier and every
        /// month of the monthly tier that held a version still holds one, and nothing beyond
        /// the tiers is kept without a pin.
        #[test]
        fn every_bucket_keeps_what_the_policy_promises(
            list in history(), p in policy(), zone in zone(), after in 0i64..1500
        ) {
            let now = list.last().unwrap().created_at + Duration::days(after);
            let d = decide(&list, &p, now, &zone);
            let b = Bounds::new(&p, now, &zone);
            let mut had: HashMap<Bucket, usize> = HashMap::new();
            let mut kept_in: HashMap<Bucket, usize> = HashMap::new();
            for (v, (_, keep)) in list.iter().zip(&d) {
                let bucket = b.bucket(v.created_at, &zone);
                *had.entry(bucket).or_default() += 1;
                if keep.is_some() {
                    *kept_in.entry(bucket).or_default() += 1;
                }
                match bucket {
                    Bucket::Recent => prop_assert!(keep.is_some()),
                    Bucket::Beyond => prop_assert!(
                        keep.is_none() || v.current || v.exported || (v.original && p.keep_original)
                    ),
                    _ => {}
                }
            }
            for (bucket, n) in had {
                if n > 0 {
                    prop_assert!(kept_in.get(&bucket).copied().unwrap_or(0) >= 1 || bucket == Bucket::Beyond,
                        "{:?} held {} versions and keeps none", bucket, n);
                }
                if matches!(bucket, Bucket::Day(_) | Bucket::Month(..)) {
                    // one per bucket, plus pinned ones
                    let pinned = list.iter().filter(|v| b.bucket(v.created_at, &zone) == bucket
                        && (v.current || v.exported || (v.original && p.keep_original))).count();
                    prop_assert!(kept_in.get(&bucket).copied().unwrap_or(0) <= pinned + 1);
                }
            }
        }
    }
}
