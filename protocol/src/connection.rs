//! An async client connection: correlation ids, pipelined in-flight requests, version
//! negotiation.
//!
//! ```text
//!  send() ──encode, under the writer lock──▶ socket ──frames──▶ reader task ──▶ send() resumes
//!            │ pushes (correlation id, reply slot)          ▲ pops in order │
//!            └────────────────────── in-flight queue ───────┘
//! ```
//!
//! The caller writes its own request (no hand-over to a writer task, which would cost a
//! cross-thread wake-up per request); a lock keeps each request whole and in order on the
//! socket. Kafka answers the requests of one connection in the order they were sent, so
//! the reader matches each response to the oldest request in flight and checks its
//! correlation id. Many callers may share one `Connection`; their requests are pipelined
//! on the socket. A request whose caller gives up halfway through writing it leaves the
//! connection closed (a half-written frame cannot be taken back); the next use reconnects.
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
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Request, StrBytes, VersionRange};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};
use tracing::{debug, warn};

use crate::frame::{FrameReader, DEFAULT_MAX_FRAME_BYTES};
use crate::header::{decode_body, decode_response_header, encode_request};
use crate::versions::{api_name, negotiate};
use crate::{ErrorCode, ProtocolError};

/// Default time a request may wait for its response (`request.timeout.ms`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What to do with a request's response body (or the failure that ends the wait); run on
/// the reader task, at most once.
type Reply = Box<dyn FnOnce(Result<Bytes, ProtocolError>) + Send>;

struct InFlight {
    correlation_id: i32,
    api: ApiKey,
    version: i16,
    reply: Reply,
}

/// The sending side: the socket's write half, the last correlation id, a frame buffer.
struct Writer {
    write: Box<dyn AsyncWrite + Send + Unpin>,
    correlation_id: i32,
    buf: BytesMut,
}

struct Shared {
    in_flight: Mutex<VecDeque<InFlight>>,
    closed: AtomicBool,
    /// Wakes the reader when the `Connection` is dropped, so the socket closes.
    dropped: Notify,
}

/// Closes the connection if a write is abandoned halfway (its future dropped).
struct WriteGuard<'a> {
    shared: &'a Shared,
    armed: bool,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            fail_all(self.shared);
            self.shared.dropped.notify_one();
        }
    }
}

/// A connection to one Kafka broker. Cheap to share behind an `Arc`; requests from many
/// tasks are pipelined.
pub struct Connection {
    writer: tokio::sync::Mutex<Writer>,
    shared: Arc<Shared>,
    client_id: StrBytes,
    broker_versions: HashMap<i16, VersionRange>,
    request_timeout: Duration,
    /// When the connection should be replaced: its SASL session's end, less a margin
    /// (KIP-368).
    retire_at: std::sync::OnceLock<std::time::Instant>,
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

    /// Connects over TLS with `tls` (the broker's certificate checked for the host of
    /// `addr`) and negotiates API versions.
    ///
    /// # Errors
    /// [`ProtocolError::Io`] when the connection or the TLS handshake fails (an
    /// untrusted certificate, a peer that does not speak TLS).
    pub async fn connect_tls(
        addr: &str,
        client_id: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Connection, ProtocolError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host}: {e}"))
        })?;
        let mut stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, crate::tls::buffered(stream))
            .await?;
        stream
            .get_mut()
            .1
            .set_buffer_limit(Some(crate::tls::SEND_BUFFER_BYTES));
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
            dropped: Notify::new(),
        });
        tokio::spawn(read_loop(
            FrameReader::new(read, DEFAULT_MAX_FRAME_BYTES),
            shared.clone(),
        ));
        let writer = Writer {
            write: Box::new(write),
            correlation_id: 0,
            buf: BytesMut::new(),
        };
        Connection {
            writer: tokio::sync::Mutex::new(writer),
            shared,
            client_id: StrBytes::from_string(client_id.to_owned()),
            broker_versions: HashMap::new(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retire_at: std::sync::OnceLock::new(),
        }
    }

    /// Sets how long a request waits for its response.
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
    }

    /// Asks the broker which versions it supports and remembers them.
    ///
    /// Sends ApiVersions v3. A broker that does not know v3 answers with a v0 body carrying
    /// `UNSUPPORTED_VERSION` and its own ApiVersions range (KIP-511); the request is then
    /// retried at the highest version both sides know.
    pub async fn negotiate_versions(&mut self) -> Result<(), ProtocolError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strom"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response = self.api_versions(&request, API_VERSIONS_FIRST).await?;
        if response.error_code == ErrorCode::UNSUPPORTED_VERSION.code() {
            let retry = api_versions_retry_version(&response);
            debug!(retry, "broker refused ApiVersions v3");
            response = self.api_versions(&request, retry).await?;
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

    /// Sends ApiVersions at `version` and decodes the answer: as v0 when it carries
    /// `UNSUPPORTED_VERSION` (the broker then answers in v0 whatever was asked), else at
    /// `version`.
    async fn api_versions(
        &self,
        request: &ApiVersionsRequest,
        version: i16,
    ) -> Result<ApiVersionsResponse, ProtocolError> {
        let body = self.send_raw(request, version).await?;
        // The error code comes first in every version of the response.
        let body_version = match body.get(..2) {
            Some(&[hi, lo])
                if i16::from_be_bytes([hi, lo]) == ErrorCode::UNSUPPORTED_VERSION.code() =>
            {
                0
            }
            _ => version,
        };
        match decode_body(
            &mut body.clone(),
            body_version,
            api_name(ApiKey::ApiVersions),
        ) {
            Ok(response) => Ok(response),
            // Some brokers (librdkafka's mock cluster among them) encode the refusal in a
            // shape that is neither v0 nor what was asked; the error code, read above, is
            // all that is needed: retry at v0, which every broker speaks.
            Err(_) if body_version == 0 && version > 0 => Ok(ApiVersionsResponse::default()
                .with_error_code(ErrorCode::UNSUPPORTED_VERSION.code())),
            Err(e) => Err(e),
        }
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
        let mut body = self.send_raw(request, version).await?;
        decode_body(&mut body, version, api_name(api))
    }

    /// Sends `request` at `version` and waits for the response body, undecoded (the response
    /// header has been read and its correlation id checked).
    async fn send_raw<R: Request>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<Bytes, ProtocolError> {
        let (tx, rx) = oneshot::channel();
        let reply: Reply = Box::new(move |body| {
            let _ = tx.send(body);
        });
        self.exchange(request, version, reply, rx).await?
    }

    /// Writes `request` with `reply` in flight and waits for what `reply` sends to `rx`,
    /// all within `request.timeout.ms`.
    async fn exchange<R: Request, T>(
        &self,
        request: &R,
        version: i16,
        reply: Reply,
        rx: oneshot::Receiver<T>,
    ) -> Result<T, ProtocolError> {
        let api = api_of::<R>()?;
        // The timeout covers writing too: a broker that stops reading must not hold the
        // caller (and, through the writer lock, every other caller) forever.
        let exchange = async {
            self.enqueue(request, version, Some(reply)).await?;
            rx.await.map_err(|_| ProtocolError::ConnectionClosed)
        };
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out(api)),
        }
    }

    /// Closes the connection after a request timed out (as the Java client does: the next
    /// use reconnects instead of queueing behind it) and returns the timeout error.
    fn timed_out(&self, api: ApiKey) -> ProtocolError {
        fail_all(&self.shared);
        self.shared.dropped.notify_one();
        ProtocolError::Timeout {
            api: api_name(api),
            timeout_ms: self.request_timeout.as_millis() as u64,
        }
    }

    /// Sends `request` at `version`; `handle` runs on the connection's reader task as soon
    /// as the response arrives (decoded) or the connection fails. Of the pair it returns,
    /// this call returns the first, and the second runs once that has been handed over.
    ///
    /// Handing the response over to the caller's task costs a task wake-up (often a
    /// cross-thread one); a handler that does the caller's work with the response on the
    /// reader saves it, and the follow-up lets it wake others (say, a task waiting for
    /// what the handler produced) after the caller: the task woken last runs first.
    /// Both should be short: the connection's later responses wait for them. `handle`
    /// runs at most once: not at all when the request is never written (encoding failed,
    /// the connection was already closed), and perhaps after this returned a timeout,
    /// with the error that closed the connection.
    pub async fn send_then<R, T, F, G>(
        &self,
        request: &R,
        version: i16,
        handle: F,
    ) -> Result<T, ProtocolError>
    where
        R: Request,
        T: Send + 'static,
        F: FnOnce(Result<R::Response, ProtocolError>) -> (T, G) + Send + 'static,
        G: FnOnce(),
    {
        let api = api_of::<R>()?;
        let (tx, rx) = oneshot::channel();
        let reply: Reply = Box::new(move |body| {
            let response = body.and_then(|mut b| decode_body(&mut b, version, api_name(api)));
            let (out, then) = handle(response);
            let _ = tx.send(out);
            then();
        });
        self.exchange(request, version, reply, rx).await
    }

    /// Sends `request` at `version` without waiting for a response; for requests the broker
    /// does not answer (Produce with `acks=0`).
    pub async fn send_no_response<R: Request>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<(), ProtocolError> {
        let api = api_of::<R>()?;
        match tokio::time::timeout(self.request_timeout, self.enqueue(request, version, None)).await
        {
            Ok(result) => result,
            Err(_) => Err(self.timed_out(api)),
        }
    }

    /// True once the connection has failed or been closed by the peer.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Marks the connection to be replaced from `at` on (a SASL session that ends soon
    /// after). Requests still go through; [`Connection::is_usable`] turns false, so pools
    /// open a new, freshly authenticated connection for the next ones. Set once.
    pub fn retire_at(&self, at: std::time::Instant) {
        let _ = self.retire_at.set(at);
    }

    /// True while the connection is open and not due to be replaced.
    pub fn is_usable(&self) -> bool {
        !self.is_closed()
            && self
                .retire_at
                .get()
                .is_none_or(|at| std::time::Instant::now() < *at)
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
        let mut writer = self.writer.lock().await;
        if self.is_closed() {
            return Err(ProtocolError::ConnectionClosed);
        }
        let Writer {
            write,
            correlation_id,
            buf,
        } = &mut *writer;
        let id = correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(self.client_id.clone()));
        buf.clear();
        // A request that cannot be encoded never reaches the socket.
        encode_request(&header, request, buf)?;
        *correlation_id = id;
        if let Some(reply) = reply {
            lock(&self.shared.in_flight).push_back(InFlight {
                correlation_id: id,
                api,
                version,
                reply,
            });
        }
        let mut guard = WriteGuard {
            shared: &self.shared,
            armed: true,
        };
        // Flushed: over TLS a write may leave the last bytes in the session when the
        // socket was full, and nothing would send them before the next request.
        let written = match write.write_all(buf).await {
            Ok(()) => write.flush().await,
            Err(e) => Err(e),
        };
        if written.is_ok() {
            guard.armed = false;
        }
        drop(guard);
        if buf.capacity() > 1 << 20 {
            *buf = BytesMut::new();
        }
        written.map_err(|e| {
            debug!(error = %e, "connection write failed");
            ProtocolError::Io(e)
        })
    }
}

/// The ApiVersions version tried first.
const API_VERSIONS_FIRST: i16 = 3;

/// The version to retry ApiVersions at after an `UNSUPPORTED_VERSION` answer: the broker's
/// highest, capped at ours; 0 when the answer does not say.
fn api_versions_retry_version(response: &ApiVersionsResponse) -> i16 {
    response
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .map_or(0, |k| k.max_version.clamp(0, API_VERSIONS_FIRST))
}

/// How long a dropped connection's close (TLS `close_notify`, then FIN) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.dropped.notify_one();
        // Close the sending side properly (over TLS: `close_notify`), in the background.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let writer = self.writer.get_mut();
            let mut write = std::mem::replace(&mut writer.write, Box::new(tokio::io::sink()));
            runtime.spawn(async move {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, write.shutdown()).await;
            });
        }
    }
}

fn api_of<R: Request>() -> Result<ApiKey, ProtocolError> {
    ApiKey::try_from(R::KEY).map_err(|_| ProtocolError::UnknownApiKey(R::KEY))
}

async fn read_loop<R: AsyncRead + Unpin>(mut reader: FrameReader<R>, shared: Arc<Shared>) {
    loop {
        let next = tokio::select! {
            next = reader.next_frame() => next,
            // The `Connection` is gone: stop reading, so both halves drop and the socket
            // closes.
            _ = shared.dropped.notified() => break,
        };
        let mut frame = match next {
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
        (pending.reply)(result);
        if mismatch {
            break;
        }
    }
    fail_all(&shared);
}

fn fail_all(shared: &Shared) {
    shared.closed.store(true, Ordering::Release);
    let pending: Vec<InFlight> = lock(&shared.in_flight).drain(..).collect();
    for pending in pending {
        (pending.reply)(Err(ProtocolError::ConnectionClosed));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{decode_request_header, encode_response, RequestPrefix};
    use crate::versions::unsupported_api_versions_response;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::MetadataRequest;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn dropping_the_connection_closes_the_socket() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let conn = Connection::from_stream(ours, "t");
        drop(conn);
        let mut byte = [0u8; 1];
        // The far end sees the close once the reader task has let go of its half.
        let read = tokio::time::timeout(Duration::from_secs(5), theirs.read(&mut byte)).await;
        assert_eq!(read.expect("socket closed").unwrap(), 0);
    }

    #[tokio::test]
    async fn a_request_that_times_out_closes_the_connection() {
        // A peer that reads nothing: the request cannot even be written in full.
        let (ours, _theirs) = tokio::io::duplex(16);
        let mut conn = Connection::from_stream(ours, "t");
        conn.set_request_timeout(Duration::from_millis(50));
        let result = conn.send_version(&MetadataRequest::default(), 4).await;
        assert!(
            matches!(result, Err(ProtocolError::Timeout { .. })),
            "{result:?}"
        );
        assert!(conn.is_closed());
    }

    #[tokio::test]
    async fn a_write_abandoned_halfway_closes_the_connection() {
        // A pipe too small for the request: the write blocks until the far end reads.
        let (ours, _theirs) = tokio::io::duplex(16);
        let conn = Arc::new(Connection::from_stream(ours, "t"));
        let sender = conn.clone();
        let task =
            tokio::spawn(async move { sender.send_version(&MetadataRequest::default(), 4).await });
        while !task.is_finished() && conn.writer.try_lock().is_ok() {
            tokio::task::yield_now().await;
        }
        task.abort();
        let _ = task.await;
        assert!(
            conn.is_closed(),
            "a half-written frame must not be followed by another"
        );
        assert!(matches!(
            conn.send_version(&MetadataRequest::default(), 4).await,
            Err(ProtocolError::ConnectionClosed)
        ));
    }

    #[tokio::test]
    async fn request_that_fails_to_encode_never_reaches_the_wire() {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let conn = Connection::from_stream(ours, "t");
        let bad = MetadataRequest::default().with_allow_auto_topic_creation(false);
        let err = conn.send_version(&bad, 0).await.unwrap_err();
        assert!(
            matches!(err, ProtocolError::Encode { version: 0, .. }),
            "{err}"
        );
        conn.send_no_response(&MetadataRequest::default(), 0)
            .await
            .unwrap();

        let mut reader = FrameReader::new(theirs, DEFAULT_MAX_FRAME_BYTES);
        let mut frame = reader.next_frame().await.unwrap().unwrap();
        let prefix = RequestPrefix::peek(&frame).unwrap();
        assert_eq!(prefix.api_key, ApiKey::Metadata as i16);
        assert_eq!(prefix.api_version, 0);
        assert_eq!(prefix.correlation_id, 1);
        decode_request_header(&mut frame, ApiKey::Metadata, 0).unwrap();
        let sent: MetadataRequest = decode_body(&mut frame, 0, "Metadata").unwrap();
        assert!(sent.allow_auto_topic_creation);
    }

    fn api_version(key: ApiKey, min: i16, max: i16) -> ApiVersion {
        ApiVersion::default()
            .with_api_key(key as i16)
            .with_min_version(min)
            .with_max_version(max)
    }

    /// A broker that knows ApiVersions up to v2 only: it answers v3 with a v0
    /// `UNSUPPORTED_VERSION` body and v0..=2 properly.
    async fn old_broker(stream: tokio::io::DuplexStream) -> Vec<i16> {
        let (read, mut write) = tokio::io::split(stream);
        let mut reader = FrameReader::new(read, DEFAULT_MAX_FRAME_BYTES);
        let mut seen = Vec::new();
        while let Ok(Some(frame)) = reader.next_frame().await {
            let prefix = RequestPrefix::peek(&frame).unwrap();
            assert_eq!(prefix.api_key, ApiKey::ApiVersions as i16);
            seen.push(prefix.api_version);
            let mut out = BytesMut::new();
            if prefix.api_version > 2 {
                let refusal = unsupported_api_versions_response(VersionRange { min: 0, max: 2 });
                encode_response(
                    ApiKey::ApiVersions,
                    0,
                    prefix.correlation_id,
                    &refusal,
                    &mut out,
                )
                .unwrap();
            } else {
                let answer = ApiVersionsResponse::default().with_api_keys(vec![
                    api_version(ApiKey::ApiVersions, 0, 2),
                    api_version(ApiKey::Metadata, 0, 5),
                    api_version(ApiKey::Produce, 3, 7),
                ]);
                encode_response(
                    ApiKey::ApiVersions,
                    prefix.api_version,
                    prefix.correlation_id,
                    &answer,
                    &mut out,
                )
                .unwrap();
            }
            write.write_all(&out).await.unwrap();
        }
        seen
    }

    #[tokio::test]
    async fn negotiation_falls_back_when_broker_refuses_v3() {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let broker = tokio::spawn(old_broker(theirs));
        let mut conn = Connection::from_stream(ours, "t");
        conn.negotiate_versions().await.unwrap();

        assert_eq!(conn.version_for::<MetadataRequest>().unwrap(), 5);
        assert_eq!(conn.version_for::<ApiVersionsRequest>().unwrap(), 2);
        assert_eq!(
            conn.version_for::<kafka_protocol::messages::ProduceRequest>()
                .unwrap(),
            7
        );
        drop(conn);
        assert_eq!(broker.await.unwrap(), vec![3, 2]);
    }

    #[test]
    fn retry_version_is_capped_and_defaults_to_zero() {
        let refusal = |max| unsupported_api_versions_response(VersionRange { min: 0, max });
        assert_eq!(api_versions_retry_version(&refusal(1)), 1);
        assert_eq!(api_versions_retry_version(&refusal(9)), 3);
        let empty =
            ApiVersionsResponse::default().with_error_code(ErrorCode::UNSUPPORTED_VERSION.code());
        assert_eq!(api_versions_retry_version(&empty), 0);
    }
}
