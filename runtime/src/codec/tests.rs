//! Round trips over random types and values, hostile bytes, and a few
//! hand-written encodings.

use super::*;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn names(&mut self, prefix: &str, max: u64) -> Vec<String> {
        (0..=self.below(max))
            .map(|i| format!("{prefix}{i}"))
            .collect()
    }
}

fn random_type(rng: &mut Rng, depth: u32) -> ValueType {
    let leaf = depth == 0 || rng.below(3) == 0;
    let pick = if leaf {
        // Handles are leaves too: 13 and 14 stand for them.
        match rng.below(15) {
            13 => 100,
            14 => 101,
            scalar => scalar,
        }
    } else {
        13 + rng.below(10)
    };
    let inner = |rng: &mut Rng| Box::new(random_type(rng, depth.saturating_sub(1)));
    match pick {
        0 => ValueType::Bool,
        1 => ValueType::S8,
        2 => ValueType::U8,
        3 => ValueType::S16,
        4 => ValueType::U16,
        5 => ValueType::S32,
        6 => ValueType::U32,
        7 => ValueType::S64,
        8 => ValueType::U64,
        9 => ValueType::F32,
        10 => ValueType::F64,
        11 => ValueType::Char,
        12 => ValueType::String,
        13 => ValueType::List(inner(rng)),
        14 => ValueType::Record(
            rng.names("f", 4)
                .into_iter()
                .map(|n| (n, *inner(rng)))
                .collect(),
        ),
        15 => ValueType::Tuple((0..rng.below(4)).map(|_| *inner(rng)).collect()),
        16 => ValueType::Variant(
            rng.names("c", 4)
                .into_iter()
                .map(|n| (n, (rng.below(2) == 0).then(|| *inner(rng))))
                .collect(),
        ),
        17 => ValueType::Enum(rng.names("e", 5)),
        18 => ValueType::Option(inner(rng)),
        19 => ValueType::Result(
            (rng.below(2) == 0).then(|| inner(rng)),
            (rng.below(2) == 0).then(|| inner(rng)),
        ),
        20 => ValueType::Flags(rng.names("flag", 20)),
        21 => ValueType::FixedList(inner(rng), rng.below(4) as u32),
        100 => ValueType::Own,
        101 => ValueType::Borrow,
        _ => ValueType::Map(inner(rng), inner(rng)),
    }
}

fn random_value(rng: &mut Rng, ty: &ValueType) -> Val {
    match ty {
        ValueType::Bool => Val::Bool(rng.below(2) == 1),
        ValueType::S8 => Val::S8(rng.next() as i8),
        ValueType::U8 => Val::U8(rng.next() as u8),
        ValueType::S16 => Val::S16(rng.next() as i16),
        ValueType::U16 => Val::U16(rng.next() as u16),
        ValueType::S32 => Val::S32(rng.next() as i32),
        ValueType::U32 => Val::U32(rng.next() as u32),
        ValueType::S64 => Val::S64(rng.next() as i64),
        ValueType::Stream(_) | ValueType::Future(_) => {
            unreachable!("random types hold no streams or futures")
        }
        // A handle travels as its number.
        ValueType::U64 | ValueType::Own | ValueType::Borrow => {
            Val::U64(rng.next() >> rng.below(64))
        }
        ValueType::F32 => Val::Float32(f32::from_bits(rng.next() as u32)),
        ValueType::F64 => Val::Float64(f64::from_bits(rng.next())),
        ValueType::Char => {
            Val::Char(char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{fffd}'))
        }
        ValueType::String => Val::String(
            (0..rng.below(12))
                .map(|_| ['a', 'é', '€', '𝄞', ' '][rng.below(5) as usize])
                .collect(),
        ),
        ValueType::List(t) => Val::List((0..rng.below(5)).map(|_| random_value(rng, t)).collect()),
        ValueType::FixedList(t, n) => {
            Val::FixedLengthList((0..*n).map(|_| random_value(rng, t)).collect())
        }
        ValueType::Map(k, v) => Val::Map(
            (0..rng.below(4))
                .map(|_| (random_value(rng, k), random_value(rng, v)))
                .collect(),
        ),
        ValueType::Record(fields) => Val::Record(
            fields
                .iter()
                .map(|(n, t)| (n.clone(), random_value(rng, t)))
                .collect(),
        ),
        ValueType::Tuple(types) => Val::Tuple(types.iter().map(|t| random_value(rng, t)).collect()),
        ValueType::Variant(cases) => {
            let (name, payload) = &cases[rng.below(cases.len() as u64) as usize];
            Val::Variant(
                name.clone(),
                payload.as_ref().map(|t| Box::new(random_value(rng, t))),
            )
        }
        ValueType::Enum(names) => Val::Enum(names[rng.below(names.len() as u64) as usize].clone()),
        ValueType::Option(t) => {
            Val::Option((rng.below(2) == 0).then(|| Box::new(random_value(rng, t))))
        }
        ValueType::Result(ok, err) => {
            let side = |rng: &mut Rng, t: &Option<Box<ValueType>>| {
                t.as_ref().map(|t| Box::new(random_value(rng, t)))
            };
            Val::Result(if rng.below(2) == 0 {
                Ok(side(rng, ok))
            } else {
                Err(side(rng, err))
            })
        }
        ValueType::Flags(names) => Val::Flags(
            names
                .iter()
                .filter(|_| rng.below(2) == 0)
                .cloned()
                .collect(),
        ),
    }
}

/// Values compare by their Debug text, which treats NaN like NaN.
fn same(a: &Val, b: &Val) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

#[test]
fn random_values_round_trip() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for case in 0..3000 {
        let ty = random_type(&mut rng, 4);
        let value = random_value(&mut rng, &ty);
        let mut bytes = Vec::new();
        encode(&ty, &value, &mut bytes).unwrap_or_else(|e| panic!("case {case}: {e} for {ty:?}"));
        let back = decode(&ty, &bytes).unwrap_or_else(|e| panic!("case {case}: {e} for {ty:?}"));
        assert!(
            same(&value, &back),
            "case {case}: {value:?} came back as {back:?}"
        );
    }
}

#[test]
fn hostile_bytes_fail_cleanly() {
    let mut rng = Rng(0xbad_b17e5);
    for _ in 0..3000 {
        let ty = random_type(&mut rng, 4);
        // Random bytes.
        let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
        let _ = decode(&ty, &junk);
        // A valid encoding, truncated and with a flipped bit.
        let mut bytes = Vec::new();
        encode(&ty, &random_value(&mut rng, &ty), &mut bytes).unwrap();
        if !bytes.is_empty() {
            let cut = rng.below(bytes.len() as u64) as usize;
            assert!(decode(&ty, &bytes[..cut]).is_err() || ty.min_size() == 0);
            let i = rng.below(bytes.len() as u64) as usize;
            bytes[i] ^= 1 << rng.below(8);
            let _ = decode(&ty, &bytes);
        }
    }
}

#[test]
fn lengths_are_checked_before_allocating() {
    // list<string> claiming 2^60 elements, in 9 bytes.
    let ty = ValueType::List(Box::new(ValueType::String));
    let mut bytes = Vec::new();
    put_varint(&mut bytes, 1 << 60);
    assert_eq!(decode(&ty, &bytes), Err(DecodeError::Truncated));
    // A string claiming more bytes than remain.
    let mut bytes = Vec::new();
    put_varint(&mut bytes, 100);
    bytes.extend_from_slice(b"short");
    assert_eq!(
        decode(&ValueType::String, &bytes),
        Err(DecodeError::Truncated)
    );
    // Elements that encode to nothing are capped, not looped over for ever.
    let empty = ValueType::List(Box::new(ValueType::Tuple(vec![])));
    let mut bytes = Vec::new();
    put_varint(&mut bytes, u64::MAX);
    assert!(matches!(
        decode(&empty, &bytes),
        Err(DecodeError::Invalid(_))
    ));
    // A varint that never ends, and one past 64 bits.
    assert!(decode(&ValueType::U64, &[0xff; 11]).is_err());
    assert!(
        decode(
            &ValueType::U64,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]
        )
        .is_err()
    );
}

#[test]
fn scalars_and_cases_are_validated() {
    assert!(decode(&ValueType::Bool, &[2]).is_err());
    assert!(decode(&ValueType::U16, &[0xff, 0xff, 0x04]).is_err());
    let mut surrogate = Vec::new();
    put_varint(&mut surrogate, 0xd800);
    assert!(decode(&ValueType::Char, &surrogate).is_err());
    assert!(decode(&ValueType::String, &[2, 0xc3, 0x28]).is_err());
    assert!(decode(&ValueType::Enum(vec!["a".into()]), &[1]).is_err());
    assert!(decode(&ValueType::Flags(vec!["a".into(), "b".into()]), &[0b100]).is_err());
    assert_eq!(
        decode(&ValueType::U8, &[1, 2]),
        Err(DecodeError::Trailing(1))
    );
}

#[test]
fn encodings_are_compact() {
    let ty = ValueType::Record(vec![
        ("id".into(), ValueType::U64),
        ("name".into(), ValueType::String),
        ("tags".into(), ValueType::List(Box::new(ValueType::String))),
        ("score".into(), ValueType::Option(Box::new(ValueType::S32))),
    ]);
    let value = Val::Record(vec![
        ("id".into(), Val::U64(300)),
        ("name".into(), Val::String("Ada".into())),
        ("tags".into(), Val::List(vec![Val::String("x".into())])),
        ("score".into(), Val::Option(Some(Box::new(Val::S32(-2))))),
    ]);
    let mut bytes = Vec::new();
    encode(&ty, &value, &mut bytes).unwrap();
    assert_eq!(bytes, [0xac, 0x02, 3, b'A', b'd', b'a', 1, 1, b'x', 1, 3]);
}

#[test]
fn large_byte_lists_round_trip() {
    let ty = ValueType::List(Box::new(ValueType::U8));
    let value = Val::List((0..4 << 20).map(|i| Val::U8(i as u8)).collect());
    let mut bytes = Vec::new();
    encode(&ty, &value, &mut bytes).unwrap();
    assert_eq!(bytes.len(), (4 << 20) + 4);
    assert_eq!(decode(&ty, &bytes).unwrap(), value);
}

#[test]
fn values_that_do_not_match_their_type_are_refused() {
    let mut out = Vec::new();
    let err = encode(&ValueType::U32, &Val::String("x".into()), &mut out).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot encode value: expected u32, found string"
    );
    let variant = ValueType::Variant(vec![("a".into(), None)]);
    assert!(encode(&variant, &Val::Variant("b".into(), None), &mut out).is_err());
}

#[test]
fn parameter_lists_encode_as_their_tuple() {
    let types = [ValueType::U64, ValueType::String];
    let values = [Val::U64(7), Val::String("hi".into())];
    let mut flat = Vec::new();
    encode_all(&types, &values, &mut flat).unwrap();
    let mut tuple = Vec::new();
    let tuple_ty = ValueType::Tuple(types.to_vec());
    encode(&tuple_ty, &Val::Tuple(values.to_vec()), &mut tuple).unwrap();
    assert_eq!(flat, tuple);
    let back = decode_all(&types, &flat).unwrap();
    assert!(back.iter().zip(&values).all(|(a, b)| same(a, b)));
    assert_eq!(decode_all(&[], &[]).unwrap().len(), 0);
    assert_eq!(decode_all(&[], &[1]), Err(DecodeError::Trailing(1)));
    assert!(encode_all(&types, &values[..1], &mut Vec::new()).is_err());
}

/// The typed path writes the bytes the `Val` path writes, and each reads
/// the other's: a typed caller and a `Val` callee talk to each other.
#[test]
fn typed_and_val_encodings_are_the_same_bytes() {
    use super::typed::WireList;
    fn both_ways<T: WireList + PartialEq + std::fmt::Debug>(
        value: T,
        types: &[ValueType],
        vals: &[Val],
    ) {
        let typed = value.encode();
        let mut by_val = Vec::new();
        encode_all(types, vals, &mut by_val).unwrap();
        assert_eq!(typed, by_val, "{value:?}");
        assert_eq!(decode_all(types, &typed).unwrap(), vals);
        assert_eq!(T::decode(&by_val.into()).unwrap(), value);
    }
    let bytes = |b: &[u8]| Val::List(b.iter().map(|x| Val::U8(*x)).collect());
    let list_u8 = ValueType::List(Box::new(ValueType::U8));
    both_ways((), &[], &[]);
    both_ways(
        (bytes::Bytes::new(),),
        std::slice::from_ref(&list_u8),
        &[bytes(&[])],
    );
    let big: Vec<u8> = (0..(4u32 << 20)).map(|i| (i * 7) as u8).collect();
    both_ways(
        (bytes::Bytes::from(big.clone()),),
        std::slice::from_ref(&list_u8),
        &[bytes(&big)],
    );
    let text = "héllo, 世界 🦀".to_string();
    both_ways(
        (text.clone(), u64::MAX),
        &[ValueType::String, ValueType::U64],
        &[Val::String(text.clone()), Val::U64(u64::MAX)],
    );
    both_ways(
        (String::new(), -5i32, true),
        &[ValueType::String, ValueType::S32, ValueType::Bool],
        &[Val::String(String::new()), Val::S32(-5), Val::Bool(true)],
    );
    both_ways(
        (1.5f64, 'é', 200u8),
        &[ValueType::F64, ValueType::Char, ValueType::U8],
        &[Val::Float64(1.5), Val::Char('é'), Val::U8(200)],
    );
}

#[test]
fn typed_decoding_refuses_what_val_decoding_refuses() {
    use super::typed::WireList;
    use bytes::Bytes;
    let message = |b: &'static [u8]| Bytes::from_static(b);
    // Invalid UTF-8, a length past the end, and bytes left over.
    assert!(<(String,)>::decode(&message(&[2, 0xff, 0xfe])).is_err());
    assert_eq!(
        <(Bytes,)>::decode(&message(&[5, 1, 2])),
        Err(DecodeError::Truncated)
    );
    assert_eq!(
        <(u32,)>::decode(&message(&[1, 0])),
        Err(DecodeError::Trailing(1))
    );
    assert!(<(bool,)>::decode(&message(&[2])).is_err());
    assert!(<(u8,)>::decode(&message(&[])).is_err());
}

/// A decoded `list<u8>` shares the message's buffer rather than copying it.
#[test]
fn typed_bytes_are_slices_of_the_message() {
    use super::typed::WireList;
    use bytes::Bytes;
    let message = Bytes::from(vec![3, 7, 8, 9, 42]);
    let (body, tail) = <(Bytes, u8)>::decode(&message).unwrap();
    assert_eq!((&body[..], tail), (&[7, 8, 9][..], 42));
    assert_eq!(body.as_ptr(), message[1..].as_ptr());
}

#[test]
fn a_fingerprint_follows_the_wire_types_and_the_codec_version() {
    use sha2::{Digest, Sha256};
    let add = FuncTypes {
        params: vec![ValueType::U64, ValueType::U64],
        results: vec![ValueType::U64],
    };
    let text = format!("weft codec {CODEC_VERSION}\nfunc(u64, u64) -> u64");
    let expected = crate::version::hex(&Sha256::digest(text.as_bytes())[..8]);
    assert_eq!(
        add.fingerprint(),
        expected,
        "the codec's version is hashed in"
    );
    let narrower = FuncTypes {
        params: vec![ValueType::U32, ValueType::U64],
        results: vec![ValueType::U64],
    };
    assert_ne!(add.fingerprint(), narrower.fingerprint());
    let record = |field: &str| FuncTypes {
        params: vec![ValueType::Record(vec![(field.into(), ValueType::String)])],
        results: vec![],
    };
    assert_ne!(record("id").fingerprint(), record("key").fingerprint());
    let mut text = String::new();
    ValueType::Result(
        Some(Box::new(ValueType::List(Box::new(ValueType::U8)))),
        None,
    )
    .write_canonical(&mut text);
    assert_eq!(text, "result<list<u8>, _>");
}

#[test]
fn a_stream_or_future_is_a_marker_byte_that_decodes_to_a_placeholder() {
    let types = [
        ValueType::Stream(Box::new(ValueType::U8)),
        ValueType::String,
        ValueType::Future(Box::new(ValueType::String)),
    ];
    let bytes = bytes::Bytes::from_static(&[0, 2, b'h', b'i', 0]);
    let values = decode_all(&types, &bytes).unwrap();
    assert_eq!(values.len(), 3);
    assert_eq!(values[1], Val::String("hi".into()));
    // Anything but the marker is refused.
    let bad = bytes::Bytes::from_static(&[7, 2, b'h', b'i', 0]);
    assert!(decode_all(&types, &bad).is_err());
}
