//! Length-prefixed frames: a big-endian `i32` size, then that many bytes.
//!
//! The size is checked against the configured maximum (`socket.request.max.bytes`, 100 MiB by
//! default) before any buffer is reserved for the body, so a peer announcing a huge frame
//! costs four bytes of memory, not the announced size.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::ProtocolError;

/// Kafka's default `socket.request.max.bytes`: 100 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Size of the length prefix.
pub const FRAME_PREFIX_LEN: usize = 4;

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
/// Returns `Ok(None)` when more bytes are needed; on that path it reserves room for the rest
/// of the frame (only after the size has passed the limit check).
pub fn decode_frame(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, ProtocolError> {
    let Some(prefix) = buf.get(..FRAME_PREFIX_LEN) else {
        return Ok(None);
    };
    let prefix: [u8; 4] = [prefix[0], prefix[1], prefix[2], prefix[3]];
    let len = frame_body_len(prefix, max)?;
    let total = FRAME_PREFIX_LEN + len;
    if buf.len() < total {
        buf.reserve(total - buf.len());
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
            buf: BytesMut::with_capacity(64 * 1024),
            max,
        }
    }

    /// Reads the next frame body. `Ok(None)` means the peer closed the stream cleanly between
    /// frames; a close inside a frame is [`ProtocolError::ConnectionClosed`].
    pub async fn next_frame(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        loop {
            if let Some(frame) = decode_frame(&mut self.buf, self.max)? {
                return Ok(Some(frame.freeze()));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(64 * 1024);
            }
            let n = self.inner.read_buf(&mut self.buf).await?;
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

    #[tokio::test]
    async fn close_inside_a_frame_is_an_error() {
        let wire = [0u8, 0, 0, 5, 1, 2];
        let mut reader = FrameReader::new(&wire[..], 1024);
        assert!(matches!(
            reader.next_frame().await,
            Err(ProtocolError::ConnectionClosed)
        ));
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
