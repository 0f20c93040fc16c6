//! [`Compression`]: the five Kafka codecs, with decompression bounded by an output limit.
//!
//! Wire formats follow the Java client so that batches interoperate both ways:
//! - gzip: a gzip stream (several concatenated members are accepted).
//! - snappy: snappy-java's "xerial" framing (`0x82 SNAPPY 0x00`, version 1, compatible
//!   version 1, then blocks of `[i32 BE length][raw snappy]`, 32 KiB of input each).
//!   Decoding also accepts a bare raw snappy block, as librdkafka does.
//! - lz4: the LZ4 frame format, 64 KiB independent blocks, no checksums.
//! - zstd: a zstd frame, decoded by a streaming decoder (the declared content size is never
//!   trusted for allocation).

use std::fmt;
use std::io::{Read, Write};

use super::RecordsError;

/// Default cap on decompressed batch size used by [`Compression::decompress`] and
/// [`decode_batch`](super::decode_batch): 256 MiB.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 256 * 1024 * 1024;

const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_VERSION: i32 = 1;
const XERIAL_COMPAT_VERSION: i32 = 1;
const XERIAL_HEADER_LEN: usize = 16;
const XERIAL_BLOCK_LEN: usize = 32 * 1024;
const GZIP_LEVEL: u32 = 6;
const ZSTD_LEVEL: i32 = 3;

/// A record batch compression codec (attribute bits 0-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// No compression (id 0).
    None,
    /// gzip (id 1).
    Gzip,
    /// snappy with xerial framing (id 2).
    Snappy,
    /// LZ4 frame (id 3).
    Lz4,
    /// zstd (id 4).
    Zstd,
}

impl Compression {
    /// Every codec, in id order.
    pub const ALL: [Compression; 5] = [Self::None, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd];

    /// Reads the codec from batch attributes (bits 0-2); other bits are ignored.
    pub fn from_attributes(attributes: i16) -> Result<Self, RecordsError> {
        match attributes & 0x07 {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Lz4),
            4 => Ok(Self::Zstd),
            other => Err(RecordsError::UnknownCompression(other)),
        }
    }

    /// Parses Kafka's codec name (`compression.type`): `none`, `gzip`, `snappy`, `lz4`,
    /// `zstd`. The topic-level value `producer` is not a codec and is rejected.
    pub fn from_name(name: &str) -> Result<Self, RecordsError> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| RecordsError::UnknownCompressionName(name.to_owned()))
    }

    /// Kafka's name for the codec.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }

    /// The codec id stored in attribute bits 0-2.
    pub fn id(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// Compresses `data` into this codec's wire format (`None` copies it).
    pub fn compress(self, data: &[u8]) -> Result<Vec<u8>, RecordsError> {
        let err = |e: &dyn fmt::Display| RecordsError::Compress {
            codec: self,
            message: e.to_string(),
        };
        match self {
            Self::None => Ok(data.to_vec()),
            Self::Gzip => {
                let level = flate2::Compression::new(GZIP_LEVEL);
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), level);
                enc.write_all(data).map_err(|e| err(&e))?;
                enc.finish().map_err(|e| err(&e))
            }
            Self::Snappy => xerial_compress(data).map_err(|e| err(&e)),
            Self::Lz4 => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent);
                let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
                enc.write_all(data).map_err(|e| err(&e))?;
                enc.finish().map_err(|e| err(&e))
            }
            Self::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL).map_err(|e| err(&e)),
        }
    }

    /// Decompresses with the default limit of [`DEFAULT_MAX_DECOMPRESSED_BYTES`].
    pub fn decompress(self, data: &[u8]) -> Result<Vec<u8>, RecordsError> {
        self.decompress_bounded(data, DEFAULT_MAX_DECOMPRESSED_BYTES)
    }

    /// Decompresses `data`, failing with [`RecordsError::DecompressedTooLarge`] as soon as the
    /// output would exceed `max_out` bytes (memory use stays near `max_out`, whatever the input
    /// claims). `None` returns a copy, subject to the same limit.
    pub fn decompress_bounded(self, data: &[u8], max_out: usize) -> Result<Vec<u8>, RecordsError> {
        let too_large = RecordsError::DecompressedTooLarge {
            codec: self,
            limit: max_out,
        };
        match self {
            Self::None if data.len() > max_out => Err(too_large),
            Self::None => Ok(data.to_vec()),
            Self::Gzip => self.read_bounded(flate2::read::MultiGzDecoder::new(data), max_out),
            Self::Snappy => snappy_decompress(data, max_out),
            Self::Lz4 => self.read_bounded(lz4_flex::frame::FrameDecoder::new(data), max_out),
            Self::Zstd => {
                let mut dec = zstd::stream::read::Decoder::with_buffer(data)
                    .map_err(|e| self.decompress_error(&e))?;
                // The window never needs to exceed the output: cap what a frame can make us allocate
                // at max(8 MiB, max_out) (a legal frame with a bigger window than that fails).
                let window_log = (usize::BITS - max_out.leading_zeros()).clamp(23, 27);
                dec.window_log_max(window_log)
                    .map_err(|e| self.decompress_error(&e))?;
                self.read_bounded(dec, max_out)
            }
        }
    }

    fn decompress_error(self, e: &dyn fmt::Display) -> RecordsError {
        RecordsError::Decompress {
            codec: self,
            message: e.to_string(),
        }
    }

    fn read_bounded(self, reader: impl Read, max_out: usize) -> Result<Vec<u8>, RecordsError> {
        let mut out = Vec::new();
        let limit = u64::try_from(max_out).unwrap_or(u64::MAX).saturating_add(1);
        reader
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| self.decompress_error(&e))?;
        if out.len() > max_out {
            return Err(RecordsError::DecompressedTooLarge {
                codec: self,
                limit: max_out,
            });
        }
        Ok(out)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Compression {
    type Err = RecordsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s)
    }
}

fn xerial_compress(data: &[u8]) -> Result<Vec<u8>, snap::Error> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + data.len() / 2 + 16);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_COMPAT_VERSION.to_be_bytes());
    let mut enc = snap::raw::Encoder::new();
    for chunk in data.chunks(XERIAL_BLOCK_LEN) {
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let start = out.len();
        out.resize(start + snap::raw::max_compress_len(chunk.len()), 0);
        let written = enc.compress(chunk, &mut out[start..])?;
        out.truncate(start + written);
        // A block is at most max_compress_len(32 KiB) bytes, far below i32::MAX.
        out[len_at..start].copy_from_slice(&(written as u32).to_be_bytes());
    }
    Ok(out)
}

fn snappy_error(message: impl fmt::Display) -> RecordsError {
    Compression::Snappy.decompress_error(&message)
}

fn snappy_decompress(data: &[u8], max_out: usize) -> Result<Vec<u8>, RecordsError> {
    match strip_xerial_header(data) {
        Some(blocks) => xerial_decompress(blocks, max_out),
        None => {
            let mut out = Vec::new();
            raw_snappy_into(data, &mut out, max_out)?;
            Ok(out)
        }
    }
}

fn strip_xerial_header(data: &[u8]) -> Option<&[u8]> {
    if data.len() >= XERIAL_HEADER_LEN && data.starts_with(&XERIAL_MAGIC) {
        data.get(XERIAL_HEADER_LEN..)
    } else {
        None
    }
}

fn xerial_decompress(mut rest: &[u8], max_out: usize) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        // snappy-java accepts concatenated streams: a fresh header may follow a block.
        if let Some(after) = strip_xerial_header(rest) {
            rest = after;
            continue;
        }
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| snappy_error("truncated xerial block length"))?;
        let len = usize::try_from(i32::from_be_bytes(*len))
            .map_err(|_| snappy_error("negative xerial block length"))?;
        let (block, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| snappy_error("truncated xerial block"))?;
        raw_snappy_into(block, &mut out, max_out)?;
        rest = tail;
    }
    Ok(out)
}

/// Appends the raw snappy `block` to `out`, keeping `out` within `max_out` bytes.
fn raw_snappy_into(block: &[u8], out: &mut Vec<u8>, max_out: usize) -> Result<(), RecordsError> {
    let len = snap::raw::decompress_len(block).map_err(snappy_error)?;
    let start = out.len();
    if len > max_out.saturating_sub(start) {
        return Err(RecordsError::DecompressedTooLarge {
            codec: Compression::Snappy,
            limit: max_out,
        });
    }
    out.resize(start + len, 0);
    let dst = out.get_mut(start..).unwrap_or_default();
    let written = snap::raw::Decoder::new()
        .decompress(block, dst)
        .map_err(snappy_error)?;
    out.truncate(start + written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn names_and_ids_round_trip() {
        for c in Compression::ALL {
            assert_eq!(Compression::from_name(c.name()).unwrap(), c);
            assert_eq!(Compression::from_attributes(c.id() | 0x78).unwrap(), c);
            assert_eq!(c.name().parse::<Compression>().unwrap(), c);
        }
        assert!(Compression::from_name("producer").is_err());
        assert!(Compression::from_name("GZIP").is_err());
        assert!(matches!(
            Compression::from_attributes(5),
            Err(RecordsError::UnknownCompression(5))
        ));
        assert!(Compression::from_attributes(7).is_err());
    }

    #[test]
    fn every_codec_round_trips() {
        let data = sample();
        for c in Compression::ALL {
            let packed = c.compress(&data).unwrap();
            assert_eq!(c.decompress(&packed).unwrap(), data, "{c}");
            assert_eq!(c.decompress(&c.compress(&[]).unwrap()).unwrap(), b"", "{c}");
        }
    }

    #[test]
    fn every_codec_enforces_the_output_limit() {
        let data = vec![7u8; 1 << 20];
        for c in Compression::ALL {
            let packed = c.compress(&data).unwrap();
            assert_eq!(
                c.decompress_bounded(&packed, data.len()).unwrap().len(),
                data.len()
            );
            let err = c.decompress_bounded(&packed, 4096).unwrap_err();
            assert!(
                matches!(err, RecordsError::DecompressedTooLarge { limit: 4096, .. }),
                "{c}: {err}"
            );
        }
    }

    #[test]
    fn snappy_uses_xerial_framing() {
        let data = sample();
        let packed = Compression::Snappy.compress(&data).unwrap();
        assert_eq!(&packed[..8], &XERIAL_MAGIC);
        assert_eq!(&packed[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        // 400 000 bytes in 32 KiB blocks: 13 blocks.
        let mut rest = &packed[16..];
        let mut blocks = 0;
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            rest = &rest[4 + len..];
            blocks += 1;
        }
        assert_eq!(blocks, data.len().div_ceil(XERIAL_BLOCK_LEN));
    }

    #[test]
    fn snappy_accepts_raw_and_hand_built_xerial() {
        let data = b"hello hello hello hello kafka".to_vec();
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(Compression::Snappy.decompress(&raw).unwrap(), data);

        // Two blocks, then a second concatenated stream header and one more block.
        let mut xerial = Vec::new();
        let header = [&XERIAL_MAGIC[..], &[0, 0, 0, 1, 0, 0, 0, 1]].concat();
        xerial.extend_from_slice(&header);
        for _ in 0..2 {
            xerial.extend_from_slice(&(raw.len() as u32).to_be_bytes());
            xerial.extend_from_slice(&raw);
        }
        xerial.extend_from_slice(&header);
        xerial.extend_from_slice(&(raw.len() as u32).to_be_bytes());
        xerial.extend_from_slice(&raw);
        assert_eq!(
            Compression::Snappy.decompress(&xerial).unwrap(),
            data.repeat(3)
        );
    }

    #[test]
    fn snappy_rejects_broken_xerial() {
        let packed = Compression::Snappy.compress(&sample()).unwrap();
        for cut in [17, 19, 20, 100, packed.len() - 1] {
            assert!(
                Compression::Snappy.decompress(&packed[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut negative = packed[..16].to_vec();
        negative.extend_from_slice(&(-1i32).to_be_bytes());
        assert!(Compression::Snappy.decompress(&negative).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let garbage: Vec<u8> = (0..200u8).map(|b| b.wrapping_mul(37)).collect();
        for c in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            assert!(c.decompress(&garbage).is_err(), "{c}");
            let _ = c.decompress(&[]);
        }
    }
}
