//! Sequential-node suffixes: formatting, parsing and overflow-safe ordering.
//!
//! ZooKeeper appends the parent's child-create counter, a signed 32-bit integer printed as
//! `%010d`, so after 2^31 creates the suffix becomes negative (`-2147483648`). Plain string or
//! integer ordering then puts the newest node first (kazoo#730). [`sort_by_sequence`] orders a set
//! of siblings correctly across the wrap, as long as the live siblings span less than 2^31 creates.

/// Formats a sequence number as ZooKeeper does (`%010d`).
///
/// ```
/// use menagerie_core::sequence::format_sequence;
/// assert_eq!(format_sequence(42), "0000000042");
/// assert_eq!(format_sequence(-1), "-000000001");
/// ```
pub fn format_sequence(n: i32) -> String {
    format!("{n:010}")
}

/// Parses the trailing 10-character sequence suffix of a node name.
///
/// ```
/// use menagerie_core::sequence::parse_sequence;
/// assert_eq!(parse_sequence("lock-0000000007"), Some(7));
/// assert_eq!(parse_sequence("lock--000000001"), Some(-1));
/// assert_eq!(parse_sequence("x"), None);
/// ```
pub fn parse_sequence(name: &str) -> Option<i32> {
    if name.len() < 10 || !name.is_char_boundary(name.len() - 10) {
        return None;
    }
    let tail = &name[name.len() - 10..];
    let digits_ok = tail
        .bytes()
        .enumerate()
        .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'));
    if !digits_ok {
        return None;
    }
    match tail.parse::<i64>() {
        Ok(v) if v <= i32::MAX as i64 && v >= i32::MIN as i64 => Some(v as i32),
        // Beyond -999999999 `%010d` needs 11 characters ("-2147483648"): the '-' precedes the
        // 10 characters read. (A smaller negative such as "-1234567890" cannot be told apart from
        // a '-' separator followed by 1234567890; like ZooKeeper's clients, it reads as positive.)
        Ok(v) if name.as_bytes().get(name.len().wrapping_sub(11)) == Some(&b'-') => {
            i32::try_from(-v).ok()
        }
        _ => None,
    }
}

/// The name without its 10-character sequence suffix.
///
/// ```
/// use menagerie_core::sequence::strip_sequence;
/// assert_eq!(strip_sequence("lock-0000000007"), Some("lock-"));
/// ```
pub fn strip_sequence(name: &str) -> Option<&str> {
    parse_sequence(name).map(|n| &name[..name.len() - format_sequence(n).len()])
}

/// Maps sequence numbers to keys that order correctly across the i32 wrap.
///
/// When the set holds both very large positive numbers (≥ 2^30) and negative ones, the negatives
/// were issued after the wrap and are shifted up by 2^32. The result is a total order, so it is
/// safe to sort with.
///
/// ```
/// use menagerie_core::sequence::ordering_keys;
/// let keys = ordering_keys(&[i32::MAX, i32::MIN, 5]);
/// assert!(keys[0] < keys[1]);
/// ```
pub fn ordering_keys(seqs: &[i32]) -> Vec<i64> {
    const HIGH: i32 = 1 << 30;
    let wrapped = seqs.iter().any(|&s| s >= HIGH) && seqs.iter().any(|&s| s < -HIGH);
    seqs.iter()
        .map(|&s| {
            if wrapped && s < 0 {
                s as i64 + (1i64 << 32)
            } else {
                s as i64
            }
        })
        .collect()
}

/// Sorts sibling names by their sequence suffix, overflow-safe; names without a suffix go last,
/// in name order.
///
/// ```
/// use menagerie_core::sequence::sort_by_sequence;
/// let mut v = vec!["a-2147483647".to_string(), "b--2147483648".to_string(), "c-2147483646".to_string()];
/// sort_by_sequence(&mut v);
/// assert_eq!(v, ["c-2147483646", "a-2147483647", "b--2147483648"]);
/// ```
pub fn sort_by_sequence(names: &mut [String]) {
    let seqs: Vec<i32> = names.iter().filter_map(|n| parse_sequence(n)).collect();
    let keys = ordering_keys(&seqs);
    let mut key_of = std::collections::HashMap::new();
    for (s, k) in seqs.iter().zip(keys) {
        key_of.insert(*s, k);
    }
    names.sort_by(|a, b| {
        let ka = parse_sequence(a).map(|s| key_of[&s]);
        let kb = parse_sequence(b).map(|s| key_of[&s]);
        match (ka, kb) {
            (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.cmp(b),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_over_the_whole_range() {
        for n in [
            0,
            1,
            9,
            10,
            999_999_999,
            i32::MAX,
            -1,
            i32::MIN,
            -999_999_999,
        ] {
            let s = format!("p{}", format_sequence(n));
            assert_eq!(parse_sequence(&s), Some(n), "{s}");
        }
    }

    #[test]
    fn plain_order_without_wrap() {
        let mut v: Vec<String> = [3, 1, 2]
            .iter()
            .map(|n| format!("lock-{}", format_sequence(*n)))
            .collect();
        sort_by_sequence(&mut v);
        assert_eq!(v, ["lock-0000000001", "lock-0000000002", "lock-0000000003"]);
    }

    #[test]
    fn negative_numbers_without_wrap_sort_numerically() {
        let mut v = vec!["x-0000000001".to_string(), "x--000000005".to_string()];
        sort_by_sequence(&mut v);
        assert_eq!(v, ["x--000000005", "x-0000000001"]);
    }

    #[test]
    fn rejects_non_numeric_tails() {
        assert_eq!(parse_sequence("lock-00000000a7"), None);
        assert_eq!(parse_sequence("lock-0000-00007"), None);
        assert_eq!(parse_sequence("ééééééééééé"), None);
    }
}
