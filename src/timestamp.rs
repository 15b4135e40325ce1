//! Time. [`now`] is the server's one clock: every "now" is a `DateTime<Utc>` read from it, and
//! the few places that count in Unix units derive them from such an instant ([`unix_millis`]
//! for the limiter's windows, [`unix_secs`] for TOTP steps and file names).
//!
//! Timestamps as the contract writes them: RFC 3339 UTC with microseconds and `Z`
//! (`2026-11-29T08:00:00.123456Z`).
//!
//! Every audit line and every order in a list carries them (a list of 200 orders has 400), so
//! the common case is written digit by digit into a fixed buffer: no format interpreted, no
//! allocation. Instants that layout cannot hold (years outside 0000–9999, leap seconds) are
//! written by chrono, which the tests hold the fast path to.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

/// One formatted timestamp; read it with [`Rfc3339Micros::as_str`].
pub enum Rfc3339Micros {
    Fixed([u8; 27]),
    Other(String),
}

impl Rfc3339Micros {
    pub fn new(at: DateTime<Utc>) -> Rfc3339Micros {
        let t = at.naive_utc();
        let (year, nanos) = (t.year(), t.nanosecond());
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            return Rfc3339Micros::Other(at.to_rfc3339_opts(SecondsFormat::Micros, true));
        }
        let mut b = *b"0000-00-00T00:00:00.000000Z";
        digits(&mut b[0..4], year as u32);
        digits(&mut b[5..7], t.month());
        digits(&mut b[8..10], t.day());
        digits(&mut b[11..13], t.hour());
        digits(&mut b[14..16], t.minute());
        digits(&mut b[17..19], t.second());
        digits(&mut b[20..26], nanos / 1000);
        Rfc3339Micros::Fixed(b)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Rfc3339Micros::Fixed(b) => std::str::from_utf8(b).expect("ASCII digits"),
            Rfc3339Micros::Other(s) => s,
        }
    }
}

/// Writes `n` as decimal into all of `out`, zero-padded on the left (`n` fits).
fn digits(out: &mut [u8], mut n: u32) {
    for d in out.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The current wall-clock time, UTC.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Milliseconds since the Unix epoch (zero for earlier instants).
pub fn unix_millis(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

/// Whole seconds since the Unix epoch (zero for earlier instants).
pub fn unix_secs(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp()).unwrap_or(0)
}

/// The timestamp as an owned string.
pub fn format(at: DateTime<Utc>) -> String {
    Rfc3339Micros::new(at).as_str().to_owned()
}

/// For `#[serde(serialize_with = "crate::timestamp::serialize")]`.
pub fn serialize<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(Rfc3339Micros::new(*at).as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::Rng;

    fn chrono_form(at: DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    #[test]
    fn matches_chrono_across_the_fixed_range() {
        let mut rng = rand::thread_rng();
        let lo = Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap().timestamp();
        let hi = Utc
            .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
            .unwrap()
            .timestamp();
        for _ in 0..100_000 {
            let at = Utc
                .timestamp_opt(rng.gen_range(lo..=hi), rng.gen_range(0..1_000_000_000))
                .unwrap();
            let fast = Rfc3339Micros::new(at);
            assert!(matches!(fast, Rfc3339Micros::Fixed(_)), "{at:?}");
            assert_eq!(fast.as_str(), chrono_form(at));
        }
        for at in [
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
        ] {
            assert_eq!(format(at), chrono_form(at));
        }
        let at = DateTime::parse_from_rfc3339("2026-11-29T08:00:00.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format(at), "2026-11-29T08:00:00.123456Z");
    }

    #[test]
    fn instants_outside_the_layout_are_written_by_chrono() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 1_500_000)
            .unwrap()
            .and_utc();
        let far = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap();
        let before = Utc.with_ymd_and_hms(-1, 6, 1, 12, 0, 0).unwrap();
        for at in [leap, far, before] {
            let out = Rfc3339Micros::new(at);
            assert!(matches!(out, Rfc3339Micros::Other(_)), "{at:?}");
            assert_eq!(out.as_str(), chrono_form(at));
        }
    }
}
