//! Stream-table joins on the test driver: a click stream joined with a user table, inner
//! and left; table updates and deletes seen by later clicks; a join with an aggregated
//! table.

use bytes::Bytes;
use strom_streams::serde::{I64Serde, StringSerde};
use strom_streams::{Consumed, Grouped, Produced, StreamsBuilder, TopologyTestDriver};

fn strings() -> Consumed<String, String> {
    Consumed::with(StringSerde, StringSerde)
}

fn out() -> Produced<String, String> {
    Produced::with(StringSerde, StringSerde)
}

#[test]
fn clicks_joined_with_users() {
    let builder = StreamsBuilder::new();
    let users = builder.table("users", strings());
    let clicks = builder.stream("clicks", strings());
    clicks
        .join(&users, |page, region| format!("{page} from {region}"))
        .to("enriched", out());
    clicks
        .left_join(&users, |page, region: Option<String>| {
            format!("{page} from {}", region.unwrap_or_else(|| "?".into()))
        })
        .to("enriched-all", out());
    let driver = TopologyTestDriver::new(&builder.build());
    let users_in = driver.input_topic("users", StringSerde, StringSerde);
    let clicks_in = driver.input_topic("clicks", StringSerde, StringSerde);
    users_in.pipe_input("ann".into(), "eu".into());
    clicks_in.pipe_input("ann".into(), "/home".into());
    clicks_in.pipe_input("bob".into(), "/cart".into());
    users_in.pipe_input("ann".into(), "us".into());
    clicks_in.pipe_input("ann".into(), "/pay".into());
    // A tombstone removes ann from the table.
    users_in.pipe_raw(Some(Bytes::from_static(b"ann")), None, 10);
    clicks_in.pipe_input("ann".into(), "/bye".into());

    let inner = driver.output_topic("enriched", StringSerde, StringSerde);
    assert_eq!(
        inner.read_values_to_list().unwrap(),
        ["/home from eu", "/pay from us"]
    );
    let left = driver.output_topic("enriched-all", StringSerde, StringSerde);
    assert_eq!(
        left.read_values_to_list().unwrap(),
        [
            "/home from eu",
            "/cart from ?",
            "/pay from us",
            "/bye from ?"
        ]
    );
}

#[test]
fn a_stream_joins_a_table_aggregated_from_another() {
    let builder = StreamsBuilder::new();
    let purchases = builder
        .stream("purchases", Consumed::with(StringSerde, I64Serde))
        .group_by_key(Grouped::with(StringSerde, I64Serde))
        .reduce(|a, b| a + b);
    builder
        .stream("visits", strings())
        .join(&purchases, |page, spent: i64| {
            format!("{page} (spent {spent})")
        })
        .to("visits-with-spend", out());
    let driver = TopologyTestDriver::new(&builder.build());
    let buy = driver.input_topic("purchases", StringSerde, I64Serde);
    let visit = driver.input_topic("visits", StringSerde, StringSerde);
    buy.pipe_input("ann".into(), 30);
    buy.pipe_input("ann".into(), 12);
    visit.pipe_input("ann".into(), "/shop".into());
    visit.pipe_input("bob".into(), "/shop".into());
    let joined = driver.output_topic("visits-with-spend", StringSerde, StringSerde);
    assert_eq!(joined.read_values_to_list().unwrap(), ["/shop (spent 42)"]);
}
