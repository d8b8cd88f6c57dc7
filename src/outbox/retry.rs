//! When to try again: a configurable schedule with jitter; nothing is retried forever.

use std::time::Duration;

use rand::Rng;

use crate::channels::SendError;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay before attempt 2, 3, …; after the last one the job is dead-lettered.
    pub schedule: Vec<Duration>,
    /// ± this fraction of each delay, at random (spreads retries out).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::parse("30s,2m,10m,30m,1h,3h,6h").expect("default schedule parses")
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    RetryAt(i64),
    /// Permanent failure or retries exhausted: the reason for the dead letter.
    Dead(String),
}

impl RetryPolicy {
    /// `"30s,2m,10m,1h"`: durations with unit s, m, h or d.
    pub fn parse(s: &str) -> Result<RetryPolicy, String> {
        let schedule = s
            .split(',')
            .map(|p| {
                parse_duration(p.trim())
                    .ok_or_else(|| format!("bad duration {p:?} in retry schedule"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if schedule.is_empty() {
            return Err("retry schedule is empty".into());
        }
        Ok(RetryPolicy {
            schedule,
            jitter: 0.2,
        })
    }

    /// `attempts` is how many attempts have been made, this one included.
    pub fn next(&self, attempts: i32, err: &SendError, now: i64) -> Next {
        if !err.is_retryable() {
            return Next::Dead(err.to_string());
        }
        let idx = (attempts.max(1) - 1) as usize;
        if idx >= self.schedule.len() {
            return Next::Dead(format!("gave up after {attempts} attempts: {err}"));
        }
        match err {
            SendError::NotBefore { at, .. } => {
                // Spread the morning's backlog over a minute.
                let spread = rand::rng().random_range(0..60_000);
                Next::RetryAt(at.timestamp_millis().max(now) + spread)
            }
            SendError::Transient { retry_after, .. } => {
                let base = self.schedule[idx].max(retry_after.unwrap_or_default());
                let ms = base.as_millis() as f64;
                let j = if self.jitter > 0.0 {
                    rand::rng().random_range(-self.jitter..self.jitter)
                } else {
                    0.0
                };
                Next::RetryAt(now + (ms * (1.0 + j)).max(0.0) as i64)
            }
            _ => Next::Dead(err.to_string()),
        }
    }
}

pub fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let unit = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    // Too long to count is no duration (it wrapped round to a short one).
    Some(Duration::from_secs(n.checked_mul(unit)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient(after: Option<Duration>) -> SendError {
        SendError::Transient {
            code: Some(-32),
            message: "rate".into(),
            retry_after: after,
        }
    }

    #[test]
    fn schedule_then_dead_letter() {
        let p = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::parse("1s,10s").unwrap()
        };
        assert_eq!(p.next(1, &transient(None), 0), Next::RetryAt(1000));
        assert_eq!(p.next(2, &transient(None), 0), Next::RetryAt(10_000));
        assert!(
            matches!(p.next(3, &transient(None), 0), Next::Dead(m) if m.contains("gave up after 3"))
        );
        // Retry-After wins when longer.
        assert_eq!(
            p.next(1, &transient(Some(Duration::from_secs(60))), 0),
            Next::RetryAt(60_000)
        );
    }

    #[test]
    fn permanent_is_dead_at_once_with_its_reason() {
        let p = RetryPolicy::default();
        let e = SendError::Permanent {
            code: Some(-213),
            message: "user is not a follower".into(),
        };
        assert!(
            matches!(p.next(1, &e, 0), Next::Dead(m) if m.contains("-213") && m.contains("follower"))
        );
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = RetryPolicy::parse("100s").unwrap();
        for _ in 0..200 {
            let Next::RetryAt(t) = p.next(1, &transient(None), 0) else {
                panic!()
            };
            assert!((80_000..=120_000).contains(&t), "{t}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("14đ"), None);
        assert_eq!(parse_duration("999999999999999999d"), None);
        assert!(RetryPolicy::parse("1s,,2s").is_err());
    }
}
