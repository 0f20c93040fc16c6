//! Re-encoding a record batch with some of its records dropped, for the cleaner.
//!
//! The new batch keeps the old one's base offset, last offset delta, base timestamp,
//! producer id / epoch / base sequence, partition leader epoch, attributes and codec;
//! each record keeps its own offset delta and timestamp, so offsets and timestamps read
//! back unchanged and the batch still ends at the same offset (Kafka's cleaner does the
//! same; `records_count` then differs from `last_offset_delta + 1`, which is legal in
//! stored batches). `max_timestamp` is recomputed from the kept records for `CreateTime`
//! batches. The CRC is recomputed.

use strom_protocol::records::{
    write_crc, BatchHeader, Compression, Record, RecordsError, BATCH_HEADER_LEN,
};

/// Re-encodes `records` (a subset of the batch with `header`) keeping every offset.
pub(crate) fn rebuild_batch(
    header: &BatchHeader,
    records: &[Record],
) -> Result<Vec<u8>, RecordsError> {
    let mut body = Vec::new();
    for record in records {
        encode_record(&mut body, header, record);
    }
    let codec = header.compression()?;
    let payload = match codec {
        Compression::None => body,
        codec => codec.compress(&body)?,
    };
    let too_large = |size| RecordsError::BatchTooLarge { size };
    let batch_length = i32::try_from(BATCH_HEADER_LEN - 12 + payload.len())
        .map_err(|_| too_large(payload.len()))?;
    let count = i32::try_from(records.len()).map_err(|_| too_large(records.len()))?;
    let max_timestamp = match header.timestamp_type_log_append() {
        true => header.max_timestamp,
        false => records
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(header.max_timestamp),
    };
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + payload.len());
    out.extend_from_slice(&header.base_offset.to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
    out.push(header.magic as u8);
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&header.attributes.to_be_bytes());
    out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&header.base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&header.producer_id.to_be_bytes());
    out.extend_from_slice(&header.producer_epoch.to_be_bytes());
    out.extend_from_slice(&header.base_sequence.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&payload);
    write_crc(&mut out);
    Ok(out)
}

fn encode_record(out: &mut Vec<u8>, header: &BatchHeader, record: &Record) {
    let mut body = vec![0u8]; // attributes
    put_varlong(
        &mut body,
        record.timestamp.wrapping_sub(header.base_timestamp),
    );
    put_varlong(&mut body, record.offset - header.base_offset);
    put_bytes(&mut body, record.key.as_deref());
    put_bytes(&mut body, record.value.as_deref());
    put_varlong(&mut body, record.headers.len() as i64);
    for (key, value) in &record.headers {
        put_bytes(&mut body, Some(key.as_bytes()));
        put_bytes(&mut body, value.as_deref());
    }
    put_varlong(out, body.len() as i64);
    out.extend_from_slice(&body);
}

fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Zigzag varint; for values that fit an `i32` the bytes equal Kafka's varint encoding.
fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
