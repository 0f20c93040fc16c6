//! Windowed aggregation on the test driver: page views per one-minute tumbling window,
//! with records late within the grace period (counted) and beyond it (dropped), every
//! update and the suppressed final results; hopping and sliding windows.

use std::time::Duration;

use strom_streams::serde::{I64Serde, StringSerde};
use strom_streams::{
    Consumed, Grouped, Produced, SlidingWindows, StreamsBuilder, TimeWindows, TopologyTestDriver,
    WindowedSerde,
};

const MINUTE: i64 = 60_000;

/// Page views counted per page and minute, with `grace`; all updates go to "updates",
/// final results to "finals" as "page@start" keys.
fn page_views(windows: TimeWindows) -> strom_streams::Topology {
    let builder = StreamsBuilder::new();
    let counts = builder
        .stream("views", Consumed::with(StringSerde, StringSerde))
        .group_by(
            |_, page| page.clone(),
            Grouped::with(StringSerde, StringSerde),
        )
        .windowed_by(windows)
        .count();
    counts
        .table()
        .to_stream()
        .map(|w, count| (format!("{}@{}", w.key, w.start), count))
        .to("updates", Produced::with(StringSerde, I64Serde));
    counts.suppress_until_window_closes().to_stream().to(
        "finals",
        Produced::with(
            WindowedSerde::new(StringSerde, Duration::from_secs(60)),
            I64Serde,
        ),
    );
    builder.build()
}

#[test]
fn page_views_per_minute_with_late_records() {
    let windows = TimeWindows::of_size_with_grace(Duration::from_secs(60), Duration::from_secs(30));
    let driver = TopologyTestDriver::new(&page_views(windows));
    let views = driver.input_topic("views", StringSerde, StringSerde);
    let view = |page: &str, at: i64| views.pipe_input_at("user".into(), page.into(), at);
    view("/home", 10_000);
    view("/home", 50_000);
    view("/cart", 70_000);
    // Late for the first minute but within its grace (ends at 60 s + 30 s).
    view("/home", 80_000);
    view("/home", 55_000);
    // Stream time reaches 100 s: the first minute closes; a record for it is dropped.
    view("/cart", 100_000);
    view("/home", 20_000);
    // Stream time 160 s: the second minute closes too.
    view("/home", 160_000);

    let updates = driver.output_topic("updates", StringSerde, I64Serde);
    let expected: Vec<(String, i64)> = [
        ("/home@0", 1),
        ("/home@0", 2),
        ("/cart@60000", 1),
        ("/home@60000", 1),
        ("/home@0", 3),
        ("/cart@60000", 2),
        ("/home@120000", 1),
    ]
    .iter()
    .map(|(k, c)| ((*k).to_owned(), *c))
    .collect();
    assert_eq!(updates.read_key_values_to_list().unwrap(), expected);

    let finals = driver.output_topic(
        "finals",
        WindowedSerde::new(StringSerde, Duration::from_secs(60)),
        I64Serde,
    );
    let results: Vec<(String, i64, i64, i64)> = finals
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .map(|(w, c)| (w.key, w.start, w.end, c))
        .collect();
    // Once each, as windows close; within a window, by key (Kafka's time-ordered buffer).
    assert_eq!(
        results,
        [
            ("/home".to_owned(), 0, MINUTE, 3),
            ("/cart".to_owned(), MINUTE, 2 * MINUTE, 2),
            ("/home".to_owned(), MINUTE, 2 * MINUTE, 1),
        ]
    );
}

#[test]
fn hopping_windows_count_a_record_in_each_window_holding_it() {
    let windows = TimeWindows::of_size_with_grace(Duration::from_secs(60), Duration::ZERO)
        .advance_by(Duration::from_secs(30));
    let driver = TopologyTestDriver::new(&page_views(windows));
    let views = driver.input_topic("views", StringSerde, StringSerde);
    views.pipe_input_at("u".into(), "/a".into(), 45_000);
    let updates = driver.output_topic("updates", StringSerde, I64Serde);
    let keys: Vec<String> = updates
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["/a@0", "/a@30000"]);
}

#[test]
fn sliding_windows_hold_each_distinct_set_of_records_within_the_difference() {
    let builder = StreamsBuilder::new();
    builder
        .stream("events", Consumed::with(StringSerde, StringSerde))
        .group_by_key(Grouped::with(StringSerde, StringSerde))
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
            Duration::from_millis(10),
            Duration::ZERO,
        ))
        .count()
        .table()
        .to_stream()
        .map(|w, count| (format!("{}@{}..{}", w.key, w.start, w.end), count))
        .to("counts", Produced::with(StringSerde, I64Serde));
    let driver = TopologyTestDriver::new(&builder.build());
    let input = driver.input_topic("events", StringSerde, StringSerde);
    let s = |v: &str| v.to_owned();
    input.pipe_input_at(s("a"), s("x"), 0);
    input.pipe_input_at(s("a"), s("x"), 5);
    input.pipe_input_at(s("a"), s("x"), 30);
    // Late: its last possible window ([-2, 8] .. [8, 18]) closed at stream time 30.
    input.pipe_input_at(s("a"), s("x"), 8);
    input.pipe_input_at(s("a"), s("x"), 25);
    let counts = driver.output_topic("counts", StringSerde, I64Serde);
    assert_eq!(
        counts.read_key_values_to_list().unwrap(),
        [
            (s("a@-10..0"), 1),
            // 5's left window holds 0 and 5; 0's right window now holds 5.
            (s("a@-5..5"), 2),
            (s("a@1..11"), 1),
            (s("a@20..30"), 1),
            // 25 joins 30's left window and opens its right one; its own left window,
            // [15, 25], ended before stream time (30) and stays closed.
            (s("a@20..30"), 2),
            (s("a@26..36"), 1),
        ]
    );
}
