//! Windowed analytics with strom-streams: page views per page and minute (tumbling
//! windows with 10 s of grace, one final result per window) and browsing sessions per
//! user (30 s of inactivity ends one).
//!
//! ```sh
//! cargo run -p strom-examples --bin page-views                   # on an embedded broker
//! cargo run -p strom-examples --bin page-views -- 127.0.0.1:9092  # on a cluster
//! ```
//!
//! It writes page views (key: user, value: page) with timestamps of its own, including one
//! late view within the grace period (counted) and one beyond it (dropped), runs the
//! topology as application `page-views`, and prints the final count of each window and
//! every session update.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use strom_examples::{text, Cluster};
use strom_streams::serde::{I64Serde, Serde, StringSerde};
use strom_streams::{
    Consumed, Grouped, KafkaStreams, Produced, SessionWindowedSerde, SessionWindows,
    StreamsBuilder, StreamsConfig, TimeWindows, Topology, WindowedSerde,
};

/// 2026-01-01T00:00:00Z: the views' first minute.
const T0: i64 = 1_767_225_600_000;
const SECOND: i64 = 1_000;

/// (user, page, timestamp)
const VIEWS: [(&str, &str, i64); 9] = [
    ("ann", "/home", T0 + SECOND),
    ("bob", "/home", T0 + 20 * SECOND),
    ("ann", "/cart", T0 + 30 * SECOND),
    ("bob", "/home", T0 + 65 * SECOND),
    // Late for the first minute, but within its 10 s of grace: counted.
    ("cat", "/home", T0 + 50 * SECOND),
    ("ann", "/cart", T0 + 75 * SECOND),
    // Beyond the grace period (the first minute closed at 1:10): dropped.
    ("cat", "/home", T0 + 40 * SECOND),
    ("bob", "/cart", T0 + 100 * SECOND),
    // Moves time on, so that the second minute closes.
    ("dan", "/home", T0 + 200 * SECOND),
];

fn page_views() -> Topology {
    let builder = StreamsBuilder::new();
    let views = builder.stream("page-views", Consumed::with(StringSerde, StringSerde));
    let minute = TimeWindows::of_size_with_grace(Duration::from_secs(60), Duration::from_secs(10));
    views
        .group_by(
            |_, page| page.clone(),
            Grouped::with(StringSerde, StringSerde),
        )
        .windowed_by(minute)
        .count()
        .suppress_until_window_closes()
        .to_stream()
        .to(
            "views-per-minute",
            Produced::with(
                WindowedSerde::new(StringSerde, Duration::from_secs(60)),
                I64Serde,
            ),
        );
    let sessions = SessionWindows::with_inactivity_gap_and_grace(
        Duration::from_secs(30),
        Duration::from_secs(10),
    );
    views
        .group_by_key(Grouped::with(StringSerde, StringSerde))
        .windowed_by_session(sessions)
        .count()
        .table()
        .to_stream()
        .to(
            "sessions",
            Produced::with(SessionWindowedSerde::new(StringSerde), I64Serde),
        );
    builder.build()
}

/// Seconds since T0, for printing.
fn at(timestamp: i64) -> String {
    format!("{}s", (timestamp - T0) / SECOND)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = Cluster::from_args().await?;
    cluster
        .create_topics(&["page-views", "views-per-minute", "sessions"])
        .await?;
    cluster.write("page-views", &VIEWS).await?;
    println!("{} page views written to `page-views`", VIEWS.len());
    println!("{}", page_views().describe());
    let streams = KafkaStreams::start(
        page_views(),
        StreamsConfig::new("page-views", cluster.config.clone()).commit_interval_ms(100),
    )?;

    // Finals: /home and /cart of the first two minutes; /home of the third stays open.
    let windows = WindowedSerde::new(StringSerde, Duration::from_secs(60));
    for r in cluster.read("views-per-minute", 4).await? {
        let window = windows.deserialize("views-per-minute", r.key.as_deref())?;
        let count = I64Serde.deserialize("views-per-minute", r.value.as_deref())?;
        println!(
            "window {:>5} [{}, {}): {count} views",
            window.key,
            at(window.start),
            at(window.end)
        );
    }
    // Session updates: a merged-away session is a tombstone.
    let serde = SessionWindowedSerde::new(StringSerde);
    for r in cluster.read("sessions", 8).await? {
        let session = serde.deserialize("sessions", r.key.as_deref())?;
        let views = match r.value.as_deref() {
            Some(v) => format!("{} views", I64Serde.deserialize("sessions", Some(v))?),
            None => text(None),
        };
        println!(
            "session {} [{}, {}]: {views}",
            session.key,
            at(session.start),
            at(session.end)
        );
    }
    tokio::task::spawn_blocking(move || streams.close()).await??;
    cluster.shutdown().await
}
