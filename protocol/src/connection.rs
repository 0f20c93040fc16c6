//! An async client connection: correlation ids, pipelined in-flight requests, version
//! negotiation.
//!
//! ```text
//!  send() ──encode──▶ writer task ──frames──▶ socket ──frames──▶ reader task ──▶ send() resumes
//!                         │ pushes (correlation id, reply slot) ▲ pops in order │
//!                         └──────────────── in-flight queue ────┘
//! ```
//!
//! Kafka answers the requests of one connection in the order they were sent, so the reader
//! matches each response to the oldest request in flight and checks its correlation id. Many
//! callers may share one `Connection`; their requests are pipelined on the socket.
//!
//! ```
//! # async fn demo(addr: &str) -> Result<(), strom_protocol::ProtocolError> {
//! use strom_protocol::connection::Connection;
//! use strom_protocol::kafka_protocol::messages::MetadataRequest;
//! let conn = Connection::connect(addr, "my-app").await?;
//! let metadata = conn.send(&MetadataRequest::default()).await?;
//! println!("{} brokers", metadata.brokers.len());
//! # Ok(()) }
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader};
use kafka_protocol::protocol::{Request, StrBytes, VersionRange};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::frame::{FrameReader, DEFAULT_MAX_FRAME_BYTES};
use crate::header::{decode_body, decode_response_header, encode_request};
use crate::versions::{api_name, negotiate};
use crate::{ErrorCode, ProtocolError};

/// Default time a request may wait for its response (`request.timeout.ms`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

type Reply = oneshot::Sender<Result<Bytes, ProtocolError>>;

struct InFlight {
    correlation_id: i32,
    api: ApiKey,
    version: i16,
    reply: Reply,
}

struct Outgoing {
    header: RequestHeader,
    body: BytesMut,
    reply: Option<Reply>,
}

struct Shared {
    in_flight: Mutex<VecDeque<InFlight>>,
    closed: AtomicBool,
}

/// A connection to one Kafka broker. Cheap to share behind an `Arc`; requests from many
/// tasks are pipelined.
pub struct Connection {
    outgoing: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
    client_id: StrBytes,
    broker_versions: HashMap<i16, VersionRange>,
    request_timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("client_id", &self.client_id.as_str())
            .field("apis", &self.broker_versions.len())
            .finish()
    }
}

impl Connection {
    /// Connects over TCP and negotiates API versions.
    pub async fn connect(addr: &str, client_id: &str) -> Result<Connection, ProtocolError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut conn = Connection::from_stream(stream, client_id);
        conn.negotiate_versions().await?;
        Ok(conn)
    }

    /// Wraps an established byte stream without negotiating versions: every API is then
    /// assumed to be supported up to the version this crate knows.
    pub fn from_stream<S>(stream: S, client_id: &str) -> Connection
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        let shared = Arc::new(Shared {
            in_flight: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(write_loop(write, rx, shared.clone()));
        tokio::spawn(read_loop(
            FrameReader::new(read, DEFAULT_MAX_FRAME_BYTES),
            shared.clone(),
        ));
        Connection {
            outgoing: tx,
            shared,
            client_id: StrBytes::from_string(client_id.to_owned()),
            broker_versions: HashMap::new(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Sets how long a request waits for its response.
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
    }

    /// Asks the broker which versions it supports (ApiVersions v3, falling back to v0 when the
    /// broker answers `UNSUPPORTED_VERSION`) and remembers them.
    pub async fn negotiate_versions(&mut self) -> Result<(), ProtocolError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strom"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response = self.send_version(&request, 3).await?;
        if response.error_code == ErrorCode::UNSUPPORTED_VERSION.code() {
            response = self.send_version(&request, 0).await?;
        }
        let code = ErrorCode(response.error_code);
        if !code.is_ok() {
            return Err(ProtocolError::Broker(code));
        }
        self.broker_versions = response
            .api_keys
            .iter()
            .map(|k| {
                let range = VersionRange {
                    min: k.min_version,
                    max: k.max_version,
                };
                (k.api_key, range)
            })
            .collect();
        Ok(())
    }

    /// The version of `R` this connection uses: the highest both sides support.
    pub fn version_for<R: Request>(&self) -> Result<i16, ProtocolError> {
        let ours = R::VERSIONS;
        let theirs = self.broker_versions.get(&R::KEY).copied().unwrap_or(ours);
        negotiate(ours, theirs).ok_or_else(|| {
            let api = ApiKey::try_from(R::KEY).map(api_name).unwrap_or("unknown");
            ProtocolError::UnsupportedVersion {
                api,
                version: ours.max,
                min: theirs.min,
                max: theirs.max,
            }
        })
    }

    /// Sends `request` at the negotiated version and waits for its response.
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Response, ProtocolError> {
        let version = self.version_for::<R>()?;
        self.send_version(request, version).await
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn send_version<R: Request>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ProtocolError> {
        let api = api_of::<R>()?;
        let (tx, rx) = oneshot::channel();
        self.enqueue(request, version, Some(tx)).await?;
        let mut body = match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(ProtocolError::ConnectionClosed),
            Err(_) => {
                return Err(ProtocolError::Timeout {
                    api: api_name(api),
                    timeout_ms: self.request_timeout.as_millis() as u64,
                })
            }
        };
        decode_body(&mut body, version, api_name(api))
    }

    /// Sends `request` at `version` without waiting for a response; for requests the broker
    /// does not answer (Produce with `acks=0`).
    pub async fn send_no_response<R: Request>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<(), ProtocolError> {
        self.enqueue(request, version, None).await
    }

    /// True once the connection has failed or been closed by the peer.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    async fn enqueue<R: Request>(
        &self,
        request: &R,
        version: i16,
        reply: Option<Reply>,
    ) -> Result<(), ProtocolError> {
        if self.is_closed() {
            return Err(ProtocolError::ConnectionClosed);
        }
        let api = api_of::<R>()?;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::new();
        kafka_protocol::protocol::Encodable::encode(request, &mut body, version).map_err(|e| {
            ProtocolError::Encode {
                what: api_name(api),
                version,
                reason: e.to_string(),
            }
        })?;
        self.outgoing
            .send(Outgoing {
                header,
                body,
                reply,
            })
            .await
            .map_err(|_| ProtocolError::ConnectionClosed)
    }
}

fn api_of<R: Request>() -> Result<ApiKey, ProtocolError> {
    ApiKey::try_from(R::KEY).map_err(|_| ProtocolError::UnknownApiKey(R::KEY))
}

/// A pre-encoded body, written after the header.
struct RawBody<'a>(&'a [u8]);

impl kafka_protocol::protocol::Encodable for RawBody<'_> {
    fn encode<B: kafka_protocol::protocol::buf::ByteBufMut>(
        &self,
        buf: &mut B,
        _version: i16,
    ) -> anyhow::Result<()> {
        buf.put_slice(self.0);
        Ok(())
    }

    fn compute_size(&self, _version: i16) -> anyhow::Result<usize> {
        Ok(self.0.len())
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut write: W,
    mut rx: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
) {
    let mut correlation_id: i32 = 0;
    let mut buf = BytesMut::new();
    while let Some(first) = rx.recv().await {
        buf.clear();
        let mut next = Some(first);
        // Coalesce whatever is already queued into one write.
        while let Some(mut out) = next.take() {
            correlation_id = correlation_id.wrapping_add(1);
            out.header.correlation_id = correlation_id;
            let version = out.header.request_api_version;
            if let Err(e) = encode_request(&out.header, &RawBody(&out.body), &mut buf) {
                if let Some(reply) = out.reply {
                    let _ = reply.send(Err(e));
                }
            } else if let Some(reply) = out.reply {
                let api = ApiKey::try_from(out.header.request_api_key).unwrap_or(ApiKey::Produce);
                lock(&shared.in_flight).push_back(InFlight {
                    correlation_id,
                    api,
                    version,
                    reply,
                });
            }
            if buf.len() < 1 << 20 {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = write.write_all(&buf).await {
            debug!(error = %e, "connection write failed");
            break;
        }
    }
    // Closing our half tells the broker we are done; the read loop then sees the close.
    let _ = write.shutdown().await;
    fail_all(&shared);
}

async fn read_loop<R: AsyncRead + Unpin>(mut reader: FrameReader<R>, shared: Arc<Shared>) {
    loop {
        let mut frame = match reader.next_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                debug!(error = %e, "connection read failed");
                break;
            }
        };
        let Some(pending) = lock(&shared.in_flight).pop_front() else {
            warn!("response with no request in flight");
            break;
        };
        let result =
            decode_response_header(&mut frame, pending.api, pending.version).and_then(|id| {
                if id == pending.correlation_id {
                    Ok(frame)
                } else {
                    Err(ProtocolError::UnexpectedCorrelationId(id))
                }
            });
        let mismatch = result.is_err();
        let _ = pending.reply.send(result);
        if mismatch {
            break;
        }
    }
    fail_all(&shared);
}

fn fail_all(shared: &Shared) {
    shared.closed.store(true, Ordering::Release);
    for pending in lock(&shared.in_flight).drain(..) {
        let _ = pending.reply.send(Err(ProtocolError::ConnectionClosed));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
