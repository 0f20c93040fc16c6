//! Grouping and aggregation through `TopologyTestDriver`: count, reduce, aggregate, and
//! the classic word count.

use strom_streams::serde::{I64Serde, Serde, StringSerde};
use strom_streams::{
    Consumed, Grouped, Materialized, Produced, Repartitioned, StreamsBuilder, TopologyTestDriver,
};

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
    let maxima = amounts.reduce(|a, b| a.max(b));
    let maxima_store = maxima.store_name().map(str::to_owned);
    maxima
        .to_stream()
        .to("max", Produced::with(StringSerde, I64Serde));
    amounts
        .aggregate(
            String::new,
            |_, amount, seen| format!("{seen}+{amount}"),
            Materialized::with(StringSerde),
        )
        .to_stream()
        .to("history", Produced::with(StringSerde, StringSerde));
    let driver = TopologyTestDriver::new(&builder.build());
    let input = driver.input_topic("amounts", StringSerde, I64Serde);
    for (k, v) in [("a", 5), ("b", 1), ("a", 3), ("a", 9)] {
        input.pipe_input(k.to_owned(), v);
    }
    let max = driver.output_topic("max", StringSerde, I64Serde);
    // The table's store holds each key's latest value, as its serde writes it.
    let store = maxima_store.expect("reduce keeps a store");
    let entries = driver.store_entries(&store).unwrap().unwrap();
    let decoded: Vec<(String, i64)> = entries
        .iter()
        .map(|(k, v)| {
            let key = StringSerde.deserialize("max", Some(k)).unwrap();
            (key, I64Serde.deserialize("max", Some(v)).unwrap())
        })
        .collect();
    assert_eq!(decoded, [("a".to_owned(), 9), ("b".to_owned(), 1)]);
    assert_eq!(driver.store_entries("no-such-store").unwrap(), None);
    let maxima: Vec<i64> = max.read_values_to_list().unwrap();
    assert_eq!(maxima, [5, 1, 5, 9]);
    let history = driver.output_topic("history", StringSerde, StringSerde);
    assert_eq!(
        history.read_values_to_list().unwrap(),
        ["+5", "+1", "+5+3", "+5+3+9"]
    );
}

#[test]
fn describe_names_the_stores_and_the_repartition_topic() {
    let text = word_count().describe().to_string();
    // Grouping by a new key goes through a repartition topic: two sub-topologies.
    let topic = "KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition";
    assert!(
        text.contains(&format!("Sink: KSTREAM-SINK-0000000004 (topic: {topic})")),
        "{text}"
    );
    assert!(text.contains("Sub-topology: 1"), "{text}");
    assert!(
        text.contains(&format!(
            "Source: KSTREAM-SOURCE-0000000005 (topics: [{topic}])"
        )),
        "{text}"
    );
    assert!(
        text.contains("Processor: KSTREAM-AGGREGATE-0000000007 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000006])"),
        "{text}"
    );
    assert_eq!(
        word_count().internal_topics().iter().collect::<Vec<_>>(),
        [topic]
    );
}

#[test]
fn grouping_by_the_unchanged_key_needs_no_repartition_topic() {
    let builder = StreamsBuilder::new();
    builder
        .stream("amounts", Consumed::with(StringSerde, I64Serde))
        .filter(|_, v| *v > 0)
        .group_by_key(Grouped::with(StringSerde, I64Serde))
        .count();
    let topology = builder.build();
    assert!(topology.internal_topics().is_empty());
    assert!(!topology.describe().to_string().contains("Sub-topology: 1"));
}

#[test]
fn repartition_through_and_to_table() {
    let builder = StreamsBuilder::new();
    // Records re-keyed by value, through a named repartition topic, then counted.
    builder
        .stream("in", Consumed::with(StringSerde, StringSerde))
        .select_key(|_, v| v.clone())
        .repartition(Repartitioned::with(StringSerde, StringSerde).named("by-value"))
        .group_by_key(Grouped::with(StringSerde, StringSerde))
        .count()
        .to_stream()
        .to("counts", Produced::with(StringSerde, I64Serde));
    // Through a topic of the user's: written there and read back.
    builder
        .stream("raw", Consumed::with(StringSerde, StringSerde))
        .map_values(|v| v.to_uppercase())
        .through("upper", Produced::with(StringSerde, StringSerde))
        .filter(|_, v| v.starts_with('A'))
        .to("a-words", Produced::with(StringSerde, StringSerde));
    // A stream as a table, joined by another stream.
    let prices = builder
        .stream("prices", Consumed::with(StringSerde, I64Serde))
        .to_table(StringSerde, Materialized::with(I64Serde));
    builder
        .stream("orders", Consumed::with(StringSerde, I64Serde))
        .join(&prices, |qty, price| qty * price)
        .to("totals", Produced::with(StringSerde, I64Serde));
    let topology = builder.build();
    assert_eq!(
        topology.internal_topics().iter().collect::<Vec<_>>(),
        ["by-value-repartition"]
    );
    // Grouping right after an explicit repartition needs no second one.
    assert!(!topology
        .describe()
        .to_string()
        .contains("KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition"));

    let driver = TopologyTestDriver::new(&topology);
    let s = |v: &str| v.to_owned();
    let input = driver.input_topic("in", StringSerde, StringSerde);
    input.pipe_input(s("1"), s("x"));
    input.pipe_input(s("2"), s("x"));
    let counts = driver.output_topic("counts", StringSerde, I64Serde);
    assert_eq!(
        counts.read_key_values_to_list().unwrap(),
        [(s("x"), 1), (s("x"), 2)]
    );

    let raw = driver.input_topic("raw", StringSerde, StringSerde);
    raw.pipe_input(s("k"), s("apple"));
    raw.pipe_input(s("k"), s("pear"));
    let upper = driver.output_topic("upper", StringSerde, StringSerde);
    assert_eq!(upper.read_values_to_list().unwrap(), ["APPLE", "PEAR"]);
    let a_words = driver.output_topic("a-words", StringSerde, StringSerde);
    assert_eq!(a_words.read_values_to_list().unwrap(), ["APPLE"]);

    let prices = driver.input_topic("prices", StringSerde, I64Serde);
    let orders = driver.input_topic("orders", StringSerde, I64Serde);
    prices.pipe_input(s("tea"), 3);
    orders.pipe_input(s("tea"), 2);
    prices.pipe_input(s("tea"), 4);
    orders.pipe_input(s("tea"), 2);
    orders.pipe_input(s("coffee"), 1);
    let totals = driver.output_topic("totals", StringSerde, I64Serde);
    assert_eq!(totals.read_values_to_list().unwrap(), [6, 8]);
}

#[test]
fn cogroup_folds_streams_of_different_types_into_one_aggregate() {
    let builder = StreamsBuilder::new();
    // Per customer: orders (amounts) add up, refunds (text "<amount>") subtract.
    let orders = builder
        .stream("orders", Consumed::with(StringSerde, I64Serde))
        .group_by_key(Grouped::with(StringSerde, I64Serde));
    let refunds = builder
        .stream("refunds", Consumed::with(StringSerde, StringSerde))
        .group_by_key(Grouped::with(StringSerde, StringSerde));
    let balance = orders
        .cogroup(|_, amount: i64, total: i64| total + amount)
        .cogroup(&refunds, |_, refund: String, total: i64| {
            total - refund.parse::<i64>().unwrap_or(0)
        })
        .aggregate(|| 0, Materialized::with(I64Serde).named("balances"));
    assert_eq!(balance.store_name(), Some("balances"));
    balance
        .to_stream()
        .to("balance", Produced::with(StringSerde, I64Serde));
    let driver = TopologyTestDriver::new(&builder.build());
    let s = |v: &str| v.to_owned();
    let orders = driver.input_topic("orders", StringSerde, I64Serde);
    let refunds = driver.input_topic("refunds", StringSerde, StringSerde);
    orders.pipe_input(s("ann"), 10);
    refunds.pipe_input(s("ann"), s("3"));
    orders.pipe_input(s("bob"), 5);
    orders.pipe_input(s("ann"), 1);
    let out = driver.output_topic("balance", StringSerde, I64Serde);
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        [(s("ann"), 10), (s("ann"), 7), (s("bob"), 5), (s("ann"), 8)]
    );
}
