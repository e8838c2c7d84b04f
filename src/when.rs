//! Times and durations as users type them, and the store's time zone.
//!
//! A moment is one of
//!
//! * a date, `2027-06-01`: 00:00 of that day **in the store's time zone** (set at `init`, see
//!   [`Zone`]); where a daylight-saving change skips midnight, the first moment of the day;
//! * an RFC 3339 time, `2027-06-01T12:00:00+02:00` or `...Z`; fractional seconds are kept here
//!   and rounded inward when a consent is recorded (see [`round_up`]);
//! * a span from now, `30d`, `5y`, `12h`, `90m`, `2w`, `6mo`; with a leading `-` (`-1d`) a span
//!   back from now, accepted wherever a past moment makes sense (`ls --at`, `why --at`,
//!   `consent grant --from`) and refused with a clear message elsewhere.
//!
//! Units have one meaning everywhere (consent ends, purpose retention terms, an asset's own
//! retention, `expiring --within`, `trash purge --older-than`): `s`, `m`/`min` and `h` are exact
//! lengths of time; `d` and `w` are calendar days in the store's time zone (12:00 plus `1d` is
//! 12:00 the next day, also across a daylight-saving change); `mo` and `y` are calendar months
//! and years (31 January plus `1mo` is the last day of February, 29 February plus `1y` is
//! 28 February).
//!
//! Bounds, so that nothing typed or stored can overflow later arithmetic and nonsense is refused:
//!
//! * a span is at most 200 years long (`200y`, `2400mo`, `73050d`, 6,311,520,000 s), either way;
//! * a moment must fall on a day from 1900-01-01 to 2999-12-31 in the store's time zone.
//!
//! Values read back from the catalog are clamped to a day beyond those bounds
//! ([`from_secs`], [`Span::from_stored`]): a catalog written by an older version (or by hand)
//! can never make the rules overflow; what cannot be read fails closed.

use crate::error::{Error, Result};
/// A moment in time; all decisions are made in UTC (also `crate::policy::Time`).
pub type Time = chrono::DateTime<chrono::Utc>;
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use std::sync::RwLock;

/// The earliest and latest day a moment typed by a user may fall on.
pub const EARLIEST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(d) => d,
    None => panic!("valid date"),
};
pub const LATEST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(2999, 12, 31) {
    Some(d) => d,
    None => panic!("valid date"),
};
/// Stored times are clamped to this range (the input bounds plus a day for any UTC offset):
/// 1899-12-30T00:00:00Z and 3000-01-02T00:00:00Z.
const STORED_MIN_SECS: i64 = -2_209_161_600;
const STORED_MAX_SECS: i64 = 32_503_766_400;

/// The longest span: 200 years, in each unit.
pub const MAX_SPAN_YEARS: i64 = 200;
const MAX_SPAN_MONTHS: i64 = MAX_SPAN_YEARS * 12;
const MAX_SPAN_DAYS: i64 = 73_050; // 200 × 365.25
const MAX_SPAN_SECS: i64 = MAX_SPAN_DAYS * 86_400;

const UNITS: &[&str] = &["s", "m", "min", "h", "d", "w", "mo", "y"];

// ---------------------------------------------------------------------------------------------
// Time zones
// ---------------------------------------------------------------------------------------------

/// A store's time zone: an IANA name (`Europe/Amsterdam`) and its rules from the system's time
/// zone database (`/usr/share/zoneinfo`, kept current by the OS's tzdata package).
///
/// Dates typed without a time and 16th birthdays are local midnights in this zone; calendar
/// spans are counted on its calendar; people are shown times in it. JSON output stays in UTC
/// (RFC 3339), exact for scripts.
#[derive(Clone, Debug)]
pub struct Zone {
    name: String,
    tz: jiff::tz::TimeZone,
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name == other.name
    }
}

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".into(),
            tz: jiff::tz::TimeZone::UTC,
        }
    }

    /// The zone with this IANA name, or an error naming what to do.
    pub fn named(name: &str) -> Result<Zone> {
        let name = name.trim();
        if is_utc_alias(name) {
            return Ok(Zone::utc());
        }
        let bad = |why: String| {
            Error::invalid(format!(
                "unknown time zone '{name}'{why}: give an IANA name such as Europe/Amsterdam or UTC (see /usr/share/zoneinfo)"
            ))
        };
        if name.is_empty() || name.eq_ignore_ascii_case("Etc/Unknown") {
            return Err(bad(String::new()));
        }
        let tz = jiff::tz::TimeZone::get(name).map_err(|e| bad(format!(" ({e})")))?;
        let canonical = tz.iana_name().unwrap_or(name).to_string();
        Ok(Zone {
            name: canonical,
            tz,
        })
    }

    /// The system's zone (`TZ`, else `/etc/localtime`), if it has an IANA name; otherwise UTC.
    pub fn system() -> Zone {
        jiff::tz::TimeZone::try_system()
            .ok()
            .and_then(|tz| tz.iana_name().map(str::to_string))
            .and_then(|name| Zone::named(&name).ok())
            .unwrap_or_else(Zone::utc)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// 00:00 of `day` in this zone (the first moment of the day where a DST change skips
    /// midnight); `None` outside the representable range.
    pub fn midnight(&self, day: NaiveDate) -> Option<Time> {
        let date = jiff::civil::Date::new(
            i16::try_from(day.year()).ok()?,
            i8::try_from(day.month()).ok()?,
            i8::try_from(day.day()).ok()?,
        )
        .ok()?;
        let zoned = date.to_zoned(self.tz.clone()).ok()?;
        from_jiff(zoned.timestamp())
    }

    /// The calendar day `t` falls on in this zone.
    pub fn date_of(&self, t: Time) -> Option<NaiveDate> {
        let d = to_jiff(t)?.to_zoned(self.tz.clone()).date();
        NaiveDate::from_ymd_opt(
            i32::from(d.year()),
            u32::try_from(d.month()).ok()?,
            u32::try_from(d.day()).ok()?,
        )
    }

    /// `t` as people read it: `2027-06-01 12:00 CEST` (`UTC` for UTC stores).
    pub fn show(&self, t: Time) -> String {
        self.show_with(t, "%Y-%m-%d %H:%M %Z")
    }

    /// `t` in this zone in a strftime `format` ending in `%Z` (UTC when it cannot be shown).
    pub fn show_with(&self, t: Time, format: &str) -> String {
        let utc = || t.format(&format.replace("%Z", "UTC")).to_string();
        match to_jiff(t) {
            // `format` returns an error rather than panicking like `strftime(..).to_string()`
            Some(ts) => jiff::fmt::strtime::format(format, &ts.to_zoned(self.tz.clone()))
                .unwrap_or_else(|_| utc()),
            None => utc(),
        }
    }
}

fn is_utc_alias(name: &str) -> bool {
    [
        "UTC",
        "Etc/UTC",
        "Etc/UCT",
        "UCT",
        "Etc/Universal",
        "Universal",
        "Etc/Zulu",
        "Zulu",
    ]
    .iter()
    .any(|a| a.eq_ignore_ascii_case(name))
}

/// The zone of the store this process works on. A process opens one store; the command line
/// sets it right after opening the catalog ([`set_zone`]) so that every `show` and every date
/// typed by the user use it without threading it through each command. Until then: UTC.
/// Code that evaluates the rules does not rely on this: it reads the zone from the catalog.
static ZONE: RwLock<Option<Zone>> = RwLock::new(None);

pub fn set_zone(zone: Zone) {
    if let Ok(mut z) = ZONE.write() {
        *z = Some(zone);
    }
}

pub fn zone() -> Zone {
    ZONE.read()
        .ok()
        .and_then(|z| z.clone())
        .unwrap_or_else(Zone::utc)
}

fn to_jiff(t: Time) -> Option<jiff::Timestamp> {
    jiff::Timestamp::new(
        t.timestamp(),
        i32::try_from(t.timestamp_subsec_nanos()).ok()?,
    )
    .ok()
}

fn from_jiff(ts: jiff::Timestamp) -> Option<Time> {
    let nanos = ts.as_nanosecond();
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    let sub = u32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?;
    DateTime::from_timestamp(secs, sub)
}

// ---------------------------------------------------------------------------------------------
// Spans
// ---------------------------------------------------------------------------------------------

/// A span of time: calendar months, calendar days and exact seconds, each bounded by
/// [`MAX_SPAN_YEARS`] (a parsed span has only one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    months: i32,
    days: i32,
    secs: i64,
}

impl Span {
    pub const ZERO: Span = Span {
        months: 0,
        days: 0,
        secs: 0,
    };
    /// The longest span there is (what an overlong stored term is clamped to).
    pub const LONGEST: Span = Span {
        months: MAX_SPAN_MONTHS as i32,
        days: 0,
        secs: 0,
    };

    /// A duration such as `30d`, `5y`, `6mo`, `2w`, `12h`, `90m`, `3600s`: not negative, at most
    /// 200 years.
    pub fn parse(s: &str) -> Result<Span> {
        let span = Span::parse_signed(s)?;
        if span.is_negative() {
            return Err(Error::invalid(format!(
                "'{}' is negative: a duration here counts forward, e.g. 30d",
                s.trim()
            )));
        }
        Ok(span)
    }

    /// Like [`Span::parse`], but `-1d` (a span back in time) is accepted too.
    pub fn parse_signed(s: &str) -> Result<Span> {
        let s = s.trim();
        let (negative, body) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let split = body
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(body.len());
        let (num, unit) = body.split_at(split);
        if num.is_empty() || !UNITS.contains(&unit) {
            return Err(bad_span(s));
        }
        let too_long = || {
            Error::invalid(format!(
                "'{s}' is too long: a duration can be at most {MAX_SPAN_YEARS} years (e.g. {MAX_SPAN_YEARS}y, {MAX_SPAN_MONTHS}mo, {MAX_SPAN_DAYS}d)"
            ))
        };
        // Any number of digits parses; one beyond i64 is simply too long.
        let n: i64 = num.parse().map_err(|_| too_long())?;
        let (months, days, secs) = match unit {
            "s" => (0, 0, Some(n)),
            "m" | "min" => (0, 0, n.checked_mul(60)),
            "h" => (0, 0, n.checked_mul(3600)),
            "d" => (0, n, Some(0)),
            "w" => (0, n.checked_mul(7).ok_or_else(too_long)?, Some(0)),
            "mo" => (n, 0, Some(0)),
            "y" => (n.checked_mul(12).ok_or_else(too_long)?, 0, Some(0)),
            _ => return Err(bad_span(s)),
        };
        let secs = secs.ok_or_else(too_long)?;
        if months > MAX_SPAN_MONTHS || days > MAX_SPAN_DAYS || secs > MAX_SPAN_SECS {
            return Err(too_long());
        }
        // In range, so these conversions cannot fail; the sign cannot overflow either.
        let sign = if negative { -1 } else { 1 };
        Ok(Span {
            months: i32::try_from(months).map_err(|_| too_long())? * sign,
            days: i32::try_from(days).map_err(|_| too_long())? * sign,
            secs: secs * i64::from(sign),
        })
    }

    /// A term read back from the catalog. Terms are validated when they are recorded; one that
    /// is not valid now (written by an older version, or by hand) must neither crash the rules
    /// nor be ignored: an overlong one is clamped to 200 years, an unreadable one counts as
    /// zero, so the purpose's photos are hidden (fail closed) until the term is set again.
    pub fn from_stored(s: &str) -> Span {
        if let Ok(span) = Span::parse(s) {
            return span;
        }
        let body = s.trim().trim_start_matches('+');
        let split = body
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(body.len());
        if split > 0 && UNITS.contains(&&body[split..]) {
            log::warn!("a stored retention term is longer than {MAX_SPAN_YEARS} years; using {MAX_SPAN_YEARS} years");
            Span::LONGEST
        } else {
            log::warn!("a stored retention term cannot be read; treating it as ended (set it again with `consentfs purpose retention`)");
            Span::ZERO
        }
    }

    fn is_negative(&self) -> bool {
        self.months < 0 || self.days < 0 || self.secs < 0
    }

    fn negated(&self) -> Span {
        Span {
            months: -self.months,
            days: -self.days,
            secs: -self.secs,
        }
    }

    /// `t` plus this span on `zone`'s calendar; `None` if the result is not representable.
    /// Spans are bounded, so for any stored time the result is.
    pub fn after_in(&self, t: Time, zone: &Zone) -> Option<Time> {
        let mut ts = to_jiff(t)?;
        if self.months != 0 || self.days != 0 {
            let calendar = jiff::Span::new()
                .try_months(self.months)
                .ok()?
                .try_days(self.days)
                .ok()?;
            ts = ts
                .to_zoned(zone.tz.clone())
                .checked_add(calendar)
                .ok()?
                .timestamp();
        }
        if self.secs != 0 {
            ts = ts
                .checked_add(jiff::SignedDuration::from_secs(self.secs))
                .ok()?;
        }
        from_jiff(ts)
    }

    /// `t` minus this span on `zone`'s calendar.
    pub fn before_in(&self, t: Time, zone: &Zone) -> Option<Time> {
        self.negated().after_in(t, zone)
    }

    /// `t` plus this span in the store's zone ([`zone`]).
    pub fn after(&self, t: Time) -> Option<Time> {
        self.after_in(t, &zone())
    }

    /// `t` minus this span in the store's zone ([`zone`]).
    pub fn before(&self, t: Time) -> Option<Time> {
        self.before_in(t, &zone())
    }

    /// Canonical text form (`5y`, `6mo`, `30d`, `3600s`), as stored in the catalog.
    pub fn to_text(&self) -> String {
        match (self.months, self.days, self.secs) {
            (m, 0, 0) if m % 12 == 0 && m != 0 => format!("{}y", m / 12),
            (m, 0, 0) if m != 0 => format!("{m}mo"),
            (0, d, 0) if d != 0 => format!("{d}d"),
            (0, 0, s) if s % 86_400 == 0 && s != 0 => format!("{}d", s / 86_400),
            (0, 0, s) => format!("{s}s"),
            // not produced by `parse`
            (m, d, s) => format!("{m}mo{d}d{s}s"),
        }
    }
}

fn bad_span(s: &str) -> Error {
    Error::invalid(format!(
        "cannot read '{s}' as a duration: use a number and a unit, e.g. 30d, 5y, 6mo, 2w, 12h, 90m"
    ))
}

/// A purpose's retention term: a span counted on the store's calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub span: Span,
    pub zone: Zone,
}

impl Term {
    /// When a term that starts at `t` ends.
    pub fn end(&self, t: Time) -> Option<Time> {
        self.span.after_in(t, &self.zone)
    }
}

// ---------------------------------------------------------------------------------------------
// Moments
// ---------------------------------------------------------------------------------------------

/// `t` if it falls on a day from [`EARLIEST_DAY`] to [`LATEST_DAY`] in `zone`.
pub fn check(t: Time, zone: &Zone, what: &str) -> Result<Time> {
    match zone.date_of(t) {
        Some(d) if (EARLIEST_DAY..=LATEST_DAY).contains(&d) => Ok(t),
        _ => Err(out_of_range(what)),
    }
}

fn out_of_range(what: &str) -> Error {
    Error::invalid(format!(
        "'{what}' is out of range: times must fall between {EARLIEST_DAY} and {LATEST_DAY}"
    ))
}

/// Parse a moment in the store's zone ([`zone`]); see the module doc.
pub fn parse_time(s: &str, now: Time) -> Result<Time> {
    parse_time_in(s, now, &zone())
}

/// Parse a moment: a date (local midnight in `zone`), an RFC 3339 time, or a span from `now`
/// (negative: back from now).
pub fn parse_time_in(s: &str, now: Time, zone: &Zone) -> Result<Time> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return check(t.with_timezone(&Utc), zone, s);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if !(EARLIEST_DAY..=LATEST_DAY).contains(&d) {
            return Err(out_of_range(s));
        }
        let t = zone.midnight(d).ok_or_else(|| out_of_range(s))?;
        return check(t, zone, s);
    }
    let body = s.trim_start_matches(['+', '-']);
    if body.starts_with(|c: char| c.is_ascii_digit()) && s.len() - body.len() <= 1 {
        let span = Span::parse_signed(s)?;
        let t = span.after_in(now, zone).ok_or_else(|| out_of_range(s))?;
        return check(t, zone, s);
    }
    Err(Error::invalid(format!(
        "cannot read '{s}' as a time: use YYYY-MM-DD, RFC 3339 (2027-06-01T12:00:00Z) or a span from now (30d, 5y; -1d for a day ago)"
    )))
}

/// A calendar date (`YYYY-MM-DD`), from [`EARLIEST_DAY`] to [`LATEST_DAY`].
pub fn parse_date(s: &str) -> Result<NaiveDate> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| Error::invalid(format!("cannot read '{s}' as a date: use YYYY-MM-DD")))?;
    if !(EARLIEST_DAY..=LATEST_DAY).contains(&d) {
        return Err(out_of_range(s.trim()));
    }
    Ok(d)
}

/// The moment a person born on `born` turns 16: local midnight in `zone` on the 16th birthday
/// (29 February births: 28 February in non-leap years). Never fails: a birthday before the
/// range counts as long past, one beyond it (or one not representable) as never reached, so a
/// strange stored date can only hide photos, not show them.
pub fn sixteenth_birthday(born: NaiveDate, zone: &Zone) -> Time {
    let never = from_secs(STORED_MAX_SECS);
    let Some(day) = born.checked_add_months(Months::new(16 * 12)) else {
        return never;
    };
    if day < EARLIEST_DAY {
        return from_secs(STORED_MIN_SECS);
    }
    if day > LATEST_DAY {
        return never;
    }
    zone.midnight(day).unwrap_or(never)
}

/// Round up to a whole second (a consent's start, so it never starts early).
pub fn round_up(t: Time) -> Time {
    let down = round_down(t);
    if down == t {
        t
    } else {
        from_secs(to_secs(t).saturating_add(1))
    }
}

/// Round down to a whole second (a consent's end, so it never ends late).
pub fn round_down(t: Time) -> Time {
    from_secs(to_secs(t))
}

/// Seconds since the epoch, as stored in the catalog.
pub fn to_secs(t: Time) -> i64 {
    t.timestamp()
}

/// A stored time, clamped to the range the rules can compute with (see the module doc).
pub fn from_secs(s: i64) -> Time {
    DateTime::from_timestamp(s.clamp(STORED_MIN_SECS, STORED_MAX_SECS), 0)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The part of a second of `t`, in nanoseconds (0..1e9), stored next to [`to_secs`] where a
/// time must come back exact (a file's modification and access times: `cp -p`, `rsync -t` and
/// `make` compare them to the nanosecond).
pub fn subsec_nanos(t: Time) -> i64 {
    i64::from(t.timestamp_subsec_nanos()).min(999_999_999)
}

/// A stored time with its part of a second (see [`subsec_nanos`]): `nanos` outside 0..1e9 (a
/// catalog edited by hand) or missing (a time stored before nanoseconds were kept) counts as 0.
pub fn from_secs_nanos(s: i64, nanos: Option<i64>) -> Time {
    let nanos = nanos
        .filter(|n| (0..1_000_000_000).contains(n))
        .unwrap_or(0) as u32;
    DateTime::from_timestamp(s.clamp(STORED_MIN_SECS, STORED_MAX_SECS), nanos)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The time as shown to people, in the store's zone: `2027-06-01 12:00 CEST`.
pub fn show(t: Time) -> String {
    zone().show(t)
}

/// [`show`] with the seconds, for a moment a person watches for (the demo's consent that
/// ends two minutes after it starts).
pub fn show_seconds(t: Time) -> String {
    zone().show_with(t, "%Y-%m-%d %H:%M:%S %Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanoseconds_come_back_exact_and_bad_ones_count_as_zero() {
        for (secs, nanos) in [
            (1_577_934_245, 123_456_789),
            (-1, 500_000_000),
            (0, 999_999_999),
        ] {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            assert_eq!(from_secs_nanos(to_secs(t), Some(subsec_nanos(t))), t);
        }
        assert_eq!(from_secs_nanos(5, Some(1_000_000_000)), from_secs(5));
        assert_eq!(from_secs_nanos(5, Some(-1)), from_secs(5));
        assert_eq!(from_secs_nanos(5, None), from_secs(5));
        // clamped like any stored time
        assert_eq!(
            from_secs_nanos(i64::MAX, Some(7)),
            from_secs_nanos(STORED_MAX_SECS, Some(7))
        );
    }

    fn utc(s: &str) -> Time {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ams() -> Zone {
        Zone::named("Europe/Amsterdam").unwrap()
    }

    #[test]
    fn reads_dates_rfc3339_and_spans() {
        let z = Zone::utc();
        let now = utc("2026-01-31T10:00:00Z");
        let p = |s: &str| parse_time_in(s, now, &z).map(|t| t.to_rfc3339());
        assert_eq!(p("2027-06-01").unwrap(), "2027-06-01T00:00:00+00:00");
        assert_eq!(
            p("2027-06-01T12:00:00+02:00").unwrap(),
            "2027-06-01T10:00:00+00:00"
        );
        assert_eq!(p("30d").unwrap(), "2026-03-02T10:00:00+00:00");
        assert_eq!(p("1mo").unwrap(), "2026-02-28T10:00:00+00:00");
        assert_eq!(p("5y").unwrap(), "2031-01-31T10:00:00+00:00");
        assert_eq!(p("+5y").unwrap(), "2031-01-31T10:00:00+00:00");
        assert_eq!(p("-1d").unwrap(), "2026-01-30T10:00:00+00:00");
        assert!(p("tomorrow").is_err());
        assert!(p("5x").is_err());
        assert!(p("").is_err());
        assert!(p("--1d").is_err());
        assert_eq!(Span::parse("5y").unwrap().to_text(), "5y");
        assert_eq!(Span::parse("18mo").unwrap().to_text(), "18mo");
        assert_eq!(Span::parse("2w").unwrap().to_text(), "14d");
        assert_eq!(Span::parse("90m").unwrap().to_text(), "5400s");
        assert_eq!(Span::parse("2d").unwrap().to_text(), "2d");
    }

    #[test]
    fn fractional_seconds_are_kept_when_parsing() {
        let t = parse_time_in("2027-01-01T10:00:00.5Z", Utc::now(), &Zone::utc()).unwrap();
        assert_eq!(t.timestamp_subsec_millis(), 500);
        assert_eq!(round_up(t), utc("2027-01-01T10:00:01Z"));
        assert_eq!(round_down(t), utc("2027-01-01T10:00:00Z"));
        let whole = utc("2027-01-01T10:00:00Z");
        assert_eq!(round_up(whole), whole);
    }

    #[test]
    fn spans_are_bounded_and_never_overflow() {
        for s in [
            "99999999999w",
            "9223372036854775807s",
            "922337203685477h",
            "9999999999999d",
            "99999999999999999999999999y",
            "201y",
            "2401mo",
            "73051d",
            "6311520001s",
        ] {
            let e = Span::parse(s).unwrap_err().to_string();
            assert!(e.contains("at most 200 years"), "{s}: {e}");
        }
        for s in ["200y", "2400mo", "73050d", "6311520000s", "0d"] {
            assert!(Span::parse(s).is_ok(), "{s}");
        }
        assert!(Span::parse("-1d")
            .unwrap_err()
            .to_string()
            .contains("negative"));
        for s in ["", "d", "1", "1 d", "١d", "1d1d", "1D", "+-1d", "1.5d"] {
            assert!(Span::parse_signed(s).is_err(), "{s:?}");
        }
        // the longest span from the latest moment still computes
        let late = from_secs(i64::MAX);
        assert!(Span::LONGEST.after_in(late, &ams()).is_some());
        assert!(Span::LONGEST
            .before_in(from_secs(i64::MIN), &ams())
            .is_some());
    }

    #[test]
    fn moments_out_of_range_are_refused() {
        let z = ams();
        let now = utc("2026-01-31T10:00:00Z");
        for s in [
            "1899-12-31",
            "1600-01-01",
            "3000-01-01",
            "9999-12-31",
            "+10000-01-01",
            "1899-12-31T22:00:00Z",
            "3000-01-01T00:00:00Z",
            "9999-12-31T23:59:59-23:59",
        ] {
            let e = parse_time_in(s, now, &z).unwrap_err().to_string();
            assert!(
                e.contains("out of range") || e.contains("cannot read"),
                "{s}: {e}"
            );
        }
        // local midnight of the first day is in range although it is still 1899 in UTC
        assert!(parse_time_in("1900-01-01", now, &z).is_ok());
        assert!(parse_time_in("2999-12-31", now, &z).is_ok());
        assert!(parse_date("1899-12-31").is_err());
        assert!(parse_date("2999-12-31").is_ok());
        // 200 years from 2900 is beyond the range
        let late = utc("2900-01-01T00:00:00Z");
        assert!(parse_time_in("200y", late, &z)
            .unwrap_err()
            .to_string()
            .contains("out of range"));
    }

    #[test]
    fn stored_values_are_clamped() {
        assert_eq!(from_secs(i64::MAX), from_secs(STORED_MAX_SECS));
        assert_eq!(from_secs(i64::MIN), from_secs(STORED_MIN_SECS));
        assert_eq!(
            from_secs(STORED_MIN_SECS).to_rfc3339(),
            "1899-12-30T00:00:00+00:00"
        );
        assert_eq!(
            from_secs(STORED_MAX_SECS).to_rfc3339(),
            "3000-01-02T00:00:00+00:00"
        );
        assert_eq!(Span::from_stored("99999999999w"), Span::LONGEST);
        assert_eq!(Span::from_stored("5y"), Span::parse("5y").unwrap());
        assert_eq!(Span::from_stored("garbage"), Span::ZERO);
    }

    #[test]
    fn dates_are_local_midnight_in_the_store_zone() {
        let z = ams();
        let now = utc("2026-01-31T10:00:00Z");
        // winter: CET, UTC+1
        assert_eq!(
            parse_time_in("2027-03-01", now, &z).unwrap(),
            utc("2027-02-28T23:00:00Z")
        );
        // summer: CEST, UTC+2
        assert_eq!(
            parse_time_in("2027-07-01", now, &z).unwrap(),
            utc("2027-06-30T22:00:00Z")
        );
        assert_eq!(z.show(utc("2027-06-30T22:00:00Z")), "2027-07-01 00:00 CEST");
        assert_eq!(z.show(utc("2027-02-28T23:00:00Z")), "2027-03-01 00:00 CET");
        assert_eq!(
            Zone::utc().show(utc("2027-02-28T23:00:00Z")),
            "2027-02-28 23:00 UTC"
        );
    }

    #[test]
    fn calendar_spans_follow_the_local_calendar() {
        let z = ams();
        // 12:00 CEST in July plus 6 months is 12:00 CET in January (11:00 UTC, not 10:00)
        let july = utc("2026-07-01T10:00:00Z");
        assert_eq!(
            Span::parse("6mo").unwrap().after_in(july, &z).unwrap(),
            utc("2027-01-01T11:00:00Z")
        );
        // a day across the spring DST change is 23 hours; 24h is not a day
        let before = utc("2026-03-28T11:00:00Z"); // 12:00 CET
        assert_eq!(
            Span::parse("1d").unwrap().after_in(before, &z).unwrap(),
            utc("2026-03-29T10:00:00Z") // 12:00 CEST
        );
        assert_eq!(
            Span::parse("24h").unwrap().after_in(before, &z).unwrap(),
            utc("2026-03-29T11:00:00Z")
        );
        // years are calendar years, not 365 days
        let t = utc("2026-01-01T00:00:00Z");
        assert_eq!(
            Span::parse("2y")
                .unwrap()
                .after_in(t, &Zone::utc())
                .unwrap(),
            utc("2028-01-01T00:00:00Z")
        );
    }

    #[test]
    fn sixteenth_birthday_is_local_midnight() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let z = ams();
        assert_eq!(
            sixteenth_birthday(day(2012, 6, 15), &z),
            utc("2028-06-14T22:00:00Z")
        );
        assert_eq!(
            sixteenth_birthday(day(2012, 6, 15), &Zone::utc()),
            utc("2028-06-15T00:00:00Z")
        );
        assert_eq!(
            sixteenth_birthday(day(2084, 2, 29), &Zone::utc()),
            utc("2100-02-28T00:00:00Z")
        );
        // far outside the range: long past, or never
        assert_eq!(
            sixteenth_birthday(day(1000, 1, 1), &z),
            from_secs(STORED_MIN_SECS)
        );
        assert_eq!(
            sixteenth_birthday(NaiveDate::MAX, &z),
            from_secs(STORED_MAX_SECS)
        );
    }

    #[test]
    fn zone_names() {
        assert_eq!(Zone::named("Etc/UTC").unwrap().name(), "UTC");
        assert_eq!(ams().name(), "Europe/Amsterdam");
        assert!(Zone::named("Mars/Olympus").is_err());
        assert!(Zone::named("").is_err());
        assert!(Zone::named("Etc/Unknown").is_err());
        assert!(Zone::named("../../etc/passwd").is_err());
    }
}
