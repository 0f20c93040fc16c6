//! [`Record`]s inside a batch: encoding for the builder, a cheap length walk for validation,
//! and full decoding ([`decode_batch`]).
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//! keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value
//! headersCount varint | { keyLength varint | utf8 key | valueLength varint (-1 = null) | value }*
//! ```

use std::ops::Range;

use bytes::Bytes;

use super::batch::check_batch;
use super::compression::DEFAULT_MAX_DECOMPRESSED_BYTES;
use super::varint::{get_varint, get_varlong, put_varint, put_varlong};
use super::{BatchHeader, Compression, RecordsError, BATCH_HEADER_LEN};

/// Smallest encoded record body: attributes, timestamp delta, offset delta, key length,
/// value length, header count (one byte each).
const MIN_RECORD_BODY: usize = 6;

/// One decoded record with absolute offset and timestamp.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Record {
    /// Absolute offset: batch base offset + offset delta.
    pub offset: i64,
    /// Absolute timestamp: base timestamp + delta, or the batch max timestamp for
    /// `LogAppendTime` batches.
    pub timestamp: i64,
    /// Key; `None` is a null key (distinct from an empty one).
    pub key: Option<Bytes>,
    /// Value; `None` is a null value (a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Headers in wire order; keys are UTF-8, values may be null.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Decodes one whole batch (CRC-checked, decompressed) into records with absolute offsets and
/// timestamps, with decompressed output capped at [`DEFAULT_MAX_DECOMPRESSED_BYTES`].
pub fn decode_batch(batch: &[u8]) -> Result<(BatchHeader, Vec<Record>), RecordsError> {
    decode_batch_with_limit(batch, DEFAULT_MAX_DECOMPRESSED_BYTES)
}

/// [`decode_batch`] with an explicit cap on the decompressed size of the records.
pub fn decode_batch_with_limit(
    batch: &[u8],
    max_decompressed: usize,
) -> Result<(BatchHeader, Vec<Record>), RecordsError> {
    let header = check_batch(batch)?;
    let body = batch.get(BATCH_HEADER_LEN..).unwrap_or_default();
    let data = match header.compression()? {
        Compression::None => Bytes::copy_from_slice(body),
        codec => Bytes::from(codec.decompress_bounded(body, max_decompressed)?),
    };
    let records = decode_records(&header, &data)?;
    Ok((header, records))
}

/// Decodes exactly `header.records_count` records filling all of `data` (the uncompressed
/// records section). Keys and values are zero-copy slices of `data`.
pub(crate) fn decode_records(
    header: &BatchHeader,
    data: &Bytes,
) -> Result<Vec<Record>, RecordsError> {
    let declared = header.records_count;
    let count = usize::try_from(declared)
        .map_err(|_| RecordsError::BadBatch(format!("negative recordsCount {declared}")))?;
    let mut records = Vec::with_capacity(count.min(data.len() / (MIN_RECORD_BODY + 1)));
    let mut cur = Cursor { buf: data, pos: 0 };
    for index in 0..count {
        if cur.pos >= data.len() {
            return Err(RecordsError::RecordCountMismatch {
                declared,
                actual: index,
            });
        }
        records.push(decode_record(header, data, &mut cur, index)?);
    }
    if cur.pos != data.len() {
        return Err(RecordsError::BadBatch(format!(
            "{} bytes left after the {declared} declared records",
            data.len() - cur.pos
        )));
    }
    Ok(records)
}

fn decode_record(
    header: &BatchHeader,
    data: &Bytes,
    cur: &mut Cursor<'_>,
    index: usize,
) -> Result<Record, RecordsError> {
    let bad = |reason| RecordsError::BadRecord { index, reason };
    let len = cur.varint().map_err(bad)?;
    let len = usize::try_from(len).map_err(|_| bad("negative record length"))?;
    let end = cur
        .pos
        .checked_add(len)
        .filter(|&end| end <= data.len())
        .ok_or(bad("record length runs past the end of the batch"))?;
    let mut body = Cursor {
        buf: data.get(..end).unwrap_or_default(),
        pos: cur.pos,
    };
    let record = decode_body(header, data, &mut body).map_err(bad)?;
    if body.pos != end {
        return Err(bad("record fields end before the record length"));
    }
    cur.pos = end;
    Ok(record)
}

/// Decodes the fields after the length prefix, within the record's bytes.
fn decode_body(
    header: &BatchHeader,
    data: &Bytes,
    body: &mut Cursor<'_>,
) -> Result<Record, &'static str> {
    let _attributes = body.byte()?;
    let timestamp_delta = body.varlong()?;
    let offset_delta = body.varint()?;
    let key = body.nullable(data)?;
    let value = body.nullable(data)?;
    let header_count = usize::try_from(body.varint()?).map_err(|_| "negative header count")?;
    let mut headers = Vec::with_capacity(header_count.min(body.remaining() / 2));
    for _ in 0..header_count {
        let key_len = usize::try_from(body.varint()?).map_err(|_| "null header key")?;
        let range = body.take(key_len)?;
        let key = std::str::from_utf8(data.get(range).unwrap_or_default())
            .map_err(|_| "header key is not UTF-8")?;
        let value = body.nullable(data)?;
        headers.push((key.to_owned(), value));
    }
    let timestamp = if header.timestamp_type_log_append() {
        header.max_timestamp
    } else {
        header.base_timestamp.wrapping_add(timestamp_delta)
    };
    Ok(Record {
        offset: header.base_offset.wrapping_add(i64::from(offset_delta)),
        timestamp,
        key,
        value,
        headers,
    })
}

fn varint_reason(e: RecordsError) -> &'static str {
    match e {
        RecordsError::BadVarint(reason) => reason,
        _ => "invalid varint",
    }
}

/// Checks that the uncompressed records section `data` is exactly `declared` records by
/// walking their length prefixes (fields are not decoded).
pub(crate) fn walk_records(data: &[u8], declared: i32) -> Result<(), RecordsError> {
    let mut pos = 0usize;
    let mut count = 0usize;
    while pos < data.len() {
        let rest = data.get(pos..).unwrap_or_default();
        let bad = |reason| RecordsError::BadRecord {
            index: count,
            reason,
        };
        let (len, used) = get_varint(rest).map_err(|e| bad(varint_reason(e)))?;
        let len = usize::try_from(len).map_err(|_| bad("negative record length"))?;
        if len < MIN_RECORD_BODY {
            return Err(bad("record shorter than its fixed fields"));
        }
        if len > rest.len() - used {
            return Err(bad("record length runs past the end of the batch"));
        }
        pos += used + len;
        count += 1;
    }
    if usize::try_from(declared).ok() != Some(count) {
        return Err(RecordsError::RecordCountMismatch {
            declared,
            actual: count,
        });
    }
    Ok(())
}

/// Appends one record (length prefix and body) to `out`, using `scratch` for the body.
/// Returns `Err(len)` with the offending length if a key, value or header is longer than
/// `i32::MAX` bytes.
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
) -> Result<(), usize> {
    scratch.clear();
    scratch.push(0); // record attributes: unused
    put_varlong(scratch, timestamp_delta);
    put_varint(scratch, offset_delta);
    put_nullable(scratch, key)?;
    put_nullable(scratch, value)?;
    put_varint(scratch, len_i32(headers.len())?);
    for (name, value) in headers {
        put_nullable(scratch, Some(name.as_bytes()))?;
        put_nullable(scratch, *value)?;
    }
    put_varint(out, len_i32(scratch.len())?);
    out.extend_from_slice(scratch);
    Ok(())
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<(), usize> {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, len_i32(b.len())?);
            out.extend_from_slice(b);
        }
    }
    Ok(())
}

fn len_i32(len: usize) -> Result<i32, usize> {
    i32::try_from(len).map_err(|_| len)
}

/// A read position in a byte slice; every read is bounds-checked.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    const PAST_END: &'static str = "record fields run past the record length";

    fn rest(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn byte(&mut self) -> Result<u8, &'static str> {
        let b = *self.buf.get(self.pos).ok_or(Self::PAST_END)?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<i32, &'static str> {
        let (v, used) = get_varint(self.rest()).map_err(varint_reason)?;
        self.pos += used;
        Ok(v)
    }

    fn varlong(&mut self) -> Result<i64, &'static str> {
        let (v, used) = get_varlong(self.rest()).map_err(varint_reason)?;
        self.pos += used;
        Ok(v)
    }

    /// The range of the next `len` bytes.
    fn take(&mut self, len: usize) -> Result<Range<usize>, &'static str> {
        if len > self.remaining() {
            return Err(Self::PAST_END);
        }
        let range = self.pos..self.pos + len;
        self.pos += len;
        Ok(range)
    }

    /// A length-prefixed nullable byte string (-1 = null), sliced zero-copy from `data`.
    fn nullable(&mut self, data: &Bytes) -> Result<Option<Bytes>, &'static str> {
        let len = self.varint()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| "length below -1")?;
        Ok(Some(data.slice(self.take(len)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{write_crc, BatchBuilder};

    fn encode(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> Vec<u8> {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        encode_record(&mut out, &mut scratch, 1, -5, key, value, headers).unwrap();
        out
    }

    /// A batch with one record whose encoding is `record`, CRC fixed up.
    fn wrap(record: &[u8]) -> Vec<u8> {
        let mut b = BatchBuilder::new(Compression::None).base_offset(10);
        b.push(1_000, None, None, &[]);
        let mut batch = b.build().unwrap().to_vec();
        batch.truncate(BATCH_HEADER_LEN);
        batch.extend_from_slice(record);
        let len = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&len.to_be_bytes());
        write_crc(&mut batch);
        batch
    }

    #[test]
    fn encodes_fields_in_wire_order() {
        let bytes = encode(Some(b"k"), None, &[("h", Some(b"v")), ("n", None)]);
        #[rustfmt::skip]
        let expected = [
            0x1c, // length 14
            0x00, 0x09, 0x02, // attributes, timestampDelta -5, offsetDelta 1
            0x02, b'k', 0x01, // key "k", value null
            0x04, 0x02, b'h', 0x02, b'v', 0x02, b'n', 0x01, // 2 headers
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn decodes_headers_and_nulls() {
        let record = encode(Some(b""), Some(b"value"), &[("h", Some(b"v")), ("n", None)]);
        let (h, records) = decode_batch(&wrap(&record)).unwrap();
        assert_eq!(h.records_count, 1);
        let r = &records[0];
        assert_eq!((r.offset, r.timestamp), (11, 995));
        assert_eq!(r.key.as_deref(), Some(&b""[..]));
        assert_eq!(r.value.as_deref(), Some(&b"value"[..]));
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.headers[1], ("n".to_owned(), None));
    }

    #[test]
    fn rejects_malformed_records() {
        let good = encode(Some(b"key"), Some(b"value"), &[("h", None)]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            ([&[0x7e][..], &good[1..]].concat(), "length too long"),
            (
                [&[good[0] - 2], &good[1..good.len() - 1]].concat(),
                "length too short",
            ),
            ([&good[..], &[0x00]].concat(), "trailing byte"),
            ([&good[..4], &[0x03], &good[5..]].concat(), "key length -2"),
            (vec![0x0c, 0, 0, 0, 1, 1, 0x01], "negative header count"),
            (vec![0x10, 0, 0, 0, 1, 1, 2, 1, 1], "null header key"),
            (
                vec![0x12, 0, 0, 0, 1, 1, 2, 2, 0xff, 1],
                "non-utf8 header key",
            ),
            (vec![0x0c, 0, 0x80, 0, 0, 1, 1], "overlong varint"),
            (vec![0x01], "negative record length"),
        ];
        for (record, what) in cases {
            assert!(decode_batch(&wrap(&record)).is_err(), "{what}");
        }
    }

    #[test]
    fn walk_counts_records() {
        let one = encode(None, Some(b"v"), &[]);
        let three = one.repeat(3);
        walk_records(&three, 3).unwrap();
        assert!(matches!(
            walk_records(&three, 2),
            Err(RecordsError::RecordCountMismatch {
                declared: 2,
                actual: 3
            })
        ));
        assert!(walk_records(&three[..three.len() - 1], 3).is_err());
        assert!(
            walk_records(&[0x02, 0], 1).is_err(),
            "shorter than fixed fields"
        );
        walk_records(&[], 0).unwrap();
    }

    #[test]
    fn log_append_time_overrides_record_timestamps() {
        let mut b = BatchBuilder::new(Compression::None);
        b.push(1, None, Some(b"a"), &[]);
        b.push(2, None, Some(b"b"), &[]);
        let mut batch = b.build().unwrap().to_vec();
        crate::records::set_log_append_time(&mut batch, 777).unwrap();
        let (_, records) = decode_batch(&batch).unwrap();
        assert!(records.iter().all(|r| r.timestamp == 777));
    }

    #[test]
    fn decode_limit_applies_to_compressed_batches() {
        let mut b = BatchBuilder::new(Compression::Zstd);
        b.push(0, None, Some(&[0u8; 100_000]), &[]);
        let batch = b.build().unwrap();
        assert!(batch.len() < 1_000);
        decode_batch_with_limit(&batch, 200_000).unwrap();
        assert!(matches!(
            decode_batch_with_limit(&batch, 50_000),
            Err(RecordsError::DecompressedTooLarge { .. })
        ));
    }
}
