//! Cross-file tests: property round trips and batches written by real Kafka.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

type OwnedHeaders = Vec<(String, Option<Vec<u8>>)>;

#[derive(Debug, Clone)]
struct Input {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: OwnedHeaders,
}

fn bytes_opt() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))
}

fn input() -> impl Strategy<Value = Input> {
    let header = ("[a-z\\u{e9}\\u{4e2d}]{0,8}", bytes_opt());
    (
        any::<i64>(),
        bytes_opt(),
        bytes_opt(),
        proptest::collection::vec(header, 0..3),
    )
        .prop_map(|(timestamp, key, value, headers)| Input {
            timestamp,
            key,
            value,
            headers,
        })
}

fn codec() -> impl Strategy<Value = Compression> {
    proptest::sample::select(Compression::ALL.to_vec())
}

fn build(codec: Compression, base_offset: i64, inputs: &[Input]) -> Bytes {
    let mut b = BatchBuilder::new(codec).base_offset(base_offset);
    for r in inputs {
        let headers: Vec<(&str, Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        b.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers);
    }
    b.build().unwrap()
}

fn expected(base_offset: i64, inputs: &[Input]) -> Vec<Record> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            offset: base_offset + i as i64,
            timestamp: r.timestamp,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().map(Bytes::from)))
                .collect(),
        })
        .collect()
}

proptest! {
    #[test]
    fn build_validate_decode_round_trip(
        codec in codec(),
        base_offset in 0i64..1 << 50,
        inputs in proptest::collection::vec(input(), 1..20),
    ) {
        let batch = build(codec, base_offset, &inputs);
        let headers = validate_batches(&batch).unwrap();
        prop_assert_eq!(headers.len(), 1);
        prop_assert_eq!(headers[0].compression().unwrap(), codec);
        prop_assert_eq!(headers[0].records_count as usize, inputs.len());
        let (header, records) = decode_batch(&batch).unwrap();
        prop_assert_eq!(header, headers[0]);
        prop_assert_eq!(records, expected(base_offset, &inputs));
    }

    #[test]
    fn concatenated_batches_validate_and_iterate(
        groups in proptest::collection::vec((codec(), proptest::collection::vec(input(), 1..5)), 1..5),
    ) {
        let mut buf = Vec::new();
        let mut next = 0i64;
        for (codec, inputs) in &groups {
            buf.extend_from_slice(&build(*codec, next, inputs));
            next += inputs.len() as i64;
        }
        let headers = validate_batches(&buf).unwrap();
        prop_assert_eq!(headers.len(), groups.len());
        prop_assert_eq!(headers.last().unwrap().next_offset(), next);
        for item in batches(&buf) {
            let (_, range) = item.unwrap();
            decode_batch(&buf[range]).unwrap();
        }
    }

    #[test]
    fn any_corruption_from_offset_17_is_detected(
        codec in codec(),
        inputs in proptest::collection::vec(input(), 1..5),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut batch = build(codec, 0, &inputs).to_vec();
        let at = 17 + at.index(batch.len() - 17);
        batch[at] ^= flip;
        prop_assert!(verify_crc(&batch).is_err());
        prop_assert!(validate_batches(&batch).is_err());
        prop_assert!(decode_batch(&batch).is_err());
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for (_, range) in batches(&bytes).flatten() {
            let _ = decode_batch(&bytes[range]);
        }
        let _ = validate_batches(&bytes);
        let _ = decode_batch(&bytes);
    }

    #[test]
    fn mutated_records_never_panic(
        codec in codec(),
        inputs in proptest::collection::vec(input(), 1..5),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        // Corrupt past the header and fix the CRC so decoding goes deep.
        let mut batch = build(codec, 0, &inputs).to_vec();
        for (at, byte) in edits {
            let at = BATCH_HEADER_LEN + at.index(batch.len() - BATCH_HEADER_LEN);
            batch[at] = byte;
        }
        write_crc(&mut batch);
        let _ = validate_batches(&batch);
        let _ = decode_batch(&batch);
    }
}

/// Two batches from a Kafka 0.11 broker (Java), as published in kafka-python's test suite:
/// value "123" at offset 0, then two empty values at offsets 1 and 2.
#[rustfmt::skip]
const KAFKA_BATCHES: [u8; 147] = [
    // batch 1: baseOffset 0, batchLength 59, leaderEpoch 1, magic 2, crc 0x0318a270
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x3b, 0, 0, 0, 1, 2, 0x03, 0x18, 0xa2, 0x70,
    0, 0, 0, 0, 0, 0, // attributes 0, lastOffsetDelta 0
    0, 0, 0x01, 0x5d, 0xff, 0x7b, 0x06, 0x3c, 0, 0, 0x01, 0x5d, 0xff, 0x7b, 0x06, 0x3c,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0, 0, 0, 1, // recordsCount 1
    0x12, 0, 0, 0, 0x01, 0x06, b'1', b'2', b'3', 0,
    // batch 2: baseOffset 1, batchLength 64, leaderEpoch 2, magic 2, crc 0xc85cbd23
    0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x40, 0, 0, 0, 2, 2, 0xc8, 0x5c, 0xbd, 0x23,
    0, 0, 0, 0, 0, 1, // attributes 0, lastOffsetDelta 1
    0, 0, 0x01, 0x5d, 0xff, 0x7c, 0xdd, 0x6c, 0, 0, 0x01, 0x5d, 0xff, 0x7c, 0xde, 0x14,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0, 0, 0, 2, // recordsCount 2
    0x0c, 0, 0, 0, 0x01, 0, 0,
    0x0e, 0, 0xd0, 0x02, 0x02, 0x01, 0, 0,
];

#[test]
fn decodes_batches_written_by_java_kafka() {
    let headers = validate_batches(&KAFKA_BATCHES).unwrap();
    assert_eq!(headers.len(), 2);
    assert_eq!((headers[0].crc, headers[1].crc), (0x0318_a270, 0xc85c_bd23));
    assert_eq!(headers[1].partition_leader_epoch, 2);
    let mut records = Vec::new();
    for item in batches(&KAFKA_BATCHES) {
        let (_, range) = item.unwrap();
        records.extend(decode_batch(&KAFKA_BATCHES[range]).unwrap().1);
    }
    let empty = Some(Bytes::new());
    assert_eq!(
        records,
        [
            Record {
                offset: 0,
                timestamp: 0x015d_ff7b_063c,
                key: None,
                value: Some(Bytes::from_static(b"123")),
                headers: vec![],
            },
            Record {
                offset: 1,
                timestamp: 0x015d_ff7c_dd6c,
                value: empty.clone(),
                ..Record::default()
            },
            Record {
                offset: 2,
                timestamp: 0x015d_ff7c_de14,
                value: empty,
                ..Record::default()
            },
        ]
    );
}

#[test]
fn builder_reproduces_the_java_batch_byte_for_byte() {
    let mut b = BatchBuilder::new(Compression::None)
        .base_offset(1)
        .partition_leader_epoch(2);
    b.push(0x015d_ff7c_dd6c, None, Some(b""), &[]);
    b.push(0x015d_ff7c_de14, None, Some(b""), &[]);
    assert_eq!(&b.build().unwrap()[..], &KAFKA_BATCHES[71..]);
}

/// A hand-assembled gzip batch (one record, key "k", value "v") checked field by field against
/// the spec, with the CRC and batch length computed independently of the builder.
#[test]
fn decodes_hand_assembled_compressed_batches() {
    let record = [0x10, 0, 0, 0, 0x02, b'k', 0x02, b'v', 0];
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let payload = codec.compress(&record).unwrap();
        let mut batch = Vec::new();
        batch.extend_from_slice(&7i64.to_be_bytes());
        batch.extend_from_slice(&((49 + payload.len()) as i32).to_be_bytes());
        batch.extend_from_slice(&(-1i32).to_be_bytes());
        batch.push(2);
        batch.extend_from_slice(&[0; 4]);
        batch.extend_from_slice(&codec.id().to_be_bytes());
        batch.extend_from_slice(&0i32.to_be_bytes());
        batch.extend_from_slice(&1_000i64.to_be_bytes());
        batch.extend_from_slice(&1_000i64.to_be_bytes());
        batch.extend_from_slice(&[0xff; 14]);
        batch.extend_from_slice(&1i32.to_be_bytes());
        batch.extend_from_slice(&payload);
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        validate_batches(&batch).unwrap();
        let (_, records) = decode_batch(&batch).unwrap();
        assert_eq!(records.len(), 1, "{codec}");
        assert_eq!((records[0].offset, records[0].timestamp), (7, 1_000));
        assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
    }
}

#[test]
fn raw_snappy_batches_decode_like_xerial_ones() {
    let record = [0x10, 0, 0, 0, 0x02, b'k', 0x02, b'v', 0];
    let raw = snap::raw::Encoder::new().compress_vec(&record).unwrap();
    let mut b = BatchBuilder::new(Compression::Snappy);
    b.push(0, Some(b"k"), Some(b"v"), &[]);
    let xerial = b.build().unwrap();
    let mut batch = xerial[..BATCH_HEADER_LEN].to_vec();
    batch.extend_from_slice(&raw);
    let len = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    write_crc(&mut batch);
    assert_eq!(
        decode_batch(&batch).unwrap().1,
        decode_batch(&xerial).unwrap().1
    );
}
