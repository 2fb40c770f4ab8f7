//! Budget period arithmetic: which period an instant falls in. Calendar periods (daily,
//! weekly from Monday, monthly) start at local midnight in the budget's IANA time zone,
//! so they follow daylight-saving changes; fixed durations count from an anchor (the
//! budget's creation).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use llmesh_crds::shared::Period;

/// One budget period: `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First instant of the period.
    pub start: Timestamp,
    /// First instant of the next period.
    pub end: Timestamp,
}

/// Why a period cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum PeriodError {
    /// The time zone is not in the tz database.
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    /// Date arithmetic left the supported range.
    #[error("date out of range: {0}")]
    Range(String),
}

/// The period of `period` in `time_zone` that contains `now`; fixed durations are
/// counted from `anchor`.
pub fn window(
    period: Period,
    time_zone: &str,
    anchor: Timestamp,
    now: Timestamp,
) -> Result<Window, PeriodError> {
    if let Period::Every(ms) = period {
        let len = i128::from(ms) * 1_000_000;
        let since = now.as_nanosecond() - anchor.as_nanosecond();
        let index = since.div_euclid(len);
        let start = anchor.as_nanosecond() + index * len;
        let range = |e: jiff::Error| PeriodError::Range(e.to_string());
        return Ok(Window {
            start: Timestamp::from_nanosecond(start).map_err(range)?,
            end: Timestamp::from_nanosecond(start + len).map_err(range)?,
        });
    }
    let tz = TimeZone::get(time_zone).map_err(|_| PeriodError::TimeZone(time_zone.to_owned()))?;
    let today = now.to_zoned(tz.clone()).date();
    let range = |e: jiff::Error| PeriodError::Range(e.to_string());
    let (first, next): (Date, Date) = match period {
        Period::Daily => (today, today.tomorrow().map_err(range)?),
        Period::Weekly => {
            let back = i64::from(today.weekday().to_monday_zero_offset());
            let monday = today.checked_sub(back.days()).map_err(range)?;
            (monday, monday.checked_add(7.days()).map_err(range)?)
        }
        Period::Monthly => {
            let first = today.first_of_month();
            (first, first.checked_add(1.month()).map_err(range)?)
        }
        Period::Every(_) => unreachable_every(),
    };
    let midnight =
        |d: Date| -> Result<Zoned, PeriodError> { d.to_zoned(tz.clone()).map_err(range) };
    Ok(Window {
        start: midnight(first)?.timestamp(),
        end: midnight(next)?.timestamp(),
    })
}

/// `Every` is handled before the calendar match; keeping the match exhaustive without a
/// panic path.
fn unreachable_every() -> (Date, Date) {
    let d = Date::constant(1970, 1, 1);
    (d, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn daily_weekly_monthly_in_utc() {
        let now = ts("2026-11-22T15:30:00Z"); // a Sunday
        let anchor = ts("2020-01-01T00:00:00Z");
        let w = window(Period::Daily, "UTC", anchor, now).unwrap();
        assert_eq!(
            (w.start, w.end),
            (ts("2026-11-22T00:00:00Z"), ts("2026-11-23T00:00:00Z"))
        );
        let w = window(Period::Weekly, "UTC", anchor, now).unwrap();
        assert_eq!(
            (w.start, w.end),
            (ts("2026-11-16T00:00:00Z"), ts("2026-11-23T00:00:00Z"))
        );
        let w = window(Period::Monthly, "UTC", anchor, now).unwrap();
        assert_eq!(
            (w.start, w.end),
            (ts("2026-11-01T00:00:00Z"), ts("2026-12-01T00:00:00Z"))
        );
        let w = window(Period::Monthly, "UTC", anchor, ts("2026-12-31T23:59:59Z")).unwrap();
        assert_eq!(w.end, ts("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn calendar_periods_follow_the_time_zone_and_dst() {
        // 23:30 UTC on 21 Nov is already 22 Nov in Paris (UTC+1).
        let w = window(
            Period::Daily,
            "Europe/Paris",
            ts("2020-01-01T00:00:00Z"),
            ts("2026-11-21T23:30:00Z"),
        )
        .unwrap();
        assert_eq!(w.start, ts("2026-11-21T23:00:00Z"));
        // The day DST starts in Paris (29 Mar 2026) lasts 23 hours.
        let w = window(
            Period::Daily,
            "Europe/Paris",
            ts("2020-01-01T00:00:00Z"),
            ts("2026-03-29T12:00:00Z"),
        )
        .unwrap();
        assert_eq!(w.end.as_second() - w.start.as_second(), 23 * 3600);
        assert!(
            window(
                Period::Daily,
                "Mars/Olympus",
                ts("2020-01-01T00:00:00Z"),
                ts("2026-03-29T12:00:00Z")
            )
            .is_err()
        );
    }

    #[test]
    fn fixed_durations_count_from_the_anchor() {
        let anchor = ts("2026-11-20T06:00:00Z");
        let every_36h = Period::Every(36 * 3600 * 1000);
        let w = window(every_36h, "UTC", anchor, ts("2026-11-22T00:00:00Z")).unwrap();
        assert_eq!(
            (w.start, w.end),
            (ts("2026-11-21T18:00:00Z"), ts("2026-11-23T06:00:00Z"))
        );
        let w = window(every_36h, "UTC", anchor, anchor).unwrap();
        assert_eq!(w.start, anchor);
    }
}
