//! The same wire format for values held as Rust types: what the typed
//! forwarders (`link::typed`) send and the `Invoke` service decodes,
//! without a `Val` per value. Bytes and strings are copied as slices.
//!
//! A `list<u8>` is held as [`Bytes`]: decoding one shares the message's
//! buffer instead of copying it, and wasmtime lowers it from that buffer
//! straight into the callee's memory.
//!
//! A value encoded here decodes with [`decode_all`](super::decode_all) as
//! the matching `Val`, and the other way round, so a typed caller and a
//! `Val` callee talk to each other; the tests check both directions.

use super::{DecodeError, Out, Reader, Tally, invalid, put_signed, put_varint};
use bytes::Bytes;

/// What typed values are read from: a reader over a message, and the
/// message itself, whose slices [`Bytes`] values share.
pub(crate) struct Input<'a> {
    reader: Reader<'a>,
    whole: &'a Bytes,
}

/// One value with a Rust type, and its bytes.
pub(crate) trait Wire: Sized {
    /// At least how many bytes the value takes, so that a message is
    /// allocated once.
    fn size(&self) -> usize {
        10
    }
    /// Appends the value's bytes to `out`.
    fn put(&self, out: &mut impl Out);
    /// Reads one value.
    fn get(input: &mut Input<'_>) -> Result<Self, DecodeError>;
}

impl Wire for bool {
    fn put(&self, out: &mut impl Out) {
        out.push(u8::from(*self));
    }
    fn get(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        input.reader.flag()
    }
}

impl Wire for u8 {
    fn put(&self, out: &mut impl Out) {
        out.push(*self);
    }
    fn get(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        input.reader.byte()
    }
}

impl Wire for i8 {
    fn put(&self, out: &mut impl Out) {
        out.push(*self as u8);
    }
    fn get(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(input.reader.byte()? as i8)
    }
}

macro_rules! varints {
    ($($t:ty => $name:literal),*) => {$(
        impl Wire for $t {
            fn put(&self, out: &mut impl Out) {
                put_varint(out, u64::from(*self));
            }
            fn get(input: &mut Input<'_>) -> Result<Self, DecodeError> {
                input.reader.narrow($name)
            }
        }
    )*};
}

macro_rules! signed_varints {
    ($($t:ty => $name:literal),*) => {$(
        impl Wire for $t {
            fn put(&self, out: &mut impl Out) {
                put_signed(out, i64::from(*self));
            }
            fn get(input: &mut Input<'_>) -> Result<Self, DecodeError> {
                input.reader.narrow_signed($name)
            }
        }
    )*};
}

varints!(u16 => "u16", u32 => "u32", u64 => "u64");
signed_varints!(i16 => "s16", i32 => "s32", i64 => "s64");

macro_rules! floats {
    ($($t:ty => $n:literal),*) => {$(
        impl Wire for $t {
            fn put(&self, out: &mut impl Out) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(input: &mut Input<'_>) -> Result<Self, DecodeError> {
                Ok(<$t>::from_le_bytes(input.reader.take($n)?.try_into().expect("exact size")))
            }
        }
    )*};
}

floats!(f32 => 4, f64 => 8);

impl Wire for char {
    fn put(&self, out: &mut impl Out) {
        put_varint(out, u64::from(*self));
    }
    fn get(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let n: u32 = input.reader.narrow("char")?;
        char::from_u32(n).ok_or_else(|| invalid(format!("{n:#x} is not a Unicode scalar value")))
    }
}

impl Wire for String {
    fn size(&self) -> usize {
        self.len() + 10
    }
    fn put(&self, out: &mut impl Out) {
        put_varint(out, self.len() as u64);
        out.extend_from_slice(self.as_bytes());
    }
    fn get(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let len = input.reader.count(1)?;
        let text = std::str::from_utf8(input.reader.take(len)?)
            .map_err(|e| invalid(format!("string is not UTF-8: {e}")))?;
        Ok(text.to_string())
    }
}

impl Wire for Bytes {
    fn size(&self) -> usize {
        self.len() + 10
    }
    fn put(&self, out: &mut impl Out) {
        put_varint(out, self.len() as u64);
        out.extend_from_slice(self);
    }
    fn get(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let len = input.reader.count(1)?;
        Ok(input.whole.slice_ref(input.reader.take(len)?))
    }
}

/// The bytes of a run of values of one type, back to back: one frame of
/// a stream's items.
pub(crate) fn encode_run<T: Wire>(items: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(Wire::size).sum());
    for item in items {
        item.put(&mut out);
    }
    out
}

/// The values of a run that [`encode_run`] wrote, sharing its buffer.
/// Every value takes at least a byte, so the run is never longer than
/// the frame.
pub(crate) fn decode_run<T: Wire>(bytes: &Bytes) -> Result<Vec<T>, DecodeError> {
    let mut input = Input {
        reader: Reader {
            bytes: &bytes[..],
            at: 0,
        },
        whole: bytes,
    };
    let mut items = Vec::new();
    while input.reader.at < bytes.len() {
        items.push(T::get(&mut input)?);
    }
    Ok(items)
}

/// A parameter or result list of [`Wire`] values.
pub(crate) trait WireList: Sized {
    /// The list's bytes.
    fn encode(&self) -> Vec<u8>;
    /// How many bytes [`WireList::encode`] writes.
    fn encoded_len(&self) -> u64;
    /// The list, from exactly `bytes`, sharing its buffer.
    fn decode(bytes: &Bytes) -> Result<Self, DecodeError>;
}

macro_rules! wire_lists {
    ($(($($name:ident),*)),*) => {$(
        impl<$($name: Wire),*> WireList for ($($name,)*) {
            #[allow(non_snake_case, unused_mut)]
            fn encode(&self) -> Vec<u8> {
                let ($($name,)*) = self;
                let mut out = Vec::with_capacity(0 $(+ $name.size())*);
                $($name.put(&mut out);)*
                out
            }
            #[allow(non_snake_case, unused_mut)]
            fn encoded_len(&self) -> u64 {
                let ($($name,)*) = self;
                let mut tally = Tally::default();
                $($name.put(&mut tally);)*
                tally.0
            }
            #[allow(unused_mut)]
            fn decode(bytes: &Bytes) -> Result<Self, DecodeError> {
                let mut input = Input { reader: Reader { bytes: &bytes[..], at: 0 }, whole: bytes };
                let list = ($($name::get(&mut input)?,)*);
                match bytes.len() - input.reader.at {
                    0 => Ok(list),
                    n => Err(DecodeError::Trailing(n)),
                }
            }
        }
    )*};
}

wire_lists!((), (A), (A, B), (A, B, C));
