//! Tests of the configuration layer.

use super::*;
use proptest::prelude::*;

/// A valid value for `canonical` that differs from its default.
fn sample(canonical: &str) -> &'static str {
    match canonical {
        "bootstrap.servers" => "a:9092,[::1]:9093",
        "client.id" | "client.rack" | "transactional.id" | "group.id" => "x1",
        "group.instance.id" => "member-1",
        "acks" => "0",
        "compression.type" => "lz4",
        "enable.idempotence" | "enable.auto.commit" => "false",
        "partitioner" => "murmur2_random",
        "isolation.level" => "read_committed",
        "auto.offset.reset" => "earliest",
        "partition.assignment.strategy" => "roundrobin,range",
        "security.protocol" => "SSL",
        "ssl.ca.location" | "ssl.certificate.location" | "ssl.key.location" => "/etc/kafka/x.pem",
        "ssl.endpoint.identification.algorithm" => "",
        "sasl.mechanism" => "SCRAM-SHA-512",
        "sasl.username" | "sasl.password" => "x1",
        "sasl.jaas.config" => "PlainLoginModule required username=\"u\" password=\"p\";",
        _ => "7",
    }
}

fn expect_config_error(result: Result<&mut ClientConfig, ClientError>, key: &str) {
    match result {
        Err(ClientError::Config { key: k, reason, .. }) => {
            assert_eq!(k, key);
            assert!(
                reason.contains("expected") || reason.contains("not"),
                "{reason}"
            );
        }
        other => panic!("{key}: expected a Config error, got {other:?}"),
    }
}

#[test]
fn every_key_parses_and_reads_back() {
    let defaults = ClientConfig::new();
    for (key, canonical) in KEYS {
        let mut config = ClientConfig::new();
        config.set(key, sample(canonical)).unwrap();
        // A JAAS line is read into sasl.username and sasl.password.
        let hidden = *canonical == "sasl.jaas.config";
        let expected = if hidden { "" } else { sample(canonical) };
        assert_eq!(config.get(key).unwrap(), expected, "{key}");
        assert_ne!(config, defaults, "{key} changed nothing");
    }
}

#[test]
fn to_pairs_lists_each_java_key_once() {
    let pairs = ClientConfig::new().to_pairs();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, java_keys().collect::<Vec<_>>());
    let find = |k: &str| pairs.iter().find(|(key, _)| key == k).unwrap().1.clone();
    assert_eq!(find("acks"), "all");
    assert_eq!(find("linger.ms"), "5");
    assert_eq!(find("retries"), "2147483647");
    assert_eq!(find("enable.idempotence"), "true");
    assert_eq!(find("group.id"), "");
}

#[test]
fn bad_values_name_the_key() {
    let free_text = [
        "client.id",
        "client.rack",
        "ssl.ca.location",
        "sasl.username",
        "sasl.password",
        "ssl.certificate.location",
        "ssl.key.location",
        "transactional.id",
        "group.id",
        "group.instance.id",
    ];
    for (key, canonical) in KEYS {
        if !free_text.contains(canonical) {
            expect_config_error(ClientConfig::new().set(key, "bogus"), key);
        }
    }
    let mut config = ClientConfig::new();
    expect_config_error(config.set("batch.size", "-1"), "batch.size");
    expect_config_error(config.set("batch.size", "2147483648"), "batch.size");
    expect_config_error(config.set("max.poll.records", "0"), "max.poll.records");
    expect_config_error(
        config.set("bootstrap.servers", "a:1,b"),
        "bootstrap.servers",
    );
    expect_config_error(
        config.set("bootstrap.servers", "a:99999"),
        "bootstrap.servers",
    );
    expect_config_error(
        config.set("partitioner", "consistent_random"),
        "partitioner",
    );
    let err = config.set("linger.ms", "soon").unwrap_err().to_string();
    assert_eq!(
        err,
        "configuration linger.ms=soon: expected an integer from 0 to 9223372036854775807"
    );
    // A failed set leaves the old value.
    assert_eq!(config, ClientConfig::new());
}

#[test]
fn unknown_keys_suggest_the_near_one() {
    let err = ClientConfig::new().set("linger.mss", "5").unwrap_err();
    match &err {
        ClientError::UnknownConfig { key, suggestion } => {
            assert_eq!(key, "linger.mss");
            assert_eq!(suggestion.as_deref(), Some("linger.ms"));
        }
        other => panic!("{other:?}"),
    }
    let err = ClientConfig::new().set("key.serializer", "x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown configuration key \"key.serializer\""
    );
    assert!(ClientConfig::new().get("acks.x").is_err());
}

#[test]
fn values_are_trimmed_and_case_insensitive() {
    let config = ClientConfig::from_pairs([
        (" acks ", " ALL "),
        ("enable.auto.commit", "False"),
        ("compression.type", "ZSTD"),
        ("bootstrap.servers", " a:1 , PLAINTEXT://b:2 ,"),
        ("group.id", ""),
    ])
    .unwrap();
    assert_eq!(config.acks, Acks::All);
    assert!(!config.enable_auto_commit);
    assert_eq!(config.compression, Compression::Zstd);
    assert_eq!(config.bootstrap_servers, ["a:1", "PLAINTEXT://b:2"]);
    assert_eq!(config.group_id, None);
}

#[test]
fn librdkafka_aliases_set_the_java_fields() {
    let pairs: &[(&str, &str)] = &[
        ("metadata.broker.list", "k1:9092,k2:9092"),
        ("queue.buffering.max.ms", "25"),
        ("compression.codec", "snappy"),
        ("request.required.acks", "-1"),
        ("message.max.bytes", "2000000"),
        ("message.timeout.ms", "90000"),
        ("message.send.max.retries", "3"),
        ("max.in.flight", "2"),
        ("fetch.wait.max.ms", "100"),
        ("fetch.message.max.bytes", "4096"),
        ("auto.offset.reset", "smallest"),
        ("partitioner", "murmur2"),
    ];
    let config = ClientConfig::try_from(pairs).unwrap();
    assert_eq!(config.bootstrap_servers, ["k1:9092", "k2:9092"]);
    assert_eq!(config.linger_ms, 25);
    assert_eq!(config.compression, Compression::Snappy);
    assert_eq!(config.acks, Acks::All);
    assert_eq!(config.message_max_bytes, 2_000_000);
    assert_eq!(config.delivery_timeout_ms, 90_000);
    assert_eq!(config.retries, 3);
    assert_eq!(config.max_in_flight_requests_per_connection, 2);
    assert_eq!(config.fetch_max_wait_ms, 100);
    assert_eq!(config.max_partition_fetch_bytes, 4096);
    assert_eq!(config.auto_offset_reset, OffsetReset::Earliest);
    assert_eq!(config.partitioner, PartitionerKind::Murmur2);
    assert_eq!(config.get("max.request.size").unwrap(), "2000000");
    config.validate().unwrap();
}

#[test]
fn builders_set_the_fields() {
    let config = ClientConfig::new()
        .bootstrap("h:1")
        .client_id("c")
        .acks(Acks::Leader)
        .linger(Duration::from_millis(7))
        .batch_size(1000)
        .compression(Compression::Gzip)
        .enable_idempotence(false)
        .max_in_flight(9)
        .request_timeout(Duration::from_secs(3))
        .delivery_timeout(Duration::from_secs(60))
        .retries(4)
        .retry_backoff(Duration::from_millis(20))
        .partitioner(PartitionerKind::Random)
        .group_id("g")
        .group_instance_id("i")
        .isolation_level(IsolationLevel::ReadCommitted)
        .auto_offset_reset(OffsetReset::None)
        .enable_auto_commit(false)
        .session_timeout(Duration::from_secs(10))
        .fetch_max_wait(Duration::from_millis(50))
        .max_poll_records(10)
        .with("client.rack", "r1")
        .unwrap();
    config.validate().unwrap();
    let expected = ClientConfig::from_pairs([
        ("bootstrap.servers", "h:1"),
        ("client.id", "c"),
        ("acks", "1"),
        ("linger.ms", "7"),
        ("batch.size", "1000"),
        ("compression.type", "gzip"),
        ("enable.idempotence", "false"),
        ("max.in.flight.requests.per.connection", "9"),
        ("request.timeout.ms", "3000"),
        ("delivery.timeout.ms", "60000"),
        ("retries", "4"),
        ("retry.backoff.ms", "20"),
        ("partitioner", "random"),
        ("group.id", "g"),
        ("group.instance.id", "i"),
        ("isolation.level", "read_committed"),
        ("auto.offset.reset", "none"),
        ("enable.auto.commit", "false"),
        ("session.timeout.ms", "10000"),
        ("fetch.max.wait.ms", "50"),
        ("max.poll.records", "10"),
        ("client.rack", "r1"),
    ])
    .unwrap();
    assert_eq!(config, expected);
}

#[test]
fn defaults_are_the_java_clients() {
    let c = ClientConfig::default();
    assert_eq!((c.acks, c.linger_ms, c.batch_size), (Acks::All, 5, 16_384));
    assert_eq!(c.max_in_flight_requests_per_connection, 5);
    assert_eq!(
        (c.request_timeout_ms, c.delivery_timeout_ms),
        (30_000, 120_000)
    );
    assert_eq!(c.retries, 2_147_483_647);
    assert_eq!(c.isolation_level, IsolationLevel::ReadUncommitted);
    assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
    assert!(c.idempotence_enabled());
    // Only the missing bootstrap servers keep the defaults from being usable.
    let err = c.validate().unwrap_err();
    assert!(err
        .to_string()
        .starts_with("configuration bootstrap.servers=: required"));
    c.bootstrap("localhost:9092").validate().unwrap();
}

fn base() -> ClientConfig {
    ClientConfig::new().bootstrap("localhost:9092")
}

fn conflict_key(config: &ClientConfig) -> String {
    match config.validate() {
        Err(ClientError::Config { key, reason, .. }) => {
            assert!(reason.contains("idempotence"), "{reason}");
            key
        }
        other => panic!("expected an idempotence conflict, got {other:?}"),
    }
}

#[test]
fn implicit_idempotence_turns_off_on_conflict() {
    for config in [
        base().acks(Acks::Leader),
        base().acks(Acks::None),
        base().max_in_flight(6),
        base().retries(0),
    ] {
        assert!(!config.idempotence_enabled(), "{config:?}");
        config.validate().unwrap();
        assert_eq!(config.get("enable.idempotence").unwrap(), "false");
    }
    assert!(base().max_in_flight(5).idempotence_enabled());
}

#[test]
fn explicit_idempotence_rejects_conflicts_naming_both_keys() {
    let on = || base().enable_idempotence(true);
    assert_eq!(conflict_key(&on().acks(Acks::Leader)), "acks");
    assert_eq!(
        conflict_key(&on().max_in_flight(6)),
        "max.in.flight.requests.per.connection"
    );
    assert_eq!(conflict_key(&on().retries(0)), "retries");
    let err = on().max_in_flight(6).validate().unwrap_err().to_string();
    assert_eq!(
        err,
        "configuration max.in.flight.requests.per.connection=6: enable.idempotence=true \
         requires max.in.flight.requests.per.connection <= 5; change \
         max.in.flight.requests.per.connection or set enable.idempotence=false"
    );
    on().validate().unwrap();
    base()
        .enable_idempotence(false)
        .acks(Acks::Leader)
        .validate()
        .unwrap();
}

#[test]
fn transactions_need_idempotence() {
    base().transactional_id("t").validate().unwrap();
    assert_eq!(
        conflict_key(&base().transactional_id("t").acks(Acks::Leader)),
        "acks"
    );
    let off = base().transactional_id("t").enable_idempotence(false);
    assert_eq!(conflict_key(&off), "enable.idempotence");
}

#[test]
fn timeouts_and_names_are_checked() {
    let err = base().request_timeout(Duration::from_secs(200)).validate();
    let Err(ClientError::Config { key, reason, .. }) = err else {
        panic!("{err:?}")
    };
    assert_eq!(key, "delivery.timeout.ms");
    assert!(
        reason.contains("linger.ms + request.timeout.ms"),
        "{reason}"
    );
    let err = base().session_timeout(Duration::from_secs(3)).validate();
    assert!(matches!(err, Err(ClientError::Config { key, .. }) if key == "heartbeat.interval.ms"));
    let err = base().group_id("").validate();
    assert!(matches!(err, Err(ClientError::Config { key, .. }) if key == "group.id"));
    let mut config = base();
    config.max_poll_records = 0;
    let err = config.validate();
    assert!(matches!(err, Err(ClientError::Config { key, .. }) if key == "max.poll.records"));
    config.max_poll_records = 1;
    config.request_timeout_ms = INT + 1;
    config.delivery_timeout_ms = LONG;
    let err = config.validate();
    assert!(matches!(err, Err(ClientError::Config { key, .. }) if key == "request.timeout.ms"));
}

fn arb_name() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[a-z0-9-]{1,12}")
}

fn arb_config() -> impl Strategy<Value = ClientConfig> {
    let int = || 0..=INT;
    let long = || 0..=LONG;
    let strings = (
        prop::collection::vec(("[a-z][a-z0-9.-]{0,12}", any::<u16>()), 0..4),
        "[a-zA-Z0-9._-]{0,16}",
        (arb_name(), arb_name(), arb_name(), arb_name()),
    );
    let choices = (
        prop::sample::select(vec![Acks::None, Acks::Leader, Acks::All]),
        prop::sample::select(Compression::ALL.to_vec()),
        prop::option::of(any::<bool>()),
        prop::sample::select(vec![
            PartitionerKind::Default,
            PartitionerKind::Murmur2,
            PartitionerKind::Murmur2Random,
            PartitionerKind::Random,
        ]),
        any::<bool>(),
        prop::sample::select(vec![
            IsolationLevel::ReadCommitted,
            IsolationLevel::ReadUncommitted,
        ]),
        prop::sample::select(vec![
            OffsetReset::Earliest,
            OffsetReset::Latest,
            OffsetReset::None,
        ]),
    );
    let producer = (
        (long(), int(), long(), 1..=INT, int(), int()),
        (int(), long(), long(), long(), long(), int()),
    );
    let consumer = (
        (int(), int(), int(), int(), int(), int()),
        (int(), 1..=INT, 1..=INT, int()),
        (long(), long(), long(), long()),
    );
    (strings, choices, producer, consumer).prop_map(|(s, c, p, n)| {
        let to = |v: u64| usize::try_from(v).unwrap();
        let small = |v: u64| u32::try_from(v).unwrap();
        ClientConfig {
            bootstrap_servers: s.0.iter().map(|(h, p)| format!("{h}:{p}")).collect(),
            client_id: s.1,
            client_rack: s.2 .0,
            security_protocol: if c.4 {
                SecurityProtocol::Ssl
            } else {
                SecurityProtocol::Plaintext
            },
            sasl_mechanism: strom_protocol::sasl::Mechanism::Plain,
            sasl_username: None,
            sasl_password: None,
            ssl: strom_protocol::tls::ClientTls {
                ca: c.4.then(|| "/etc/kafka/ca.pem".into()),
                certificate: None,
                key: None,
                verify_hostname: !c.4,
            },
            transactional_id: s.2 .1,
            group_id: s.2 .2,
            group_instance_id: s.2 .3,
            partition_assignment_strategy: if c.4 {
                vec!["range".to_owned(), "cooperative-sticky".to_owned()]
            } else {
                vec!["roundrobin".to_owned()]
            },
            acks: c.0,
            compression: c.1,
            enable_idempotence: c.2,
            partitioner: c.3,
            enable_auto_commit: c.4,
            isolation_level: c.5,
            auto_offset_reset: c.6,
            linger_ms: p.0 .0,
            batch_size: to(p.0 .1),
            buffer_memory: to(p.0 .2),
            max_in_flight_requests_per_connection: small(p.0 .3),
            request_timeout_ms: p.0 .4,
            delivery_timeout_ms: p.0 .5,
            retries: small(p.1 .0),
            retry_backoff_ms: p.1 .1,
            retry_backoff_max_ms: p.1 .2,
            metadata_max_age_ms: p.1 .3,
            max_block_ms: p.1 .4,
            message_max_bytes: to(p.1 .5),
            transaction_timeout_ms: n.0 .0,
            fetch_min_bytes: small(n.0 .1),
            fetch_max_bytes: small(n.0 .2),
            fetch_max_wait_ms: n.0 .3,
            max_partition_fetch_bytes: small(n.0 .4),
            session_timeout_ms: n.0 .5,
            heartbeat_interval_ms: n.1 .0,
            max_poll_interval_ms: n.1 .1,
            max_poll_records: small(n.1 .2),
            auto_commit_interval_ms: n.1 .3,
            socket_connection_setup_timeout_ms: n.2 .0,
            connections_max_idle_ms: n.2 .1,
            reconnect_backoff_ms: n.2 .2,
            reconnect_backoff_max_ms: n.2 .3,
        }
    })
}

proptest! {
    #[test]
    fn to_pairs_round_trips(config in arb_config()) {
        let parsed = ClientConfig::from_pairs(config.to_pairs()).unwrap();
        let mut expected = config.clone();
        expected.enable_idempotence = Some(config.idempotence_enabled());
        prop_assert_eq!(&parsed, &expected);
        prop_assert_eq!(parsed.to_pairs(), config.to_pairs());
        prop_assert_eq!(parsed.validate().is_ok(), config.validate().is_ok());
    }
}

#[test]
fn passwords_are_not_printed() {
    let mut config = ClientConfig::new();
    config
        .set(
            "sasl.jaas.config",
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="hunter2";"#,
        )
        .unwrap();
    assert_eq!(config.sasl_username.as_deref(), Some("alice"));
    assert_eq!(config.get("sasl.password").unwrap(), "hunter2");
    assert!(!format!("{config:?}").contains("hunter2"));
    expect_config_error(
        config.set("sasl.jaas.config", "username=alice"),
        "sasl.jaas.config",
    );
}
