//! Timestamps for access log lines. The date and time of day change once a second, so each
//! thread keeps the current second formatted both ways and only appends the milliseconds.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// `2026-11-21T06:24:19`: RFC 3339 up to the seconds.
const RFC3339_LEN: usize = 19;
/// `21/Nov/2026:06:24:19 +0000`: the common log format's `[time_local]`, always in UTC.
const CLF_LEN: usize = 26;

/// 9999-12-31T23:59:59Z: four-digit years are all either format can hold.
const LAST_SECOND: u64 = 253_402_300_799;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

#[derive(Clone, Copy)]
struct Second {
    unix: u64,
    rfc3339: [u8; RFC3339_LEN],
    clf: [u8; CLF_LEN],
}

thread_local! {
    // `Second` is `Copy`: no destructor to register, so the first use on a shard does not
    // allocate either.
    static CURRENT: Cell<Second> = const {
        Cell::new(Second { unix: u64::MAX, rfc3339: [0; RFC3339_LEN], clf: [0; CLF_LEN] })
    };
}

/// Appends `2026-11-21T06:24:19.123Z`.
pub(super) fn rfc3339(out: &mut Vec<u8>, time: SystemTime) {
    let (second, millis) = split(time);
    out.extend_from_slice(&second.rfc3339);
    out.push(b'.');
    three_digits(out, millis);
    out.push(b'Z');
}

/// Appends `21/Nov/2026:06:24:19 +0000`.
pub(super) fn clf(out: &mut Vec<u8>, time: SystemTime) {
    out.extend_from_slice(&split(time).0.clf);
}

/// Appends `n` (below 1000) as exactly three digits.
pub(super) fn three_digits(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&[
        b'0' + (n / 100 % 10) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]);
}

fn split(time: SystemTime) -> (Second, u32) {
    // A clock before 1970 is a broken clock; the epoch is as good a guess as any.
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let unix = since.as_secs().min(LAST_SECOND);
    let second = CURRENT.with(|current| {
        let cached = current.get();
        if cached.unix == unix {
            return cached;
        }
        let fresh = Second::format(unix);
        current.set(fresh);
        fresh
    });
    (second, since.subsec_millis())
}

impl Second {
    fn format(unix: u64) -> Second {
        let (year, month, day) = civil_from_days(unix / 86_400);
        let of_day = unix % 86_400;
        let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
        let two = |n: u64| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        let year = [
            b'0' + (year / 1000 % 10) as u8,
            b'0' + (year / 100 % 10) as u8,
            b'0' + (year / 10 % 10) as u8,
            b'0' + (year % 10) as u8,
        ];
        let time = [two(hour), two(minute), two(second)];

        let mut rfc3339 = [0; RFC3339_LEN];
        let mut w = Cursor(&mut rfc3339, 0);
        w.put(&year);
        w.put(b"-");
        w.put(&two(month));
        w.put(b"-");
        w.put(&two(day));
        w.put(b"T");
        w.put(&time[0]);
        w.put(b":");
        w.put(&time[1]);
        w.put(b":");
        w.put(&time[2]);

        let mut clf = [0; CLF_LEN];
        let mut w = Cursor(&mut clf, 0);
        w.put(&two(day));
        w.put(b"/");
        w.put(MONTHS[month as usize - 1]);
        w.put(b"/");
        w.put(&year);
        w.put(b":");
        w.put(&time[0]);
        w.put(b":");
        w.put(&time[1]);
        w.put(b":");
        w.put(&time[2]);
        w.put(b" +0000");

        Second { unix, rfc3339, clf }
    }
}

struct Cursor<'a, const N: usize>(&'a mut [u8; N], usize);

impl<const N: usize> Cursor<'_, N> {
    fn put(&mut self, bytes: &[u8]) {
        self.0[self.1..self.1 + bytes.len()].copy_from_slice(bytes);
        self.1 += bytes.len();
    }
}

/// `(year, month 1..=12, day 1..=31)` of the proleptic Gregorian calendar for a count of days
/// since 1970-01-01, after Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html>), restricted to days from 1970.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01, so the leap day is the last day of a year, and count in
    // 400-year eras of 146,097 days.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(unix: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix) + Duration::from_millis(millis)
    }

    fn both(time: SystemTime) -> (String, String) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        rfc3339(&mut a, time);
        clf(&mut b, time);
        (String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap())
    }

    #[test]
    fn known_instants() {
        assert_eq!(
            both(at(1_795_242_259, 123)),
            (
                "2026-11-21T06:24:19.123Z".into(),
                "21/Nov/2026:06:24:19 +0000".into()
            )
        );
        assert_eq!(
            both(at(0, 7)),
            (
                "1970-01-01T00:00:00.007Z".into(),
                "01/Jan/1970:00:00:00 +0000".into()
            )
        );
        // A leap day and the last second of a leap year.
        assert_eq!(both(at(951_782_400, 0)).0, "2000-02-29T00:00:00.000Z");
        assert_eq!(both(at(1_735_689_599, 999)).0, "2024-12-31T23:59:59.999Z");
    }

    #[test]
    fn before_the_epoch_and_after_9999_are_clamped() {
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(both(before).0, "1970-01-01T00:00:00.000Z");
        assert_eq!(
            both(at(LAST_SECOND + 86_400, 0)).1,
            "31/Dec/9999:23:59:59 +0000"
        );
    }

    /// Every day for 150 years, and a spread of times of day, against `httpdate`
    /// (`Sat, 21 Nov 2026 06:24:19 GMT`).
    #[test]
    fn agrees_with_httpdate() {
        for day in 0..(150 * 366) {
            let unix = day * 86_400 + (day * 7919) % 86_400;
            let time = at(unix, 0);
            let http = httpdate::fmt_http_date(time);
            let (dd, mon, yyyy, hms) = (&http[5..7], &http[8..11], &http[12..16], &http[17..25]);
            let (_, clf) = both(time);
            assert_eq!(clf, format!("{dd}/{mon}/{yyyy}:{hms} +0000"), "{http}");
        }
    }

    /// The cache is per second: two instants in different seconds never share a prefix.
    #[test]
    fn the_cached_second_moves_on() {
        assert_eq!(both(at(10, 999)).0, "1970-01-01T00:00:10.999Z");
        assert_eq!(both(at(11, 0)).0, "1970-01-01T00:00:11.000Z");
        assert_eq!(both(at(10, 1)).0, "1970-01-01T00:00:10.001Z");
    }
}
