//! Idempotent produce with real retries: a proxy between an idempotent librdkafka producer
//! and the broker swallows the first Produce response and cuts the connection, so the
//! producer resends a batch the broker has already stored. The broker must acknowledge the
//! resend without storing it twice: every record exactly once, in order.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use strom_protocol::frame::{FrameReader, DEFAULT_MAX_FRAME_BYTES};
use strom_protocol::header::RequestPrefix;
use strom_protocol::kafka_protocol::messages::ApiKey;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Peer, TestBroker};

/// Forwards Kafka frames between clients and `upstream`, dropping the response to the
/// `drop_nth` Produce request seen (1-based, counted over all connections) and closing that
/// connection instead.
async fn proxy(
    listener: TcpListener,
    upstream: std::net::SocketAddr,
    drop_nth: usize,
    dropped: Arc<AtomicUsize>,
) {
    let produces = Arc::new(AtomicUsize::new(0));
    while let Ok((client, _)) = listener.accept().await {
        let (produces, dropped) = (produces.clone(), dropped.clone());
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let (client_read, mut client_write) = client.into_split();
            let (server_read, mut server_write) = server.into_split();
            // API keys of the requests in flight, oldest first.
            let in_flight = Arc::new(Mutex::new(VecDeque::new()));
            let requests = in_flight.clone();
            let upward = tokio::spawn(async move {
                let mut frames = FrameReader::new(client_read, DEFAULT_MAX_FRAME_BYTES);
                while let Ok(Some(frame)) = frames.next_frame().await {
                    let Ok(prefix) = RequestPrefix::peek(&frame) else {
                        break;
                    };
                    requests.lock().unwrap().push_back(prefix.api_key);
                    let mut out = (frame.len() as u32).to_be_bytes().to_vec();
                    out.extend_from_slice(&frame);
                    if server_write.write_all(&out).await.is_err() {
                        break;
                    }
                }
            });
            let mut frames = FrameReader::new(server_read, DEFAULT_MAX_FRAME_BYTES);
            while let Ok(Some(frame)) = frames.next_frame().await {
                let api = in_flight.lock().unwrap().pop_front();
                if api == Some(ApiKey::Produce as i16)
                    && produces.fetch_add(1, Ordering::SeqCst) + 1 == drop_nth
                {
                    dropped.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                let mut out = (frame.len() as u32).to_be_bytes().to_vec();
                out.extend_from_slice(&frame);
                if client_write.write_all(&out).await.is_err() {
                    break;
                }
            }
            upward.abort();
        });
    }
}

#[test]
fn idempotent_producer_retries_are_stored_once() {
    let Some(peer) = Peer::confluent() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Clients learn the proxy's address from metadata, so every connection goes through it.
    let broker = TestBroker::start_with(dir.path(), |c| {
        c.set("advertised.listeners", &format!("PLAINTEXT://{proxy_addr}"))
            .unwrap();
    });
    let upstream = broker.local_addr();
    let dropped = Arc::new(AtomicUsize::new(0));
    runtime.spawn(proxy(listener, upstream, 1, dropped.clone()));
    peer.run_ok(&proxy_addr.to_string(), &["idempotent"]);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the proxy dropped a Produce response"
    );
    broker.shutdown();
}
