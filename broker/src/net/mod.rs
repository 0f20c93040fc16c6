//! Listeners and connections.
//!
//! One task per connection reads frames, hands each to [`dispatch`] and writes the response
//! before reading the next request, so responses leave in request order as Kafka requires.
//! A connection that sends something undecodable is closed; the others carry on.

pub(crate) mod dispatch;
pub(crate) mod fetch_response;
pub(crate) mod inter_broker;
pub(crate) mod sasl;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use strom_protocol::frame::FrameReader;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info_span, warn, Instrument};

use crate::state::BrokerState;

/// How long shutdown waits for connections to finish the request they are serving.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// A bound listener with its security.
pub(crate) struct Bound {
    pub(crate) tcp: TcpListener,
    /// The listener's name: Metadata answers with the brokers' endpoints of this name.
    pub(crate) name: Arc<str>,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) sasl: Option<Arc<sasl::SaslUsers>>,
    pub(crate) addr: SocketAddr,
}

/// Accepts connections until `shutdown` turns true, then waits for the connections to
/// finish their current request (up to [`DRAIN`]), so every partition is free to be closed
/// cleanly.
pub(crate) async fn accept_loop(
    bound: Bound,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Bound {
        tcp: listener,
        name,
        tls,
        sasl,
        ..
    } = bound;
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let span = info_span!("connection", %peer, listener = %name);
                    let security = (tls.clone(), sasl.clone(), name.clone());
                    let serving = serve(stream, security, peer, state.clone(), shutdown.clone());
                    connections.spawn(serving.instrument(span));
                    // Reap finished connections as we go.
                    while connections.try_join_next().is_some() {}
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    // Out of file descriptors and the like: give the system a moment.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            open = connections.len(),
            "connections still busy at shutdown; closing them"
        );
        connections.shutdown().await;
    }
}

/// The largest request before SASL authentication (Kafka's `sasl.server.max.receive.size`).
const SASL_MAX_RECEIVE: usize = 512 * 1024;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

/// A listener's TLS acceptor and SASL users, where it has them, and its name.
type Security = (
    Option<tokio_rustls::TlsAcceptor>,
    Option<Arc<sasl::SaslUsers>>,
    Arc<str>,
);

async fn serve(
    stream: TcpStream,
    (tls, sasl, listener): Security,
    peer: SocketAddr,
    state: Arc<BrokerState>,
    shutdown: watch::Receiver<bool>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(error = %e, "set_nodelay failed");
    }
    let Some(acceptor) = tls else {
        let (read, write) = stream.into_split();
        serve_frames(
            read,
            Out::Tcp(write),
            (sasl.as_deref(), listener),
            crate::authorizer::ANONYMOUS.to_owned(),
            peer,
            state,
            shutdown,
        )
        .await;
        return;
    };
    let mut stream = match tokio::time::timeout(
        HANDSHAKE,
        acceptor.accept(strom_protocol::tls::buffered(stream)),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            // Plaintext on a TLS port, an untrusted client certificate, ...
            warn!(%peer, error = %e, "closing connection: TLS handshake failed");
            return;
        }
        Err(_) => {
            warn!(%peer, "closing connection: no TLS handshake within {HANDSHAKE:?}");
            return;
        }
    };
    let principal = strom_protocol::tls::principal(stream.get_ref().1.peer_certificates());
    debug!(%peer, %principal, "TLS connection");
    stream
        .get_mut()
        .1
        .set_buffer_limit(Some(strom_protocol::tls::SEND_BUFFER_BYTES));
    let (read, write) = tokio::io::split(stream);
    serve_frames(
        read,
        Out::Tls(write),
        (sasl.as_deref(), listener),
        format!("User:{principal}"),
        peer,
        state,
        shutdown,
    )
    .await;
}

/// A connection's writing side (`T` is the TLS stream's, generic for tests).
enum Out<T = tokio::io::WriteHalf<tokio_rustls::server::TlsStream<tokio::io::BufReader<TcpStream>>>>
{
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    Tls(T),
}

impl<T: tokio::io::AsyncWrite + Unpin> Out<T> {
    /// Writes one whole response.
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Out::Tcp(w) => w.write_all(bytes).await?,
            Out::Tls(w) => w.write_all(bytes).await?,
        }
        self.flush().await
    }

    /// Sends what a TLS session still holds of a response: a TLS write returns once
    /// rustls took the bytes, which may still hold the end of the response when the
    /// socket was full, and nothing else would send them before the client's next request
    /// (which waits for this response). A TCP write leaves nothing behind.
    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Out::Tcp(_) => Ok(()),
            Out::Tls(w) => w.flush().await,
        }
    }

    /// Writes a response's chunks in order; over plain TCP stored batches go from the page
    /// cache to the socket, over TLS through memory.
    async fn write_chunks(
        &mut self,
        chunks: Vec<fetch_response::Chunk>,
        piece: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        let mut pending: Vec<bytes::Bytes> = Vec::new();
        for chunk in chunks {
            match chunk {
                fetch_response::Chunk::Bytes(b) => pending.push(b),
                fetch_response::Chunk::Region(region) => {
                    self.write_all_vectored(&pending).await?;
                    pending.clear();
                    match self {
                        Out::Tcp(w) => send_region(w, &region, piece).await?,
                        Out::Tls(w) => copy_region(w, &region, piece).await?,
                    }
                }
            }
        }
        self.write_all_vectored(&pending).await?;
        self.flush().await
    }

    async fn write_all_vectored(&mut self, buffers: &[bytes::Bytes]) -> std::io::Result<()> {
        match self {
            Out::Tcp(w) => write_all_vectored(w, buffers).await,
            Out::Tls(w) => write_all_vectored(w, buffers).await,
        }
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Out::Tcp(w) => w.shutdown().await,
            Out::Tls(w) => w.shutdown().await,
        };
    }
}

async fn serve_frames<R: tokio::io::AsyncRead + Unpin>(
    read: R,
    mut write: Out,
    (users, listener): (Option<&sasl::SaslUsers>, Arc<str>),
    mut principal: String,
    peer: SocketAddr,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut reader = FrameReader::new(read, state.config.socket_request_max_bytes);
    let mut out = BytesMut::with_capacity(64 * 1024);
    // Reused for reading stored batches on their way to the socket.
    let mut piece = Vec::new();
    // On a SASL listener: nothing but the SASL exchange until the client authenticated,
    // in small requests (Kafka's `sasl.server.max.receive.size`).
    let mut session = users.map(|users| sasl::Session::new(users, &state.quorum));
    if session.is_some() {
        reader.set_max(SASL_MAX_RECEIVE.min(state.config.socket_request_max_bytes));
    }
    loop {
        let frame = tokio::select! {
            frame = reader.next_frame() => frame,
            _ = shutdown.changed() => break,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                warn!(%peer, error = %e, "closing connection: unreadable frame");
                break;
            }
        };
        out.clear();
        if let Some(session) = session.as_mut() {
            match session.handle(&frame, &mut out) {
                Ok(sasl::Step::Dispatch) => {}
                Ok(sasl::Step::Answered) => {
                    if let Err(e) = write.write_all(&out).await {
                        debug!(%peer, error = %e, "write failed");
                        break;
                    }
                    if let Some(user) = session.principal() {
                        debug!(%peer, user, "authenticated");
                        principal = format!("User:{user}");
                        reader.set_max(state.config.socket_request_max_bytes);
                    }
                    continue;
                }
                Ok(sasl::Step::Close(reason)) => {
                    if !out.is_empty() {
                        let _ = write.write_all(&out).await;
                    }
                    warn!(%peer, %reason, "closing connection: SASL");
                    break;
                }
                Err(e) => {
                    warn!(%peer, error = %e, "closing connection: bad SASL request");
                    break;
                }
            }
        }
        // A long poll must not hold up shutdown; nothing is half done when it is dropped.
        let dispatched = tokio::select! {
            dispatched = dispatch::dispatch(&state, frame, (peer, &listener, &principal), &mut out) => dispatched,
            _ = shutdown.changed() => break,
        };
        let (written, throttle_ms) = match dispatched {
            Ok(dispatched) => dispatched,
            Err(e) => {
                warn!(%peer, error = %e, "closing connection: bad request");
                break;
            }
        };
        let result = match written {
            dispatch::Written::Buffered if out.is_empty() => Ok(()),
            dispatch::Written::Buffered => write.write_all(&out).await,
            dispatch::Written::Chunks(chunks) => write.write_chunks(chunks, &mut piece).await,
        };
        if let Err(e) = result {
            debug!(%peer, error = %e, "write failed");
            break;
        }
        if out.capacity() > 8 << 20 {
            out = BytesMut::with_capacity(64 * 1024);
        }
        // Over a quota: the response said how long to wait; read nothing until then
        // (Kafka mutes the channel), so clients that ignore it wait too.
        if throttle_ms > 0 {
            let pause = std::time::Duration::from_millis(u64::from(throttle_ms.unsigned_abs()));
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => break,
            }
        }
    }
    write.shutdown().await;
}

/// Size of the pieces stored batches are read in where `sendfile` is not available: small
/// enough to stay in cache between the read from the page cache and the copy into the
/// socket.
const PIECE: usize = 256 * 1024;

/// Kafka's zero-copy path: `sendfile` from the segment file to the socket.
#[cfg(target_os = "linux")]
async fn send_region(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    region: &crate::log::FileRegion,
    _piece: &mut Vec<u8>,
) -> std::io::Result<()> {
    let stream: &TcpStream = write.as_ref();
    let mut at = 0;
    while at < region.len() {
        stream.writable().await?;
        match stream.try_io(tokio::io::Interest::WRITABLE, || {
            region.send_to(stream, at, region.len() - at)
        }) {
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Elsewhere: read pieces into a reused buffer and write them.
#[cfg(not(target_os = "linux"))]
async fn send_region(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    region: &crate::log::FileRegion,
    piece: &mut Vec<u8>,
) -> std::io::Result<()> {
    copy_region(write, region, piece).await
}

/// Reads a region in pieces into a reused buffer and writes them.
async fn copy_region<W: tokio::io::AsyncWrite + Unpin>(
    write: &mut W,
    region: &crate::log::FileRegion,
    piece: &mut Vec<u8>,
) -> std::io::Result<()> {
    piece.resize(PIECE, 0);
    let mut at = 0;
    while at < region.len() {
        let n = PIECE.min(region.len() - at);
        region.read_at(&mut piece[..n], at)?;
        write.write_all(&piece[..n]).await?;
        at += n;
    }
    Ok(())
}

/// Writes every buffer, in order, with as few system calls as the socket allows.
async fn write_all_vectored<W: tokio::io::AsyncWrite + Unpin>(
    write: &mut W,
    buffers: &[bytes::Bytes],
) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        buffers.iter().map(|c| std::io::IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = write.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use bytes::Bytes;
    use tokio::io::AsyncReadExt;

    use super::*;

    /// The broker's writing side of a TLS session over a transport that holds 1 KiB (so
    /// that the writer waits on the reader all the time), and the client's end.
    async fn tls_pair() -> (
        Out<tokio::io::WriteHalf<tokio_rustls::server::TlsStream<tokio::io::DuplexStream>>>,
        tokio_rustls::client::TlsStream<tokio::io::DuplexStream>,
    ) {
        let (client, server) = strom_testkit::Certs::new("test ca")
            .tls_over_duplex(1024)
            .await;
        let (_read, write) = tokio::io::split(server);
        (Out::Tls(write), client)
    }

    /// Reads `len` bytes; panics when they do not come (paused time moves on only when
    /// both sides are stuck, and then the timeout fires).
    async fn written<F: std::future::Future<Output = std::io::Result<()>>>(
        write: F,
        client: &mut tokio_rustls::client::TlsStream<tokio::io::DuplexStream>,
        len: usize,
    ) -> Vec<u8> {
        let mut got = vec![0; len];
        let (written, read) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(write, client.read_exact(&mut got))
        })
        .await
        .expect("the whole response arrives");
        written.unwrap();
        read.unwrap();
        got
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn responses_over_tls_reach_a_slow_client_whole() {
        let (mut out, mut client) = tls_pair().await;
        let response: Vec<u8> = (0..1 << 20).map(|i: u32| i as u8).collect();
        let got = written(out.write_all(&response), &mut client, response.len()).await;
        assert!(got == response);

        let chunks = vec![
            fetch_response::Chunk::Bytes(Bytes::from(response[..1000].to_vec())),
            fetch_response::Chunk::Bytes(Bytes::from(response[1000..].to_vec())),
        ];
        let mut piece = Vec::new();
        let got = written(
            out.write_chunks(chunks, &mut piece),
            &mut client,
            response.len(),
        )
        .await;
        assert!(got == response);
    }
}
