//! The HTML every server-rendered page shares: escaping, and the page around a body.

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A whole page around `body`, with the one stylesheet every page shares.
pub fn page(title: &str, body: &str) -> String {
    page_with_head(title, "", body)
}

/// [`page`] with more in its head (`head` is HTML, already escaped).
pub fn page_with_head(title: &str, head: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{head}\
         <title>{title}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem;color:#222}}\
         label{{display:block;margin:.75rem 0 .25rem}}input{{width:100%;padding:.5rem;box-sizing:border-box}}\
         button,.button{{display:block;width:100%;margin-top:1rem;padding:.6rem;border:0;border-radius:.3rem;\
         background:#2d5bd0;color:#fff;font-size:1rem;text-align:center;text-decoration:none}}\
         .error{{background:#fde8e8;padding:.75rem;border-radius:.3rem}}</style></head>\
         <body>{body}</body></html>",
        title = escape(title)
    )
}
