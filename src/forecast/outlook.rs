//! Expected replies and returns of a draft's extra sends, from what past sends of the same
//! rules brought (the effectiveness outcomes the report records): a range, never a bare
//! point. Rules with no past sends have no expectation: the report says so.

use serde::Serialize;

use crate::store::DynStore;

use super::{Tally, Window};

/// What the draft's extra sends of one rule may bring.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expectation {
    pub rule: String,
    /// The draft's sends of this rule less the running rules'.
    pub extra_sends: i64,
    /// Past sends of the rule and how many were answered / followed by a return.
    pub past_sends: i64,
    pub past_replies: i64,
    pub past_returns: i64,
    /// 95 % ranges of the replies and returns the extra sends may bring.
    pub replies: (i64, i64),
    pub returns: (i64, i64),
}

/// Wilson's 95 % interval of a rate seen `k` times in `n`, scaled to `m` trials.
pub fn wilson(k: i64, n: i64, m: i64) -> (i64, i64) {
    if n <= 0 || m <= 0 {
        return (0, 0);
    }
    let (k, n) = (k as f64, n as f64);
    let z = 1.96f64;
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / denom;
    let lo = ((centre - half).max(0.0) * m as f64).floor() as i64;
    let hi = ((centre + half).min(1.0) * m as f64).ceil() as i64;
    (lo, hi)
}

/// The expectations of the rules whose sends the draft changes, where past outcomes exist.
pub async fn expect(
    live: &DynStore,
    current: &Tally,
    draft: &Tally,
    window: Window,
) -> anyhow::Result<Vec<Expectation>> {
    let before = current.per_rule();
    let after = draft.per_rule();
    let mut out = Vec::new();
    for (rule, c) in &after {
        let extra = c.sent() - before.get(rule).map_or(0, |b| b.sent());
        if rule.is_empty() || extra == 0 {
            continue;
        }
        // The report's counts since long before the window: every past send of the rule.
        let past = live
            .report_counts(window.from - 365 * super::DAY, Some(rule))
            .await?;
        let (sends, replies, returns) = past_outcomes(&past, rule);
        if sends == 0 {
            continue;
        }
        let m = extra.abs();
        let sign = extra.signum();
        let (rl, rh) = wilson(replies, sends, m);
        let (tl, th) = wilson(returns, sends, m);
        let range = |(lo, hi): (i64, i64)| if sign < 0 { (-hi, -lo) } else { (lo, hi) };
        out.push(Expectation {
            rule: rule.clone(),
            extra_sends: extra,
            past_sends: sends,
            past_replies: replies,
            past_returns: returns,
            replies: range((rl, rh)),
            returns: range((tl, th)),
        });
    }
    Ok(out)
}

/// Past sends of `rule` and how many of them were replied to, or followed by a return.
fn past_outcomes(c: &crate::store::report::Counts, rule: &str) -> (i64, i64, i64) {
    let sends = c
        .jobs
        .iter()
        .filter(|j| j.rule_id == rule && j.status == "sent")
        .map(|j| j.n)
        .sum();
    let kind = |k: &str| -> i64 {
        c.outcomes
            .iter()
            .filter(|o| o.rule_id == rule && o.kind == k)
            .map(|o| o.n)
            .sum()
    };
    (sends, kind("replied"), kind("came_back"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_holds_the_rate_and_widens_with_few_past_sends() {
        let (lo, hi) = wilson(30, 100, 1000);
        assert!(lo < 300 && 300 < hi, "{lo}..{hi}");
        let (lo2, hi2) = wilson(3, 10, 1000);
        assert!(hi2 - lo2 > hi - lo);
        assert_eq!(wilson(0, 0, 10), (0, 0));
    }
}
