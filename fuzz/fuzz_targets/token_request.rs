//! The token endpoint's inputs: form and JSON bodies, raw parameter lists (repeats
//! detected) and HTTP Basic client credentials.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiongate::oauth::api::{parse_params, TokenRequest};
use sessiongate::oauth::basic_credentials;

fuzz_target!(|data: &[u8]| {
    let _ = serde_urlencoded::from_bytes::<TokenRequest>(data);
    let _ = serde_json::from_slice::<TokenRequest>(data);
    let text = String::from_utf8_lossy(data);
    let (params, repeated) = parse_params(&text);
    for name in &repeated {
        assert!(params.contains_key(name));
    }
    let _ = basic_credentials(&text);
});
