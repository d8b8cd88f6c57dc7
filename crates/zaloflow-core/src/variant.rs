//! A/B variants: which variant of a send a contact gets, the same on every run and instance.

/// 64-bit FNV-1a: small, fixed across builds and platforms (unlike std's `RandomState`), so a
/// contact keeps its variant across restarts, instances and releases.
pub fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            // A separator no id contains, so ("ab", "c") and ("a", "bc") differ.
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The index of the variant `user_id` gets in rule `rule_id`, given the variants' weights:
/// the same for the same contact and rule every time, spread over contacts in proportion to
/// the weights. `None` when no weight is positive.
pub fn pick(rule_id: &str, user_id: &str, weights: &[u32]) -> Option<usize> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if total == 0 {
        return None;
    }
    // The high bits mix best; a 64-bit hash over a small total leaves no useful bias.
    let mut point = (fnv1a(&[rule_id, user_id]) >> 11) % total;
    for (i, &w) in weights.iter().enumerate() {
        let w = u64::from(w);
        if point < w {
            return Some(i);
        }
        point -= w;
    }
    None
}
