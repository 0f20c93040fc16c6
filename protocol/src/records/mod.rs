//! Record batches, magic 2 (Kafka's `DefaultRecordBatch`): the unit that producers send,
//! the log stores byte-for-byte, and fetches return.
//!
//! ```text
//!  produce payload ──validate_batches──▶ broker sets base offset / leader epoch ──▶ log
//!   (CRC + header checks, no decompression)   (set_base_offset, bytes outside the CRC)
//!
//!  log segment / fetch response ──batches()──▶ (BatchHeader, byte range) per whole batch
//!                                             ──decode_batch──▶ Vec<Record>
//!
//!  client: BatchBuilder::push ... build ──▶ one compressed, CRC-stamped batch
//! ```
//!
//! - [`BatchHeader`]: the 61-byte header, CRC32C, in-place rewrites.
//! - [`batches`] / [`validate_batches`]: walking concatenated batches.
//! - [`decode_batch`] / [`Record`]: records with absolute offsets and timestamps.
//! - [`BatchBuilder`]: writing a batch.
//! - [`Compression`]: gzip, snappy (xerial framing), lz4 (frame), zstd; decompression is
//!   always bounded so a small batch cannot expand into unbounded memory.
//! - [`varint`]: Kafka's zig-zag varints, decoded strictly.
//!
//! Nothing here panics on any input: every read is bounds-checked and malformed input is a
//! [`RecordsError`].
//!
//! ```
//! use strom_protocol::records::{decode_batch, validate_batches, BatchBuilder, Compression};
//!
//! let mut builder = BatchBuilder::new(Compression::Zstd).base_offset(42);
//! builder.push(1_700_000_000_000, Some(b"key"), Some(b"value"), &[("trace", Some(b"abc"))]);
//! builder.push(1_700_000_000_005, None, None, &[]);
//! let batch = builder.build()?;
//!
//! let headers = validate_batches(&batch)?;
//! assert_eq!(headers[0].records_count, 2);
//!
//! let (header, records) = decode_batch(&batch)?;
//! assert_eq!(header.next_offset(), 44);
//! assert_eq!(records[0].offset, 42);
//! assert_eq!(records[0].value.as_deref(), Some(&b"value"[..]));
//! assert_eq!(records[0].headers[0].0, "trace");
//! assert_eq!(records[1].timestamp, 1_700_000_000_005);
//! assert_eq!(records[1].value, None);
//! # Ok::<(), strom_protocol::records::RecordsError>(())
//! ```

mod batch;
mod builder;
mod compression;
mod control;
mod error;
mod iter;
mod record;
pub mod varint;

#[cfg(test)]
mod tests;

pub use batch::{
    set_base_offset, set_log_append_time, set_partition_leader_epoch, set_producer_sequence,
    verify_crc, write_crc, BatchHeader, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID, NO_SEQUENCE,
};
pub use builder::BatchBuilder;
pub use compression::{Compression, DEFAULT_MAX_DECOMPRESSED_BYTES};
pub use control::{end_transaction_marker, marker_of, Marker};
pub use error::RecordsError;
pub use iter::{batches, validate_batch, validate_batches, BatchIter};
pub use record::{decode_batch, decode_batch_with_limit, Record};

/// Size of the fixed batch header, from `baseOffset` through `recordsCount`.
pub const BATCH_HEADER_LEN: usize = 61;

/// The record batch format version this module reads and writes.
pub const MAGIC_V2: i8 = 2;
