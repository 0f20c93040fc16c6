//! Fetch responses written without an extra copy of the records.
//!
//! The generic path encodes a whole response into one buffer, which would read every
//! fetched batch into memory and copy it once more on its way to the socket. This writer
//! produces the same bytes as `kafka-protocol`'s encoder (a test compares them for every
//! version) as a list of [`Chunk`]s: small encoded parts, and large [`FileRegion`]s that the
//! connection sends from the page cache to the socket with `sendfile` on Linux (elsewhere
//! it reads them piece by piece into a reused buffer), so stored data is never copied
//! through the broker's memory and the client starts receiving before the whole response
//! is read from the log.
//!
//! Only the fields the broker sets are written; a response carrying anything else (tagged
//! fields such as diverging epochs or node endpoints) returns `None` and goes through the
//! generic encoder.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::PartitionData;

use crate::handler::fetch::FetchOutput;
use crate::log::FileRegion;

/// First flexible version (compact lengths, tagged fields).
const FLEXIBLE: i16 = 12;

/// Records at least this large are sent as their own chunk rather than copied.
const SPLICE_MIN: usize = 16 * 1024;

/// One piece of a response frame.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// Bytes to write as they are.
    Bytes(Bytes),
    /// Stored batches to read from the log while writing.
    Region(FileRegion),
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::Region(r) => r.len(),
        }
    }
}

/// A response frame being assembled.
struct Chunks {
    chunks: Vec<Chunk>,
    current: BytesMut,
}

impl Chunks {
    fn new() -> Self {
        Chunks {
            chunks: Vec::new(),
            current: BytesMut::with_capacity(512),
        }
    }

    fn flush_current(&mut self) {
        if !self.current.is_empty() {
            self.chunks
                .push(Chunk::Bytes(self.current.split().freeze()));
        }
    }

    fn splice(&mut self, bytes: &Bytes) {
        if bytes.len() < SPLICE_MIN {
            self.current.extend_from_slice(bytes);
        } else {
            self.flush_current();
            self.chunks.push(Chunk::Bytes(bytes.clone()));
        }
    }

    fn splice_region(&mut self, region: &FileRegion) -> std::io::Result<()> {
        if region.len() < SPLICE_MIN {
            let at = self.current.len();
            self.current.resize(at + region.len(), 0);
            region.read_at(&mut self.current[at..], 0)
        } else {
            self.flush_current();
            self.chunks.push(Chunk::Region(region.clone()));
            Ok(())
        }
    }

    fn finish(mut self) -> Vec<Chunk> {
        self.flush_current();
        let total: usize = self.chunks.iter().map(Chunk::len).sum();
        let mut framed = Vec::with_capacity(self.chunks.len() + 1);
        framed.push(Chunk::Bytes(Bytes::copy_from_slice(
            &(total as u32).to_be_bytes(),
        )));
        framed.extend(self.chunks);
        framed
    }
}

fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_array_len(buf: &mut BytesMut, len: usize, version: i16) {
    if version >= FLEXIBLE {
        put_uvarint(buf, len as u32 + 1);
    } else {
        buf.put_i32(len as i32);
    }
}

fn encodable(p: &PartitionData) -> bool {
    p.unknown_tagged_fields.is_empty()
        && p.diverging_epoch == Default::default()
        && p.current_leader == Default::default()
        && p.snapshot_id == Default::default()
}

/// Writes a Fetch response frame (length, header, body) as chunks, or `None` when the
/// response uses fields this writer does not handle.
///
/// # Errors
/// Reading a small region into the frame failed.
pub(crate) fn encode(
    output: &FetchOutput,
    version: i16,
    correlation_id: i32,
) -> std::io::Result<Option<Vec<Chunk>>> {
    let response = &output.response;
    if !(4..=16).contains(&version)
        || !response.unknown_tagged_fields.is_empty()
        || !response.node_endpoints.is_empty()
    {
        return Ok(None);
    }
    let mut regions = output.regions.iter();
    let flexible = version >= FLEXIBLE;
    let mut out = Chunks::new();
    let b = &mut out.current;
    b.put_i32(correlation_id);
    if flexible {
        b.put_u8(0); // response header tagged fields
    }
    b.put_i32(response.throttle_time_ms);
    if version >= 7 {
        b.put_i16(response.error_code);
        b.put_i32(response.session_id);
    }
    put_array_len(b, response.responses.len(), version);
    for topic in &response.responses {
        if !topic.unknown_tagged_fields.is_empty() || !topic.partitions.iter().all(encodable) {
            return Ok(None);
        }
        let b = &mut out.current;
        if version >= 13 {
            b.put_slice(topic.topic_id.as_bytes());
        } else if flexible {
            put_uvarint(b, topic.topic.0.len() as u32 + 1);
            b.put_slice(topic.topic.0.as_bytes());
        } else {
            b.put_i16(topic.topic.0.len() as i16);
            b.put_slice(topic.topic.0.as_bytes());
        }
        put_array_len(b, topic.partitions.len(), version);
        for p in &topic.partitions {
            let b = &mut out.current;
            b.put_i32(p.partition_index);
            b.put_i16(p.error_code);
            b.put_i64(p.high_watermark);
            b.put_i64(p.last_stable_offset);
            if version >= 5 {
                b.put_i64(p.log_start_offset);
            }
            match &p.aborted_transactions {
                None if flexible => put_uvarint(b, 0),
                None => b.put_i32(-1),
                Some(aborted) => {
                    put_array_len(b, aborted.len(), version);
                    for a in aborted {
                        b.put_i64(a.producer_id.0);
                        b.put_i64(a.first_offset);
                        if flexible {
                            b.put_u8(0);
                        }
                    }
                }
            }
            if version >= 11 {
                b.put_i32(p.preferred_read_replica.0);
            }
            let region = regions.next().and_then(Option::as_ref);
            match (&p.records, region) {
                (_, Some(region)) => {
                    put_bytes_len(b, region.len(), flexible);
                    out.splice_region(region)?;
                }
                (None, None) if flexible => put_uvarint(b, 0),
                (None, None) => b.put_i32(-1),
                (Some(records), None) => {
                    put_bytes_len(b, records.len(), flexible);
                    out.splice(records);
                }
            }
            if flexible {
                out.current.put_u8(0);
            }
        }
        if flexible {
            out.current.put_u8(0);
        }
    }
    if flexible {
        out.current.put_u8(0);
    }
    Ok(Some(out.finish()))
}

fn put_bytes_len(buf: &mut BytesMut, len: usize, flexible: bool) {
    if flexible {
        put_uvarint(buf, len as u32 + 1);
    } else {
        buf.put_i32(len as i32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse};
    use kafka_protocol::messages::{ApiKey, BrokerId, FetchResponse, ProducerId, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use strom_protocol::records::{BatchBuilder, Compression};

    use crate::log::{LogConfig, PartitionLog};

    fn write_all(chunks: &[Chunk]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            match c {
                Chunk::Bytes(b) => out.extend_from_slice(b),
                Chunk::Region(r) => out.extend_from_slice(&r.to_bytes().unwrap()),
            }
        }
        out
    }

    fn sample(version: i16) -> FetchResponse {
        let big = Bytes::from(vec![7u8; 40_000]);
        let small = Bytes::from_static(b"tiny records");
        let partition = |i: i32, records: Option<Bytes>| {
            let mut p = PartitionData::default()
                .with_partition_index(i)
                .with_error_code(if i == 2 { 1 } else { 0 })
                .with_high_watermark(1000 + i64::from(i))
                .with_last_stable_offset(999)
                .with_records(records);
            if version >= 5 {
                p = p.with_log_start_offset(5);
            }
            if version >= 11 {
                p = p.with_preferred_read_replica(BrokerId(-1));
            }
            if i == 1 {
                p = p.with_aborted_transactions(Some(vec![AbortedTransaction::default()
                    .with_producer_id(ProducerId(9))
                    .with_first_offset(3)]));
            }
            p
        };
        let mut topic = FetchableTopicResponse::default().with_partitions(vec![
            partition(0, Some(big)),
            partition(1, Some(small)),
            partition(2, None),
            partition(3, Some(Bytes::new())),
        ]);
        topic = if version >= 13 {
            topic.with_topic_id(uuid::Uuid::from_u128(
                0x1234_5678_9abc_def0_1122_3344_5566_7788,
            ))
        } else {
            topic.with_topic(TopicName(StrBytes::from_static_str("orders")))
        };
        let mut r = FetchResponse::default()
            .with_throttle_time_ms(3)
            .with_responses(vec![topic.clone(), topic]);
        if version >= 7 {
            r = r.with_error_code(0).with_session_id(0);
        }
        r
    }

    #[test]
    fn same_bytes_as_the_generic_encoder_for_every_version() {
        for version in 4..=16 {
            let response = sample(version);
            let mut expected = BytesMut::new();
            strom_protocol::header::encode_response(
                ApiKey::Fetch,
                version,
                77,
                &response,
                &mut expected,
            )
            .unwrap();
            let regions = vec![None; 8];
            let chunks = encode(&FetchOutput { response, regions }, version, 77)
                .unwrap()
                .unwrap();
            assert!(
                chunks.len() > 2,
                "v{version}: records are spliced, not copied"
            );
            assert_eq!(write_all(&chunks), expected.to_vec(), "v{version}");
        }
    }

    #[test]
    fn regions_are_read_while_writing_and_match_the_generic_encoder() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
        for (i, size) in [100usize, 50_000].into_iter().enumerate() {
            let mut b = BatchBuilder::new(Compression::None);
            b.push(i as i64, None, Some(&vec![i as u8; size]), &[]);
            let mut batch = b.build().unwrap().to_vec();
            log.append(&mut batch, 0).unwrap();
        }
        let small = log.read_region(0, 200, true).unwrap().unwrap();
        let big = log.read_region(1, 1 << 20, true).unwrap().unwrap();
        let all = log.read_region(0, 1 << 20, true).unwrap().unwrap();
        for version in [4, 11, 12, 16] {
            let mut response = sample(version);
            response.responses.truncate(1);
            let regions = vec![
                Some(small.clone()),
                Some(big.clone()),
                None,
                Some(all.clone()),
            ];
            let output = FetchOutput { response, regions };
            let chunks = encode(&output, version, 5).unwrap().unwrap();
            assert!(
                chunks.iter().any(|c| matches!(c, Chunk::Region(_))),
                "v{version}"
            );
            let mut expected = BytesMut::new();
            let materialized = FetchOutput {
                response: output.response.clone(),
                regions: output.regions.clone(),
            }
            .materialize()
            .unwrap();
            strom_protocol::header::encode_response(
                ApiKey::Fetch,
                version,
                5,
                &materialized,
                &mut expected,
            )
            .unwrap();
            assert_eq!(write_all(&chunks), expected.to_vec(), "v{version}");
        }
    }
}
