//! Handoff reports from the database (the same on every instance, across restarts): time to
//! first human response (p50/p90), deadlines met vs missed, open handoffs by age.

use serde::Serialize;

use super::RESOLVED;
pub use zaloflow_store::handoff::HandoffTiming;

/// Age buckets of open handoffs: label and upper bound (ms, exclusive).
pub const AGE_BUCKETS: &[(&str, i64)] = &[
    ("lt_30m", 30 * 60_000),
    ("30m_1h", 3_600_000),
    ("1h_2h", 2 * 3_600_000),
    ("2h_8h", 8 * 3_600_000),
    ("gt_8h", i64::MAX),
];

#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub total: u64,
    pub open: u64,
    pub claimed: u64,
    pub resolved: u64,
    /// First human response by the deadline.
    pub deadlines_met: u64,
    /// Responded late, or not at all by now with the deadline past.
    pub deadlines_missed: u64,
    /// No response yet, deadline still ahead.
    pub deadlines_running: u64,
    pub first_response_p50_seconds: Option<f64>,
    pub first_response_p90_seconds: Option<f64>,
    /// Unresolved handoffs by time since they opened.
    pub open_by_age: Vec<AgeCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgeCount {
    /// `lt_30m`, `30m_1h`, `1h_2h`, `2h_8h` or `gt_8h`.
    #[schema(value_type = String, example = "lt_30m")]
    pub age: &'static str,
    pub count: u64,
}

/// The bucket label of an age.
pub fn age_bucket(age_ms: i64) -> &'static str {
    AGE_BUCKETS
        .iter()
        .find(|(_, upper)| age_ms < *upper)
        .map(|(l, _)| *l)
        .unwrap_or("gt_8h")
}

pub fn summarize(rows: &[HandoffTiming], now: i64) -> Summary {
    let mut s = Summary {
        open_by_age: AGE_BUCKETS
            .iter()
            .map(|(age, _)| AgeCount { age, count: 0 })
            .collect(),
        ..Default::default()
    };
    let mut response_ms: Vec<i64> = Vec::new();
    for r in rows {
        s.total += 1;
        match r.status.as_str() {
            super::OPEN => s.open += 1,
            super::CLAIMED => s.claimed += 1,
            _ => s.resolved += 1,
        }
        match r.responded_at {
            Some(t) => {
                response_ms.push((t - r.opened_at).max(0));
                if t <= r.deadline_at {
                    s.deadlines_met += 1;
                } else {
                    s.deadlines_missed += 1;
                }
            }
            None if now > r.deadline_at => s.deadlines_missed += 1,
            None => s.deadlines_running += 1,
        }
        if r.status != RESOLVED {
            let label = age_bucket(now - r.opened_at);
            if let Some(b) = s.open_by_age.iter_mut().find(|b| b.age == label) {
                b.count += 1;
            }
        }
    }
    response_ms.sort_unstable();
    s.first_response_p50_seconds = percentile(&response_ms, 50).map(|ms| ms as f64 / 1000.0);
    s.first_response_p90_seconds = percentile(&response_ms, 90).map(|ms| ms as f64 / 1000.0);
    s
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p as usize * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank.min(sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn t(status: &str, opened: i64, responded: Option<i64>) -> HandoffTiming {
        HandoffTiming {
            status: status.into(),
            opened_at: opened,
            deadline_at: opened + 120 * MIN,
            responded_at: responded,
        }
    }

    #[test]
    fn met_missed_percentiles_and_ages() {
        let now = 1000 * MIN;
        let rows = vec![
            t("resolved", 0, Some(10 * MIN)),
            t("resolved", 0, Some(20 * MIN)),
            t("claimed", 0, Some(30 * MIN)),
            t("resolved", 0, Some(200 * MIN)), // late
            t("open", now - 150 * MIN, None),  // missed, 2h–8h old
            t("open", now - 10 * MIN, None),   // running
        ];
        let s = summarize(&rows, now);
        assert_eq!((s.total, s.open, s.claimed, s.resolved), (6, 2, 1, 3));
        assert_eq!(s.deadlines_met, 3);
        assert_eq!(s.deadlines_missed, 2);
        assert_eq!(s.deadlines_running, 1);
        assert_eq!(s.first_response_p50_seconds, Some(20.0 * 60.0));
        assert_eq!(s.first_response_p90_seconds, Some(200.0 * 60.0));
        let age = |l: &str| s.open_by_age.iter().find(|b| b.age == l).unwrap().count;
        assert_eq!(age("lt_30m"), 1);
        assert_eq!(age("2h_8h"), 1);
        // The claimed one (opened long ago) is still open work.
        assert_eq!(age("gt_8h"), 1);
    }

    #[test]
    fn percentile_edges() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[5], 90), Some(5));
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50), Some(5));
        assert_eq!(percentile(&v, 90), Some(9));
        assert_eq!(percentile(&v, 100), Some(10));
    }
}
