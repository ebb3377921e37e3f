//! The two HTML pages NextAuth serves itself: sign-in and error. Plain, dependency-free,
//! every interpolated value escaped; the only script is the sign-in page's passkey
//! button ([`PASSKEY_JS`]).

/// The sign-in page's passkey button, served at `/api/auth/passkey.js`.
pub const PASSKEY_JS: &str = include_str!("passkey.js");

use crate::http::html::{escape, page};

/// A sign-in page: a credentials form, a passkey button (`passkeys`), then a button per
/// OAuth provider.
pub fn signin(
    csrf_token: &str,
    callback_url: &str,
    error: Option<&str>,
    oauth: &[(String, String)],
    credentials_name: &str,
    passkeys: bool,
) -> String {
    let mut body = String::from("<h1>Sign in</h1>");
    if let Some(e) = error {
        body.push_str(&format!("<p class=\"error\">{}</p>", escape(error_text(e))));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/api/auth/callback/credentials\">\
         <input type=\"hidden\" name=\"csrfToken\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"callbackUrl\" value=\"{cb}\">\
         <label for=\"username\">Username or email</label>\
         <input id=\"username\" name=\"username\" autocomplete=\"username\" required>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in with {name}</button></form>",
        csrf = escape(csrf_token),
        cb = escape(callback_url),
        name = escape(credentials_name),
    ));
    if passkeys {
        // Shown by the script only where the browser can use passkeys.
        body.push_str(
            "<button type=\"button\" id=\"passkey\" hidden>Sign in with a passkey</button>\
             <p class=\"error\" id=\"passkey-error\" role=\"alert\" hidden></p>\
             <script src=\"/api/auth/passkey.js\" defer></script>",
        );
    }
    for (id, name) in oauth {
        body.push_str(&provider_form(csrf_token, callback_url, id, name));
    }
    page("Sign in", &body)
}

/// The page of `GET /api/auth/signin/{provider}`: one button that posts the sign-in
/// (with the CSRF token), so that no other site can start a sign-in by a link alone.
pub fn provider_signin(csrf_token: &str, callback_url: &str, id: &str, name: &str) -> String {
    page(
        "Sign in",
        &format!(
            "<h1>Sign in</h1>{}",
            provider_form(csrf_token, callback_url, id, name)
        ),
    )
}

/// A provider's "Sign in with …" button: a form posting the sign-in with the CSRF token.
fn provider_form(csrf_token: &str, callback_url: &str, id: &str, name: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/api/auth/signin/{id}\">\
         <input type=\"hidden\" name=\"csrfToken\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"callbackUrl\" value=\"{cb}\">\
         <button type=\"submit\">Sign in with {name}</button></form>",
        id = escape(id),
        csrf = escape(csrf_token),
        cb = escape(callback_url),
        name = escape(name),
    )
}

/// What an error code means, in words a person understands.
pub fn error_text(code: &str) -> &'static str {
    match code {
        "CredentialsSignin" => "The username or password is not right. Check them and try again.",
        "RateLimited" => "Too many attempts. Wait a minute, then try again.",
        "SessionRequired" => "Please sign in to see this page.",
        "Verification" | "OAuthCallback" | "OAuthSignin" => {
            "Signing in with that provider did not work. Try again."
        }
        "AccessDenied" => "Access was denied.",
        "Unavailable" => "The sign-in service is unavailable right now. Try again shortly.",
        _ => "Something went wrong while signing in. Try again.",
    }
}

/// The error page.
pub fn error(code: &str) -> String {
    page(
        "Sign-in error",
        &format!(
            "<h1>Unable to sign in</h1><p class=\"error\">{}</p><a class=\"button\" href=\"/api/auth/signin\">Back to sign-in</a>",
            escape(error_text(code))
        ),
    )
}
