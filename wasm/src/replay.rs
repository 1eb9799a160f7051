//! Replaying a recording: the messages a page received (a saved session, `GET
//! /api/events.jsonl`, or a lesson of an exported site), fed again into the same model the
//! live page uses, at the pace they happened or faster.
//!
//! [`Player`] is a pure state machine in the sans-I/O shape of the relay's handlers: it is
//! handed the page's clock (`now_ms`) and answers which recorded messages are due
//! ([`Player::poll`]). Play, pause, step, seek and speed are its only inputs, so its tests
//! need no browser. The page's glue (`app/toolbox.rs`) reads the file, calls `poll` once a
//! frame and applies what it answers to the model.
//!
//! Recorded time is the relay's `t_us`. A `batch` line is unpacked into its messages, each at
//! its own `t_us`; a line without one (`hello`, `lagged`, `bye`, `error`) keeps the time of
//! the line before it, so the `hello` of a recording comes at its start.

use std::ops::Range;

use protocol::ServerMsg;

/// The speeds a replay offers: the pace things happened, and faster.
pub const SPEEDS: [u32; 3] = [1, 4, 16];

/// One recorded message and when it happened, in the relay's microseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub t_us: u64,
    pub msg: ServerMsg,
}

/// A recording read from JSON lines: its messages, and how many lines could not be read.
#[derive(Debug, Default)]
pub struct Recording {
    pub entries: Vec<Entry>,
    pub unreadable: usize,
}

/// Reads JSON lines, one message each, as the WebSocket sent them. Blank lines are skipped;
/// a line that is not a message is counted, never fatal (a saved file may have been cut).
pub fn parse_jsonl(text: &str) -> Recording {
    let mut recording = Recording::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match serde_json::from_str::<ServerMsg>(line) {
            Ok(msg) => recording.push(msg),
            Err(_) => recording.unreadable += 1,
        }
    }
    // A recording that does not start with a `hello` (a cut file, or events.jsonl read
    // without one) has its first time taken from its first event.
    let first = recording.entries.iter().map(|e| e.t_us).find(|t| *t > 0).unwrap_or(0);
    for entry in recording.entries.iter_mut().take_while(|e| e.t_us == 0) {
        entry.t_us = first;
    }
    recording
}

impl Recording {
    fn push(&mut self, msg: ServerMsg) {
        for msg in crate::model::unbatch(msg) {
            let before = self.entries.last().map_or(0, |e| e.t_us);
            // Times never go back, so "everything up to now" is a prefix of the list.
            let t_us = match &msg {
                ServerMsg::Event(event) => event.t_us.max(before),
                _ => before,
            };
            self.entries.push(Entry { t_us, msg });
        }
    }

    /// How many events the recording holds (not counting its hello and notices).
    pub fn events(&self) -> usize {
        self.entries.iter().filter(|e| matches!(e.msg, ServerMsg::Event(_))).count()
    }
}

/// The lessons an exported site recorded, from its `demo.json`
/// (`{"demo":true,"about":…,"lessons":["no-listener",…]}`); `None` if it is not one.
pub fn demo_lessons(json: &str) -> Option<Vec<String>> {
    if crate::inspect::json_field(json, "demo")? != "true" {
        return None;
    }
    let at = json.find("\"lessons\":[")? + 11;
    let list = json[at..].split(']').next()?;
    let slugs = list.split(',').map(|s| s.trim().trim_matches('"')).filter(|s| !s.is_empty());
    Some(slugs.map(str::to_owned).collect())
}

/// What to do to the model now: forget what was delivered (`reset`, after a seek back), then
/// apply `entries[deliver]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    pub reset: bool,
    pub deliver: Range<usize>,
}

/// Plays a recording against the page's clock.
#[derive(Debug)]
pub struct Player {
    entries: Vec<Entry>,
    /// The index of the next entry to deliver: all before it have been.
    next: usize,
    /// The recorded time shown, in microseconds since the recording's start, when the clock
    /// was last anchored (`anchor_ms`).
    pos_us: u64,
    /// The page time at which `pos_us` was true, while playing; `None` while paused.
    anchor_ms: Option<f64>,
    speed: u32,
    /// A seek went back: the model must start over before the next delivery.
    reset: bool,
}

impl Player {
    /// A paused player at the start of `entries`, at 1×.
    pub fn new(entries: Vec<Entry>) -> Self {
        Player { entries, next: 0, pos_us: 0, anchor_ms: None, speed: 1, reset: false }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn start_us(&self) -> u64 {
        self.entries.first().map_or(0, |e| e.t_us)
    }

    /// The recording's length, from its first message to its last.
    pub fn duration_us(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.t_us - self.start_us())
    }

    pub fn playing(&self) -> bool {
        self.anchor_ms.is_some()
    }

    pub fn speed(&self) -> u32 {
        self.speed
    }

    /// Where the replay is at `now_ms`, in microseconds since the recording's start.
    pub fn position_us(&self, now_ms: f64) -> u64 {
        let pos = match self.anchor_ms {
            Some(anchor) => {
                self.pos_us + ((now_ms - anchor).max(0.0) * 1000.0 * f64::from(self.speed)) as u64
            }
            None => self.pos_us,
        };
        pos.min(self.duration_us())
    }

    /// The relay's clock at the replay's position: what the diagram takes as "now".
    pub fn relay_us(&self, now_ms: f64) -> u64 {
        self.start_us() + self.position_us(now_ms)
    }

    /// Everything delivered, and the position at the end.
    pub fn finished(&self, now_ms: f64) -> bool {
        self.next >= self.entries.len() && self.position_us(now_ms) >= self.duration_us()
    }

    /// Plays from the current position; from the start again once finished.
    pub fn play(&mut self, now_ms: f64) {
        if self.finished(now_ms) {
            self.seek(0, now_ms);
        }
        self.pos_us = self.position_us(now_ms);
        self.anchor_ms = Some(now_ms);
    }

    pub fn pause(&mut self, now_ms: f64) {
        self.pos_us = self.position_us(now_ms);
        self.anchor_ms = None;
    }

    /// Changes the speed without a jump in position.
    pub fn set_speed(&mut self, speed: u32, now_ms: f64) {
        self.pos_us = self.position_us(now_ms);
        if self.anchor_ms.is_some() {
            self.anchor_ms = Some(now_ms);
        }
        self.speed = speed.max(1);
    }

    /// Moves to `pos_us` (clamped to the recording), playing on if it was playing. Going back
    /// asks the model to start over and has everything up to there delivered again.
    pub fn seek(&mut self, pos_us: u64, now_ms: f64) {
        let pos_us = pos_us.min(self.duration_us());
        let t = self.start_us() + pos_us;
        let keep = self.entries.partition_point(|e| e.t_us <= t);
        if keep < self.next {
            self.next = 0;
            self.reset = true;
        }
        self.pos_us = pos_us;
        if self.anchor_ms.is_some() {
            self.anchor_ms = Some(now_ms);
        }
    }

    /// Pauses and moves to the next event (with any notices before it), so one step draws
    /// one more event. At the end it stays there.
    pub fn step(&mut self, now_ms: f64) {
        self.pause(now_ms);
        let t = self.start_us() + self.pos_us;
        let after = self.entries.partition_point(|e| e.t_us <= t).max(self.next);
        let event = self.entries[after..].iter().position(|e| matches!(e.msg, ServerMsg::Event(_)));
        if let Some(i) = event {
            self.pos_us = self.entries[after + i].t_us - self.start_us();
        }
    }

    /// What is due at `now_ms`: the entries recorded up to the position that have not been
    /// delivered yet. They count as delivered once returned. At the end, play stops.
    pub fn poll(&mut self, now_ms: f64) -> Due {
        let t = self.relay_us(now_ms);
        let upto = self.entries.partition_point(|e| e.t_us <= t);
        let start = self.next;
        self.next = upto.max(start);
        let reset = std::mem::take(&mut self.reset);
        if self.playing() && self.finished(now_ms) {
            self.pause(now_ms);
        }
        Due { reset, deliver: start..self.next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hello, then events at 1.000, 1.010, 1.500 and 3.000 s of the relay's clock.
    fn recording() -> Recording {
        let hello = r#"{"type":"hello","version":1,"session":"s1","servers":{},"settings":{},"limits":{"sessions":1,"sockets_per_session":1,"sends_per_sec":1,"datagram_bytes":1,"bytes_per_sec":1,"crowd_clients":1,"heartbeat_min_ms":1,"pending_requests":1,"chat_clients":1,"preview_bytes":256}}"#;
        let event = |seq: u64, t_us: u64| {
            format!(
                r#"{{"type":"event","seq":{seq},"t_us":{t_us},"kind":"server_recv","server":"echo","dg":{seq},"from":"127.0.0.1:5000","to":"127.0.0.1:10004","len":1,"text":"x"}}"#
            )
        };
        let batch =
            format!(r#"{{"type":"batch","messages":[{},{}]}}"#, event(2, 1_010_000), event(3, 1_500_000));
        let text = [
            hello.to_owned(),
            event(1, 1_000_000),
            String::new(),
            batch,
            "not json".into(),
            event(4, 3_000_000),
        ]
        .join("\n");
        parse_jsonl(&text)
    }

    fn seqs(player: &Player, due: &Due) -> Vec<u64> {
        player.entries()[due.deliver.clone()]
            .iter()
            .map(|e| match &e.msg {
                ServerMsg::Event(ev) => ev.seq,
                _ => 0,
            })
            .collect()
    }

    #[test]
    fn a_recording_unpacks_batches_and_counts_what_it_cannot_read() {
        let r = recording();
        assert_eq!(r.unreadable, 1);
        assert_eq!(r.events(), 4);
        let times: Vec<u64> = r.entries.iter().map(|e| e.t_us).collect();
        // The hello takes the first event's time.
        assert_eq!(times, [1_000_000, 1_000_000, 1_010_000, 1_500_000, 3_000_000]);
    }

    #[test]
    fn play_delivers_at_the_recorded_pace() {
        let mut p = Player::new(recording().entries);
        assert_eq!(p.duration_us(), 2_000_000);
        // Paused at the start: the hello and the first event are due at once.
        let due = p.poll(0.0);
        assert_eq!(seqs(&p, &due), [0, 1]);
        p.play(100.0);
        assert_eq!(p.poll(105.0).deliver.len(), 0, "the second event is 10 ms in");
        assert_eq!(take(&mut p, 110.0), [2]);
        assert_eq!(take(&mut p, 600.0), [3]);
        assert!(!p.finished(600.0));
        assert_eq!(take(&mut p, 2_100.0), [4]);
        assert!(p.finished(2_100.0));
        assert!(!p.playing(), "play stops at the end");
        assert_eq!(p.position_us(9_000.0), 2_000_000);
    }

    #[test]
    fn faster_speeds_compress_time_without_a_jump() {
        let mut p = Player::new(recording().entries);
        p.poll(0.0);
        p.play(0.0);
        p.set_speed(16, 0.0);
        // 500 ms in at 16×: past the 1.5 s event, before the 3 s one... 16 × 31.25 ms = 500 ms.
        assert_eq!(take(&mut p, 31.25), [2, 3]);
        p.set_speed(4, 31.25);
        assert_eq!(p.position_us(31.25), 500_000);
        // 1.5 s more at 4× takes 375 ms.
        assert!(p.poll(406.0).deliver.is_empty());
        assert_eq!(take(&mut p, 406.25), [4]);
    }

    #[test]
    fn pause_holds_the_position_and_step_moves_one_event() {
        let mut p = Player::new(recording().entries);
        p.poll(0.0);
        p.step(0.0);
        assert_eq!(p.position_us(0.0), 10_000);
        assert_eq!(take(&mut p, 50.0), [2]);
        p.step(60.0);
        assert_eq!(take(&mut p, 70.0), [3]);
        p.step(80.0);
        p.step(90.0);
        assert_eq!(p.position_us(1_000.0), 2_000_000, "the last step stays at the end");
        assert_eq!(take(&mut p, 1_000.0), [4]);
        assert!(!p.playing());
    }

    #[test]
    fn seeking_back_starts_the_model_over_and_forward_catches_up() {
        let mut p = Player::new(recording().entries);
        p.seek(600_000, 0.0);
        let due = p.poll(0.0);
        assert!(!due.reset);
        assert_eq!(seqs(&p, &due), [0, 1, 2, 3]);
        p.seek(5_000, 10.0);
        let due = p.poll(10.0);
        assert!(due.reset, "going back forgets what was drawn");
        assert_eq!(seqs(&p, &due), [0, 1]);
        p.seek(u64::MAX, 20.0);
        let due = p.poll(20.0);
        assert!(!due.reset);
        assert_eq!(seqs(&p, &due), [2, 3, 4]);
        // Play at the end starts again from the beginning.
        p.play(30.0);
        let due = p.poll(30.0);
        assert!(due.reset);
        assert_eq!(seqs(&p, &due), [0, 1]);
    }

    #[test]
    fn demo_json_names_the_recorded_lessons() {
        let json =
            r#"{"about":"recordings of real traffic","demo":true,"lessons":["no-listener","truncation"]}"#;
        assert_eq!(demo_lessons(json), Some(vec!["no-listener".to_owned(), "truncation".to_owned()]));
        assert_eq!(demo_lessons(r#"{"demo":false,"lessons":[]}"#), None);
        assert_eq!(demo_lessons("<html>not found</html>"), None);
    }

    /// Polls and names what was due by its `seq` (0 for the hello).
    fn take(p: &mut Player, now_ms: f64) -> Vec<u64> {
        let due = p.poll(now_ms);
        seqs(p, &due)
    }
}
