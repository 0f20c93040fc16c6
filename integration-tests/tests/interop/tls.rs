//! Third-party clients over TLS and SASL: kcat and confluent-kafka (librdkafka) and
//! kafkajs against a broker with an `SSL://` listener, with a server certificate only and
//! with client certificates required (mTLS), and with a `SASL_SSL://` listener and
//! SCRAM-SHA-512; plaintext, an untrusted CA, a missing or expired client certificate and
//! a wrong password are refused, and the broker carries on. ACLs managed through confluent-kafka's
//! admin client hold its producers and consumers to them.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use strom_testkit::{run_command, Certs, CommandOutput};

use crate::support::{peer_command, Peer, TestBroker, PEER_TIMEOUT};

fn tls_broker(dir: &Path, certs: &Certs, client_auth: &str) -> TestBroker {
    let keystore = certs.issue("broker", "broker", &["localhost", "127.0.0.1"]);
    let ca = certs.ca();
    TestBroker::start_with(dir, |c| {
        c.set("listeners", "SSL://127.0.0.1:0").unwrap();
        c.set("ssl.keystore.location", keystore.both.to_str().unwrap())
            .unwrap();
        c.set("ssl.truststore.location", ca.to_str().unwrap())
            .unwrap();
        c.set("ssl.client.auth", client_auth).unwrap();
    })
}

fn kcat(kcat: &Path, bootstrap: &str, ssl: &[String], args: &[&str]) -> CommandOutput {
    let mut cmd = peer_command(kcat);
    cmd.args(["-b", bootstrap]);
    for setting in ssl {
        cmd.args(["-X", setting]);
    }
    run_command(cmd.args(args), PEER_TIMEOUT).expect("run kcat")
}

fn ssl_settings(ca: &Path, client: Option<&strom_testkit::Issued>) -> Vec<String> {
    let mut settings = vec![
        "security.protocol=ssl".to_owned(),
        format!("ssl.ca.location={}", ca.display()),
    ];
    if let Some(client) = client {
        settings.push(format!(
            "ssl.certificate.location={}",
            client.cert.display()
        ));
        settings.push(format!("ssl.key.location={}", client.key.display()));
    }
    settings
}

/// Writes `lines` from the file `input` to partition 0 of `topic` and reads them back.
fn kcat_round_trip(
    kcat_bin: &Path,
    bootstrap: &str,
    ssl: &[String],
    topic: &str,
    input: &str,
    lines: &[String],
) {
    let produced = kcat(
        kcat_bin,
        bootstrap,
        ssl,
        &["-P", "-t", topic, "-p", "0", "-l", input],
    );
    assert!(produced.success(), "kcat -P to {topic}:\n{produced}");
    let count = lines.len().to_string();
    let consumed = kcat(
        kcat_bin,
        bootstrap,
        ssl,
        &[
            "-C",
            "-t",
            topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-c",
            &count,
            "-e",
        ],
    );
    assert!(consumed.success(), "kcat -C from {topic}:\n{consumed}");
    assert_eq!(
        consumed.stdout.lines().collect::<Vec<_>>(),
        lines,
        "{consumed}"
    );
}

#[test]
fn kcat_produces_and_consumes_over_tls_and_mutual_tls() {
    let Some(kcat_bin) = crate::kcat::kcat() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::new("test ca");
    let broker = tls_broker(&dir.path().join("one"), &certs, "none");
    let bootstrap = broker.bootstrap();
    let ssl = ssl_settings(&certs.ca(), None);
    let input = dir.path().join("input.txt");
    let lines: Vec<String> = (0..20).map(|i| format!("secret {i}")).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let input = input.to_str().unwrap();
    kcat_round_trip(&kcat_bin, &bootstrap, &ssl, "tls", input, &lines);
    // Plaintext on the TLS port, and a CA that did not sign the broker's certificate.
    let plain = kcat(&kcat_bin, &bootstrap, &[], &["-L", "-m", "3"]);
    assert!(!plain.success(), "plaintext metadata over TLS:\n{plain}");
    let other = Certs::new("another ca");
    let untrusted = kcat(
        &kcat_bin,
        &bootstrap,
        &ssl_settings(&other.ca(), None),
        &["-L", "-m", "3"],
    );
    assert!(!untrusted.success(), "an untrusted broker:\n{untrusted}");
    assert!(
        untrusted.stderr.contains("certificate verify failed"),
        "{untrusted}"
    );
    let again = kcat(&kcat_bin, &bootstrap, &ssl, &["-L", "-t", "tls"]);
    assert!(again.success(), "the broker after bad peers:\n{again}");
    broker.shutdown();

    // Client certificates required.
    let broker = tls_broker(&dir.path().join("two"), &certs, "required");
    let bootstrap = broker.bootstrap();
    let without = kcat(&kcat_bin, &bootstrap, &ssl, &["-L", "-m", "3"]);
    assert!(!without.success(), "no client certificate:\n{without}");
    let expired = certs.issue_expired("old-alice", "alice", &["alice"]);
    let old = kcat(
        &kcat_bin,
        &bootstrap,
        &ssl_settings(&certs.ca(), Some(&expired)),
        &["-L", "-m", "3"],
    );
    assert!(!old.success(), "an expired client certificate:\n{old}");
    let alice = certs.issue("alice", "alice", &["alice"]);
    let with = ssl_settings(&certs.ca(), Some(&alice));
    kcat_round_trip(&kcat_bin, &bootstrap, &with, "mtls", input, &lines);
    broker.shutdown();
}

const JAAS: &str = r#"PlainLoginModule required user_alice="alice-secret";"#;

fn sasl_ssl_broker(dir: &Path, certs: &Certs) -> TestBroker {
    let keystore = certs.issue("broker", "broker", &["localhost", "127.0.0.1"]);
    TestBroker::start_with(dir, |c| {
        c.set("listeners", "SASL_SSL://127.0.0.1:0").unwrap();
        c.set("ssl.keystore.location", keystore.both.to_str().unwrap())
            .unwrap();
        c.set("sasl.jaas.config", JAAS).unwrap();
    })
}

#[test]
fn kcat_authenticates_with_scram_sha_512_over_tls() {
    let Some(kcat_bin) = crate::kcat::kcat() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::new("test ca");
    let broker = sasl_ssl_broker(&dir.path().join("broker"), &certs);
    let bootstrap = broker.bootstrap();
    let scram = |password: &str| {
        vec![
            "security.protocol=sasl_ssl".to_owned(),
            format!("ssl.ca.location={}", certs.ca().display()),
            "sasl.mechanisms=SCRAM-SHA-512".to_owned(),
            "sasl.username=alice".to_owned(),
            format!("sasl.password={password}"),
        ]
    };
    let input = dir.path().join("input.txt");
    let lines: Vec<String> = (0..20).map(|i| format!("scram {i}")).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let input = input.to_str().unwrap();
    kcat_round_trip(
        &kcat_bin,
        &bootstrap,
        &scram("alice-secret"),
        "scram",
        input,
        &lines,
    );
    let wrong = kcat(&kcat_bin, &bootstrap, &scram("wrong"), &["-L", "-m", "3"]);
    assert!(!wrong.success(), "a wrong password:\n{wrong}");
    assert!(wrong.stderr.contains("Authentication failed"), "{wrong}");
    let again = kcat(
        &kcat_bin,
        &bootstrap,
        &scram("alice-secret"),
        &["-L", "-t", "scram"],
    );
    assert!(
        again.success(),
        "the broker after a wrong password:\n{again}"
    );
    broker.shutdown();
}

/// Runs `peer`'s roundtrip scenario over SASL_SSL with SCRAM-SHA-512.
fn roundtrip_with_scram(peer: &Peer) {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::new("test ca");
    let broker = sasl_ssl_broker(dir.path(), &certs);
    let mut cmd = peer.command(&broker.bootstrap(), &["roundtrip", "none"]);
    cmd.env("STROM_PEER_SSL_CA", certs.ca())
        .env("STROM_PEER_SASL_MECHANISM", "SCRAM-SHA-512")
        .env("STROM_PEER_SASL_USER", "alice")
        .env("STROM_PEER_SASL_PASSWORD", "alice-secret");
    let out = run_command(&mut cmd, PEER_TIMEOUT).expect("run the peer");
    assert!(
        out.success(),
        "{} with SCRAM-SHA-512 over TLS:\n{out}",
        peer.name
    );
    broker.shutdown();
}

#[test]
fn confluent_kafka_with_scram_over_tls() {
    if let Some(peer) = Peer::confluent() {
        roundtrip_with_scram(&peer);
    }
}

#[test]
fn kafkajs_with_scram_over_tls() {
    if let Some(peer) = Peer::kafkajs() {
        roundtrip_with_scram(&peer);
    }
}

/// Runs `peer`'s roundtrip scenario against a broker that requires client certificates.
fn roundtrip_over_mutual_tls(peer: &Peer) {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::new("test ca");
    let broker = tls_broker(dir.path(), &certs, "required");
    let alice = certs.issue("alice", "alice", &["alice"]);
    let mut cmd = peer.command(&broker.bootstrap(), &["roundtrip", "none"]);
    cmd.env("STROM_PEER_SSL_CA", certs.ca())
        .env("STROM_PEER_SSL_CERT", &alice.cert)
        .env("STROM_PEER_SSL_KEY", &alice.key);
    let out = run_command(&mut cmd, PEER_TIMEOUT).expect("run the peer");
    assert!(out.success(), "{} over mTLS:\n{out}", peer.name);
    broker.shutdown();
}

#[test]
fn confluent_kafka_over_mutual_tls() {
    if let Some(peer) = Peer::confluent() {
        roundtrip_over_mutual_tls(&peer);
    }
}

#[test]
fn kafkajs_over_mutual_tls() {
    if let Some(peer) = Peer::kafkajs() {
        roundtrip_over_mutual_tls(&peer);
    }
}

/// ACLs through a third-party admin client (confluent-kafka's CreateAcls, DescribeAcls,
/// DeleteAcls), enforced on third-party producers: alice writes under her prefix, bob is
/// refused there, and after the ACLs are deleted alice is refused too.
#[test]
fn confluent_kafka_manages_acls_and_is_held_to_them() {
    let Some(peer) = Peer::confluent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_with(dir.path(), |c| {
        c.set("listeners", "SASL_PLAINTEXT://127.0.0.1:0").unwrap();
        c.set(
            "sasl.jaas.config",
            r#"PlainLoginModule required username="admin" password="admin-secret"
                user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret";"#,
        )
        .unwrap();
        c.set(
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        )
        .unwrap();
        c.set("super.users", "User:admin").unwrap();
    });
    let bootstrap = broker.bootstrap();
    let run = |user: &str, args: &[&str]| {
        let mut cmd = peer.command(&bootstrap, args);
        cmd.env("STROM_PEER_SASL_MECHANISM", "SCRAM-SHA-256")
            .env("STROM_PEER_SASL_USER", user)
            .env("STROM_PEER_SASL_PASSWORD", format!("{user}-secret"));
        run_command(&mut cmd, PEER_TIMEOUT).expect("run the peer")
    };
    let out = run("admin", &["acls", "User:alice", "alice."]);
    assert!(out.success(), "admin creating ACLs:\n{out}");
    // The peer's consumer looks up the coordinator of its (throwaway) group.
    let out = run(
        "admin",
        &["acls", "User:alice", "strom-interop-unused-group"],
    );
    assert!(out.success(), "admin creating ACLs:\n{out}");
    let out = run("alice", &["produce", "alice.orders", "10"]);
    assert!(out.success(), "alice writing her topic:\n{out}");
    let out = run("alice", &["consume", "alice.orders", "10"]);
    assert!(out.success(), "alice reading her topic:\n{out}");
    let refused = |out: &CommandOutput| {
        let text = format!("{}{}", out.stdout, out.stderr).to_lowercase();
        !out.success() && text.contains("authorization")
    };
    let out = run("bob", &["produce", "alice.orders", "1"]);
    assert!(refused(&out), "bob writing alice's topic:\n{out}");
    let out = run("bob", &["acls", "User:bob", "alice."]);
    assert!(refused(&out), "bob granting himself alice's topics:\n{out}");
    let out = run("admin", &["acls-delete", "User:alice"]);
    assert!(
        out.stdout.contains("deleted 4"),
        "deleting alice's ACLs:\n{out}"
    );
    let out = run("alice", &["produce", "alice.orders", "1"]);
    assert!(refused(&out), "alice without her ACLs:\n{out}");
    broker.shutdown();
}
