//! The stored session blob: AES-GCM opening and the postcard session decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiongate::session::{Keyring, Session};

fuzz_target!(|data: &[u8]| {
    if let Some(session) = Session::decode(data) {
        let again = session.encode().expect("a decoded session encodes");
        assert_eq!(Session::decode(&again), Some(session));
    }
    let ring = Keyring::new(&[[7u8; 32]]).expect("one key");
    let context = [1u8; 32];
    if let Ok(plain) = ring.open(b"session", &context, b"aad", data) {
        let _ = Session::decode(&plain);
    }
});
