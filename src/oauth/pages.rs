//! The authorization server's HTML: consent, the error page for requests that cannot
//! be sent back to the client, and the connected-apps page. Every value is escaped.

use crate::http::html::{escape, page, page_with_head};

/// What a scope lets the app do, in words.
fn describe(scope: &str) -> &'static str {
    match scope {
        "openid" => "Know who you are (your account id)",
        "profile" => "See your name and username",
        "email" => "See your email address",
        "user" => "See your account details (name, username, email)",
        _ => "An unknown permission",
    }
}

/// A form's fields, posted back unchanged (escaped).
fn hidden_fields(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(k),
                escape(v)
            )
        })
        .collect()
}

/// The consent page: the app, what it asks, allow or deny. `fields` are the request's
/// parameters, posted back unchanged with the decision.
pub fn consent(
    app: &str,
    username: &str,
    scope: &str,
    csrf: &str,
    fields: &[(&str, &str)],
) -> String {
    let hidden = hidden_fields(fields);
    let asks: String = scope
        .split_whitespace()
        .map(|s| format!("<li>{}</li>", escape(describe(s))))
        .collect();
    page(
        "Allow access?",
        &format!(
            "<h1>Allow {app} to use your account?</h1>\
             <p>Signed in as <strong>{user}</strong>.</p>\
             <p>{app} will be able to:</p><ul>{asks}</ul>\
             <form method=\"post\" action=\"/oauth/authorize\">{hidden}\
             <input type=\"hidden\" name=\"csrfToken\" value=\"{csrf}\">\
             <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\" style=\"background:#666\">Deny</button>\
             </form><p><small>You can revoke this later on <a href=\"/manage-apps\">connected apps</a>.</small></p>",
            app = escape(app),
            user = escape(username),
            csrf = escape(csrf),
        ),
    )
}

/// A request that must not be redirected (unknown client, unregistered redirect URI).
pub fn error(message: &str) -> String {
    page(
        "Authorization error",
        &format!(
            "<h1>This sign-in request is not valid</h1><p class=\"error\">{}</p>\
             <p>Go back to the app and try again; if it keeps happening, tell its developers.</p>",
            escape(message)
        ),
    )
}

/// The apps a user has connected, each with a "Revoke access" button.
pub fn manage_apps(
    username: &str,
    csrf: &str,
    apps: &[crate::oauth_server::repo::Connection],
) -> String {
    let mut body = format!(
        "<h1>Connected apps</h1><p>Signed in as <strong>{}</strong>.</p>",
        escape(username)
    );
    if apps.is_empty() {
        body.push_str("<p>No app has access to your account.</p>");
    }
    for app in apps {
        body.push_str(&format!(
            "<section><h2>{name}</h2><p>Can: {scope} · since {since}</p>\
             <form method=\"post\" action=\"/oauth/deauthorize\">\
             <input type=\"hidden\" name=\"client_id\" value=\"{id}\">\
             <input type=\"hidden\" name=\"csrfToken\" value=\"{csrf}\">\
             <button type=\"submit\">Revoke access</button></form></section>",
            name = escape(&app.name),
            scope = escape(&app.scope),
            since = escape(&crate::clock::rfc3339(app.created_at)),
            id = escape(&app.client_id),
            csrf = escape(csrf),
        ));
    }
    page("Connected apps", &body)
}

/// RP-Initiated Logout's confirmation (§2: the OP asks when it cannot tell the request
/// came from the app the user is signed in to). `fields` are posted back unchanged.
pub fn logout_confirm(
    username: &str,
    app: Option<&str>,
    csrf: &str,
    fields: &[(&str, &str)],
) -> String {
    let hidden = hidden_fields(fields);
    let asked = match app {
        Some(a) => format!("<p>{} asks to sign you out.</p>", escape(a)),
        None => String::new(),
    };
    page(
        "Sign out?",
        &format!(
            "<h1>Sign out?</h1><p>Signed in as <strong>{user}</strong>.</p>{asked}\
             <form method=\"post\" action=\"/oauth/logout\">{hidden}\
             <input type=\"hidden\" name=\"csrfToken\" value=\"{csrf}\">\
             <button type=\"submit\" name=\"decision\" value=\"logout\">Sign out</button>\
             <button type=\"submit\" name=\"decision\" value=\"stay\" style=\"background:#666\">Stay signed in</button>\
             </form>",
            user = escape(username),
            csrf = escape(csrf),
        ),
    )
}

/// After a logout with nowhere to return to, or when no one was signed in.
pub fn signed_out() -> String {
    page(
        "Signed out",
        "<h1>You are signed out</h1><p>You can close this page, or <a href=\"/api/auth/signin\">sign in again</a>.</p>",
    )
}

/// The signed-out page that tells the apps through the browser (Front-Channel Logout
/// 1.0 §4): one hidden iframe per app, then on to `redirect` once they have loaded (a
/// refresh waits for the page, iframes included, to load).
pub fn signed_out_frontchannel(frames: &[String], redirect: Option<&str>) -> String {
    let iframes: String = frames
        .iter()
        .map(|u| {
            format!(
                "<iframe src=\"{}\" title=\"signing out of an app\" width=\"0\" height=\"0\" \
                 style=\"display:none\"></iframe>",
                escape(u)
            )
        })
        .collect();
    let (head, next) = match redirect {
        Some(url) => (
            format!(
                "<meta http-equiv=\"refresh\" content=\"0; url={}\">",
                escape(url)
            ),
            format!(
                "<p><a class=\"button\" href=\"{}\">Continue</a></p>",
                escape(url)
            ),
        ),
        None => (
            String::new(),
            "<p>You can close this page, or <a href=\"/api/auth/signin\">sign in again</a>.</p>"
                .to_owned(),
        ),
    };
    page_with_head(
        "Signed out",
        &head,
        &format!(
            "<h1>You are signed out</h1><p>Signing you out of your apps too…</p>{next}{iframes}"
        ),
    )
}

/// The user chose to stay signed in.
pub fn still_signed_in() -> String {
    page(
        "Still signed in",
        "<h1>You are still signed in</h1><p>Nothing was changed. You can close this page.</p>",
    )
}
