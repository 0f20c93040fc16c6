//! The store key layout shared by session, sliding-window and stream-join stores: the
//! record key's length and bytes, then two longs ordered as numbers (a time first), so
//! one key's entries are a range in time order; and the sweep that drops entries whose
//! time is too old.

use bytes::{BufMut, Bytes, BytesMut};

use super::windowed::{ordered, unordered};
use crate::processor::RecordContext;
use crate::state::SharedStore;

/// The key part: the key's length (4 bytes) and bytes.
pub(crate) fn key_prefix(key: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(4 + key.len() + 16);
    out.put_u32(u32::try_from(key.len()).unwrap_or(u32::MAX));
    out.put_slice(key);
    out
}

/// A store key: the key part, then `time` and `second`, both ordered.
pub(crate) fn keyed_time(key: &[u8], time: i64, second: i64) -> Bytes {
    let mut out = key_prefix(key);
    out.put_slice(&ordered(time));
    out.put_slice(&ordered(second));
    out.freeze()
}

/// The time of a store key made by [`keyed_time`].
pub(crate) fn time_of(slot: &[u8]) -> Option<i64> {
    let len: [u8; 4] = slot.get(..4)?.try_into().ok()?;
    slot.get(4 + u32::from_be_bytes(len) as usize..)
        .and_then(unordered)
}

/// Drops, without logging, every entry of `store` whose time is before `horizon` (a
/// full scan: callers sweep once per window of stream time).
pub(crate) fn forget_before(store: &SharedStore, ctx: &mut RecordContext, horizon: i64) {
    let mut store = store.borrow_mut();
    for (slot, _) in store.range(ctx, &[], None) {
        if time_of(&slot).is_some_and(|t| t < horizon) {
            store.forget(ctx, &slot);
        }
    }
}
