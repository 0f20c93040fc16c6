//! The stateless operations, each through `TopologyTestDriver`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use strom_streams::serde::{I64Serde, Json, StringSerde};
use strom_streams::{Consumed, KStream, Produced, StreamsBuilder, TopologyTestDriver};

fn strings() -> Consumed<String, String> {
    Consumed::with(StringSerde, StringSerde)
}

fn out() -> Produced<String, String> {
    Produced::with(StringSerde, StringSerde)
}

/// Builds a topology with `build` on a `String`/`String` stream of "in", pipes `input`
/// and returns what "out" received.
fn run(
    build: impl FnOnce(KStream<String, String>),
    input: &[(&str, &str)],
) -> Vec<(String, String)> {
    let builder = StreamsBuilder::new();
    build(builder.stream("in", strings()));
    let topology = builder.build();
    let driver = TopologyTestDriver::new(&topology);
    let source = driver.input_topic("in", StringSerde, StringSerde);
    let sink = driver.output_topic("out", StringSerde, StringSerde);
    for (k, v) in input {
        source.pipe_input((*k).to_owned(), (*v).to_owned());
    }
    sink.read_key_values_to_list().unwrap()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const INPUT: [(&str, &str); 3] = [("a", "1"), ("b", "22"), ("c", "333")];

#[test]
fn filter_and_filter_not() {
    let long = run(|s| s.filter(|_, v| v.len() > 1).to("out", out()), &INPUT);
    assert_eq!(long, pairs(&[("b", "22"), ("c", "333")]));
    let short = run(
        |s| s.filter_not(|_, v| v.len() > 1).to("out", out()),
        &INPUT,
    );
    assert_eq!(short, pairs(&[("a", "1")]));
}

#[test]
fn map_map_values_and_select_key() {
    let mapped = run(|s| s.map(|k, v| (v, k)).to("out", out()), &INPUT);
    assert_eq!(mapped, pairs(&[("1", "a"), ("22", "b"), ("333", "c")]));
    let upper = run(
        |s| s.map_values(|v| format!("<{v}>")).to("out", out()),
        &INPUT,
    );
    assert_eq!(upper, pairs(&[("a", "<1>"), ("b", "<22>"), ("c", "<333>")]));
    let rekeyed = run(
        |s| {
            s.select_key(|k, v| format!("{k}{}", v.len()))
                .to("out", out())
        },
        &INPUT,
    );
    assert_eq!(rekeyed, pairs(&[("a1", "1"), ("b2", "22"), ("c3", "333")]));
}

#[test]
fn flat_map_and_flat_map_values() {
    let split = run(
        |s| {
            s.flat_map(|k, v| {
                v.chars()
                    .map(move |c| (k.clone(), c.to_string()))
                    .collect::<Vec<_>>()
            })
            .to("out", out())
        },
        &[("x", "ab"), ("y", "")],
    );
    assert_eq!(split, pairs(&[("x", "a"), ("x", "b")]));
    let words = run(
        |s| {
            s.flat_map_values(|v| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
                .to("out", out())
        },
        &[("k", "to be")],
    );
    assert_eq!(words, pairs(&[("k", "to"), ("k", "be")]));
}

#[test]
fn peek_and_foreach_see_every_record() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ended = Arc::new(Mutex::new(Vec::new()));
    let (peeked, each) = (seen.clone(), ended.clone());
    let passed = run(
        move |s| {
            let peeked_stream = s.peek(move |k, _| peeked.lock().unwrap().push(k.clone()));
            peeked_stream.foreach(move |_, v| each.lock().unwrap().push(v));
            peeked_stream.to("out", out());
        },
        &INPUT,
    );
    assert_eq!(passed.len(), 3, "peek passes records on");
    assert_eq!(*seen.lock().unwrap(), ["a", "b", "c"]);
    assert_eq!(*ended.lock().unwrap(), ["1", "22", "333"]);
}

#[test]
fn branch_sends_each_record_to_its_first_matching_branch() {
    let builder = StreamsBuilder::new();
    let branches = builder.stream("in", strings()).branch(vec![
        Box::new(|_, v: &String| v.len() == 1),
        Box::new(|_, v: &String| v.len() <= 2),
    ]);
    branches[0].to("short", out());
    branches[1].to("medium", out());
    let driver = TopologyTestDriver::new(&builder.build());
    let source = driver.input_topic("in", StringSerde, StringSerde);
    for (k, v) in INPUT {
        source.pipe_input(k.to_owned(), v.to_owned());
    }
    let short = driver.output_topic("short", StringSerde, StringSerde);
    let medium = driver.output_topic("medium", StringSerde, StringSerde);
    assert_eq!(short.read_values_to_list().unwrap(), ["1"]);
    assert_eq!(medium.read_values_to_list().unwrap(), ["22"]);
}

#[test]
fn merge_joins_two_streams_and_one_stream_feeds_many() {
    let builder = StreamsBuilder::new();
    let left = builder.stream("left", strings());
    let right = builder.stream("right", strings());
    let both = left.merge(&right);
    both.to("out", out());
    both.map_values(|v| v.len().to_string())
        .to("lengths", out());
    let driver = TopologyTestDriver::new(&builder.build());
    let l = driver.input_topic("left", StringSerde, StringSerde);
    let r = driver.input_topic("right", StringSerde, StringSerde);
    l.pipe_input("k".into(), "from-left".into());
    r.pipe_input("k".into(), "from-right".into());
    l.pipe_input("k".into(), "again".into());
    let merged = driver.output_topic("out", StringSerde, StringSerde);
    assert_eq!(
        merged.read_values_to_list().unwrap(),
        ["from-left", "from-right", "again"]
    );
    let lengths = driver.output_topic("lengths", StringSerde, StringSerde);
    assert_eq!(lengths.read_values_to_list().unwrap(), ["9", "10", "5"]);
}

#[test]
fn typed_serdes_timestamps_and_undecodable_input() {
    #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    struct Click {
        user: String,
        page: String,
    }
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", Consumed::with(StringSerde, Json::<Click>::new()))
        .map(|_, click: Click| (click.user, click.page.len() as i64))
        .to("page-lengths", Produced::with(StringSerde, I64Serde));
    let driver = TopologyTestDriver::new(&builder.build());
    let clicks = driver.input_topic("clicks", StringSerde, Json::<Click>::new());
    let lengths = driver.output_topic("page-lengths", StringSerde, I64Serde);
    let click = Click {
        user: "ann".into(),
        page: "/home".into(),
    };
    clicks.pipe_input_at("k".into(), click, 1_700_000_000_000);
    let record = lengths.read_record().unwrap();
    assert_eq!(record.timestamp, 1_700_000_000_000, "the input's timestamp");
    assert_eq!(record.key.as_deref(), Some(&b"ann"[..]));
    assert_eq!(record.value.as_deref(), Some(&5i64.to_be_bytes()[..]));
    // A record that is not JSON is skipped and reported, not a panic.
    clicks.pipe_raw(
        Some(Bytes::from_static(b"k")),
        Some(Bytes::from_static(b"{oops")),
        5,
    );
    assert!(lengths.is_empty());
    let errors = driver.errors();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("clicks@1:"), "{errors:?}");
}

#[test]
fn describe_prints_kafka_streams_format() {
    let builder = StreamsBuilder::new();
    builder
        .stream("input", strings())
        .filter(|_, v| !v.is_empty())
        .map_values(|v| v.to_uppercase())
        .to("output", out());
    builder.stream("other", strings()).to("copy", out());
    let text = builder.build().describe().to_string();
    let expected = "\
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [input])
      --> KSTREAM-FILTER-0000000001
    Processor: KSTREAM-FILTER-0000000001 (stores: [])
      --> KSTREAM-MAPVALUES-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-MAPVALUES-0000000002 (stores: [])
      --> KSTREAM-SINK-0000000003
      <-- KSTREAM-FILTER-0000000001
    Sink: KSTREAM-SINK-0000000003 (topic: output)
      <-- KSTREAM-MAPVALUES-0000000002

   Sub-topology: 1
    Source: KSTREAM-SOURCE-0000000004 (topics: [other])
      --> KSTREAM-SINK-0000000005
    Sink: KSTREAM-SINK-0000000005 (topic: copy)
      <-- KSTREAM-SOURCE-0000000004

";
    assert_eq!(text, expected);
}
