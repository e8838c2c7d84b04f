//! Times and durations as users type them: `2027-06-01`, RFC 3339 (`2027-06-01T12:00:00+02:00`),
//! or a span from now (`30d`, `5y`, `12h`, `90m`, `2w`, `6mo`). Years and months are calendar
//! years and months; a bare date means 00:00 UTC of that day.

use crate::error::{Error, Result};
use crate::policy::Time;
use chrono::{DateTime, Months, NaiveDate, NaiveTime, Utc};

/// A span of time, kept as calendar months plus seconds so `5y` from 29 Feb lands sensibly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub months: u32,
    pub secs: i64,
}

impl Span {
    pub fn parse(s: &str) -> Result<Span> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: i64 = num.parse().map_err(|_| bad_span(s))?;
        let span = match unit {
            "s" => Span { months: 0, secs: n },
            "m" | "min" => Span {
                months: 0,
                secs: n * 60,
            },
            "h" => Span {
                months: 0,
                secs: n * 3600,
            },
            "d" => Span {
                months: 0,
                secs: n * 86_400,
            },
            "w" => Span {
                months: 0,
                secs: n * 7 * 86_400,
            },
            "mo" => Span {
                months: u32::try_from(n).map_err(|_| bad_span(s))?,
                secs: 0,
            },
            "y" => Span {
                months: u32::try_from(n * 12).map_err(|_| bad_span(s))?,
                secs: 0,
            },
            _ => return Err(bad_span(s)),
        };
        Ok(span)
    }

    /// `t` plus this span; `None` on overflow.
    pub fn after(&self, t: Time) -> Option<Time> {
        t.checked_add_months(Months::new(self.months))?
            .checked_add_signed(chrono::Duration::seconds(self.secs))
    }

    /// Canonical text form (`5y`, `6mo`, `30d`, `3600s`), as stored in the catalog.
    pub fn to_text(&self) -> String {
        match (self.months, self.secs) {
            (m, 0) if m % 12 == 0 && m > 0 => format!("{}y", m / 12),
            (m, 0) if m > 0 => format!("{m}mo"),
            (0, s) if s % 86_400 == 0 => format!("{}d", s / 86_400),
            (0, s) => format!("{s}s"),
            (m, s) => format!("{m}mo{s}s"),
        }
    }
}

fn bad_span(s: &str) -> Error {
    Error::invalid(format!(
        "cannot read '{s}' as a duration: use a number and a unit, e.g. 30d, 5y, 6mo, 2w, 12h, 90m"
    ))
}

/// Parse a moment: a date, an RFC 3339 time, or a span from `now`.
pub fn parse_time(s: &str, now: Time) -> Result<Time> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(NaiveTime::MIN).and_utc());
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        if let Ok(span) = Span::parse(s) {
            return span
                .after(now)
                .ok_or_else(|| Error::invalid(format!("'{s}' from now is out of range")));
        }
    }
    Err(Error::invalid(format!(
        "cannot read '{s}' as a time: use YYYY-MM-DD, RFC 3339 (2027-06-01T12:00:00Z) or a span from now (30d, 5y)"
    )))
}

pub fn parse_date(s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| Error::invalid(format!("cannot read '{s}' as a date: use YYYY-MM-DD")))
}

/// Seconds since the epoch, as stored in the catalog.
pub fn to_secs(t: Time) -> i64 {
    t.timestamp()
}

pub fn from_secs(s: i64) -> Time {
    DateTime::from_timestamp(s, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The time as shown to people: `2027-06-01 12:00 UTC`.
pub fn show(t: Time) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dates_rfc3339_and_spans() {
        let now = parse_time("2026-01-31T10:00:00Z", Utc::now()).unwrap();
        assert_eq!(
            parse_time("2027-06-01", now).unwrap().to_rfc3339(),
            "2027-06-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_time("2027-06-01T12:00:00+02:00", now)
                .unwrap()
                .to_rfc3339(),
            "2027-06-01T10:00:00+00:00"
        );
        assert_eq!(
            parse_time("30d", now).unwrap().to_rfc3339(),
            "2026-03-02T10:00:00+00:00"
        );
        assert_eq!(
            parse_time("1mo", now).unwrap().to_rfc3339(),
            "2026-02-28T10:00:00+00:00"
        );
        assert_eq!(
            parse_time("5y", now).unwrap().to_rfc3339(),
            "2031-01-31T10:00:00+00:00"
        );
        assert!(parse_time("tomorrow", now).is_err());
        assert!(parse_time("5x", now).is_err());
        assert_eq!(Span::parse("5y").unwrap().to_text(), "5y");
        assert_eq!(Span::parse("18mo").unwrap().to_text(), "18mo");
        assert_eq!(Span::parse("2w").unwrap().to_text(), "14d");
    }
}
