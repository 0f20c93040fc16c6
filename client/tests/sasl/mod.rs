//! SASL between the client and the broker: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 over
//! plaintext and over TLS; wrong passwords, unknown users, mechanisms the broker does not
//! offer and clients that skip authentication are refused.

use strom_client::admin::Admin;
use strom_client::ClientConfig;
use strom_testkit::Certs;

use crate::support::TestBroker;
use crate::tls::{round_trip, still_serves};

const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required
    username="admin" password="admin-secret" user_alice="alice-secret" user_bob="bob secret";"#;

async fn sasl_broker(
    listener: &str,
    configure: impl FnOnce(&mut strom_broker::BrokerConfig),
) -> TestBroker {
    let listener = listener.to_owned();
    TestBroker::start_with(move |c| {
        c.set("listeners", &listener).unwrap();
        c.set("listener.name.sasl.plain.sasl.jaas.config", JAAS)
            .unwrap();
        configure(c);
    })
    .await
}

fn sasl_config(
    b: &TestBroker,
    protocol: &str,
    mechanism: &str,
    user: &str,
    password: &str,
) -> ClientConfig {
    let mut config = b.config();
    config
        .set("security.protocol", protocol)
        .unwrap()
        .set("sasl.mechanism", mechanism)
        .unwrap()
        .set("sasl.username", user)
        .unwrap()
        .set("sasl.password", password)
        .unwrap()
        .set("socket.connection.setup.timeout.ms", "5000")
        .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mechanism_authenticates_and_bad_credentials_are_refused() {
    let b = sasl_broker("SASL_PLAINTEXT://127.0.0.1:0", |_| {}).await;
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let config = sasl_config(&b, "SASL_PLAINTEXT", mechanism, "alice", "alice-secret");
        round_trip(&config, &format!("sasl-{}", mechanism.to_lowercase())).await;
        // A password with a space, and the user from a JAAS line.
        let mut bob = sasl_config(&b, "SASL_PLAINTEXT", mechanism, "x", "y");
        bob.set(
            "sasl.jaas.config",
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="bob" password="bob secret";"#,
        )
        .unwrap();
        Admin::connect(bob).await.unwrap();
        for (user, password) in [("alice", "wrong"), ("mallory", "alice-secret")] {
            let e = Admin::connect(sasl_config(&b, "SASL_PLAINTEXT", mechanism, user, password))
                .await
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("Authentication failed"),
                "{mechanism} {user}: {e}"
            );
        }
    }
    // Skipping authentication: the broker closes the connection at the first request.
    let plain = b
        .config()
        .set("socket.connection.setup.timeout.ms", "3000")
        .unwrap()
        .clone();
    assert!(Admin::connect(plain).await.is_err());
    // Missing credentials are a configuration error.
    let mut missing = b.config();
    missing.set("security.protocol", "SASL_PLAINTEXT").unwrap();
    let e = Admin::connect(missing).await.unwrap_err().to_string();
    assert!(e.contains("sasl.username"), "{e}");
    // The broker still serves.
    let ok = sasl_config(
        &b,
        "SASL_PLAINTEXT",
        "SCRAM-SHA-512",
        "alice",
        "alice-secret",
    );
    still_serves(ok, "sasl-plain").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_over_tls_and_mechanisms_the_broker_does_not_offer() {
    let certs = Certs::new("sasl ca");
    let keystore = certs.issue("broker", "broker", &["127.0.0.1"]);
    let b = sasl_broker("SASL_SSL://127.0.0.1:0", |c| {
        c.set("ssl.keystore.location", keystore.both.to_str().unwrap())
            .unwrap();
        c.set("sasl.enabled.mechanisms", "SCRAM-SHA-512").unwrap();
    })
    .await;
    let mut config = sasl_config(&b, "SASL_SSL", "SCRAM-SHA-512", "alice", "alice-secret");
    config
        .set("ssl.ca.location", certs.ca().to_str().unwrap())
        .unwrap();
    round_trip(&config, "sasl-ssl").await;
    let mut plain = config.clone();
    plain.set("sasl.mechanism", "PLAIN").unwrap();
    let e = Admin::connect(plain).await.unwrap_err().to_string();
    assert!(e.contains("offers") && e.contains("SCRAM-SHA-512"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_users_added_through_the_admin_api_log_in_until_deleted() {
    use strom_client::admin::ScramCredentialInfo;
    use strom_protocol::sasl::Mechanism;
    let b = sasl_broker("SASL_PLAINTEXT://127.0.0.1:0", |_| {}).await;
    let admin = Admin::connect(sasl_config(
        &b,
        "SASL_PLAINTEXT",
        "SCRAM-SHA-512",
        "alice",
        "alice-secret",
    ))
    .await
    .unwrap();
    admin
        .upsert_scram_credential("carol", Mechanism::ScramSha256, "carol-pw", 8192)
        .await
        .unwrap();
    let carol = |mechanism| sasl_config(&b, "SASL_PLAINTEXT", mechanism, "carol", "carol-pw");
    Admin::connect(carol("SCRAM-SHA-256")).await.unwrap();
    Admin::connect(carol("PLAIN")).await.unwrap();
    assert!(Admin::connect(carol("SCRAM-SHA-512")).await.is_err());
    let described = admin.describe_scram_credentials(None).await.unwrap();
    assert_eq!(
        described,
        [(
            "carol".to_owned(),
            vec![ScramCredentialInfo {
                mechanism: Mechanism::ScramSha256,
                iterations: 8192
            }]
        )]
    );
    let e = admin
        .upsert_scram_credential("dave", Mechanism::ScramSha512, "pw", 100)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("iterations"), "{e}");
    admin
        .delete_scram_credential("carol", Mechanism::ScramSha256)
        .await
        .unwrap();
    assert!(Admin::connect(carol("SCRAM-SHA-256")).await.is_err());
    let e = admin
        .describe_scram_credentials(Some(&["carol"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no SCRAM credential for carol"), "{e}");
    let e = admin
        .delete_scram_credential("carol", Mechanism::ScramSha256)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("RESOURCE_NOT_FOUND") || e.contains("no SCRAM-SHA-256"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_requests_before_authentication_close_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = sasl_broker("SASL_PLAINTEXT://127.0.0.1:0", |_| {}).await;
    let mut stream = tokio::net::TcpStream::connect(b.broker.bootstrap())
        .await
        .unwrap();
    // A frame announcing 1 MiB, above the 512 KiB allowed before authentication.
    stream
        .write_all(&(1_048_576_u32).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&[0; 1024]).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the broker closes the connection");
    assert!(read.is_err() || answer.is_empty(), "{answer:?}");
    let ok = sasl_config(&b, "SASL_PLAINTEXT", "PLAIN", "alice", "alice-secret");
    Admin::connect(ok).await.unwrap();
}

/// Re-authentication (KIP-368): with `connections.max.reauth.ms` the broker limits each
/// session, closes a connection whose session ran out at its next request, and lets the
/// client authenticate again on it, as the same user only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_unless_the_client_authenticates_again() {
    use std::time::{Duration, Instant};
    use strom_protocol::connection::Connection;
    use strom_protocol::kafka_protocol::messages::{
        MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
    };
    use strom_protocol::kafka_protocol::protocol::StrBytes;
    use strom_protocol::sasl::plain_message;

    const LIFETIME: Duration = Duration::from_millis(3000);
    let b = sasl_broker("SASL_PLAINTEXT://127.0.0.1:0", |c| {
        c.set("connections.max.reauth.ms", "3000").unwrap();
    })
    .await;
    async fn authenticate(
        conn: &Connection,
        user: &str,
        password: &str,
    ) -> Result<
        strom_protocol::kafka_protocol::messages::SaslAuthenticateResponse,
        strom_protocol::ProtocolError,
    > {
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
        let r = conn.send(&handshake).await.unwrap();
        assert_eq!(r.error_code, 0);
        let message = plain_message(user, password);
        conn.send(&SaslAuthenticateRequest::default().with_auth_bytes(message.into()))
            .await
    }
    let conn = Connection::connect(&b.broker.bootstrap(), "reauth")
        .await
        .unwrap();
    let first = authenticate(&conn, "alice", "alice-secret").await.unwrap();
    assert_eq!((first.error_code, first.session_lifetime_ms), (0, 3000));
    let authenticated_at = Instant::now();
    conn.send(&MetadataRequest::default()).await.unwrap();
    // Again, as the same user, half way through the session: a new session.
    tokio::time::sleep(LIFETIME / 2).await;
    let again = authenticate(&conn, "alice", "alice-secret").await.unwrap();
    assert_eq!((again.error_code, again.session_lifetime_ms), (0, 3000));
    // Past the first session's end, inside the second's: still served.
    tokio::time::sleep((authenticated_at + LIFETIME + Duration::from_millis(200)) - Instant::now())
        .await;
    conn.send(&MetadataRequest::default()).await.unwrap();
    // Past the second's end: the next request closes the connection.
    tokio::time::sleep(LIFETIME / 2).await;
    assert!(conn.send(&MetadataRequest::default()).await.is_err());

    // Another user on the same connection: refused, and the connection closed.
    let conn = Connection::connect(&b.broker.bootstrap(), "reauth")
        .await
        .unwrap();
    authenticate(&conn, "alice", "alice-secret").await.unwrap();
    let switched = authenticate(&conn, "bob", "bob secret").await.unwrap();
    assert_eq!(switched.error_code, 58, "SASL_AUTHENTICATION_FAILED");
    assert!(conn.send(&MetadataRequest::default()).await.is_err());

    // The client replaces a connection before its session ends, so requests keep
    // going through without a failure.
    let config = sasl_config(
        &b,
        "SASL_PLAINTEXT",
        "SCRAM-SHA-512",
        "alice",
        "alice-secret",
    );
    let cluster = strom_client::Cluster::connect(config).await.unwrap();
    let before = cluster.any_broker().await.unwrap();
    tokio::time::sleep(LIFETIME).await;
    let after = cluster.any_broker().await.unwrap();
    assert!(!std::sync::Arc::ptr_eq(&before, &after));
    after.send(&MetadataRequest::default()).await.unwrap();
}

/// A broker with nothing but a SASL listener logs in to itself (the `username` and
/// `password` of its JAAS line) to write transaction markers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_on_a_broker_with_only_sasl() {
    let b = sasl_broker("SASL_PLAINTEXT://127.0.0.1:0", |c| {
        let jaas = r#"org.apache.kafka.common.security.scram.ScramLoginModule required
            username="broker" password="broker-secret" user_broker="broker-secret";"#;
        c.set(
            "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config",
            jaas,
        )
        .unwrap();
        c.set("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-256")
            .unwrap();
    })
    .await;
    let config = sasl_config(
        &b,
        "SASL_PLAINTEXT",
        "SCRAM-SHA-512",
        "alice",
        "alice-secret",
    );
    crate::tls::committed_transaction(&config, "txn-sasl").await;
}
