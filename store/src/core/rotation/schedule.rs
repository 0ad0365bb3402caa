//! When a rotation runs: `hourly`, `daily`, `weekly`, `monthly` (at the start of the hour,
//! day, Sunday, month, UTC), `@every DURATION`, or a cron line (five fields, or six with
//! seconds; `@daily` and the other cron shorthands too), read by the `croner` crate.

use chrono::{DateTime, TimeDelta, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

use crate::logical::duration;

/// The shortest `@every` interval (a rotation calls a webhook four times).
pub const MIN_EVERY_SECS: i64 = 60;

/// A parsed schedule; its text is what the config stores.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(TimeDelta),
    Cron(Box<Cron>),
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let cron = match text {
            "" => return Err("schedule is empty".into()),
            "hourly" => "0 * * * *",
            "daily" => "0 0 * * *",
            "weekly" => "0 0 * * 0",
            "monthly" => "0 0 1 * *",
            other => other,
        };
        if let Some(every) = cron.strip_prefix("@every") {
            let secs = duration::parse_secs(every.trim())
                .ok_or_else(|| format!("@every: {:?} is not a duration", every.trim()))?;
            if secs < MIN_EVERY_SECS {
                return Err(format!(
                    "@every: the shortest interval is {MIN_EVERY_SECS}s"
                ));
            }
            return Ok(Schedule::Every(TimeDelta::seconds(secs)));
        }
        let parsed = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(cron)
            .map_err(|e| {
                format!(
                    "{text:?} is not a schedule: use hourly, daily, weekly, monthly, \
                     @every DURATION or a cron line ({e})"
                )
            })?;
        // A pattern that never matches (February 30th) is refused now, not at run time.
        parsed
            .find_next_occurrence(&Utc::now(), false)
            .map_err(|_| format!("{text:?} never matches"))?;
        Ok(Schedule::Cron(Box::new(parsed)))
    }

    /// The first run strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every(d) => t + *d,
            // Checked at parse time to match; a far-off failure falls back to a day.
            Schedule::Cron(c) => c
                .find_next_occurrence(&t, false)
                .unwrap_or(t + TimeDelta::days(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn named_schedules_run_at_the_start_of_their_period() {
        let t = at("2026-12-07T18:30:00Z"); // a Monday
        let next = |s: &str| Schedule::parse(s).unwrap().next_after(t);
        assert_eq!(next("hourly"), at("2026-12-07T19:00:00Z"));
        assert_eq!(next("daily"), at("2026-12-08T00:00:00Z"));
        assert_eq!(next("weekly"), at("2026-12-13T00:00:00Z"));
        assert_eq!(next("monthly"), at("2027-01-01T00:00:00Z"));
        assert_eq!(next("@every 90m"), at("2026-12-07T20:00:00Z"));
        assert_eq!(next("15 3 * * 1-5"), at("2026-12-08T03:15:00Z"));
        assert_eq!(next("@daily"), at("2026-12-08T00:00:00Z"));
        // Strictly after: a run at the boundary schedules the next period.
        assert_eq!(
            Schedule::parse("daily")
                .unwrap()
                .next_after(at("2026-12-08T00:00:00Z")),
            at("2026-12-09T00:00:00Z")
        );
    }

    #[test]
    fn bad_schedules_say_what_is_accepted() {
        for bad in [
            "",
            "sometimes",
            "@every",
            "@every 5s",
            "@every soon",
            "61 * * * *",
            "0 0 30 2 *",
        ] {
            let err = Schedule::parse(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
        assert!(Schedule::parse("sometimes")
            .unwrap_err()
            .contains("hourly, daily, weekly, monthly"));
    }
}
