//! Session windows on the test driver: sessionization of clicks per user, with sessions
//! merging when a record bridges them (the merged-away sessions retracted as tombstones),
//! late records dropped, and suppressed final sessions.

use std::time::Duration;

use strom_streams::serde::{I64Serde, Serde, StringSerde};
use strom_streams::{
    Consumed, Grouped, Produced, SessionWindowedSerde, SessionWindows, StreamsBuilder,
    TopologyTestDriver, Windowed,
};

/// Clicks per user and session (5 ms of inactivity ends one, records accepted up to 20 ms
/// late), every update to "sessions", final sessions to "final-sessions".
fn sessionize() -> strom_streams::Topology {
    let builder = StreamsBuilder::new();
    let windows = SessionWindows::with_inactivity_gap_and_grace(
        Duration::from_millis(5),
        Duration::from_millis(20),
    );
    let sessions = builder
        .stream("clicks", Consumed::with(StringSerde, StringSerde))
        .group_by_key(Grouped::with(StringSerde, StringSerde))
        .windowed_by_session(windows)
        .count();
    let serdes = || Produced::with(SessionWindowedSerde::new(StringSerde), I64Serde);
    sessions.table().to_stream().to("sessions", serdes());
    sessions
        .suppress_until_window_closes()
        .to_stream()
        .to("final-sessions", serdes());
    builder.build()
}

/// Every record of `topic`: (user, start, end, count), `None` for a tombstone.
fn read(driver: &TopologyTestDriver, topic: &str) -> Vec<(String, i64, i64, Option<i64>)> {
    let output = driver.output_topic(topic, StringSerde, StringSerde);
    let serde = SessionWindowedSerde::new(StringSerde);
    let mut out = Vec::new();
    while let Some(r) = output.read_record() {
        let w: Windowed<String> = serde.deserialize(topic, r.key.as_deref()).unwrap();
        let count = r
            .value
            .map(|v| I64Serde.deserialize(topic, Some(&v)).unwrap());
        out.push((w.key, w.start, w.end, count));
    }
    out
}

#[test]
fn clicks_form_sessions_that_merge() {
    let driver = TopologyTestDriver::new(&sessionize());
    let clicks = driver.input_topic("clicks", StringSerde, StringSerde);
    for t in [0, 2, 20, 7, 15, 11] {
        clicks.pipe_input_at("a".to_owned(), "/page".to_owned(), t);
    }
    let a = |start, end, count: Option<i64>| ("a".to_owned(), start, end, count);
    assert_eq!(
        read(&driver, "sessions"),
        [
            a(0, 0, Some(1)),
            a(0, 0, None),
            a(0, 2, Some(2)),
            a(20, 20, Some(1)),
            a(0, 2, None),
            a(0, 7, Some(3)),
            a(20, 20, None),
            a(15, 20, Some(2)),
            // 11 is within 5 of both 7 and 15: the two sessions become one.
            a(0, 7, None),
            a(15, 20, None),
            a(0, 20, Some(6)),
        ]
    );
    // Nothing final yet: stream time (20) is not past the session's end, gap and grace.
    assert!(read(&driver, "final-sessions").is_empty());

    // User b at 50 moves stream time on: a's session is final; a click for a at 24 is too
    // late to extend it (24 < 50 - grace).
    clicks.pipe_input_at("b".to_owned(), "/page".to_owned(), 50);
    clicks.pipe_input_at("a".to_owned(), "/page".to_owned(), 24);
    assert_eq!(
        read(&driver, "sessions"),
        [("b".to_owned(), 50, 50, Some(1))]
    );
    assert_eq!(read(&driver, "final-sessions"), [a(0, 20, Some(6))]);
    assert!(driver.errors().is_empty(), "{:?}", driver.errors());
}

#[test]
fn session_keys_are_written_as_kafka_writes_them() {
    let serde = SessionWindowedSerde::new(StringSerde);
    let key = Windowed {
        key: "k".to_owned(),
        start: 1,
        end: 2,
    };
    let bytes = serde.serialize("t", &key).unwrap().unwrap();
    // The key, the end, the start (big-endian longs).
    let mut expected = b"k".to_vec();
    expected.extend_from_slice(&2i64.to_be_bytes());
    expected.extend_from_slice(&1i64.to_be_bytes());
    assert_eq!(&bytes[..], &expected[..]);
    assert_eq!(serde.deserialize("t", Some(&bytes)).unwrap(), key);
    assert!(serde.deserialize("t", Some(b"short")).is_err());
}
