//! Misbehaving brokers: garbage answers, connections cut mid-response, silence. The client
//! must return a typed error (or retry) within its timeouts: never panic, never hang.

use std::time::Duration;

use strom_client::{ClientConfig, ClientError, Cluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the fake broker does with each request it reads.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// Answers with a frame of bytes that decode as nothing.
    Garbage,
    /// Announces a 100-byte answer, sends 10 bytes, closes.
    CutShort,
    /// Reads and never answers.
    Silent,
    /// Answers with the right correlation id and a truncated body.
    Truncated,
}

/// Reads one request frame's body; `None` once the peer is gone.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let len = socket.read_i32().await.ok()?;
    let mut request = vec![0u8; usize::try_from(len).ok()?];
    socket.read_exact(&mut request).await.ok()?;
    Some(request)
}

/// Starts a fake broker; returns its address.
async fn fake_broker(how: Misbehaviour) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut held = Vec::new();
                loop {
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    let correlation = request
                        .get(4..8)
                        .map_or([0; 4], |c| [c[0], c[1], c[2], c[3]]);
                    let reply: Vec<u8> = match how {
                        Misbehaviour::Garbage => {
                            [&12i32.to_be_bytes()[..], &correlation, &[0xff; 8]].concat()
                        }
                        Misbehaviour::CutShort => {
                            [&100i32.to_be_bytes()[..], &correlation, &[0; 6]].concat()
                        }
                        Misbehaviour::Truncated => {
                            [&7i32.to_be_bytes()[..], &correlation, &[0, 0, 0]].concat()
                        }
                        Misbehaviour::Silent => {
                            held.push(request);
                            continue;
                        }
                    };
                    let _ = socket.write_all(&reply).await;
                    if matches!(how, Misbehaviour::CutShort) {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn config(bootstrap: &str) -> ClientConfig {
    ClientConfig::new()
        .bootstrap(bootstrap)
        .request_timeout(Duration::from_millis(500))
        .with("socket.connection.setup.timeout.ms", "500")
        .unwrap()
}

async fn connect_fails(how: Misbehaviour) -> ClientError {
    let addr = fake_broker(how).await;
    // The outer bound only catches a hang; the client's own timeouts are far shorter.
    tokio::time::timeout(Duration::from_secs(20), Cluster::connect(config(&addr)))
        .await
        .expect("the client hung past its timeouts")
        .expect_err("a broker that misbehaves cannot be connected to")
}

#[tokio::test]
async fn misbehaving_brokers_give_typed_errors_within_the_timeouts() {
    for how in [
        Misbehaviour::Garbage,
        Misbehaviour::CutShort,
        Misbehaviour::Truncated,
        Misbehaviour::Silent,
    ] {
        let err = connect_fails(how).await;
        let typed = matches!(
            err,
            ClientError::NoBrokers { .. } | ClientError::Timeout { .. } | ClientError::Protocol(_)
        );
        assert!(typed, "{err}");
    }
}

/// A fake two-node cluster: answers ApiVersions and Metadata, listing itself as node 1 and
/// `other` as node 2. Returns its address.
async fn two_node_fake(other: std::net::SocketAddr) -> String {
    use bytes::BytesMut;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsResponse, BrokerId, MetadataRequest, MetadataResponse,
    };
    use kafka_protocol::protocol::{Message, StrBytes};
    use strom_protocol::header::{encode_response, RequestPrefix};

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let me = listener.local_addr().unwrap();
    let broker = |id: i32, addr: std::net::SocketAddr| {
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_string(addr.ip().to_string()))
            .with_port(i32::from(addr.port()))
    };
    let metadata = MetadataResponse::default()
        .with_brokers(vec![broker(1, me), broker(2, other)])
        .with_controller_id(BrokerId(1));
    let versions = ApiVersionsResponse::default().with_api_keys(vec![
        ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_max_version(3),
        ApiVersion::default()
            .with_api_key(ApiKey::Metadata as i16)
            .with_min_version(MetadataRequest::VERSIONS.min)
            .with_max_version(MetadataRequest::VERSIONS.max),
    ]);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (metadata, versions) = (metadata.clone(), versions.clone());
            tokio::spawn(async move {
                loop {
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    let prefix = RequestPrefix::peek(&request).unwrap();
                    let (version, id) = (prefix.api_version, prefix.correlation_id);
                    let mut out = BytesMut::new();
                    match ApiKey::try_from(prefix.api_key) {
                        Ok(ApiKey::ApiVersions) => {
                            encode_response(ApiKey::ApiVersions, version, id, &versions, &mut out)
                        }
                        Ok(ApiKey::Metadata) => {
                            encode_response(ApiKey::Metadata, version, id, &metadata, &mut out)
                        }
                        _ => return,
                    }
                    .unwrap();
                    if socket.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    me.to_string()
}

#[tokio::test]
async fn a_broker_that_hangs_does_not_hold_up_connections_to_the_others() {
    // Node 2 accepts connections and never answers: a dial to it lasts until the timeouts.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let (accepted, mut dialled) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
            let _ = accepted.send(());
        }
    });
    let bootstrap = two_node_fake(silent_addr).await;
    let cluster = Cluster::connect(
        ClientConfig::new()
            .bootstrap(&bootstrap)
            .request_timeout(Duration::from_secs(100))
            .with("socket.connection.setup.timeout.ms", "100000")
            .unwrap(),
    )
    .await
    .unwrap();
    let hanging = tokio::spawn({
        let cluster = cluster.clone();
        async move { cluster.broker(2).await }
    });
    dialled.recv().await.expect("node 2 dialled");
    // Far below the 100 s the dial to node 2 may take.
    let node1 = tokio::time::timeout(Duration::from_secs(20), cluster.broker(1))
        .await
        .expect("the lookup of node 1 waited for the dial to node 2");
    assert!(!node1.unwrap().is_closed());
    assert!(!hanging.is_finished(), "node 2 never answers");
    hanging.abort();
}
