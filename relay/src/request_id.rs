//! The request-ID format shared by the lossy server and the retrying client.
//!
//! A request that starts with `#ID ` (1 to 20 of `[A-Za-z0-9_-]`, then a space) gets an answer
//! that starts with the same `#ID `. The relay's retrying client writes attempt `a` of request
//! `n` as `#n-a `, so a reply says which attempt it answers.

use std::io::Write;

/// The longest request ID the lossy server echoes back, in characters.
pub const MAX_LEN: usize = 20;

/// The request ID of a datagram that starts with `#ID `, including the `#` and the space.
pub fn prefix(payload: &[u8]) -> Option<&[u8]> {
    let rest = payload.strip_prefix(b"#")?;
    let len = rest.iter().take(MAX_LEN + 1).position(|&b| b == b' ')?;
    let id = &rest[..len];
    let valid = !id.is_empty() && id.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    valid.then(|| &payload[..len + 2])
}

/// The ID of attempt `attempt` of request `id`, as events name it: `7-2`.
pub fn name(id: u64, attempt: u32) -> String {
    format!("{id}-{attempt}")
}

/// Writes attempt `attempt` of request `id` with its payload: `#7-2 payload`.
pub fn write(out: &mut Vec<u8>, id: u64, attempt: u32, payload: &[u8]) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "#{id}-{attempt} ");
    out.extend_from_slice(payload);
}

/// Which request and attempt a reply answers, from its `#n-a ` prefix.
pub fn parse(payload: &[u8]) -> Option<(u64, u32)> {
    let prefix = prefix(payload)?;
    let inner = std::str::from_utf8(&prefix[1..prefix.len() - 1]).ok()?;
    let (n, a) = inner.split_once('-')?;
    Some((n.parse().ok()?, a.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_found_and_bounded() {
        assert_eq!(prefix(b"#1-2 hi"), Some(&b"#1-2 "[..]));
        assert_eq!(prefix(b"#abc_Z x"), Some(&b"#abc_Z "[..]));
        assert_eq!(prefix(b"# x"), None, "an empty ID");
        assert_eq!(prefix(b"#a!b x"), None);
        assert_eq!(prefix(b"#1-2"), None, "no space");
        let longest = format!("#{} x", "a".repeat(MAX_LEN));
        assert!(prefix(longest.as_bytes()).is_some());
        let too_long = format!("#{} x", "a".repeat(MAX_LEN + 1));
        assert_eq!(prefix(too_long.as_bytes()), None);
    }

    #[test]
    fn what_is_written_parses_back() {
        let mut out = Vec::new();
        write(&mut out, 7, 2, b"ping");
        assert_eq!(out, b"#7-2 ping");
        assert_eq!(parse(&out), Some((7, 2)));
        assert_eq!(name(7, 2), "7-2");
        assert_eq!(parse(b"#x-1 ping"), None);
        assert_eq!(parse(b"#12 ping"), None);
    }
}
