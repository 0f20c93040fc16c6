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

/// Starts a fake broker; returns its address.
async fn fake_broker(how: Misbehaviour) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut held = Vec::new();
                loop {
                    let Ok(len) = socket.read_i32().await else {
                        return;
                    };
                    let mut request = vec![0u8; len.max(0) as usize];
                    if socket.read_exact(&mut request).await.is_err() {
                        return;
                    }
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
