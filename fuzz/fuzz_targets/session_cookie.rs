//! The session cookie: `Cookie` header parsing and the session-id decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poem::http::{HeaderMap, HeaderValue};
use sessiongate::session::{cookie, SessionId};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(id) = SessionId::parse(&text) {
        // Whatever parses is a canonical 256-bit id.
        assert_eq!(SessionId::parse(&id.encode()).map(|i| i.encode()), Some(id.encode()));
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.append("cookie", value);
        if let Some(v) = cookie::read(&headers, "sessiongate") {
            let _ = SessionId::parse(v);
        }
    }
});
