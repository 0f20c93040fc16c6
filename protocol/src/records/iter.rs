//! Walking concatenated batches: [`batches`] for reading (log segments, fetch responses) and
//! [`validate_batches`] for the produce path.

use std::ops::Range;

use super::batch::{check_batch, LOG_OVERHEAD, MAGIC_OFFSET, MIN_BATCH_LENGTH};
use super::record::walk_records;
use super::{BatchHeader, Compression, RecordsError, BATCH_HEADER_LEN, MAGIC_V2};

/// Iterator over the whole batches in a buffer of concatenated batches (a log segment slice, a
/// produce payload, a fetch response's records).
///
/// Yields each batch's header and its byte range in the buffer, without checking CRCs. Ends
/// (`None`) at the end of the buffer or at a partial trailing batch, which size-limited fetches
/// legitimately end with; [`BatchIter::partial_tail`] tells the two apart. A batch whose header
/// is present but invalid (length below 49, magic not 2) yields one `Err`, then the iterator
/// ends.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
    partial: Option<usize>,
}

/// Iterates the whole batches in `buf`; see [`BatchIter`].
pub fn batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        buf,
        pos: 0,
        done: false,
        partial: None,
    }
}

impl BatchIter<'_> {
    /// Whether iteration stopped at a trailing partial batch.
    pub fn partial_tail(&self) -> bool {
        self.partial.is_some()
    }

    /// Bytes the partial trailing batch would need to be whole (12 if even its length field is
    /// cut off), or `None` if there is no partial tail.
    pub fn partial_tail_needed(&self) -> Option<usize> {
        self.partial
    }

    /// Offset in the buffer just past the last whole batch yielded (where a partial tail or an
    /// invalid batch starts).
    pub fn position(&self) -> usize {
        self.pos
    }

    fn next_batch(&mut self) -> Result<Option<(BatchHeader, Range<usize>)>, RecordsError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(None);
        }
        let Some(len_field) = rest.get(8..LOG_OVERHEAD) else {
            self.partial = Some(LOG_OVERHEAD);
            return Ok(None);
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(len_field);
        let batch_length = i32::from_be_bytes(len);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(RecordsError::BadLength {
                batch_length,
                min: MIN_BATCH_LENGTH,
            });
        }
        if let Some(&magic) = rest.get(MAGIC_OFFSET) {
            if magic as i8 != MAGIC_V2 {
                return Err(RecordsError::BadMagic(magic as i8));
            }
        }
        let total = usize::try_from(batch_length).unwrap_or(0) + LOG_OVERHEAD;
        let Some(batch) = rest.get(..total) else {
            self.partial = Some(total);
            return Ok(None);
        };
        let header = BatchHeader::parse(batch)?;
        let range = self.pos..self.pos + total;
        self.pos += total;
        Ok(Some((header, range)))
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(BatchHeader, Range<usize>), RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_batch().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// Validates a produce payload and returns its batch headers.
///
/// Every batch must be whole (a partial trailing batch is [`RecordsError::Truncated`]), magic
/// 2, CRC-valid, with a known codec and `recordsCount == lastOffsetDelta + 1 >= 1`. For
/// uncompressed batches the record lengths are walked (one varint per record) to check that
/// they tile the batch and match `recordsCount`; compressed batches are never decompressed
/// here. Broker policy (base offset 0 from clients, no control batches from clients,
/// producer id rules) is left to the caller. An empty buffer yields no headers.
pub fn validate_batches(buf: &[u8]) -> Result<Vec<BatchHeader>, RecordsError> {
    let mut headers = Vec::with_capacity(1);
    let mut iter = batches(buf);
    for item in iter.by_ref() {
        let (_, range) = item?;
        let batch = buf.get(range).unwrap_or_default();
        headers.push(validate_batch(batch)?);
    }
    if let Some(needed) = iter.partial_tail_needed() {
        return Err(RecordsError::Truncated {
            needed,
            available: buf.len() - iter.position(),
        });
    }
    Ok(headers)
}

/// Validates one whole batch as [`validate_batches`] does.
pub fn validate_batch(batch: &[u8]) -> Result<BatchHeader, RecordsError> {
    let header = check_batch(batch)?;
    let codec = header.compression()?;
    let from_offsets = i64::from(header.last_offset_delta) + 1;
    if header.records_count < 1 || i64::from(header.records_count) != from_offsets {
        return Err(RecordsError::BadBatch(format!(
            "recordsCount {} does not match lastOffsetDelta {} (must be lastOffsetDelta + 1 >= 1)",
            header.records_count, header.last_offset_delta
        )));
    }
    if codec == Compression::None {
        walk_records(
            batch.get(BATCH_HEADER_LEN..).unwrap_or_default(),
            header.records_count,
        )?;
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::BatchBuilder;

    fn batch(base_offset: i64, n: usize, codec: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(codec).base_offset(base_offset);
        for i in 0..n {
            b.push(i as i64, None, Some(format!("value {i}").as_bytes()), &[]);
        }
        b.build().unwrap().to_vec()
    }

    fn three() -> Vec<u8> {
        [
            batch(0, 2, Compression::None),
            batch(2, 5, Compression::Lz4),
            batch(7, 1, Compression::None),
        ]
        .concat()
    }

    #[test]
    fn iterates_whole_batches() {
        let buf = three();
        let mut iter = batches(&buf);
        let offsets: Vec<_> = iter
            .by_ref()
            .map(|r| r.unwrap())
            .map(|(h, range)| (h.base_offset, h.next_offset(), range.len() == h.total_len()))
            .collect();
        assert_eq!(offsets, [(0, 2, true), (2, 7, true), (7, 8, true)]);
        assert!(!iter.partial_tail());
        assert_eq!(iter.position(), buf.len());
        assert!(batches(&[]).next().is_none());
    }

    #[test]
    fn stops_cleanly_at_partial_tail() {
        let buf = three();
        for cut in [1, 11, 12, 17, 61, 70] {
            let first_two =
                batch(0, 2, Compression::None).len() + batch(2, 5, Compression::Lz4).len();
            let slice = &buf[..first_two + cut];
            let mut iter = batches(slice);
            assert_eq!(iter.by_ref().filter(|r| r.is_ok()).count(), 2, "cut {cut}");
            assert!(iter.partial_tail(), "cut {cut}");
            assert_eq!(iter.position(), first_two);
            assert!(matches!(
                validate_batches(slice),
                Err(RecordsError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn invalid_header_yields_one_error() {
        let mut buf = three();
        let second = batch(0, 2, Compression::None).len();
        buf[second + MAGIC_OFFSET] = 1;
        let items: Vec<_> = batches(&buf).collect();
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1], Err(RecordsError::BadMagic(1))));
        let mut buf = three();
        buf[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(
            batches(&buf).next(),
            Some(Err(RecordsError::BadLength {
                batch_length: 10,
                ..
            }))
        ));
    }

    #[test]
    fn validates_good_payloads() {
        let headers = validate_batches(&three()).unwrap();
        let counts: Vec<_> = headers.iter().map(|h| h.records_count).collect();
        assert_eq!(counts, [2, 5, 1]);
        assert!(validate_batches(&[]).unwrap().is_empty());
    }

    #[test]
    fn rejects_inconsistent_counts() {
        let empty = BatchBuilder::new(Compression::None).build().unwrap();
        assert!(matches!(
            validate_batches(&empty),
            Err(RecordsError::BadBatch(_))
        ));

        // recordsCount and lastOffsetDelta both claim 3, but only 2 records are present.
        let mut buf = batch(0, 2, Compression::None);
        buf[23..27].copy_from_slice(&2i32.to_be_bytes());
        buf[57..61].copy_from_slice(&3i32.to_be_bytes());
        crate::records::write_crc(&mut buf);
        assert!(matches!(
            validate_batches(&buf),
            Err(RecordsError::RecordCountMismatch {
                declared: 3,
                actual: 2
            })
        ));
    }

    #[test]
    fn rejects_bad_crc_and_unknown_codec() {
        let mut buf = three();
        let last = buf.len() - 1;
        buf[last] ^= 0x40;
        assert!(matches!(
            validate_batches(&buf),
            Err(RecordsError::CrcMismatch { .. })
        ));

        let mut buf = batch(0, 1, Compression::None);
        buf[22] |= 0x07;
        crate::records::write_crc(&mut buf);
        assert!(matches!(
            validate_batches(&buf),
            Err(RecordsError::UnknownCompression(7))
        ));
    }
}
