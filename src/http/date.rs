//! The `Date` header: IMF-fixdate (RFC 9110 5.6.7), `Sun, 06 Nov 1994 08:49:37 GMT`.
//!
//! [`imf_fixdate`] formats a [`SystemTime`]; [`DateCache`] keeps the formatted string and
//! formats again only when the second changes, so a busy server formats at most once a
//! second. Both are pure: the caller passes the current time in.
#![forbid(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
pub(crate) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
/// 9999-12-31T23:59:59Z: later times are written as this, so the year keeps four digits.
const MAX_SECS: u64 = 253_402_300_799;

/// The Unix time in whole seconds, clamped to 1970-01-01 .. 9999-12-31.
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(MAX_SECS)
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`, for non-negative days).
pub(crate) fn civil_from_days(days: u64) -> (u64, usize, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month as usize, day)
}

fn format_secs(secs: u64, out: &mut String) {
    use core::fmt::Write;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let weekday = ((days + 4) % 7) as usize; // 1970-01-01 was a Thursday
    out.clear();
    let _ = write!(
        out,
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[weekday],
        day,
        MONTHS[month - 1],
        year,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
}

/// `t` as an IMF-fixdate: always 29 ASCII bytes. Times before 1970 are written as the
/// epoch, times after 9999 as its last second.
pub fn imf_fixdate(t: SystemTime) -> String {
    let mut s = String::with_capacity(29);
    format_secs(unix_secs(t), &mut s);
    s
}

/// The formatted `Date` of the current second, formatted again only when the second changes.
#[derive(Clone, Debug, Default)]
pub struct DateCache {
    secs: Option<u64>,
    text: String,
    formats: u64,
}

impl DateCache {
    /// An empty cache (the first [`get`](DateCache::get) formats).
    pub fn new() -> Self {
        Self::default()
    }

    /// The IMF-fixdate of `now`, reusing the last one within the same second.
    pub fn get(&mut self, now: SystemTime) -> &str {
        self.get_secs(unix_secs(now))
    }

    /// [`get`](DateCache::get) for a Unix time in whole seconds (clamped as `get` clamps), for
    /// a caller that reads a seconds clock: the server reads the kernel's coarse one (7 ns
    /// a read on this VM, where the precise clock behind `SystemTime::now()` takes 33).
    pub fn get_secs(&mut self, unix_secs: u64) -> &str {
        let secs = unix_secs.min(MAX_SECS);
        if self.secs != Some(secs) {
            format_secs(secs, &mut self.text);
            self.secs = Some(secs);
            self.formats += 1;
        }
        &self.text
    }

    /// How many times the cache has formatted (for tests and statistics).
    pub fn formats(&self) -> u64 {
        self.formats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn seconds_and_system_times_give_the_same_dates() {
        let mut by_time = DateCache::new();
        let mut by_secs = DateCache::new();
        for secs in [
            0,
            784_111_777,
            784_111_778,
            MAX_SECS,
            MAX_SECS + 1,
            u64::MAX,
        ] {
            let t = UNIX_EPOCH
                .checked_add(Duration::from_secs(secs))
                .unwrap_or(at(MAX_SECS));
            assert_eq!(by_secs.get_secs(secs), by_time.get(t), "{secs}");
        }
        // The last three are all the clamped last second: formatted once for them.
        assert_eq!(by_secs.formats(), 4);
    }

    #[test]
    fn rfc_example() {
        assert_eq!(
            imf_fixdate(at(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    #[test]
    fn known_dates() {
        for (secs, text) in [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (951_868_799, "Tue, 29 Feb 2000 23:59:59 GMT"),
            (978_307_199, "Sun, 31 Dec 2000 23:59:59 GMT"),
            (1_709_164_800, "Thu, 29 Feb 2024 00:00:00 GMT"),
            (2_147_483_647, "Tue, 19 Jan 2038 03:14:07 GMT"),
            (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT"),
            (MAX_SECS, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ] {
            assert_eq!(imf_fixdate(at(secs)), text, "{secs}");
        }
    }

    #[test]
    fn out_of_range_times_are_clamped() {
        assert_eq!(
            imf_fixdate(UNIX_EPOCH - Duration::from_secs(10)),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(
            imf_fixdate(at(MAX_SECS + 1_000_000)),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }

    #[test]
    fn cache_formats_once_per_second() {
        let mut c = DateCache::new();
        let t = at(784_111_777);
        assert_eq!(c.get(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            c.get(t + Duration::from_millis(999)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(c.formats(), 1);
        assert_eq!(
            c.get(t + Duration::from_secs(1)),
            "Sun, 06 Nov 1994 08:49:38 GMT"
        );
        assert_eq!(c.formats(), 2);
        // A clock that steps back is followed.
        assert_eq!(c.get(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(c.formats(), 3);
    }

    /// A slow, obviously correct reference: walk the years and months.
    fn reference(secs: u64) -> String {
        let mut days = secs / 86_400;
        let mut year = 1970;
        let leap = |y: u64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        loop {
            let len = if leap(year) { 366 } else { 365 };
            if days < len {
                break;
            }
            days -= len;
            year += 1;
        }
        let mut month = 0;
        loop {
            let len = [
                31,
                if leap(year) { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ][month];
            if days < len {
                break;
            }
            days -= len;
            month += 1;
        }
        let rem = secs % 86_400;
        format!(
            "{}, {:02} {} {year:04} {:02}:{:02}:{:02} GMT",
            DAYS[((secs / 86_400 + 4) % 7) as usize],
            days + 1,
            MONTHS[month],
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }

    proptest! {
        #[test]
        fn matches_the_reference(secs in 0u64..=MAX_SECS) {
            let s = imf_fixdate(at(secs));
            prop_assert_eq!(s.len(), 29);
            prop_assert_eq!(s, reference(secs));
        }
    }
}
