//! Reading commands: a text frame becomes a [`Command`], or a refusal that says precisely what
//! is wrong.

use protocol::{Command, ErrorCode, RetryParams, ServerName};

/// The longest command frame the relay reads, in bytes: room for a datagram of 65,535 bytes
/// (more than UDP carries, so UDP itself can refuse it) even written as JSON `\u00XX` escapes,
/// six characters a byte. A longer frame is refused with `limit` and the session goes on.
pub const MAX_COMMAND: usize = 6 * 65_535 + 4_096;

/// The longest frame the relay reads at all. A longer one cannot be read, so the connection is
/// closed with code 1009 ("message too big") and a reason the page shows.
pub const MAX_FRAME: usize = 1 << 20;

const _: () = assert!(MAX_COMMAND < MAX_FRAME, "a frame too long for a command is still read");

/// A command that could not be carried out.
#[derive(Debug)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

pub fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

/// A frame that is not a command, with what it named, for the error message.
#[derive(Debug)]
pub struct Unreadable {
    pub refusal: Refusal,
    pub op: Option<String>,
    pub socket: Option<String>,
}

/// Every `op`, for the message that lists them: one for each variant of [`Command`].
const OPS: [&str; 10] =
    ["open", "send", "heartbeat", "close", "subscribe", "configure", "crowd", "link", "fault", "reset"];

/// `unknown server "ehco": expected echo, upper, chat or lossy`: the names a field takes, each
/// place listing only those it takes (`nobody` is a target, not a server with a link).
pub fn unknown_server(name: &str, expected: &[ServerName]) -> String {
    let names: Vec<&str> = expected.iter().map(|name| name.as_str()).collect();
    let list = match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    format!("unknown server {name:?}: expected {list}")
}

/// Reads one text frame.
pub fn parse(text: &str) -> Result<Command, Unreadable> {
    let unreadable = |refusal, op: Option<&str>, socket: Option<&str>| Unreadable {
        refusal,
        op: op.map(str::to_owned),
        socket: socket.map(str::to_owned),
    };
    if text.len() > MAX_COMMAND {
        let message = format!(
            "a command is at most {MAX_COMMAND} bytes, and this frame has {}; nothing was done",
            text.len()
        );
        return Err(unreadable(refuse(ErrorCode::Limit, message), None, None));
    }
    // Nearly every frame is a well-formed command, and most are a `send`: parse it once,
    // straight into its type.
    if let Ok(send) = serde_json::from_str::<Send>(text) {
        return Ok(send.into());
    }
    if let Ok(command) = serde_json::from_str::<Command>(text) {
        return Ok(command);
    }
    // Otherwise look closer, to say precisely what is wrong.
    const LIKE: &str = r#"a command is one JSON object, like {"op":"open","socket":"a","server":"echo"}"#;
    let bad_json = |message: String| Err(unreadable(refuse(ErrorCode::BadJson, message), None, None));
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => return bad_json(format!("the frame is not a JSON object: {LIKE}")),
        Err(e) if e.is_eof() => return bad_json(format!("the frame's JSON is cut off: {LIKE}")),
        // What starts like JSON gets where it goes wrong; a bare word gets the shape to use.
        Err(e) if text.trim_start().starts_with(['{', '[']) => {
            return bad_json(format!("the frame is not valid JSON ({e}): {LIKE}"));
        }
        Err(_) => return bad_json(format!("the frame is not JSON: {LIKE}")),
    };
    let op = value.get("op").and_then(|op| op.as_str()).map(str::to_owned);
    let socket = value.get("socket").and_then(|s| s.as_str()).map(str::to_owned);
    let Some(op) = op.filter(|op| OPS.contains(&op.as_str())) else {
        let refusal = refuse(ErrorCode::UnknownOp, format!("\"op\" must be one of {}", OPS.join(", ")));
        return Err(unreadable(refusal, None, socket.as_deref()));
    };
    let bad_command = |message: String| {
        Err(unreadable(refuse(ErrorCode::BadCommand, message), Some(&op), socket.as_deref()))
    };
    if op == "reset" && value.as_object().is_some_and(|fields| fields.len() > 1) {
        // A well-formed reset was read above: only more fields than `op` bring it here.
        return bad_command(r#"reset takes no fields: send {"op":"reset"}"#.into());
    }
    // serde would say "unknown variant": name the field and the names it takes, which for
    // a link or a server's settings leave out `nobody`.
    if let Some(server) = value.get("server").and_then(|s| s.as_str())
        && server.parse::<ServerName>().is_err()
    {
        let expected: &[ServerName] =
            if matches!(op.as_str(), "open" | "crowd") { &ServerName::TARGETS } else { &ServerName::ALL };
        return bad_command(unknown_server(server, expected));
    }
    if let Some(dir) = value.get("dir").and_then(|d| d.as_str())
        && let Err(e) = dir.parse::<protocol::Dir>()
    {
        return bad_command(e);
    }
    serde_json::from_value::<Command>(value).or_else(|e| bad_command(format!("{op}: {e}")))
}

/// [`Command::Send`] on its own, read as a plain struct. The derived reader of an internally
/// tagged enum first copies the whole frame into a tree of its own (every key and value in an
/// allocation) to find its tag, then reads the variant from that tree; this reads the frame
/// once. Its fields are the variant's, with the same defaults, and anything else (another
/// `op`, an unknown field) fails it, for the enum's reader to take or to refuse as it does.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Send {
    // Read only to be checked: it must say `send`.
    #[allow(dead_code)]
    op: SendOp,
    socket: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    hex: Option<String>,
    #[serde(default)]
    retry: Option<protocol::RetrySpec>,
    #[serde(default)]
    request_id: bool,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum SendOp {
    Send,
}

impl From<Send> for Command {
    fn from(Send { op: _, socket, text, hex, retry, request_id }: Send) -> Self {
        Command::Send { socket, text, hex, retry, request_id }
    }
}

/// A datagram's bytes, from exactly one of `text` or `hex`.
pub fn payload(text: Option<String>, hex: Option<String>, op: &str) -> Result<Vec<u8>, Refusal> {
    match (text, hex) {
        (Some(text), None) => Ok(text.into_bytes()),
        (None, Some(hex)) => decode_hex(&hex),
        _ => Err(refuse(ErrorCode::BadCommand, format!("{op} needs exactly one of \"text\" or \"hex\""))),
    }
}

/// Checks retry parameters, so that no request retries faster than every 10 ms or forever.
pub fn check_retry(p: RetryParams) -> Result<RetryParams, Refusal> {
    // Each value out of range is named with its range (a NaN factor is in none).
    let wrong = if !(10..=60_000).contains(&p.initial_ms) {
        Some(format!("retry's initial_ms is from 10 to 60000 ms, got {}", p.initial_ms))
    } else if !(1.0..=10.0).contains(&p.factor) {
        Some(format!("retry's factor is from 1.0 to 10.0, got {}", p.factor))
    } else if p.give_up_ms > 600_000 {
        Some(format!("retry's give_up_ms is at most 600000 ms, got {}", p.give_up_ms))
    } else {
        None
    };
    if let Some(message) = wrong {
        return Err(refuse(ErrorCode::BadCommand, message));
    }
    if p.initial_ms > p.give_up_ms {
        return Err(refuse(
            ErrorCode::BadCommand,
            format!(
                "retry's initial_ms ({}) is longer than give_up_ms ({}): the first wait would already give up",
                p.initial_ms, p.give_up_ms
            ),
        ));
    }
    Ok(p)
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, Refusal> {
    let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let bad = || refuse(ErrorCode::BadCommand, "hex must be pairs of hex digits, like \"00ff\"");
    if !digits.len().is_multiple_of(2) {
        return Err(bad());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            u8::from_str_radix(text, 16).map_err(|_| bad())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain reader of `send` takes exactly the frames the enum's reader takes as a
    /// `send`, and reads them the same.
    #[test]
    fn a_send_reads_the_same_either_way() {
        let frames = [
            r#"{"op":"send","socket":"a","text":"hi"}"#,
            r#"{"socket":"a","op":"send","hex":"00ff"}"#,
            r#"{"op":"send","socket":"a","text":"x","retry":true,"request_id":true}"#,
            r#"{"op":"send","socket":"a","text":"x","retry":{"initial_ms":100,"give_up_ms":800}}"#,
            r#"{"op":"send","socket":"a","text":"x","retry":[100,2,800]}"#,
            r#"{"op":"send","socket":"a","text":"x","hex":"00"}"#,
            r#"{"op":"send","socket":"a"}"#,
            r#"{"op":"send","socket":"a","text":"x","extra":1}"#,
            r#"{"op":"send","socket":"a","socket":"b","text":"x"}"#,
            r#"{"op":"send","op":"send","socket":"a","text":"x"}"#,
            r#"{"op":"send","text":"x"}"#,
            r#"{"op":"Send","socket":"a","text":"x"}"#,
            r#"{"op":"close","socket":"a"}"#,
            r#"{"op":"send","socket":"a","text":null}"#,
            r#"{"op":"send","socket":"a","request_id":1}"#,
            r#"{"op":"send","socket":"a","text":"é\u0000\"q"}"#,
        ];
        let mut fast = 0;
        for frame in frames {
            let derived = serde_json::from_str::<Command>(frame).ok();
            if let Ok(send) = serde_json::from_str::<Send>(frame) {
                fast += 1;
                assert_eq!(Some(Command::from(send)), derived, "{frame}");
            }
        }
        assert_eq!(fast, 8, "the frames that are plain sends");
    }

    /// The list an `unknown_op` error gives names every op there is, `reset` included.
    #[test]
    fn every_op_is_listed() {
        let frames = [
            r#"{"op":"open","socket":"a","server":"echo"}"#,
            r#"{"op":"send","socket":"a","text":"x"}"#,
            r#"{"op":"heartbeat","socket":"a","every_ms":0}"#,
            r#"{"op":"close","socket":"a"}"#,
            r#"{"op":"subscribe","scope":"own"}"#,
            r#"{"op":"configure","server":"lossy","drop":0.1}"#,
            r#"{"op":"crowd","socket":"k","server":"echo","clients":2,"every_ms":0,"text":"x"}"#,
            r#"{"op":"link","server":"echo","dir":"in","loss":0.1}"#,
            r#"{"op":"fault","server":"echo","dir":"in","drop_next":1}"#,
            r#"{"op":"reset"}"#,
        ];
        let ops: Vec<&str> = frames.iter().map(|f| parse(f).expect(f).op()).collect();
        assert_eq!(ops, OPS);
    }

    #[test]
    fn an_unknown_server_is_told_the_names_that_place_takes() {
        assert_eq!(
            unknown_server("ehco", &ServerName::ALL),
            r#"unknown server "ehco": expected echo, upper, chat or lossy"#
        );
        let open = parse(r#"{"op":"open","socket":"a","server":"uper"}"#).expect_err("unknown server");
        assert_eq!(open.refusal.message, protocol::UnknownServer("uper".into()).to_string());
    }

    #[test]
    fn hex_decodes_pairs_and_refuses_the_rest() {
        assert_eq!(decode_hex("00ff 7A").ok(), Some(vec![0x00, 0xff, 0x7a]));
        assert_eq!(decode_hex("").ok(), Some(vec![]));
        assert!(decode_hex("abc").is_err());
        assert!(decode_hex("zz").is_err());
        assert!(decode_hex("é0").is_err());
    }

    #[test]
    fn retry_parameters_are_bounded() {
        assert!(check_retry(RetryParams::default()).is_ok());
        assert!(check_retry(RetryParams { initial_ms: 1, ..RetryParams::default() }).is_err());
        assert!(check_retry(RetryParams { factor: f64::NAN, ..RetryParams::default() }).is_err());
        assert!(check_retry(RetryParams { factor: 0.5, ..RetryParams::default() }).is_err());
        let backwards = RetryParams { initial_ms: 3_000, give_up_ms: 2_000, ..RetryParams::default() };
        let error = check_retry(backwards).expect_err("initial over give-up").message;
        assert!(error.contains("initial_ms") && error.contains("give_up_ms"), "{error}");
    }

    #[test]
    fn errors_say_what_is_wrong_and_name_what_they_can() {
        let e = parse("[1]").expect_err("not an object");
        assert_eq!(e.refusal.code, ErrorCode::BadJson);
        let e = parse(r#"{"op":"fly","socket":"a"}"#).expect_err("unknown op");
        assert_eq!((e.refusal.code, e.socket.as_deref()), (ErrorCode::UnknownOp, Some("a")));
        let e = parse(r#"{"op":"send","socket":"a","txt":"x"}"#).expect_err("bad field");
        assert_eq!((e.refusal.code, e.op.as_deref()), (ErrorCode::BadCommand, Some("send")));
        assert!(e.refusal.message.contains("txt"), "{}", e.refusal.message);
    }

    #[test]
    fn the_largest_datagram_fits_in_a_command_even_escaped_and_more_is_a_limit() {
        let escaped = "\\u0001".repeat(65_507);
        let frame = format!(r#"{{"op":"send","socket":"a","text":"{escaped}"}}"#);
        assert!(parse(&frame).is_ok());
        let e = parse(&" ".repeat(MAX_COMMAND + 1)).expect_err("too long");
        assert_eq!(e.refusal.code, ErrorCode::Limit);
    }
}
