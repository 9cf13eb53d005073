//! Decodes arbitrary bytes as Sandesh objects (one, and all in a row). What
//! decodes must re-encode to bytes that decode to the same value, and the
//! re-encoding must be canonical (encoding it again gives the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandesh::{Message, Messages};

fn check(m: &Message) {
    let bytes = m.to_bytes();
    let (again, n) = Message::decode_one(&bytes).expect("re-encoded object decodes");
    assert_eq!(n, bytes.len());
    assert_eq!(&again, m);
    assert_eq!(again.to_bytes(), bytes);
}

fuzz_target!(|data: &[u8]| {
    if let Ok((m, n)) = Message::decode_one(data) {
        assert!(n <= data.len());
        check(&m);
    }
    let mut it = Messages::new(data);
    let mut last = 0;
    while let Some(r) = it.next() {
        match r {
            Ok(m) => {
                assert!(it.offset() > last && it.offset() <= data.len());
                last = it.offset();
                check(&m);
            }
            Err(_) => break,
        }
    }
    let _ = sandesh::frame::parse_all(data).count();
});
