//! `YYYY-MM-DDTHH:MM:SSZ` to unix seconds, strictly and by hand (days from the civil date, as
//! Howard Hinnant's `days_from_civil`, for years 1970 to 9999).

/// The unix time of `text`, which must be exactly `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds, a
/// real calendar date, no leap second, year 1970 or later).
pub fn parse_utc(text: &str) -> Option<u64> {
    let b: &[u8; 20] = text.as_bytes().try_into().ok()?;
    let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1, b'T', h0, h1, b':', i0, i1, b':', s0, s1, b'Z'] = *b
    else {
        return None;
    };
    let year = digits(&[y0, y1, y2, y3])?;
    let month = digits(&[m0, m1])?;
    let day = digits(&[d0, d1])?;
    let (hour, minute, second) = (digits(&[h0, h1])?, digits(&[i0, i1])?, digits(&[s0, s1])?);
    if year < 1970 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month)? {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    days.checked_mul(86_400)?
        .checked_add(hour.checked_mul(3600)?)?
        .checked_add(minute.checked_mul(60)?)?
        .checked_add(second)
}

fn digits(ds: &[u8]) -> Option<u64> {
    ds.iter().try_fold(0u64, |acc, &d| {
        let d = char::from(d).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> Option<u64> {
    Some(match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => return None,
    })
}

/// Days since 1970-01-01 of a valid date from 1970 on (so every intermediate is non-negative).
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    // Years start in March, so that the leap day is the last day of a year.
    let year = if month <= 2 { year.checked_sub(1)? } else { year };
    let era = year / 400;
    let year_of_era = year.checked_sub(era.checked_mul(400)?)?;
    let shifted_month = if month > 2 { month.checked_sub(3)? } else { month.checked_add(9)? };
    let day_of_year =
        (shifted_month.checked_mul(153)?.checked_add(2)? / 5).checked_add(day.checked_sub(1)?)?;
    let day_of_era = year_of_era
        .checked_mul(365)?
        .checked_add(year_of_era / 4)?
        .checked_sub(year_of_era / 100)?
        .checked_add(day_of_year)?;
    era.checked_mul(146_097)?.checked_add(day_of_era)?.checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_known_unix_times() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2000-02-29T12:34:56Z"), Some(951_827_696));
        assert_eq!(parse_utc("2026-06-01T00:00:00Z"), Some(1_780_272_000));
        assert_eq!(parse_utc("2038-01-19T03:14:08Z"), Some(1 << 31));
        assert_eq!(parse_utc("9999-12-31T23:59:59Z"), Some(253_402_300_799));
    }

    #[test]
    fn every_day_from_1970_is_one_more_than_the_one_before() {
        let mut expected = 0u64;
        for year in 1970..2400u64 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month).unwrap() {
                    let text = format!("{year:04}-{month:02}-{day:02}T00:00:00Z");
                    assert_eq!(parse_utc(&text), Some(expected * 86_400), "{text}");
                    expected += 1;
                }
            }
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "2026-06-01T00:00:00",
            "2026-06-01T00:00:00+00:00",
            "2026-06-01 00:00:00Z",
            "2026-6-01T00:00:00Z",
            "2026-06-01T00:00:00.5Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-06-00T00:00:00Z",
            "2026-06-01T24:00:00Z",
            "2026-06-01T00:60:00Z",
            "2026-06-01T00:00:60Z",
            "1969-12-31T23:59:59Z",
            "+026-06-01T00:00:00Z",
            "2026-06-01t00:00:00z",
            "２026-06-01T00:00:00Z",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
        assert!(parse_utc("2024-02-29T00:00:00Z").is_some());
    }
}
