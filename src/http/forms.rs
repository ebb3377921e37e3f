//! Request bodies that come as a form or as JSON — NextAuth's client posts forms, SPAs
//! post JSON, OAuth clients either — and NextAuth's loose booleans.

use serde_json::Value;

/// Declares `$payload`, an operation body that is the form or the JSON of `$fields`, with
/// `into_inner` to get the fields whichever it was.
#[macro_export]
macro_rules! form_or_json {
    ($(#[$doc:meta])* $payload:ident($fields:ty)) => {
        $(#[$doc])*
        #[derive(poem_openapi::ApiRequest)]
        pub enum $payload {
            Form(poem_openapi::payload::Form<$fields>),
            Json(poem_openapi::payload::Json<$fields>),
        }

        impl $payload {
            /// The fields, from the form or the JSON.
            pub fn into_inner(self) -> $fields {
                match self {
                    Self::Form(form) => form.0,
                    Self::Json(json) => json.0,
                }
            }
        }
    };
}

/// A NextAuth flag (`json`, `everywhere`): `true`, `"true"` or `"1"`.
pub fn is_true(v: &Option<Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        _ => false,
    }
}
