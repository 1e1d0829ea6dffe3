//! Japan time (JST, UTC+9, no daylight saving) for what people see; milliseconds since
//! the Unix epoch on chain. No clock is read here: time is always an input.

pub const JST_OFFSET_MS: i64 = 9 * 60 * 60 * 1000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// `YYYY-MM-DD` → (year, month, day), checking the calendar.
pub fn parse_date(text: &str) -> Option<(i32, u32, u32)> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year: i32 = text[0..4].parse().ok()?;
    let month: u32 = text[5..7].parse().ok()?;
    let day: u32 = text[8..10].parse().ok()?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some((year, month, day))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

/// The first millisecond of a JST day.
pub fn start_of_day_jst_ms(date: &str) -> Option<u64> {
    let (y, m, d) = parse_date(date)?;
    u64::try_from(days_from_civil(y, m, d) * DAY_MS - JST_OFFSET_MS).ok()
}

/// The last millisecond of a JST day: "valid until 2027-01-31" means this instant.
pub fn end_of_day_jst_ms(date: &str) -> Option<u64> {
    start_of_day_jst_ms(date).map(|ms| ms + DAY_MS as u64 - 1)
}

/// `2027-01-31 23:59` in JST.
pub fn format_jst(ms: u64) -> String {
    let local = ms as i64 + JST_OFFSET_MS;
    let (y, mo, d) = civil_from_days(local.div_euclid(DAY_MS));
    let in_day = local.rem_euclid(DAY_MS) / 1000;
    format!("{y:04}-{mo:02}-{d:02} {:02}:{:02}", in_day / 3600, in_day / 60 % 60)
}

/// `2027-01-31` in JST.
pub fn format_jst_date(ms: u64) -> String {
    format_jst(ms)[..10].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_day_is_jst() {
        // 2027-01-31 23:59:59.999 JST = 2027-01-31 14:59:59.999 UTC.
        assert_eq!(end_of_day_jst_ms("2027-01-31"), Some(1_801_407_599_999));
        assert_eq!(format_jst(1_801_407_599_999), "2027-01-31 23:59");
        assert_eq!(format_jst(1_801_407_600_000), "2027-02-01 00:00");
        assert_eq!(format_jst_date(0), "1970-01-01");
    }

    #[test]
    fn dates_are_checked() {
        assert!(parse_date("2028-02-29").is_some());
        assert!(parse_date("2027-02-29").is_none());
        assert!(parse_date("2027-13-01").is_none());
        assert!(parse_date("2027-1-01").is_none());
        assert!(parse_date("20270101").is_none());
    }
}
