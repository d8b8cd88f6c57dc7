//! A/B variants: which variant a contact gets (stable), and whether two variants differ.

pub use zaloflow_core::variant::{fnv1a, pick};

use super::{Comparison, OutcomeKind, VariantReport};

/// Below this many sends in either variant a comparison says `too_few`.
pub const MIN_SENDS: i64 = 30;
/// Two-sided significance level of the comparisons.
pub const ALPHA: f64 = 0.05;

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 for erf; error under 1.5e-7).
fn phi(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// Two-proportion z-test: successes `x1` of `n1` against `x2` of `n2`. Returns `(z, p)` with
/// the two-sided p-value; `None` when a sample is empty or both rates are 0 % or 100 %.
pub fn z_test(x1: i64, n1: i64, x2: i64, n2: i64) -> Option<(f64, f64)> {
    if n1 <= 0 || n2 <= 0 {
        return None;
    }
    let (x1, n1, x2, n2) = (x1 as f64, n1 as f64, x2 as f64, n2 as f64);
    let pooled = (x1 + x2) / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 || !se.is_finite() {
        return None;
    }
    let z = (x2 / n2 - x1 / n1) / se;
    let p = 2.0 * (1.0 - phi(z.abs()));
    Some((z, p.clamp(0.0, 1.0)))
}

/// Each variant against the first (the control), on every outcome either of them has.
pub fn compare(variants: &[VariantReport]) -> Vec<Comparison> {
    let mut out = Vec::new();
    let Some((control, rest)) = variants.split_first() else {
        return out;
    };
    for v in rest {
        for kind in [
            OutcomeKind::Seen,
            OutcomeKind::Replied,
            OutcomeKind::CameBack,
            OutcomeKind::Clicked,
        ] {
            let (a, b) = (&control.outcomes, &v.outcomes);
            if a.get(kind) == 0 && b.get(kind) == 0 {
                continue;
            }
            let test = z_test(a.get(kind), a.sent, b.get(kind), b.sent);
            let verdict = if a.sent < MIN_SENDS || b.sent < MIN_SENDS {
                "too_few"
            } else if test.is_some_and(|(_, p)| p < ALPHA) {
                "significant"
            } else {
                "not_significant"
            };
            out.push(Comparison {
                outcome: kind.as_str().into(),
                control: control.variant.clone(),
                variant: v.variant.clone(),
                control_rate: a.rate(kind).unwrap_or(0.0),
                variant_rate: b.rate(kind).unwrap_or(0.0),
                z: test.map(|(z, _)| z),
                p_value: test.map(|(_, p)| p),
                verdict: verdict.into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_vectors() {
        // From the FNV reference (http://www.isthe.com/chongo/tech/comp/fnv/).
        assert_eq!(fnv1a(&[""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&["a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(&["foobar"]), 0x8594_4171_f739_67e8);
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
    }

    #[test]
    fn picks_follow_the_weights() {
        assert_eq!(pick("r", "u", &[0, 0]), None);
        assert_eq!(pick("r", "u", &[0, 5]), Some(1));
        assert_eq!(pick("r", "u", &[7]), Some(0));
    }

    #[test]
    fn z_test_against_a_worked_example() {
        // 200/1000 vs 250/1000: pooled 0.225, se 0.018675, z = 2.677, p = 0.0074.
        let (z, p) = z_test(200, 1000, 250, 1000).unwrap();
        assert!((z - 2.677).abs() < 0.001, "{z}");
        assert!((p - 0.0074).abs() < 0.0002, "{p}");
        let (z, p) = z_test(10, 100, 10, 100).unwrap();
        assert_eq!(z, 0.0);
        assert!((p - 1.0).abs() < 1e-6);
        assert_eq!(z_test(0, 10, 0, 10), None);
        assert_eq!(z_test(1, 0, 0, 10), None);
    }
}
