//! Grouping and aggregation through `TopologyTestDriver`: count, reduce, aggregate, and
//! the classic word count.

use strom_streams::serde::{I64Serde, StringSerde};
use strom_streams::{Consumed, Grouped, Produced, StreamsBuilder, TopologyTestDriver};

use crate::word_count;

#[test]
fn word_count_emits_each_words_running_count() {
    let topology = word_count();
    let driver = TopologyTestDriver::new(&topology);
    let sentences = driver.input_topic("sentences", StringSerde, StringSerde);
    let counts = driver.output_topic("word-counts", StringSerde, I64Serde);
    sentences.pipe_input("1".into(), "the cat".into());
    sentences.pipe_input("2".into(), "The dog and THE cat".into());
    let updates = counts.read_key_values_to_list().unwrap();
    let expected: Vec<(String, i64)> = [
        ("the", 1),
        ("cat", 1),
        ("the", 2),
        ("dog", 1),
        ("and", 1),
        ("the", 3),
        ("cat", 2),
    ]
    .iter()
    .map(|(w, c)| ((*w).to_owned(), *c))
    .collect();
    assert_eq!(updates, expected);
}

#[test]
fn each_driver_has_its_own_state() {
    let topology = word_count();
    for _ in 0..2 {
        let driver = TopologyTestDriver::new(&topology);
        let sentences = driver.input_topic("sentences", StringSerde, StringSerde);
        let counts = driver.output_topic("word-counts", StringSerde, I64Serde);
        sentences.pipe_input("k".into(), "again".into());
        assert_eq!(
            counts.read_key_values_to_list().unwrap(),
            [("again".to_owned(), 1)]
        );
    }
}

#[test]
fn reduce_and_aggregate_per_key() {
    let builder = StreamsBuilder::new();
    let amounts = builder
        .stream("amounts", Consumed::with(StringSerde, I64Serde))
        .group_by_key(Grouped::with(StringSerde, I64Serde));
    amounts
        .reduce(|a, b| a.max(b))
        .to_stream()
        .to("max", Produced::with(StringSerde, I64Serde));
    amounts
        .aggregate(String::new, |_, amount, seen| format!("{seen}+{amount}"))
        .to_stream()
        .to("history", Produced::with(StringSerde, StringSerde));
    let driver = TopologyTestDriver::new(&builder.build());
    let input = driver.input_topic("amounts", StringSerde, I64Serde);
    for (k, v) in [("a", 5), ("b", 1), ("a", 3), ("a", 9)] {
        input.pipe_input(k.to_owned(), v);
    }
    let max = driver.output_topic("max", StringSerde, I64Serde);
    let maxima: Vec<i64> = max.read_values_to_list().unwrap();
    assert_eq!(maxima, [5, 1, 5, 9]);
    let history = driver.output_topic("history", StringSerde, StringSerde);
    assert_eq!(
        history.read_values_to_list().unwrap(),
        ["+5", "+1", "+5+3", "+5+3+9"]
    );
}

#[test]
fn describe_names_the_stores() {
    let text = word_count().describe().to_string();
    assert!(
        text.contains("Processor: KSTREAM-AGGREGATE-0000000004 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000003])"),
        "{text}"
    );
    assert!(
        text.contains("Processor: KTABLE-TOSTREAM-0000000005 (stores: [])"),
        "{text}"
    );
}
