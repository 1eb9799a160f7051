//! The twelve lessons, run against a real relay as `relay export-site` records them: each
//! recording shows what the student must see. (The page draws them; tests/it/ui_lessons.rs
//! checks that in Chromium.)

use protocol::lessons::lesson;
use serde_json::Value;

/// The events of a lesson's recording, batches unwrapped.
async fn events(slug: &str) -> Vec<Value> {
    let lesson = lesson(slug).unwrap_or_else(|| panic!("no lesson {slug}"));
    let messages = tokio::time::timeout(std::time::Duration::from_secs(30), relay::export::record(lesson))
        .await
        .expect("the lesson ends")
        .expect("the lesson runs");
    assert!(messages[0].starts_with(r#"{"type":"hello""#), "the hello comes first");
    let mut events = Vec::new();
    for message in &messages {
        let message: Value = serde_json::from_str(message).expect("JSON");
        match message["type"].as_str() {
            Some("event") => events.push(message),
            Some("batch") => events.extend(message["messages"].as_array().into_iter().flatten().cloned()),
            _ => {}
        }
    }
    events
}

fn of<'a>(events: &'a [Value], kind: &str, socket: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind && (socket.is_empty() || e["socket"] == socket)).collect()
}

#[tokio::test]
async fn no_listener_the_datagram_is_sent_and_vanishes() {
    let events = events("no-listener").await;
    let sent = of(&events, "client_send", "lonely");
    let vanished = of(&events, "client_vanished", "lonely");
    assert_eq!((sent.len(), vanished.len()), (1, 1), "{events:#?}");
    assert_eq!(sent[0]["dg"], vanished[0]["dg"]);
}

#[tokio::test]
async fn empty_a_zero_byte_datagram_and_its_zero_byte_echo() {
    let events = events("empty").await;
    assert_eq!(of(&events, "client_send", "empty")[0]["len"], 0);
    assert_eq!(of(&events, "client_recv", "empty")[0]["len"], 0);
}

#[tokio::test]
async fn boundaries_two_sends_arrive_as_two_datagrams() {
    let events = events("boundaries").await;
    let got: Vec<_> = of(&events, "client_recv", "words").iter().map(|e| e["text"].clone()).collect();
    assert_eq!(got, ["first", "second"]);
}

#[tokio::test]
async fn loss_retry_waits_100_200_400_800_ms_then_gives_up() {
    let events = events("loss-retry").await;
    let waits: Vec<_> = of(&events, "client_retry", "retry").iter().map(|e| e["delay_ms"].as_u64()).collect();
    assert_eq!(waits, [Some(100), Some(200), Some(400), Some(800)]);
    assert_eq!(of(&events, "client_giveup", "retry").len(), 1);
    assert_eq!(of(&events, "server_drop", "").len(), 5, "every attempt was dropped");
}

#[tokio::test]
async fn late_duplicate_ids_tell_late_from_duplicate_and_without_them_a_reply_is_mistaken() {
    let events = events("late-duplicate").await;
    let reasons: Vec<_> = of(&events, "client_duplicate", "ids")
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_owned(),
                e["req"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(reasons.contains(&("late".into(), "1-1".into())), "{reasons:?}");
    assert!(reasons.contains(&("duplicate".into(), "1-3".into())), "{reasons:?}");
    assert_eq!(of(&events, "client_recv", "ids")[0]["req"], "1-3", "the answer is attempt 3's");
    // Without IDs: the first reply is taken for the latest attempt, but the names say which
    // attempt it answers.
    let taken = of(&events, "client_recv", "no-ids")[0];
    let claimed = taken["attempt"].as_u64().expect("taken as an answer");
    let answer =
        events.iter().find(|e| e["kind"] == "server_send" && e["dg"] == taken["dg"]).expect("its send");
    let asked = events
        .iter()
        .find(|e| e["kind"] == "client_send" && e["dg"] == answer["reply_to"])
        .expect("its request");
    assert!(asked["attempt"].as_u64() < Some(claimed), "taken as #{claimed}, answers #{}", asked["attempt"]);
}

#[tokio::test]
async fn connected_refused_only_the_connected_socket_hears_and_only_the_unconnected_hears_a_stranger() {
    let events = events("connected-refused").await;
    assert_eq!(of(&events, "client_refused", "connected").len(), 1);
    assert!(of(&events, "client_refused", "unconnected").is_empty(), "unconnected sockets hear nothing");
    assert_eq!(of(&events, "client_vanished", "unconnected").len(), 1);
    assert_eq!(of(&events, "client_recv", "unconnected")[0]["text"], "a stranger says hi");
    assert!(of(&events, "client_recv", "connected").is_empty());
    assert_eq!(of(&events, "client_refused", "stranger-2").len(), 1, "the kernel refused the stranger");
}

#[tokio::test]
async fn heartbeat_eviction_the_quiet_client_goes_first_the_beating_one_only_once_it_stops() {
    let events = events("heartbeat-eviction").await;
    let local = |socket| of(&events, "client_open", socket)[0]["local"].clone();
    let (alive, quiet) = (local("alive"), local("quiet"));
    let evicted: Vec<_> = of(&events, "chat_evict", "").iter().map(|e| e["peer"].clone()).collect();
    assert_eq!(evicted, [quiet, alive.clone()], "{events:#?}");
    assert!(of(&events, "chat_heartbeat", "").iter().filter(|e| e["peer"] == alive).count() >= 3);
}

#[tokio::test]
async fn truncation_2000_bytes_sent_1024_kept() {
    let events = events("truncation").await;
    let got = of(&events, "client_recv", "small")[0];
    assert_eq!((got["len"].as_u64(), got["kept"].as_u64()), (Some(2000), Some(1024)));
}

#[tokio::test]
async fn reordering_arrivals_out_of_order() {
    let events = events("reordering").await;
    let read: Vec<_> = of(&events, "server_recv", "").iter().map(|e| e["text"].clone()).collect();
    assert_eq!(read, ["2", "1", "4", "3"]);
}

#[tokio::test]
async fn size_limit_65507_through_65508_refused_by_udp_a_fragment_loses_the_datagram() {
    let events = events("size-limit").await;
    assert_eq!(of(&events, "client_recv", "big")[0]["len"], 65_507);
    let failed = of(&events, "client_send_failed", "big");
    assert_eq!((failed[0]["len"].as_u64(), failed[0]["errno"].as_str()), (Some(65_508), Some("EMSGSIZE")));
    let lost = of(&events, "link_drop", "");
    assert_eq!((lost[0]["reason"].as_str(), lost[0]["fragments"].as_u64()), (Some("fragment"), Some(45)));
}

#[tokio::test]
async fn many_clients_a_crowd_of_100() {
    let events = events("many-clients").await;
    let members: std::collections::BTreeSet<_> =
        of(&events, "client_send", "class").iter().filter_map(|e| e["member"].as_u64()).collect();
    assert_eq!(members.len(), 100);
    assert_eq!(of(&events, "client_close", "class").len(), 100);
}

#[tokio::test]
async fn outside_clients_a_terminals_datagrams_appear() {
    let events = events("outside-clients").await;
    let read: Vec<_> = of(&events, "server_recv", "").iter().map(|e| e["text"].clone()).collect();
    assert_eq!(read, ["hello from nc\n", "and from python\n"]);
}
