//! [`RecordsError`]: everything that can go wrong parsing, validating or building batches.

use super::compression::Compression;

/// An error from parsing, validating, decompressing or building a record batch.
///
/// A broker maps most variants to Kafka's `CORRUPT_MESSAGE` (CRC, lengths, records) or
/// `UNSUPPORTED_COMPRESSION_TYPE` / `UNSUPPORTED_VERSION` ([`RecordsError::UnknownCompression`],
/// [`RecordsError::BadMagic`]).
#[derive(thiserror::Error, Debug)]
pub enum RecordsError {
    /// The buffer ends before the structure being read does.
    #[error("record batch truncated: needed {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The magic byte is not 2; only record batch v2 is supported.
    #[error("unsupported record batch magic {0} (only magic 2 is supported)")]
    BadMagic(i8),
    /// The CRC32C stored in the header does not match the bytes.
    #[error("record batch CRC mismatch: header says {expected:#010x}, computed {actual:#010x}")]
    CrcMismatch {
        /// CRC stored in the batch header.
        expected: u32,
        /// CRC computed over attributes..end.
        actual: u32,
    },
    /// The `batchLength` field is below the size of a header without records.
    #[error("record batch length {batch_length} is below the minimum of {min}")]
    BadLength {
        /// The declared `batchLength`.
        batch_length: i32,
        /// The smallest legal `batchLength` (49).
        min: i32,
    },
    /// A slice meant to hold exactly one batch has a different size than its header declares.
    #[error("record batch header declares {declared} bytes but the slice holds {actual}")]
    LengthMismatch {
        /// `batchLength + 12`.
        declared: usize,
        /// Length of the slice.
        actual: usize,
    },
    /// The compression bits of the attributes name no known codec.
    #[error("unknown compression codec id {0} in record batch attributes")]
    UnknownCompression(i16),
    /// A codec name is not one of Kafka's (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    #[error("unknown compression codec {0:?} (expected none, gzip, snappy, lz4 or zstd)")]
    UnknownCompressionName(String),
    /// The codec failed to compress.
    #[error("{codec} compression failed: {message}")]
    Compress {
        /// The codec.
        codec: Compression,
        /// What the codec reported.
        message: String,
    },
    /// The codec failed to decompress (corrupt or truncated stream).
    #[error("{codec} decompression failed: {message}")]
    Decompress {
        /// The codec.
        codec: Compression,
        /// What the codec reported.
        message: String,
    },
    /// Decompressed output would exceed the caller's limit (a decompression bomb, or a limit too low).
    #[error("{codec} decompressed output exceeds the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The codec.
        codec: Compression,
        /// The limit in bytes.
        limit: usize,
    },
    /// A varint is truncated, longer than its type allows, or not minimally encoded.
    #[error("{0}")]
    BadVarint(&'static str),
    /// A header field is inconsistent (negative count, offset range not matching the count, ...).
    #[error("invalid record batch: {0}")]
    BadBatch(String),
    /// A record inside the batch is malformed.
    #[error("invalid record at index {index}: {reason}")]
    BadRecord {
        /// Position of the record in the batch (0-based).
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The batch holds a different number of records than `recordsCount` declares.
    #[error("record batch declares {declared} records but holds {actual}")]
    RecordCountMismatch {
        /// `recordsCount` from the header.
        declared: i32,
        /// Records actually found (a lower bound when the batch is malformed past that point).
        actual: usize,
    },
    /// A batch being built does not fit the 32-bit length fields.
    #[error("record batch of {size} bytes exceeds the maximum batch size")]
    BatchTooLarge {
        /// Size of the batch (or of the field that overflowed), in bytes.
        size: usize,
    },
}
