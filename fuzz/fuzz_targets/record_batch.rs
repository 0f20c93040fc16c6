//! Feeds arbitrary bytes to the record batch codec: iteration, produce validation and full
//! decoding must return errors, never panic, and never allocate without bound.
//!
//! Run with `cargo +nightly fuzz run record_batch` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_protocol::records::{
    batches, decode_batch_with_limit, validate_batches, verify_crc, write_crc, BatchHeader,
    BATCH_HEADER_LEN,
};

/// Small enough that decompression bombs stay cheap under the fuzzer.
const MAX_DECOMPRESSED: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    // As received: most inputs fail the CRC early.
    let mut iter = batches(data);
    for item in iter.by_ref() {
        let Ok((header, range)) = item else { break };
        let batch = &data[range];
        assert_eq!(batch.len(), header.total_len());
        let _ = verify_crc(batch);
        let _ = decode_batch_with_limit(batch, MAX_DECOMPRESSED);
    }
    assert!(iter.position() <= data.len());
    let _ = validate_batches(data);
    let _ = decode_batch_with_limit(data, MAX_DECOMPRESSED);

    // Repaired: make the input one whole batch with a valid length and CRC, so the fuzzer
    // reaches decompression and record decoding.
    if data.len() >= BATCH_HEADER_LEN {
        let mut batch = data.to_vec();
        let Ok(batch_length) = i32::try_from(batch.len() - 12) else {
            return;
        };
        batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
        batch[16] = 2;
        write_crc(&mut batch);
        assert!(verify_crc(&batch).is_ok());
        let header = BatchHeader::parse(&batch).ok();
        let validated = validate_batches(&batch);
        if let Ok((decoded, records)) = decode_batch_with_limit(&batch, MAX_DECOMPRESSED) {
            assert_eq!(Some(decoded), header);
            assert_eq!(records.len(), decoded.records_count as usize);
            if validated.is_ok() {
                assert_eq!(decoded.records_count, decoded.last_offset_delta + 1);
            }
        }
    }
});
