//! The proxy's path check: nothing that could climb out of a route's prefix passes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiongate::proxy::path;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = std::str::from_utf8(data) else {
        return;
    };
    if path::check(p).is_ok() {
        let lower = p.to_ascii_lowercase();
        assert!(!p.split('/').any(|s| s == ".." || s == "."), "{p}");
        assert!(!lower.contains("%2e") && !lower.contains("%2f") && !lower.contains("%5c"), "{p}");
        assert!(!p.contains('\\'), "{p}");
    }
});
