//! Cross-checks the standard Thrift encodings against the `thrift` crate's
//! binary protocol: bool, byte, i16, i32, i64, string, binary, list, struct
//! (field headers, nesting, stop). Each sample is encoded by both sides and
//! the bytes compared, and each side decodes what the other wrote.
//!
//! Strict mode (`true`) is what Sandesh uses: its C and C++ writers always
//! put the version word in a message header. It changes only message
//! headers, which ksync objects do not have.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use proptest::collection::vec;
use proptest::prelude::*;
use sandesh::wire::{self, Reader, TType};
use sandesh::Value;
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TFieldIdentifier, TInputProtocol, TListIdentifier,
    TMapIdentifier, TOutputProtocol, TSetIdentifier, TStructIdentifier, TType as ThType,
};

#[derive(Clone, Debug, Default, PartialEq)]
struct Sample {
    flag: bool,
    byte: i8,
    short: i16,
    int: i32,
    long: i64,
    text: String,
    blob: Vec<u8>,
    ints: Vec<i32>,
    texts: Vec<String>,
    longs: Vec<i64>,
    /// A nested struct with one i32 field (id 1) and one bool field (id 2).
    inner: (i32, bool),
}

fn sample() -> impl Strategy<Value = Sample> {
    (
        (
            any::<bool>(),
            any::<i8>(),
            any::<i16>(),
            any::<i32>(),
            any::<i64>(),
        ),
        (any::<String>(), vec(any::<u8>(), 0..40)),
        (
            vec(any::<i32>(), 0..10),
            vec(any::<String>(), 0..5),
            vec(any::<i64>(), 0..10),
        ),
        (any::<i32>(), any::<bool>()),
    )
        .prop_map(
            |((flag, byte, short, int, long), (text, blob), (ints, texts, longs), inner)| Sample {
                flag,
                byte,
                short,
                int,
                long,
                text,
                blob,
                ints,
                texts,
                longs,
                inner,
            },
        )
}

// ------------------------------------------------------------------ ours

fn ours_encode(s: &Sample) -> Vec<u8> {
    let mut o = Vec::new();
    wire::write_field_header(&mut o, TType::Bool, 1);
    s.flag.encode(&mut o);
    wire::write_field_header(&mut o, TType::Byte, 2);
    s.byte.encode(&mut o);
    wire::write_field_header(&mut o, TType::I16, 3);
    s.short.encode(&mut o);
    wire::write_field_header(&mut o, TType::I32, 4);
    s.int.encode(&mut o);
    wire::write_field_header(&mut o, TType::I64, 5);
    s.long.encode(&mut o);
    wire::write_field_header(&mut o, TType::String, 6);
    s.text.encode(&mut o);
    wire::write_field_header(&mut o, TType::String, 7);
    wire::write_binary(&mut o, &s.blob);
    wire::write_field_header(&mut o, TType::List, 8);
    s.ints.encode(&mut o);
    wire::write_field_header(&mut o, TType::List, 9);
    s.texts.encode(&mut o);
    wire::write_field_header(&mut o, TType::List, 10);
    s.longs.encode(&mut o);
    wire::write_field_header(&mut o, TType::Struct, 11);
    wire::write_field_header(&mut o, TType::I32, 1);
    wire::write_i32(&mut o, s.inner.0);
    wire::write_field_header(&mut o, TType::Bool, 2);
    s.inner.1.encode(&mut o);
    wire::write_stop(&mut o);
    wire::write_stop(&mut o);
    o
}

fn ours_decode(buf: &[u8]) -> Sample {
    let mut r = Reader::new(buf);
    let mut s = Sample::default();
    while let Some((t, id)) = r.read_field_header().unwrap() {
        match (t, id) {
            (2, 1) => s.flag = bool::decode(&mut r).unwrap(),
            (3, 2) => s.byte = i8::decode(&mut r).unwrap(),
            (6, 3) => s.short = i16::decode(&mut r).unwrap(),
            (8, 4) => s.int = i32::decode(&mut r).unwrap(),
            (10, 5) => s.long = i64::decode(&mut r).unwrap(),
            (11, 6) => s.text = String::decode(&mut r).unwrap(),
            (11, 7) => s.blob = r.read_binary().unwrap().to_vec(),
            (15, 8) => s.ints = Vec::decode(&mut r).unwrap(),
            (15, 9) => s.texts = Vec::decode(&mut r).unwrap(),
            (15, 10) => s.longs = Vec::decode(&mut r).unwrap(),
            (12, 11) => {
                while let Some((t, id)) = r.read_field_header().unwrap() {
                    match (t, id) {
                        (8, 1) => s.inner.0 = r.read_i32().unwrap(),
                        (2, 2) => s.inner.1 = bool::decode(&mut r).unwrap(),
                        _ => panic!("unexpected inner field {t}/{id}"),
                    }
                }
            }
            _ => panic!("unexpected field {t}/{id}"),
        }
    }
    assert_eq!(r.remaining(), 0);
    s
}

// ---------------------------------------------------------------- thrift

fn fid(ty: ThType, id: i16) -> TFieldIdentifier {
    TFieldIdentifier::new::<Option<String>, String, i16>(None, ty, id)
}

fn thrift_encode(s: &Sample) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut o = TBinaryOutputProtocol::new(&mut buf, true);
    o.write_struct_begin(&TStructIdentifier::new("sample"))
        .unwrap();
    o.write_field_begin(&fid(ThType::Bool, 1)).unwrap();
    o.write_bool(s.flag).unwrap();
    o.write_field_end().unwrap();
    o.write_field_begin(&fid(ThType::I08, 2)).unwrap();
    o.write_i8(s.byte).unwrap();
    o.write_field_begin(&fid(ThType::I16, 3)).unwrap();
    o.write_i16(s.short).unwrap();
    o.write_field_begin(&fid(ThType::I32, 4)).unwrap();
    o.write_i32(s.int).unwrap();
    o.write_field_begin(&fid(ThType::I64, 5)).unwrap();
    o.write_i64(s.long).unwrap();
    o.write_field_begin(&fid(ThType::String, 6)).unwrap();
    o.write_string(&s.text).unwrap();
    o.write_field_begin(&fid(ThType::String, 7)).unwrap();
    o.write_bytes(&s.blob).unwrap();
    o.write_field_begin(&fid(ThType::List, 8)).unwrap();
    o.write_list_begin(&TListIdentifier::new(ThType::I32, s.ints.len() as i32))
        .unwrap();
    for v in &s.ints {
        o.write_i32(*v).unwrap();
    }
    o.write_list_end().unwrap();
    o.write_field_begin(&fid(ThType::List, 9)).unwrap();
    o.write_list_begin(&TListIdentifier::new(ThType::String, s.texts.len() as i32))
        .unwrap();
    for v in &s.texts {
        o.write_string(v).unwrap();
    }
    o.write_field_begin(&fid(ThType::List, 10)).unwrap();
    o.write_list_begin(&TListIdentifier::new(ThType::I64, s.longs.len() as i32))
        .unwrap();
    for v in &s.longs {
        o.write_i64(*v).unwrap();
    }
    o.write_field_begin(&fid(ThType::Struct, 11)).unwrap();
    o.write_struct_begin(&TStructIdentifier::new("inner"))
        .unwrap();
    o.write_field_begin(&fid(ThType::I32, 1)).unwrap();
    o.write_i32(s.inner.0).unwrap();
    o.write_field_begin(&fid(ThType::Bool, 2)).unwrap();
    o.write_bool(s.inner.1).unwrap();
    o.write_field_stop().unwrap();
    o.write_struct_end().unwrap();
    o.write_field_stop().unwrap();
    o.write_struct_end().unwrap();
    o.flush().unwrap();
    buf
}

fn thrift_decode(buf: &[u8]) -> Sample {
    let mut i = TBinaryInputProtocol::new(buf, true);
    i.read_struct_begin().unwrap();
    let mut s = Sample::default();
    loop {
        let f = i.read_field_begin().unwrap();
        if f.field_type == ThType::Stop {
            break;
        }
        match (f.field_type, f.id) {
            (ThType::Bool, Some(1)) => s.flag = i.read_bool().unwrap(),
            (ThType::I08, Some(2)) => s.byte = i.read_i8().unwrap(),
            (ThType::I16, Some(3)) => s.short = i.read_i16().unwrap(),
            (ThType::I32, Some(4)) => s.int = i.read_i32().unwrap(),
            (ThType::I64, Some(5)) => s.long = i.read_i64().unwrap(),
            (ThType::String, Some(6)) => s.text = i.read_string().unwrap(),
            (ThType::String, Some(7)) => s.blob = i.read_bytes().unwrap(),
            (ThType::List, Some(8)) => {
                let l = i.read_list_begin().unwrap();
                assert_eq!(l.element_type, ThType::I32);
                s.ints = (0..l.size).map(|_| i.read_i32().unwrap()).collect();
            }
            (ThType::List, Some(9)) => {
                let l = i.read_list_begin().unwrap();
                assert_eq!(l.element_type, ThType::String);
                s.texts = (0..l.size).map(|_| i.read_string().unwrap()).collect();
            }
            (ThType::List, Some(10)) => {
                let l = i.read_list_begin().unwrap();
                assert_eq!(l.element_type, ThType::I64);
                s.longs = (0..l.size).map(|_| i.read_i64().unwrap()).collect();
            }
            (ThType::Struct, Some(11)) => {
                i.read_struct_begin().unwrap();
                loop {
                    let f = i.read_field_begin().unwrap();
                    match (f.field_type, f.id) {
                        (ThType::Stop, _) => break,
                        (ThType::I32, Some(1)) => s.inner.0 = i.read_i32().unwrap(),
                        (ThType::Bool, Some(2)) => s.inner.1 = i.read_bool().unwrap(),
                        other => panic!("unexpected inner field {other:?}"),
                    }
                }
            }
            other => panic!("unexpected field {other:?}"),
        }
    }
    s
}

proptest! {
    #[test]
    fn same_bytes_as_thrift(s in sample()) {
        prop_assert_eq!(ours_encode(&s), thrift_encode(&s));
    }

    #[test]
    fn thrift_reads_ours(s in sample()) {
        prop_assert_eq!(thrift_decode(&ours_encode(&s)), s);
    }

    #[test]
    fn we_read_thrift(s in sample()) {
        prop_assert_eq!(ours_decode(&thrift_encode(&s)), s);
    }

    /// Our skip consumes exactly what thrift's skip consumes, including for
    /// map, set, double and nested containers, which no ksync message has.
    #[test]
    fn skip_agrees_with_thrift(
        s in sample(),
        m in proptest::collection::btree_map(any::<i32>(), any::<String>(), 0..6),
        set in proptest::collection::btree_set(any::<i16>(), 0..6),
        d in any::<f64>(),
        nested in vec(vec(any::<i64>(), 0..4), 0..4),
    ) {
        let mut buf = Vec::new();
        {
            let mut o = TBinaryOutputProtocol::new(&mut buf, true);
            o.write_field_begin(&fid(ThType::Map, 1)).unwrap();
            o.write_map_begin(&TMapIdentifier::new(ThType::I32, ThType::String, m.len() as i32)).unwrap();
            for (k, v) in &m {
                o.write_i32(*k).unwrap();
                o.write_string(v).unwrap();
            }
            o.write_field_begin(&fid(ThType::Set, 2)).unwrap();
            o.write_set_begin(&TSetIdentifier::new(ThType::I16, set.len() as i32)).unwrap();
            for v in &set {
                o.write_i16(*v).unwrap();
            }
            o.write_field_begin(&fid(ThType::Double, 3)).unwrap();
            o.write_double(d).unwrap();
            o.write_field_begin(&fid(ThType::List, 4)).unwrap();
            o.write_list_begin(&TListIdentifier::new(ThType::List, nested.len() as i32)).unwrap();
            for l in &nested {
                o.write_list_begin(&TListIdentifier::new(ThType::I64, l.len() as i32)).unwrap();
                for v in l {
                    o.write_i64(*v).unwrap();
                }
            }
            o.flush().unwrap();
        }
        // Then the whole sample as a nested struct, and the outer stop.
        buf.push(12);
        buf.extend_from_slice(&5i16.to_be_bytes());
        buf.extend_from_slice(&thrift_encode(&s));
        buf.push(0);
        let trailer = [0xde, 0xad];
        buf.extend_from_slice(&trailer);

        let mut r = Reader::new(&buf);
        r.skip(TType::Struct as u8).unwrap();
        prop_assert_eq!(r.remaining(), trailer.len());

        let mut rest: &[u8] = &buf;
        TBinaryInputProtocol::new(&mut rest, true).skip(ThType::Struct).unwrap();
        prop_assert_eq!(rest, &trailer[..]);
    }
}

#[test]
fn field_header_and_stop_bytes() {
    let mut ours = Vec::new();
    wire::write_field_header(&mut ours, TType::I32, 0x1234);
    wire::write_stop(&mut ours);
    let mut theirs = Vec::new();
    {
        let mut o = TBinaryOutputProtocol::new(&mut theirs, true);
        o.write_field_begin(&fid(ThType::I32, 0x1234)).unwrap();
        o.write_field_stop().unwrap();
        o.flush().unwrap();
    }
    assert_eq!(ours, [8, 0x12, 0x34, 0]);
    assert_eq!(ours, theirs);
}
