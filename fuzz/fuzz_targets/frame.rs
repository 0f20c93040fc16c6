//! Frame splitting: any byte stream, cut anywhere, never panics and never reserves more
//! than the size limit allows.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strom_protocol::frame::decode_frame;

const MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else { return };
    let mut buf = BytesMut::new();
    for piece in stream.chunks(usize::from(cut).max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decode_frame(&mut buf, MAX) {
                Ok(Some(frame)) => assert!(frame.len() <= MAX),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(buf.capacity() <= MAX + 4 + stream.len() + 64 * 1024);
    }
});
