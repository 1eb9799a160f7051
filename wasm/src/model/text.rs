//! The model's words: payload previews, durations, byte counts, and the label of an arrow.
//!
//! Pure functions, used by the model for the event log and by `render` and `dom` for the
//! canvas and the panels, so that the diagram, the log and the details say the same thing in
//! the same words. The words themselves are in the language tables (`crate::text`), by key.

use protocol::{HoldReason, LinkDropReason, LinkSettings, Links, Payload};

use super::{Arrow, Fate};
use crate::text::{fill, word};

/// A short quoted preview of a payload for labels and the log.
pub fn preview(payload: &Payload) -> String {
    preview_of(payload, 40)
}

/// A quoted preview of a payload's first `max` characters (hex digits for binary), with `…`
/// when there is more.
pub fn preview_of(payload: &Payload, max: usize) -> String {
    match (&payload.text, &payload.hex) {
        (Some(text), _) => {
            let clean: String = text.chars().map(|c| if c.is_control() { '·' } else { c }).collect();
            let mut short: String = clean.chars().take(max).collect();
            if clean.chars().count() > max || payload.truncated {
                short.push('…');
            }
            format!("\"{short}\"")
        }
        (None, Some(hex)) => {
            let mut short: String = hex.chars().take(max).collect();
            if hex.len() > max || payload.truncated {
                short.push('…');
            }
            format!("0x{short}")
        }
        (None, None) => word("bytes-not-shown").to_owned(),
    }
}

/// The payload's previewed bytes.
pub fn payload_bytes(payload: &Payload) -> Vec<u8> {
    match (&payload.text, &payload.hex) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(hex)) => hex
            .as_bytes()
            .chunks(2)
            .filter_map(|pair| std::str::from_utf8(pair).ok().and_then(|p| u8::from_str_radix(p, 16).ok()))
            .collect(),
        (None, None) => Vec::new(),
    }
}

/// Bytes as spaced hex pairs, as a hex dump shows them.
pub fn hex_dump(bytes: &[u8]) -> String {
    let mut dump = String::with_capacity(bytes.len() * 3);
    for (i, digit) in protocol::to_hex(bytes).chars().enumerate() {
        if i > 0 && i % 2 == 0 {
            dump.push(' ');
        }
        dump.push(digit);
    }
    dump
}

/// `x` with `decimals` digits after the point, rounded half away from zero: `fixed(2.345, 1)`
/// is `2.3`. Written with integers because core's float formatting (Grisu and Dragon4) costs
/// the page about 13 KB of wasm, and the page only ever needs a few fixed decimals.
pub fn fixed(x: f64, decimals: u32) -> String {
    if !x.is_finite() {
        return "–".to_owned();
    }
    let scale = 10u64.pow(decimals.min(9));
    let scaled = (x.abs() * scale as f64).round();
    let n = if scaled >= u64::MAX as f64 { u64::MAX } else { scaled as u64 };
    let sign = if x < 0.0 && n > 0 { "-" } else { "" };
    let (whole, frac) = (n / scale, n % scale);
    if decimals == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{frac:0width$}", width = decimals.min(9) as usize)
    }
}

/// `x` in as few digits as it needs, up to six decimals: `0.3`, `1`, `0.125`.
pub fn short(x: f64) -> String {
    let text = fixed(x, 6);
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

/// A number as people type it in a form: `0.3`, `2`, `.5`, `-1.25`, `1e3`. Read with integers
/// and one division because core's float parser carries a 10 KB table of powers of five into
/// the page; for what a form holds (a few digits) the result is the same, correctly rounded:
/// the digits and the power of ten are exact, and one division rounds once.
pub fn decimal(text: &str) -> Option<f64> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (number, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let mut digits = 0u64;
    let mut scale = exponent;
    for (i, b) in whole.bytes().chain(frac.bytes()).enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        // Past 19 digits the rest only adds to the power of ten.
        if digits < u64::MAX / 10 - 9 {
            digits = digits * 10 + u64::from(b - b'0');
            if i >= whole.len() {
                scale -= 1;
            }
        } else if i < whole.len() {
            scale += 1;
        }
    }
    let ten = 10f64.powi(scale.unsigned_abs().min(400) as i32);
    let value = if scale < 0 { digits as f64 / ten } else { digits as f64 * ten };
    Some(if negative { -value } else { value })
}

/// Microseconds as milliseconds with sensible precision: `0.31 ms`, `12.4 ms`, `250 ms`; under
/// 10 µs, where two decimals of a millisecond would say `0.00`, in microseconds: `4 µs`.
pub fn ms_text(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if us < 10 {
        format!("{us} µs")
    } else if ms < 1.0 {
        format!("{} ms", fixed(ms, 2))
    } else if ms < 100.0 {
        format!("{} ms", fixed(ms, 1))
    } else {
        format!("{} ms", fixed(ms, 0))
    }
}

/// Milliseconds as seconds: `10`, `1.5`.
pub(super) fn secs(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    if ms.is_multiple_of(1000) { fixed(s, 0) } else { fixed(s, 1) }
}

/// A count with thousands separators, as people write byte counts: `1,024`, `65,507`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `cut to 1,024 of 2,000 bytes`: what a read with a small buffer kept of a datagram.
pub fn cut_text(kept: usize, len: usize) -> String {
    fill("cut", &[&thousands(kept), &thousands(len)])
}

/// A probability as a percentage: `30%`, `12.5%`.
fn percent(p: f64) -> String {
    let pct = p * 100.0;
    if (pct - pct.round()).abs() < 1e-9 {
        format!("{}%", fixed(pct, 0))
    } else {
        format!("{}%", fixed(pct, 1))
    }
}

/// One direction's settings in words, for the log and the panel: `loss 30% · delay 100 ms`,
/// or `perfect` when every setting is off.
pub fn link_summary(s: &LinkSettings) -> String {
    let parts = link_parts(s, false);
    if parts.is_empty() { word("link-perfect").to_owned() } else { parts.join(" · ") }
}

/// Both directions in a few characters, for under a server's name in the diagram:
/// `in: loss 30% | out: +100 ms`. `None` while both are perfect.
pub fn link_short(links: &Links) -> Option<String> {
    let mut sides = Vec::new();
    for (dir, s) in [("link-in", &links.inbound), ("link-out", &links.outbound)] {
        if !s.is_off() {
            sides.push(format!("{}: {}", word(dir), link_parts(s, true).join(" ")));
        }
    }
    (!sides.is_empty()).then(|| sides.join(" | "))
}

/// The settings that are on, each in a word or two; `short` for the diagram's header.
fn link_parts(s: &LinkSettings, short: bool) -> Vec<String> {
    let mut parts = Vec::new();
    let dup = if short { "link-dup" } else { "link-duplicate" };
    for (name, p) in [("link-loss", s.loss), (dup, s.duplicate), ("link-reorder", s.reorder)] {
        if p > 0.0 {
            parts.push(format!("{} {}", word(name), percent(p)));
        }
    }
    match (short, s.delay_ms, s.jitter_ms) {
        (true, 0, 0) => {}
        (true, d, 0) => parts.push(format!("+{d} ms")),
        (true, d, j) => parts.push(format!("+{d}±{j} ms")),
        (false, d, j) => {
            if d > 0 {
                parts.push(fill("link-delay", &[&d]));
            }
            if j > 0 {
                parts.push(fill("link-jitter", &[&j]));
            }
        }
    }
    if let Some(mtu) = s.mtu {
        parts.push(if short {
            format!("mtu {mtu}")
        } else {
            format!("mtu {} B", thousands(usize::from(mtu)))
        });
    }
    parts
}

/// A close code with its name: `code 1009, message too big`.
pub fn close_code_text(code: u16) -> String {
    let name = match code {
        1000 => word("close-1000"),
        1001 => word("close-1001"),
        1008 => word("close-1008"),
        1009 => word("close-1009"),
        1011 => word("close-1011"),
        _ => "",
    };
    format!("{}{name}", fill("close-code", &[&code]))
}

/// What to tell the user when the relay closes the WebSocket with `code` and `reason`, or
/// `None` when the close says nothing more than "gone" (the reconnect banner covers that).
pub(super) fn close_text(code: u16, reason: &str) -> Option<String> {
    let reason = reason.trim();
    if reason.is_empty() && matches!(code, 1000 | 1001 | 1005 | 1006) {
        return None;
    }
    let code = close_code_text(code);
    Some(if reason.is_empty() { fill("closed", &[&code]) } else { fill("closed-why", &[&code, &reason]) })
}

/// `taken as the answer to #2, but it answers #1`.
pub fn misattributed_text(taken: u32, answers: u32) -> String {
    fill("misattributed", &[&taken, &answers])
}

impl Arrow {
    /// What the diagram prints on this arrow, and what the event log and tests read as its
    /// `data-label`: the [`headline`](Self::headline), then the [`note`](Self::note) if any.
    pub fn label(&self) -> String {
        let mut label = self.headline();
        for note in [self.note(), self.link_note()].into_iter().flatten() {
            label.push_str(" · ");
            label.push_str(&note);
        }
        label
    }

    /// The fate's word, the crowd member, the attempt, the bytes and the wait before a retry.
    pub fn headline(&self) -> String {
        self.headline_previewing(40)
    }

    /// [`Arrow::headline`] with at most `chars` characters of the payload: for a label that
    /// has less room than the words.
    pub fn headline_previewing(&self, chars: usize) -> String {
        let mut label = String::new();
        match self.fate {
            Fate::Late => label.push_str("LATE "),
            Fate::Duplicate => label.push_str("DUP "),
            Fate::Dropped => label.push_str(word("fate-dropped")),
            Fate::Vanished => label.push_str(word("fate-vanished")),
            Fate::NotSent => {
                label.push_str(word("fate-not-sent"));
                if let Some(errno) = &self.errno {
                    label.push_str(&format!("({errno}) "));
                }
            }
            Fate::LostIn | Fate::LostOut => label.push_str(word("fate-lost")),
            Fate::InFlight | Fate::Delivered => {}
        }
        if self.copy_of().is_some() {
            label.push_str(word("fate-copy"));
        }
        if self.out_of_order {
            label.push_str(word("fate-out-of-order"));
        }
        if let Some(m) = self.member {
            label.push_str(&format!("[{m}] "));
        }
        // A reply taken for the wrong attempt is not numbered with the mistake: its note says it.
        if self.misattributed().is_none()
            && let Some(a) = self.attempt.filter(|a| *a > 1 || self.waited_ms.is_some())
        {
            label.push_str(&format!("#{a} "));
        }
        label.push_str(&preview_of(&self.payload, chars));
        label.push_str(&format!(" {}B", self.len));
        if let Some(wait) = self.waited_ms {
            label.push_str(&fill("label-after", &[&wait]));
        }
        label
    }

    /// What the relay's names say that the bytes alone do not: the read cut the datagram, the
    /// client took the reply as the answer to another attempt than the one it answers, or the
    /// server answered the link's copy of the request.
    pub fn note(&self) -> Option<String> {
        let notes: Vec<String> = [
            self.cut().map(|kept| cut_text(kept, self.len)),
            self.misattributed().map(|(taken, answers)| misattributed_text(taken, answers)),
            self.answers_copy.then(|| word("answers-copy").to_owned()),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!notes.is_empty()).then(|| notes.join(" · "))
    }

    /// What the link did, in a few words: `on the way back`, `fragment 2 of 3 lost, on the way
    /// there`, `held 200 ms`, `reordered: held 3.1 ms`. A copy says so in its headline.
    pub fn link_note(&self) -> Option<String> {
        let link = self.link.as_ref()?;
        let way = super::wire::there_or_back(link.dir);
        let mut notes = Vec::new();
        if let Some(loss) = &link.lost {
            notes.push(match (loss.reason, loss.fragment) {
                (LinkDropReason::Fragment, Some((i, n))) => fill("note-fragment", &[&i, &n, &way]),
                (LinkDropReason::Fault, _) => fill("note-fault", &[&way]),
                _ => way.to_owned(),
            });
        }
        if let Some(held) = &link.held {
            let done = held.held_us.is_some();
            notes.push(match (held.reason, held.hold_ms, held.held_us) {
                (HoldReason::Reorder, _, Some(us)) => fill("note-reordered", &[&ms_text(us)]),
                (HoldReason::Reorder, _, None) => word("note-to-reorder").to_owned(),
                (reason, Some(ms), _) => {
                    let verb = if done { "note-held" } else { "note-holding" };
                    let fault = if reason == HoldReason::Fault { word("note-fault-tag") } else { "" };
                    format!("{}{fault}", fill(verb, &[&format!("{ms} ms")]))
                }
                (_, None, Some(us)) => fill("note-held", &[&ms_text(us)]),
                (_, None, None) => word("note-holding-still").to_owned(),
            });
        }
        (!notes.is_empty()).then(|| notes.join(" · "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_and_hex_dumps() {
        assert_eq!(preview(&Payload::preview(b"hi\n")), "\"hi·\"");
        assert_eq!(preview(&Payload::preview(&[0, 255])), "0x00ff");
        assert_eq!(payload_bytes(&Payload::preview(&[0, 255])), [0, 255]);
        let long = Payload::preview(&[b'x'; 100]);
        assert_eq!(preview(&long), format!("\"{}…\"", "x".repeat(40)));
        assert_eq!(preview_of(&long, 12), format!("\"{}…\"", "x".repeat(12)));
        assert_eq!(preview_of(&Payload::preview(b"short"), 12), "\"short\"", "no … when all of it is shown");
        assert_eq!(hex_dump(b"AB"), "41 42");
        assert_eq!(ms_text(310), "0.31 ms");
        assert_eq!(ms_text(10), "0.01 ms");
        assert_eq!(ms_text(4), "4 µs", "not 0.00 ms");
        assert_eq!(ms_text(0), "0 µs");
        assert_eq!(ms_text(250_000), "250 ms");
    }

    #[test]
    fn byte_counts_have_thousands_separators() {
        let counts: Vec<String> = [0, 7, 999, 1_000, 1_024, 65_507, 1_234_567].map(thousands).into();
        assert_eq!(counts, ["0", "7", "999", "1,000", "1,024", "65,507", "1,234,567"]);
        assert_eq!(cut_text(1_024, 2_000), "cut to 1,024 of 2,000 bytes");
        assert_eq!(misattributed_text(2, 1), "taken as the answer to #2, but it answers #1");
    }
}
