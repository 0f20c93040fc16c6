//! Client quotas: a producer over its `producer_byte_rate` is held to it by the broker's
//! throttling (the response says how long to wait; the connection reads nothing meanwhile),
//! a consumer over its `consumer_byte_rate` is told to wait, and `request_percentage`
//! charges handling time, not waiting.

use std::time::{Duration, Instant};

use strom_client::producer::Record;
use strom_protocol::connection::Connection;
use strom_protocol::kafka_protocol::messages::alter_client_quotas_request::{
    EntityData, EntryData, OpData,
};
use strom_protocol::kafka_protocol::messages::AlterClientQuotasRequest;
use strom_protocol::kafka_protocol::protocol::StrBytes;

use super::Fixture;

/// Sets `key` = `value` for client id `client_id`.
async fn set_quota(fx: &Fixture, client_id: &str, key: &str, value: f64) {
    let conn = Connection::connect(&fx.broker.bootstrap(), "quota-admin")
        .await
        .unwrap();
    let entry = EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(StrBytes::from_static_str("client-id"))
            .with_entity_name(Some(StrBytes::from_string(client_id.to_owned())))])
        .with_ops(vec![OpData::default()
            .with_key(StrBytes::from_string(key.to_owned()))
            .with_value(value)]);
    let r = conn
        .send(&AlterClientQuotasRequest::default().with_entries(vec![entry]))
        .await
        .unwrap();
    assert_eq!(
        r.entries[0].error_code, 0,
        "{:?}",
        r.entries[0].error_message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_over_its_byte_rate_is_held_to_it() {
    const QUOTA: f64 = 512.0 * 1024.0;
    let fx = Fixture::start_with(|c| {
        c.num_partitions = 1;
        c.set("quota.window.num", "2").unwrap();
        c.set("quota.window.size.seconds", "1").unwrap();
    })
    .await;
    set_quota(&fx, "throttled", "producer_byte_rate", QUOTA).await;
    let config = fx
        .config()
        .client_id("throttled")
        .linger(Duration::from_millis(5));
    let producer = fx.producer(config).await;
    let value = vec![b'q'; 1024];
    // Past the first window (which may take a burst), then measured over four seconds:
    // the bytes acknowledged against the time they took.
    let mut acked = 0usize;
    let mut measured_from: Option<(Instant, usize)> = None;
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    loop {
        pending.push_back(
            producer
                .send(Record::new("quota").value(value.clone()))
                .await
                .unwrap(),
        );
        // Keep a bounded number in flight so the time is the broker's, not the buffer's.
        while pending.len() > 64 {
            pending.pop_front().unwrap().await.unwrap();
            acked += value.len();
        }
        let elapsed = started.elapsed();
        if measured_from.is_none() && elapsed >= Duration::from_secs(2) {
            measured_from = Some((Instant::now(), acked));
        }
        if elapsed >= Duration::from_secs(6) {
            break;
        }
    }
    let (from, acked_then) = measured_from.unwrap();
    let rate = (acked - acked_then) as f64 / from.elapsed().as_secs_f64();
    // Requests carry a little more than the values (batch and record headers).
    let ratio = rate / QUOTA;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "{rate:.0} B/s of values against a quota of {QUOTA} B/s ({ratio:.3})"
    );
    producer.close().await;
}

/// A consumer over its `consumer_byte_rate` is told how long to wait in the Fetch
/// response, and its connection reads nothing until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_over_the_consumer_byte_rate_is_throttled() {
    use strom_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use strom_protocol::kafka_protocol::messages::{FetchRequest, MetadataRequest, TopicName};
    let fx = Fixture::start_with(|c| {
        c.num_partitions = 1;
        c.set("quota.window.num", "2").unwrap();
    })
    .await;
    let producer = fx.producer(fx.config()).await;
    super::send_all(&producer, "slow", (0..100).map(|i| format!("{i:0>1000}"))).await;
    producer.close().await;
    set_quota(&fx, "slow-reader", "consumer_byte_rate", 50_000.0).await;
    let mut conn = Connection::connect(&fx.broker.bootstrap(), "slow-reader")
        .await
        .unwrap();
    conn.set_request_timeout(Duration::from_secs(30));
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("slow")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response = conn.send_version(&fetch, 12).await.unwrap();
    let fetched = response.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, |r| r.len());
    assert!(fetched > 100_000, "{fetched} bytes");
    // ~100 KB in a one-second window against 50 KB/s: about a second to wait.
    assert!(
        (500..=1_500).contains(&response.throttle_time_ms),
        "throttle {} ms",
        response.throttle_time_ms
    );
    // The next request on the connection is read only after the throttle time.
    let asked = Instant::now();
    conn.send(&MetadataRequest::default()).await.unwrap();
    let waited = asked.elapsed().as_millis();
    assert!(
        waited + 100 >= u128::from(response.throttle_time_ms.unsigned_abs()),
        "answered after {waited} ms against a throttle of {} ms",
        response.throttle_time_ms
    );
}

/// `request_percentage` charges the time the broker spends handling a client's requests:
/// a JoinGroup that waits a second for its rebalance is not charged for the wait, and a
/// client sending request after request is throttled once over its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_time_is_charged_for_handling_not_waiting() {
    use bytes::Bytes;
    use strom_protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use strom_protocol::kafka_protocol::messages::{GroupId, JoinGroupRequest, MetadataRequest};
    use strom_protocol::ErrorCode;
    let fx = Fixture::start_with(|c| {
        c.num_partitions = 1;
        c.set("quota.window.num", "2").unwrap();
        c.set("group.initial.rebalance.delay.ms", "1000").unwrap();
    })
    .await;
    // 1% of a thread: 10 ms of handling per second.
    set_quota(&fx, "joiner", "request_percentage", 1.0).await;
    let conn = Connection::connect(&fx.broker.bootstrap(), "joiner")
        .await
        .unwrap();
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("waiters")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::new())]);
    let first = conn.send_version(&join, 5).await.unwrap();
    assert_eq!(first.error_code, ErrorCode::MEMBER_ID_REQUIRED.code());
    let asked = Instant::now();
    let joined = conn
        .send_version(&join.clone().with_member_id(first.member_id), 5)
        .await
        .unwrap();
    assert_eq!(joined.error_code, 0);
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "joined after {waited:?}"
    );
    assert_eq!(
        joined.throttle_time_ms, 0,
        "a join that waited {waited:?} was charged for it"
    );
    // Handling does count: requests one after another pass 10 ms of handling a second.
    let mut throttled = None;
    for sent in 1..=50_000 {
        let response = conn.send(&MetadataRequest::default()).await.unwrap();
        if response.throttle_time_ms > 0 {
            throttled = Some((sent, response.throttle_time_ms));
            break;
        }
    }
    let (sent, throttle_ms) = throttled.expect("50,000 requests never throttled");
    assert!(
        throttle_ms <= 2_000,
        "throttled {throttle_ms} ms after {sent} requests"
    );
}
