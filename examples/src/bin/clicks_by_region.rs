//! Joins with strom-streams: a click stream joined with a user table (each click gets its
//! user's region), then clicks counted per region (a new key, so through a repartition
//! topic).
//!
//! ```sh
//! cargo run -p strom-examples --bin clicks-by-region                   # embedded broker
//! cargo run -p strom-examples --bin clicks-by-region -- 127.0.0.1:9092  # on a cluster
//! ```
//!
//! It writes users (key: user, value: region) and then clicks (key: user, value: page),
//! runs the topology as application `clicks-by-region`, and prints the enriched clicks and
//! the running count per region. Clicks of users the table does not know are dropped by
//! the inner join.
#![allow(clippy::print_stdout)]

use strom_examples::{text, Cluster};
use strom_streams::serde::{I64Serde, Serde, StringSerde};
use strom_streams::{
    Consumed, Grouped, KafkaStreams, Produced, StreamsBuilder, StreamsConfig, Topology,
};

const T0: i64 = 1_767_225_600_000;

const USERS: [(&str, &str, i64); 2] = [("ann", "europe", T0), ("bob", "asia", T0 + 1)];

const CLICKS: [(&str, &str, i64); 5] = [
    ("ann", "/home", T0 + 10),
    ("bob", "/home", T0 + 11),
    ("ann", "/cart", T0 + 12),
    // Nobody the table knows: no region, no output.
    ("eve", "/home", T0 + 13),
    ("ann", "/pay", T0 + 14),
];

fn clicks_by_region() -> Topology {
    let builder = StreamsBuilder::new();
    let strings = || Consumed::with(StringSerde, StringSerde);
    let users = builder.table("users", strings());
    let enriched = builder
        .stream("clicks", strings())
        .join(&users, |page, region| format!("{region} {page}"));
    enriched.to(
        "clicks-with-region",
        Produced::with(StringSerde, StringSerde),
    );
    enriched
        .group_by(
            |_, click| click.split(' ').next().unwrap_or_default().to_owned(),
            Grouped::with(StringSerde, StringSerde),
        )
        .count()
        .to_stream()
        .to("clicks-per-region", Produced::with(StringSerde, I64Serde));
    builder.build()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = Cluster::from_args().await?;
    cluster
        .create_topics(&["users", "clicks", "clicks-with-region", "clicks-per-region"])
        .await?;
    cluster.write("users", &USERS).await?;
    cluster.write("clicks", &CLICKS).await?;
    println!("{}", clicks_by_region().describe());
    let streams = KafkaStreams::start(
        clicks_by_region(),
        StreamsConfig::new("clicks-by-region", cluster.config.clone()).commit_interval_ms(100),
    )?;
    for r in cluster.read("clicks-with-region", 4).await? {
        println!(
            "click {:>4}: {}",
            text(r.key.as_deref()),
            text(r.value.as_deref())
        );
    }
    for r in cluster.read("clicks-per-region", 4).await? {
        let region = StringSerde.deserialize("clicks-per-region", r.key.as_deref())?;
        let count = I64Serde.deserialize("clicks-per-region", r.value.as_deref())?;
        println!("region {region:>7}: {count} clicks");
    }
    tokio::task::spawn_blocking(move || streams.close()).await??;
    cluster.shutdown().await
}
