//! Unix seconds as a UTC calendar date and time, without a date library: the bank's pages and
//! the bridge's output print times the same way from one algorithm.

/// A Unix time split into the UTC date and time: `(year, month, day, hour, minute, second)`.
pub fn utc_parts(unix: i64) -> (i64, u32, u32, u32, u32, u32) {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let secs = u32::try_from(unix.rem_euclid(86_400)).unwrap_or(0);
    (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`, exact for every `i64` day a timestamp here can give).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::utc_parts;

    #[test]
    fn known_instants() {
        assert_eq!(utc_parts(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc_parts(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc_parts(1_764_000_120), (2025, 11, 24, 16, 2, 0));
        assert_eq!(utc_parts(-1), (1969, 12, 31, 23, 59, 59));
    }
}
