//! Kafka's zig-zag varints (`varint` = i32 in at most 5 bytes, `varlong` = i64 in at most 10).
//!
//! Decoding is strict: truncated input, more bytes than the type allows, bits beyond the
//! type's width, and non-minimal (overlong) encodings such as `0x80 0x00` are all rejected,
//! so every accepted value has exactly one encoding.

use super::RecordsError;

const MAX_VARINT_LEN: usize = 5;
const MAX_VARLONG_LEN: usize = 10;

/// Appends `value` as a zig-zag varint (1 to 5 bytes).
pub fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

/// Appends `value` as a zig-zag varlong (1 to 10 bytes).
pub fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Number of bytes [`put_varint`] writes for `value`.
pub fn varint_len(value: i32) -> usize {
    unsigned_len(u64::from(((value << 1) ^ (value >> 31)) as u32))
}

/// Number of bytes [`put_varlong`] writes for `value`.
pub fn varlong_len(value: i64) -> usize {
    unsigned_len(((value << 1) ^ (value >> 63)) as u64)
}

/// Decodes a zig-zag varint from the start of `buf`; returns the value and the bytes used.
pub fn get_varint(buf: &[u8]) -> Result<(i32, usize), RecordsError> {
    if let Some(&b) = buf.first() {
        if b < 0x80 {
            return Ok((unzigzag32(u32::from(b)), 1));
        }
    }
    let (raw, used) = get_unsigned(buf, MAX_VARINT_LEN, 32)?;
    Ok((unzigzag32(raw as u32), used))
}

/// Decodes a zig-zag varlong from the start of `buf`; returns the value and the bytes used.
pub fn get_varlong(buf: &[u8]) -> Result<(i64, usize), RecordsError> {
    if let Some(&b) = buf.first() {
        if b < 0x80 {
            return Ok((unzigzag64(u64::from(b)), 1));
        }
    }
    let (raw, used) = get_unsigned(buf, MAX_VARLONG_LEN, 64)?;
    Ok((unzigzag64(raw), used))
}

fn unzigzag32(raw: u32) -> i32 {
    ((raw >> 1) as i32) ^ -((raw & 1) as i32)
}

fn unzigzag64(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

fn put_unsigned(out: &mut Vec<u8>, mut raw: u64) {
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

fn unsigned_len(raw: u64) -> usize {
    let bits = 64 - raw.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Reads an unsigned LEB128 of at most `max_len` bytes holding at most `bits` bits.
fn get_unsigned(buf: &[u8], max_len: usize, bits: u32) -> Result<(u64, usize), RecordsError> {
    let mut raw = 0u64;
    for (i, &b) in buf.iter().enumerate().take(max_len) {
        let shift = 7 * i as u32;
        let payload = u64::from(b & 0x7f);
        if i + 1 == max_len && payload >> (bits - shift) != 0 {
            return Err(RecordsError::BadVarint("varint overflows its type"));
        }
        raw |= payload << shift;
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(RecordsError::BadVarint("overlong (non-minimal) varint"));
            }
            return Ok((raw, i + 1));
        }
    }
    if buf.len() < max_len {
        Err(RecordsError::BadVarint("truncated varint"))
    } else {
        Err(RecordsError::BadVarint(
            "varint longer than its type allows",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc32(v: i32) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    #[test]
    fn known_encodings_match_kafka() {
        assert_eq!(enc32(0), [0x00]);
        assert_eq!(enc32(-1), [0x01]);
        assert_eq!(enc32(1), [0x02]);
        assert_eq!(enc32(63), [0x7e]);
        assert_eq!(enc32(-64), [0x7f]);
        assert_eq!(enc32(64), [0x80, 0x01]);
        assert_eq!(enc32(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(enc32(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        let mut out = Vec::new();
        put_varlong(&mut out, i64::MIN);
        assert_eq!(
            out,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        assert_eq!(get_varlong(&out).unwrap(), (i64::MIN, 10));
    }

    #[test]
    fn rejects_truncated_overlong_and_overflowing() {
        assert!(get_varint(&[]).is_err());
        assert!(get_varint(&[0x80]).is_err());
        assert!(get_varint(&[0x80, 0x00]).is_err(), "non-minimal zero");
        assert!(
            get_varint(&[0xff, 0xff, 0xff, 0xff, 0x10]).is_err(),
            "bit 33"
        );
        assert!(
            get_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).is_err(),
            "6 bytes"
        );
        assert!(get_varlong(&[0xff; 9]).is_err());
        let mut ten = [0xffu8; 10];
        ten[9] = 0x02;
        assert!(get_varlong(&ten).is_err(), "bit 65");
        ten[9] = 0x81;
        assert!(get_varlong(&ten).is_err(), "11 bytes");
    }

    proptest! {
        #[test]
        fn varint_round_trip(v in any::<i32>(), tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut buf = enc32(v);
            prop_assert_eq!(buf.len(), varint_len(v));
            let len = buf.len();
            buf.extend_from_slice(&tail);
            prop_assert_eq!(get_varint(&buf).unwrap(), (v, len));
        }

        #[test]
        fn varlong_round_trip(v in any::<i64>()) {
            let mut buf = Vec::new();
            put_varlong(&mut buf, v);
            prop_assert_eq!(buf.len(), varlong_len(v));
            prop_assert_eq!(get_varlong(&buf).unwrap(), (v, buf.len()));
        }

        #[test]
        fn varint_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            if let Ok((v, used)) = get_varint(&bytes) {
                prop_assert_eq!(&enc32(v)[..], &bytes[..used]);
            }
            let _ = get_varlong(&bytes);
        }
    }
}
