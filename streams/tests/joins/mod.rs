//! Joins on the test driver: a click stream joined with a user table, inner and left;
//! table updates and deletes seen by later clicks; a join with an aggregated table;
//! stream-stream joins within a time window (inner, left, outer).

use bytes::Bytes;
use strom_streams::serde::{I64Serde, StringSerde};
use strom_streams::{
    Consumed, Grouped, JoinWindows, Produced, StreamJoined, StreamsBuilder, TopologyTestDriver,
};

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

/// Orders and payments joined when at most 10 ms apart: inner, left and outer, one output
/// topic each.
fn orders_with_payments() -> strom_streams::Topology {
    let builder = StreamsBuilder::new();
    let orders = builder.stream("orders", strings());
    let payments = builder.stream("payments", strings());
    let windows = JoinWindows::of_time_difference_and_grace(
        std::time::Duration::from_millis(10),
        std::time::Duration::ZERO,
    );
    let serdes = || StreamJoined::with(StringSerde, StringSerde, StringSerde);
    let out = || Produced::with(StringSerde, StringSerde);
    orders
        .join_stream(&payments, |o, p| format!("{o}+{p}"), windows, serdes())
        .to("inner", out());
    orders
        .left_join_stream(
            &payments,
            |o, p: Option<String>| format!("{o}+{}", p.as_deref().unwrap_or("-")),
            windows,
            serdes(),
        )
        .to("left", out());
    orders
        .outer_join_stream(
            &payments,
            |o: Option<String>, p: Option<String>| {
                format!(
                    "{}+{}",
                    o.as_deref().unwrap_or("-"),
                    p.as_deref().unwrap_or("-")
                )
            },
            windows,
            serdes(),
        )
        .to("outer", out());
    builder.build()
}

#[test]
fn streams_join_within_a_time_window_inner_left_and_outer() {
    let driver = TopologyTestDriver::new(&orders_with_payments());
    let orders = driver.input_topic("orders", StringSerde, StringSerde);
    let payments = driver.input_topic("payments", StringSerde, StringSerde);
    let s = |v: &str| v.to_owned();
    orders.pipe_input_at(s("a"), s("o1"), 0);
    payments.pipe_input_at(s("a"), s("p1"), 5);
    orders.pipe_input_at(s("b"), s("o2"), 6);
    payments.pipe_input_at(s("c"), s("p2"), 7);
    // Stream time 30: b's order and c's payment found no match within 10 ms.
    orders.pipe_input_at(s("a"), s("o3"), 30);
    payments.pipe_input_at(s("a"), s("p3"), 35);
    // Too late: 10 < 35 - 10.
    orders.pipe_input_at(s("a"), s("o4"), 10);

    let read = |topic: &str| {
        let output = driver.output_topic(topic, StringSerde, StringSerde);
        let mut out = Vec::new();
        while let Some(r) = output.read_record() {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            out.push((key, value, r.timestamp));
        }
        out
    };
    let row = |k: &str, v: &str, t: i64| (s(k), s(v), t);
    assert_eq!(read("inner"), [row("a", "o1+p1", 5), row("a", "o3+p3", 35)]);
    assert_eq!(
        read("left"),
        [
            row("a", "o1+p1", 5),
            row("b", "o2+-", 6),
            row("a", "o3+p3", 35)
        ]
    );
    assert_eq!(
        read("outer"),
        [
            row("a", "o1+p1", 5),
            row("b", "o2+-", 6),
            row("c", "-+p2", 7),
            row("a", "o3+p3", 35)
        ]
    );
    assert!(driver.errors().is_empty(), "{:?}", driver.errors());
}

/// Every record of `topic` as (key, value), `None` for a tombstone.
fn rows(driver: &TopologyTestDriver, topic: &str) -> Vec<(String, Option<String>)> {
    let output = driver.output_topic(topic, StringSerde, StringSerde);
    let mut out = Vec::new();
    while let Some(r) = output.read_record() {
        let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
        let value = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
        out.push((key, value));
    }
    out
}

#[test]
fn tables_join_inner_left_and_outer_and_follow_deletes() {
    let builder = StreamsBuilder::new();
    let users = builder.table("users", strings());
    let emails = builder.table("emails", strings());
    users
        .join(&emails, |u, e| format!("{u}<{e}>"))
        .to_stream()
        .to("inner", out());
    users
        .left_join(&emails, |u, e: Option<String>| {
            format!("{u}<{}>", e.as_deref().unwrap_or("-"))
        })
        .to_stream()
        .to("left", out());
    users
        .outer_join(&emails, |u: Option<String>, e: Option<String>| {
            format!(
                "{}<{}>",
                u.as_deref().unwrap_or("-"),
                e.as_deref().unwrap_or("-")
            )
        })
        .filter(|k, _| k != "hidden")
        .map_values(|v| v.to_uppercase())
        .to_stream()
        .to("outer", out());
    let driver = TopologyTestDriver::new(&builder.build());
    let users = driver.input_topic("users", StringSerde, StringSerde);
    let emails = driver.input_topic("emails", StringSerde, StringSerde);
    let s = |v: &str| v.to_owned();
    users.pipe_input(s("1"), s("ann"));
    emails.pipe_input(s("1"), s("ann@x"));
    emails.pipe_input(s("2"), s("bob@x"));
    // Ann's row leaves the users table.
    users.pipe_raw(Some(Bytes::from_static(b"1")), None, 10);
    emails.pipe_input(s("hidden"), s("h@x"));

    let some = |k: &str, v: &str| (s(k), Some(s(v)));
    let gone = |k: &str| (s(k), None);
    assert_eq!(
        rows(&driver, "inner"),
        [
            gone("1"),
            some("1", "ann<ann@x>"),
            gone("2"),
            gone("1"),
            gone("hidden")
        ]
    );
    assert_eq!(
        rows(&driver, "left"),
        [
            some("1", "ann<->"),
            some("1", "ann<ann@x>"),
            gone("2"),
            gone("1"),
            gone("hidden")
        ]
    );
    assert_eq!(
        rows(&driver, "outer"),
        [
            some("1", "ANN<->"),
            some("1", "ANN<ANN@X>"),
            some("2", "-<BOB@X>"),
            some("1", "-<ANN@X>"),
            gone("hidden"),
        ]
    );
    assert!(driver.errors().is_empty(), "{:?}", driver.errors());
}

#[test]
fn a_stream_joins_a_global_table_by_a_key_it_computes() {
    let builder = StreamsBuilder::new();
    // Orders keyed by order id, valued "<product>:<quantity>"; products global by id.
    let products = builder.global_table("products", strings());
    let orders = builder.stream("orders", strings());
    let product_of = |_: &String, order: &String| order.split(':').next().unwrap_or("").to_owned();
    orders
        .join_global(&products, product_of, |order, name| {
            format!("{order} ({name})")
        })
        .to("named", out());
    orders
        .left_join_global(&products, product_of, |order, name: Option<String>| {
            format!("{order} ({})", name.as_deref().unwrap_or("?"))
        })
        .to("all", out());
    let topology = builder.build();
    assert_eq!(topology.global_topics().len(), 1);
    assert!(!topology.source_topics().contains("products"));
    let driver = TopologyTestDriver::new(&topology);
    let products = driver.input_topic("products", StringSerde, StringSerde);
    let orders = driver.input_topic("orders", StringSerde, StringSerde);
    let s = |v: &str| v.to_owned();
    products.pipe_input(s("p1"), s("lamp"));
    orders.pipe_input(s("o1"), s("p1:2"));
    orders.pipe_input(s("o2"), s("p9:1"));
    products.pipe_raw(Some(Bytes::from_static(b"p1")), None, 10);
    orders.pipe_input(s("o3"), s("p1:1"));
    let named = driver.output_topic("named", StringSerde, StringSerde);
    assert_eq!(
        named.read_key_values_to_list().unwrap(),
        [(s("o1"), s("p1:2 (lamp)"))]
    );
    let all = driver.output_topic("all", StringSerde, StringSerde);
    assert_eq!(
        all.read_values_to_list().unwrap(),
        ["p1:2 (lamp)", "p9:1 (?)", "p1:1 (?)"]
    );
}

#[test]
fn tables_join_on_a_foreign_key() {
    let builder = StreamsBuilder::new();
    // Orders "customer:amount" by order id; customers' names by customer id.
    let orders = builder.table("orders", strings());
    let customers = builder.table("customers", strings());
    let customer_of = |order: &String| order.split(':').next().unwrap_or("").to_owned();
    let amount_of = |order: &String| order.split(':').nth(1).unwrap_or("").to_owned();
    orders
        .join_on_foreign_key(&customers, customer_of, move |order, name| {
            format!("{name}:{}", amount_of(&order))
        })
        .to_stream()
        .to("inner", out());
    orders
        .left_join_on_foreign_key(
            &customers,
            customer_of,
            move |order, name: Option<String>| {
                format!("{}:{}", name.as_deref().unwrap_or("?"), amount_of(&order))
            },
        )
        .to_stream()
        .to("left", out());
    let topology = builder.build();
    assert_eq!(topology.internal_topics().len(), 4, "two topics per join");
    let driver = TopologyTestDriver::new(&topology);
    let orders = driver.input_topic("orders", StringSerde, StringSerde);
    let customers = driver.input_topic("customers", StringSerde, StringSerde);
    let s = |v: &str| v.to_owned();
    customers.pipe_input(s("c1"), s("ann"));
    orders.pipe_input(s("o1"), s("c1:10"));
    orders.pipe_input(s("o2"), s("c2:5"));
    customers.pipe_input(s("c2"), s("bob"));
    customers.pipe_input(s("c1"), s("anna"));
    // o1 moves to c2: c1's later changes no longer reach it.
    orders.pipe_input(s("o1"), s("c2:7"));
    customers.pipe_input(s("c1"), s("x"));
    orders.pipe_raw(Some(Bytes::from_static(b"o2")), None, 100);

    let some = |k: &str, v: &str| (s(k), Some(s(v)));
    let gone = |k: &str| (s(k), None);
    assert_eq!(
        rows(&driver, "inner"),
        [
            some("o1", "ann:10"),
            gone("o2"),
            some("o2", "bob:5"),
            some("o1", "anna:10"),
            some("o1", "bob:7"),
            gone("o2"),
        ]
    );
    assert_eq!(
        rows(&driver, "left"),
        [
            some("o1", "ann:10"),
            some("o2", "?:5"),
            some("o2", "bob:5"),
            some("o1", "anna:10"),
            some("o1", "bob:7"),
            gone("o2"),
        ]
    );
    assert!(driver.errors().is_empty(), "{:?}", driver.errors());
}
