//! Length-prefixed frames: a big-endian `i32` size, then that many bytes.
//!
//! The size is checked against the configured maximum (`socket.request.max.bytes`, 100 MiB by
//! default) before any buffer is reserved for the body. The body's buffer then grows only as
//! bytes arrive: [`decode_frame`] reserves at most [`FRAME_RESERVE_STEP`] (64 KiB) beyond what is
//! buffered, and `BytesMut`'s amortised growth at most doubles an allocation when it grows. So
//! whatever size a peer announces, the buffer's capacity stays within twice (bytes actually
//! received + 64 KiB): a peer that announces 100 MiB and sends nothing more costs a
//! [`FrameReader`] about 128 KiB (its 64 KiB read buffer, grown once), not 100 MiB.
//! After a frame above [`FRAME_SHRINK_ABOVE`] (1 MiB), [`FrameReader`] drops its buffer for a
//! fresh small one, so an idle connection does not keep the large allocation.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::ProtocolError;

/// Kafka's default `socket.request.max.bytes`: 100 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Size of the length prefix.
pub const FRAME_PREFIX_LEN: usize = 4;

/// The most [`decode_frame`] reserves beyond what is buffered while a frame is incomplete.
pub const FRAME_RESERVE_STEP: usize = 64 * 1024;

/// After a frame at least this large, [`FrameReader`] replaces its (empty) buffer with a fresh
/// small one instead of keeping the large allocation.
pub const FRAME_SHRINK_ABOVE: usize = 1024 * 1024;

/// Initial capacity of a [`FrameReader`]'s buffer, and the step it reads in.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Checks a frame's length prefix against `max` and returns the body length.
///
/// ```
/// use strom_protocol::frame::frame_body_len;
/// assert_eq!(frame_body_len([0, 0, 0, 10], 100).unwrap(), 10);
/// assert!(frame_body_len([0x7f, 0, 0, 0], 100).is_err());
/// assert!(frame_body_len([0xff, 0xff, 0xff, 0xff], 100).is_err());
/// ```
pub fn frame_body_len(prefix: [u8; 4], max: usize) -> Result<usize, ProtocolError> {
    let size = i32::from_be_bytes(prefix);
    let len = usize::try_from(size).map_err(|_| ProtocolError::InvalidFrameSize(size))?;
    if len > max {
        return Err(ProtocolError::FrameTooLarge { size: len, max });
    }
    Ok(len)
}

/// Takes one whole frame body off the front of `buf`, if `buf` holds one.
///
/// Returns `Ok(None)` when more bytes are needed; on that path, and only after the size has
/// passed the limit check, it reserves room for the next part of the frame: at most
/// [`FRAME_RESERVE_STEP`] bytes beyond what is buffered, never the whole announced size.
pub fn decode_frame(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, ProtocolError> {
    let Some(prefix) = buf.get(..FRAME_PREFIX_LEN) else {
        return Ok(None);
    };
    let prefix: [u8; 4] = [prefix[0], prefix[1], prefix[2], prefix[3]];
    let len = frame_body_len(prefix, max)?;
    let total = FRAME_PREFIX_LEN + len;
    if buf.len() < total {
        buf.reserve((total - buf.len()).min(FRAME_RESERVE_STEP));
        return Ok(None);
    }
    buf.advance(FRAME_PREFIX_LEN);
    Ok(Some(buf.split_to(len)))
}

/// Reads frames from an async byte stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps `inner`; frames above `max` bytes are refused.
    pub fn new(inner: R, max: usize) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(READ_BUFFER_BYTES),
            max,
        }
    }

    /// Changes the largest frame accepted from the next one on (a broker accepts only small
    /// requests before a client authenticated).
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Reads the next frame body. `Ok(None)` means the peer closed the stream cleanly between
    /// frames; a close inside a frame is [`ProtocolError::ConnectionClosed`].
    pub async fn next_frame(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        loop {
            if let Some(frame) = decode_frame(&mut self.buf, self.max)? {
                // The frame shares the buffer's allocation; a fresh buffer lets that allocation
                // go once the caller drops the frame.
                if self.buf.is_empty() && frame.len() > FRAME_SHRINK_ABOVE {
                    self.buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
                }
                return Ok(Some(frame.freeze()));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(READ_BUFFER_BYTES);
            }
            let n = match self.inner.read_buf(&mut self.buf).await {
                Ok(n) => n,
                // A TLS peer that closed without `close_notify` (many do): between frames
                // that loses nothing, frames carrying their own lengths.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ProtocolError::ConnectionClosed)
                };
            }
        }
    }

    /// The wrapped stream.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Starts a frame in `buf`: writes a placeholder length prefix and returns its position, to be
/// filled by [`finish_frame`].
pub fn begin_frame(buf: &mut BytesMut) -> usize {
    let at = buf.len();
    buf.put_i32(0);
    at
}

/// Fills in the length prefix written by [`begin_frame`] at `at`.
pub fn finish_frame(buf: &mut BytesMut, at: usize) -> Result<(), ProtocolError> {
    let len = buf.len() - at - FRAME_PREFIX_LEN;
    let size = i32::try_from(len).map_err(|_| ProtocolError::FrameTooLarge {
        size: len,
        max: i32::MAX as usize,
    })?;
    buf[at..at + FRAME_PREFIX_LEN].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_oversized_before_reserving() {
        let mut buf = BytesMut::from(&[0x10, 0, 0, 0, 1, 2][..]);
        let err = decode_frame(&mut buf, 1024).unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::FrameTooLarge {
                size: 0x1000_0000,
                max: 1024
            }
        ));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn negative_size_is_an_error() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert!(matches!(
            decode_frame(&mut buf, 1024),
            Err(ProtocolError::InvalidFrameSize(-2))
        ));
    }

    #[tokio::test]
    async fn reader_splits_pipelined_frames_and_reports_eof() {
        let mut wire = BytesMut::new();
        for body in [&b"abc"[..], b"", b"hello world"] {
            let at = begin_frame(&mut wire);
            wire.extend_from_slice(body);
            finish_frame(&mut wire, at).unwrap();
        }
        let mut reader = FrameReader::new(&wire[..], 1024);
        assert_eq!(reader.next_frame().await.unwrap().unwrap(), &b"abc"[..]);
        assert_eq!(reader.next_frame().await.unwrap().unwrap(), &b""[..]);
        assert_eq!(
            reader.next_frame().await.unwrap().unwrap(),
            &b"hello world"[..]
        );
        assert!(reader.next_frame().await.unwrap().is_none());
    }

    /// Bytes, then the error rustls gives for a close without `close_notify`.
    struct TlsTruncated<'a>(&'a [u8]);

    impl tokio::io::AsyncRead for TlsTruncated<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.0.is_empty() {
                return std::task::Poll::Ready(Err(std::io::ErrorKind::UnexpectedEof.into()));
            }
            let n = self.0.len().min(buf.remaining());
            buf.put_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_tls_close_without_notify_ends_the_stream_only_between_frames() {
        let whole = [0u8, 0, 0, 2, 7, 8];
        let mut reader = FrameReader::new(TlsTruncated(&whole), 1024);
        assert_eq!(reader.next_frame().await.unwrap().unwrap(), &[7u8, 8][..]);
        assert!(reader.next_frame().await.unwrap().is_none());
        let cut = [0u8, 0, 0, 5, 1, 2];
        let mut reader = FrameReader::new(TlsTruncated(&cut), 1024);
        assert!(matches!(
            reader.next_frame().await,
            Err(ProtocolError::ConnectionClosed)
        ));
    }

    #[tokio::test]
    async fn close_inside_a_frame_is_an_error() {
        let wire = [0u8, 0, 0, 5, 1, 2];
        let mut reader = FrameReader::new(&wire[..], 1024);
        assert!(matches!(
            reader.next_frame().await,
            Err(ProtocolError::ConnectionClosed)
        ));
    }

    #[test]
    fn incomplete_frame_reserves_a_bounded_step() {
        let announced: i32 = 200 * 1024;
        let mut buf = BytesMut::from(&announced.to_be_bytes()[..]);
        buf.extend_from_slice(&[7; 10]);
        assert!(decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES)
            .unwrap()
            .is_none());
        assert!(buf.capacity() >= buf.len() + FRAME_RESERVE_STEP);
        assert!(buf.capacity() < 100 * 1024, "{}", buf.capacity());
    }

    #[tokio::test(start_paused = true)]
    async fn huge_announcement_costs_the_reader_little() {
        let (mut peer, ours) = tokio::io::duplex(64 * 1024);
        let mut wire = (DEFAULT_MAX_FRAME_BYTES as i32).to_be_bytes().to_vec();
        wire.extend_from_slice(&[7; 10]);
        tokio::io::AsyncWriteExt::write_all(&mut peer, &wire)
            .await
            .unwrap();
        let mut reader = FrameReader::new(ours, DEFAULT_MAX_FRAME_BYTES);
        let waited =
            tokio::time::timeout(std::time::Duration::from_secs(1), reader.next_frame()).await;
        assert!(waited.is_err(), "the frame is incomplete");
        assert_eq!(reader.buf.len(), 14);
        assert!(reader.buf.capacity() <= 2 * (READ_BUFFER_BYTES + FRAME_RESERVE_STEP));
    }

    #[tokio::test]
    async fn large_frame_in_small_chunks_decodes_and_then_shrinks() {
        let body: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
        let mut wire = BytesMut::new();
        let at = begin_frame(&mut wire);
        wire.extend_from_slice(&body);
        finish_frame(&mut wire, at).unwrap();
        let (mut peer, ours) = tokio::io::duplex(1000);
        let writer = tokio::spawn(async move {
            for piece in wire.chunks(777) {
                tokio::io::AsyncWriteExt::write_all(&mut peer, piece)
                    .await
                    .unwrap();
            }
        });
        let mut reader = FrameReader::new(ours, DEFAULT_MAX_FRAME_BYTES);
        let frame = reader.next_frame().await.unwrap().unwrap();
        assert!(frame == body[..], "frame body differs");
        assert!(reader.buf.capacity() <= READ_BUFFER_BYTES);
        writer.await.unwrap();
        assert!(reader.next_frame().await.unwrap().is_none());
    }

    #[test]
    fn large_frame_decodes_from_small_chunks() {
        let body: Vec<u8> = (0..500 * 1024).map(|i| (i % 253) as u8).collect();
        let mut wire = BytesMut::new();
        let at = begin_frame(&mut wire);
        wire.extend_from_slice(&body);
        finish_frame(&mut wire, at).unwrap();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(1000) {
            buf.extend_from_slice(piece);
            assert!(buf.capacity() <= 2 * (buf.len() + FRAME_RESERVE_STEP));
            while let Some(f) = decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES).unwrap() {
                out.push(f);
            }
        }
        assert_eq!(out.len(), 1);
        assert!(out[0] == body[..], "frame body differs");
    }

    proptest! {
        #[test]
        fn frames_round_trip_in_any_chunking(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            chunk in 1usize..64,
        ) {
            let mut wire = BytesMut::new();
            for body in &bodies {
                let at = begin_frame(&mut wire);
                wire.extend_from_slice(body);
                finish_frame(&mut wire, at).unwrap();
            }
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(f) = decode_frame(&mut buf, 1024).unwrap() {
                    out.push(f.to_vec());
                }
            }
            prop_assert_eq!(out, bodies);
        }
    }
}
