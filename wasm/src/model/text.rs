//! The model's words: payload previews, durations, byte counts, and the label of an arrow.
//!
//! Pure functions, used by the model for the event log and by `render` and `dom` for the
//! canvas and the panels, so that the diagram, the log and the details say the same thing in
//! the same words.

use protocol::Payload;

use super::{Arrow, Fate};

/// A short quoted preview of a payload for labels and the log.
pub fn preview(payload: &Payload) -> String {
    const MAX: usize = 24;
    match (&payload.text, &payload.hex) {
        (Some(text), _) => {
            let clean: String = text.chars().map(|c| if c.is_control() { '·' } else { c }).collect();
            let mut short: String = clean.chars().take(MAX).collect();
            if clean.chars().count() > MAX || payload.truncated {
                short.push('…');
            }
            format!("\"{short}\"")
        }
        (None, Some(hex)) => {
            let mut short: String = hex.chars().take(MAX).collect();
            if hex.len() > MAX || payload.truncated {
                short.push('…');
            }
            format!("0x{short}")
        }
        (None, None) => "(bytes not shown)".to_owned(),
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
    let hex = protocol::to_hex(bytes);
    let pairs: Vec<&str> = hex.as_bytes().chunks(2).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    pairs.join(" ")
}

/// Microseconds as milliseconds with sensible precision: `0.31 ms`, `12.4 ms`, `250 ms`.
pub fn ms_text(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Milliseconds as seconds: `10`, `1.5`.
pub(super) fn secs(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    if ms.is_multiple_of(1000) { format!("{s:.0}") } else { format!("{s:.1}") }
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
    format!("cut to {} of {} bytes", thousands(kept), thousands(len))
}

/// `taken as the answer to #2, but it answers #1`.
pub fn misattributed_text(taken: u32, answers: u32) -> String {
    format!("taken as the answer to #{taken}, but it answers #{answers}")
}

impl Arrow {
    /// What the diagram prints on this arrow, and what the event log and tests read as its
    /// `data-label`: the [`headline`](Self::headline), then the [`note`](Self::note) if any.
    pub fn label(&self) -> String {
        match self.note() {
            Some(note) => format!("{} · {note}", self.headline()),
            None => self.headline(),
        }
    }

    /// The fate's word, the crowd member, the attempt, the bytes and the wait before a retry.
    pub fn headline(&self) -> String {
        let mut label = String::new();
        match self.fate {
            Fate::Late => label.push_str("LATE "),
            Fate::Duplicate => label.push_str("DUP "),
            Fate::Dropped => label.push_str("✕ DROPPED "),
            Fate::Vanished => label.push_str("∅ VANISHED "),
            Fate::NotSent => {
                label.push_str("⊘ NOT SENT ");
                if let Some(errno) = &self.errno {
                    label.push_str(&format!("({errno}) "));
                }
            }
            Fate::InFlight | Fate::Delivered => {}
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
        label.push_str(&preview(&self.payload));
        label.push_str(&format!(" {}B", self.len));
        if let Some(wait) = self.waited_ms {
            label.push_str(&format!(" · after {wait} ms"));
        }
        label
    }

    /// What the relay's names say that the bytes alone do not: the read cut the datagram, or
    /// the client took the reply as the answer to another attempt than the one it answers.
    pub fn note(&self) -> Option<String> {
        let notes: Vec<String> = [
            self.cut().map(|kept| cut_text(kept, self.len)),
            self.misattributed().map(|(taken, answers)| misattributed_text(taken, answers)),
        ]
        .into_iter()
        .flatten()
        .collect();
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
        assert_eq!(hex_dump(b"AB"), "41 42");
        assert_eq!(ms_text(310), "0.31 ms");
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
