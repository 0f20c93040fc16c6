//! The records of `__transaction_state`, in Kafka's layout (`TransactionLogKey` and
//! `TransactionLogValue` version 0), so Kafka's tools can read them:
//!
//! ```text
//!  key:   version i16 = 0, transactional_id string
//!  value: version i16 = 0, producer_id i64, producer_epoch i16, timeout_ms i32, state i8,
//!         partitions [topic string, [partition i32]] (null when none), last_update_ms i64,
//!         start_ms i64
//! ```
//!
//! A tombstone (null value) removes the id.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnPartition, TxnState};

/// Why a record did not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("transaction log record: {0}")]
pub(crate) struct DecodeError(String);

fn put_string(buf: &mut BytesMut, s: &str) {
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    buf.put_i16(len);
    buf.put_slice(&s.as_bytes()[..usize::try_from(len).unwrap_or(0)]);
}

/// The key of transactional id `id`.
pub(crate) fn encode_key(id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + id.len());
    buf.put_i16(0);
    put_string(&mut buf, id);
    buf.freeze()
}

/// The value of `meta`.
pub(crate) fn encode_value(meta: &TxnMetadata) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(0);
    buf.put_i64(meta.producer_id);
    buf.put_i16(meta.producer_epoch);
    buf.put_i32(meta.timeout_ms);
    buf.put_i8(meta.state.id());
    if meta.partitions.is_empty() {
        buf.put_i32(-1);
    } else {
        let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
        for (topic, partition) in &meta.partitions {
            match topics.last_mut() {
                Some((t, ps)) if *t == topic.as_str() => ps.push(*partition),
                _ => topics.push((topic, vec![*partition])),
            }
        }
        buf.put_i32(i32::try_from(topics.len()).unwrap_or(i32::MAX));
        for (topic, partitions) in topics {
            put_string(&mut buf, topic);
            buf.put_i32(i32::try_from(partitions.len()).unwrap_or(i32::MAX));
            for p in partitions {
                buf.put_i32(p);
            }
        }
    }
    buf.put_i64(meta.last_update_ms);
    buf.put_i64(meta.start_ms);
    buf.freeze()
}

/// Reads big-endian fields off a slice, with errors naming what was cut short.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| DecodeError(format!("{what} cut short")))?;
        self.0 = rest;
        Ok(*head)
    }
    fn i8(&mut self, what: &str) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.take::<1>(what)?))
    }
    fn i16(&mut self, what: &str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.take::<2>(what)?))
    }
    fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take::<4>(what)?))
    }
    fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take::<8>(what)?))
    }
    fn string(&mut self, what: &str) -> Result<String, DecodeError> {
        let len = usize::try_from(self.i16(what)?)
            .map_err(|_| DecodeError(format!("{what}: negative length")))?;
        let bytes = self
            .0
            .get(..len)
            .ok_or_else(|| DecodeError(format!("{what} cut short")))?;
        self.0 = &self.0[len..];
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError(format!("{what}: not UTF-8")))
    }
    fn version(&mut self, what: &str) -> Result<(), DecodeError> {
        match self.i16(what)? {
            0 | 1 => Ok(()),
            v => Err(DecodeError(format!("{what} version {v} is not known"))),
        }
    }
}

/// The transactional id of a key.
pub(crate) fn decode_key(key: &[u8]) -> Result<String, DecodeError> {
    let mut r = Reader(key);
    r.version("key")?;
    r.string("transactional id")
}

/// The metadata of a value (`None` for a state this broker does not keep: Dead).
pub(crate) fn decode_value(value: &[u8]) -> Result<Option<TxnMetadata>, DecodeError> {
    let mut r = Reader(value);
    r.version("value")?;
    let producer_id = r.i64("producer id")?;
    let producer_epoch = r.i16("producer epoch")?;
    let timeout_ms = r.i32("timeout")?;
    let state = r.i8("state")?;
    let topics = r.i32("partitions")?;
    let mut partitions: BTreeSet<TxnPartition> = BTreeSet::new();
    for _ in 0..topics.max(0) {
        let topic = r.string("topic")?;
        for _ in 0..r.i32("partition count")?.max(0) {
            partitions.insert((topic.clone(), r.i32("partition")?));
        }
    }
    let last_update_ms = r.i64("last update")?;
    let start_ms = r.i64("start")?;
    Ok(TxnState::from_id(state).map(|state| TxnMetadata {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut meta = TxnMetadata::new(4001, 60_000, 17);
        meta.state = TxnState::Ongoing;
        meta.producer_epoch = 3;
        meta.start_ms = 12;
        for (t, p) in [("orders", 2), ("orders", 0), ("audit", 5)] {
            meta.partitions.insert((t.to_owned(), p));
        }
        let key = encode_key("payments-λ");
        assert_eq!(decode_key(&key).unwrap(), "payments-λ");
        assert_eq!(
            decode_value(&encode_value(&meta)).unwrap(),
            Some(meta.clone())
        );
        meta.partitions.clear();
        meta.state = TxnState::CompleteCommit;
        let value = encode_value(&meta);
        // No partitions: a null array, as Kafka writes it.
        assert_eq!(&value[17..21], &(-1i32).to_be_bytes());
        assert_eq!(decode_value(&value).unwrap(), Some(meta));
    }

    #[test]
    fn cut_or_unknown_records_are_errors() {
        let meta = TxnMetadata::new(1, 1000, 0);
        let value = encode_value(&meta);
        for len in 0..value.len() {
            assert!(decode_value(&value[..len]).is_err(), "{len} bytes");
        }
        let mut future = value.to_vec();
        future[1] = 9;
        assert!(decode_value(&future).is_err());
        let mut dead = value.to_vec();
        dead[16] = 6;
        assert_eq!(decode_value(&dead), Ok(None));
        assert!(decode_key(&[0, 0, 0, 5, b'a']).is_err());
    }
}
