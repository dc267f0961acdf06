//! Kafka's zigzag varints (Kafka protocol: "varint" and "varlong", the types of the Record
//! fields inside a RecordBatch v2; the same encoding as protobuf's sint32 and sint64).
//!
//! A value is zigzag-mapped to unsigned (0, -1, 1, -2, ... become 0, 1, 2, 3, ...), then written
//! as base-128 groups, least significant first, with the high bit set on every byte but the
//! last. A varint takes at most 5 bytes, a varlong at most 10.
//!
//! Invariant: readers are strict. They reject encodings longer than the maximum and bits past
//! the type's width (Kafka's Java reader ignores the latter; no Kafka writer produces them), so
//! every accepted value has exactly one encoding that [`put_varint`]/[`put_varlong`] reproduce.

/// Longest varint (32 bits in 7-bit groups).
pub const VARINT_BYTES_MAX: usize = 5;
/// Longest varlong (64 bits in 7-bit groups).
pub const VARLONG_BYTES_MAX: usize = 10;

/// Why bytes are not a varint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    #[error("varint extends past the end of its buffer")]
    Truncated,
    #[error("varint longer than its type allows")]
    TooLong,
    #[error("varint has bits beyond its type's width")]
    Overflow,
}

fn zigzag32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

fn zigzag64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag32(value: u32) -> i32 {
    ((value >> 1) as i32) ^ -((value & 1) as i32)
}

fn unzigzag64(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Appends `value` as a zigzag varint.
pub fn put_varint(output: &mut Vec<u8>, value: i32) {
    put_unsigned(output, u64::from(zigzag32(value)));
}

/// Appends `value` as a zigzag varlong.
pub fn put_varlong(output: &mut Vec<u8>, value: i64) {
    put_unsigned(output, zigzag64(value));
}

fn put_unsigned(output: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        output.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    output.push(value as u8);
}

fn unsigned_size(value: u64) -> usize {
    let bits = (u64::BITS - value.leading_zeros()).max(1) as usize;
    bits.div_ceil(7)
}

/// Bytes [`put_varint`] writes for `value`.
pub fn varint_size(value: i32) -> usize {
    unsigned_size(u64::from(zigzag32(value)))
}

/// Bytes [`put_varlong`] writes for `value`.
pub fn varlong_size(value: i64) -> usize {
    unsigned_size(zigzag64(value))
}

/// Reads a zigzag varint at `*position` in `buf` and advances `*position` past it.
pub fn read_varint(buf: &[u8], position: &mut usize) -> Result<i32, VarintError> {
    let value = read_unsigned(buf, position, VARINT_BYTES_MAX, u32::BITS)?;
    Ok(unzigzag32(value as u32))
}

/// Reads a zigzag varlong at `*position` in `buf` and advances `*position` past it.
pub fn read_varlong(buf: &[u8], position: &mut usize) -> Result<i64, VarintError> {
    let value = read_unsigned(buf, position, VARLONG_BYTES_MAX, u64::BITS)?;
    Ok(unzigzag64(value))
}

/// An unsigned base-128 value of at most `bytes_max` bytes whose value fits in `bits`. On error
/// `*position` is unchanged.
fn read_unsigned(buf: &[u8], position: &mut usize, bytes_max: usize, bits: u32) -> Result<u64, VarintError> {
    let mut value = 0u64;
    for index in 0..bytes_max {
        let byte = *buf.get(*position + index).ok_or(VarintError::Truncated)?;
        let group = u64::from(byte & 0x7f);
        let shift = 7 * index as u32;
        // The group's bits that land past `bits` (or past 64) must be zero.
        let room_bits = bits.saturating_sub(shift);
        if room_bits < 7 && group >> room_bits != 0 {
            return Err(VarintError::Overflow);
        }
        value |= group << shift;
        if byte & 0x80 == 0 {
            *position += index + 1;
            return Ok(value);
        }
    }
    Err(VarintError::TooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded_varint(value: i32) -> Vec<u8> {
        let mut output = Vec::new();
        put_varint(&mut output, value);
        output
    }

    #[test]
    fn zigzag_matches_the_protocol_examples() {
        // Kafka protocol guide / protobuf: 0 -> 0, -1 -> 1, 1 -> 2, -2 -> 3, 2147483647 -> 4294967294.
        assert_eq!(encoded_varint(0), [0x00]);
        assert_eq!(encoded_varint(-1), [0x01]);
        assert_eq!(encoded_varint(1), [0x02]);
        assert_eq!(encoded_varint(-2), [0x03]);
        assert_eq!(encoded_varint(64), [0x80, 0x01]);
        assert_eq!(encoded_varint(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(encoded_varint(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
    }

    #[test]
    fn varints_and_varlongs_round_trip_with_predicted_sizes() {
        let samples = [0i64, 1, -1, 63, -64, 64, 8191, -8193, 1 << 31, i64::MAX, i64::MIN];
        for value in samples {
            let mut output = Vec::new();
            put_varlong(&mut output, value);
            assert_eq!(output.len(), varlong_size(value));
            let mut position = 0;
            assert_eq!(read_varlong(&output, &mut position), Ok(value));
            assert_eq!(position, output.len());
            let narrow = value as i32;
            let output = encoded_varint(narrow);
            assert_eq!(output.len(), varint_size(narrow));
            let mut position = 0;
            assert_eq!(read_varint(&output, &mut position), Ok(narrow));
            assert_eq!(position, output.len());
        }
    }

    #[test]
    fn malformed_varints_are_rejected_without_moving() {
        let cases: [(&[u8], VarintError); 4] = [
            (&[], VarintError::Truncated),
            (&[0x80, 0x80], VarintError::Truncated),
            (&[0xff, 0xff, 0xff, 0xff, 0x1f], VarintError::Overflow),
            (&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00], VarintError::TooLong),
        ];
        for (bytes, expected) in cases {
            let mut position = 0;
            assert_eq!(read_varint(bytes, &mut position), Err(expected), "{bytes:?}");
            assert_eq!(position, 0);
        }
        let mut long = vec![0xff; 9];
        long.push(0x02); // bit 64
        let mut position = 0;
        assert_eq!(read_varlong(&long, &mut position), Err(VarintError::Overflow));
    }
}
