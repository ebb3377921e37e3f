//! WebSockets through the proxy (RFC 6455), against a real WebSocket upstream (a
//! tokio-tungstenite echo server): authenticated like any request, Origin-checked,
//! relayed both ways, and closed by us when the session ends — here or on another
//! instance — or its token can no longer be refreshed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use sessiongate::config::ProxyRoute;
use sessiongate::crypto::Secret;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::browser::Browser;
use crate::helpers::{spawn_app_with, Backend, TestApp};
use crate::stand_ins::TokenBackend;

/// Each handshake's headers, in order.
type Handshakes = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A WebSocket echo server. It records each handshake's headers; `/refuse` answers 403,
/// `/sink` never reads, and the message `flood` is answered with 125 MiB.
/// `hang` is an address that takes connections and never answers.
struct EchoSockets {
    base: String,
    hang: String,
    handshakes: Handshakes,
}

impl EchoSockets {
    async fn spawn() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&handshakes);
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let sink = Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let is_sink = Arc::clone(&sink);
                    #[allow(clippy::result_large_err)] // tungstenite's callback type
                    let callback = move |req: &Request, mut resp: Response| {
                        if req.uri().path().ends_with("/sink") {
                            is_sink.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                            .collect();
                        seen.lock().unwrap().push(headers);
                        if req.uri().path().ends_with("/refuse") {
                            let mut no = tokio_tungstenite::tungstenite::http::Response::new(None);
                            *no.status_mut() = StatusCode::FORBIDDEN;
                            return Err(no);
                        }
                        if req.headers().get("sec-websocket-protocol").is_some() {
                            resp.headers_mut()
                                .insert("sec-websocket-protocol", "chat".parse().unwrap());
                        }
                        Ok(resp)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(socket, callback).await
                    else {
                        return;
                    };
                    if sink.load(std::sync::atomic::Ordering::Relaxed) {
                        // `/sink` takes the socket and never reads from it.
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    while let Some(Ok(m)) = ws.next().await {
                        if m.to_text().is_ok_and(|t| t == "flood") {
                            // Far more than any buffer holds: 2,000 × 64 KiB.
                            for _ in 0..2000 {
                                if ws
                                    .send(Message::binary(vec![9u8; 64 * 1024]))
                                    .await
                                    .is_err()
                                {
                                    return;
                                }
                            }
                            continue;
                        }
                        if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hang = format!("http://{}", silent.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        Self {
            base,
            hang,
            handshakes,
        }
    }

    fn last_handshake(&self) -> Vec<(String, String)> {
        self.handshakes
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn app_with(
    tokens: &TokenBackend,
    echo: &EchoSockets,
    shared: Option<(String, String)>,
    tweak: impl FnOnce(&mut sessiongate::config::Settings) + Send + 'static,
) -> TestApp {
    let (tb, eb, hang) = (tokens.base.clone(), echo.base.clone(), echo.hang.clone());
    spawn_app_with(Backend::Sqlite, move |s| {
        s.providers.credentials.login_url = format!("{tb}/login");
        s.providers.credentials.refresh_url = format!("{tb}/refresh");
        if let Some((key, prefix)) = shared {
            s.session.keys = vec![Secret::new(key)];
            s.redis.prefix = prefix;
        }
        let route = |prefix: &str| ProxyRoute {
            prefix: prefix.into(),
            upstream: eb.clone(),
            timeout: Some(Duration::from_millis(500)),
            ..ProxyRoute::default()
        };
        s.proxy.routes = vec![
            route("/api/live"),
            ProxyRoute {
                public: true,
                ..route("/api/open")
            },
            ProxyRoute {
                websocket: Some(false),
                ..route("/api/plain")
            },
            ProxyRoute {
                methods: Some(vec!["GET".into()]),
                ..route("/api/readonly")
            },
            ProxyRoute {
                upstream: hang,
                ..route("/api/hang")
            },
        ];
        tweak(s);
    })
    .await
}

async fn app(tokens: &TokenBackend, echo: &EchoSockets) -> TestApp {
    app_with(tokens, echo, None, |_| {}).await
}

type Socket = WebSocketStream<TcpStream>;

/// The origin of the site the browser is on (`server.public_url`, the default's).
const SITE: &str = crate::helpers::PUBLIC_URL;

/// Opens `path` on `app` as a browser would: its cookies, `origin` (default: the site's).
async fn open(
    app: &TestApp,
    path: &str,
    cookies: Option<&Browser>,
    origin: Option<&str>,
    protocol: Option<&str>,
) -> Result<
    (
        Socket,
        tokio_tungstenite::tungstenite::http::Response<Option<Vec<u8>>>,
    ),
    WsError,
> {
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut req = format!("ws://{address}{path}")
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert("origin", origin.unwrap_or(SITE).parse().unwrap());
    if let Some(b) = cookies {
        let jar: Vec<String> = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        h.insert("cookie", jar.join("; ").parse().unwrap());
    }
    if let Some(p) = protocol {
        h.insert("sec-websocket-protocol", p.parse().unwrap());
    }
    let tcp = TcpStream::connect(&address).await.unwrap();
    tokio_tungstenite::client_async(req, tcp).await
}

fn refused_with(result: Result<(Socket, impl std::fmt::Debug), WsError>) -> u16 {
    match result {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("not an HTTP refusal: {e}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

/// The next message that is not a ping or pong, within `within`.
async fn next(ws: &mut Socket, within: Duration) -> Option<Message> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(m))) => return Some(m),
            _ => return None,
        }
    }
}

fn close_code(m: Option<Message>) -> Option<u16> {
    match m {
        Some(Message::Close(Some(f))) => Some(u16::from(f.code)),
        other => panic!("not a close frame: {other:?}"),
    }
}

async fn signed_in(app: &TestApp) -> Browser {
    let mut b = Browser::new(app, "SPA");
    let seen = b.sign_in("racer", "any password").await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    b
}

async fn metrics_line(app: &TestApp, starts: &str) -> Option<String> {
    app.metrics()
        .await
        .lines()
        .find(|l| l.starts_with(starts))
        .map(str::to_owned)
}

#[tokio::test]
async fn a_socket_carries_the_token_echoes_and_closes_when_the_user_signs_out() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoSockets::spawn().await);
    let app = app(&tokens, &echo).await;
    let mut b = signed_in(&app).await;

    let (mut ws, resp) = open(&app, "/api/live/feed", Some(&b), None, Some("chat, v2"))
        .await
        .unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "chat");
    let upstream = echo.last_handshake();
    assert_eq!(header(&upstream, "authorization"), Some("Bearer at-1"));
    assert_eq!(header(&upstream, "cookie"), None, "{upstream:?}");
    assert_eq!(header(&upstream, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        header(&upstream, "sec-websocket-protocol"),
        Some("chat, v2")
    );

    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        next(&mut ws, Duration::from_secs(2)).await,
        Some(Message::text("hello"))
    );
    ws.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
    assert_eq!(
        next(&mut ws, Duration::from_secs(2)).await,
        Some(Message::binary(vec![0u8, 1, 2]))
    );
    assert_eq!(
        metrics_line(&app, "sessiongate_websockets_open{")
            .await
            .as_deref(),
        Some(r#"sessiongate_websockets_open{route="/api/live"} 1"#)
    );

    assert_eq!(b.sign_out(false).await.status, StatusCode::OK);
    let closed = next(&mut ws, Duration::from_secs(2)).await;
    assert_eq!(
        close_code(closed),
        Some(4401),
        "closed within 2 s, code 4401"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"sessiongate_websockets_closed_total{route="/api/live",reason="session_ended"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"sessiongate_websockets_open{route="/api/live"} 0"#));
}

#[tokio::test]
async fn revoked_on_another_instance_the_socket_closes_within_two_seconds() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoSockets::spawn().await);
    let key = sessiongate::crypto::generate_key();
    let first = app_with(&tokens, &echo, None, {
        let key = key.clone();
        move |s| s.session.keys = vec![Secret::new(key)]
    })
    .await;
    let second = app_with(
        &tokens,
        &echo,
        Some((key, first.redis_prefix.clone())),
        |_| {},
    )
    .await;
    let b = signed_in(&first).await;
    let (mut ws, _) = open(&first, "/api/live/feed", Some(&b), None, None)
        .await
        .unwrap();
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(
        next(&mut ws, Duration::from_secs(2)).await,
        Some(Message::text("before"))
    );

    // "Sign out everywhere" from the second instance.
    let mut other = Browser::at(&second.address, second.client.clone(), "SPA");
    other.cookies = b.cookies.clone();
    assert_eq!(other.sign_out(true).await.status, StatusCode::OK);
    let closed = next(&mut ws, Duration::from_secs(2)).await;
    assert_eq!(close_code(closed), Some(4401));
}

#[tokio::test]
async fn upgrades_that_must_not_open_are_refused_before_the_upgrade() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoSockets::spawn().await);
    let app = app(&tokens, &echo).await;
    let b = signed_in(&app).await;

    // No session: 401, and nothing reached the upstream.
    let before = echo.handshakes.lock().unwrap().len();
    assert_eq!(
        refused_with(open(&app, "/api/live/feed", None, None, None).await),
        401
    );
    // Another site's page (cross-site WebSocket hijacking, RFC 6455 §10.2): 403.
    let foreign = open(
        &app,
        "/api/live/feed",
        Some(&b),
        Some("https://evil.example"),
        None,
    )
    .await;
    assert_eq!(refused_with(foreign), 403);
    let no_origin = open(&app, "/api/live/feed", Some(&b), Some(""), None).await;
    assert_eq!(refused_with(no_origin), 403, "browsers always send Origin");
    // A route with `websocket = false`.
    assert_eq!(
        refused_with(open(&app, "/api/plain/feed", Some(&b), None, None).await),
        403
    );
    // A route that lists its methods takes no socket unless it says `websocket = true`:
    // once open, a socket carries anything.
    assert_eq!(
        refused_with(open(&app, "/api/readonly/feed", Some(&b), None, None).await),
        403
    );
    assert_eq!(echo.handshakes.lock().unwrap().len(), before);

    // An upstream that refuses: 502; one that does not answer: 504 after the route's
    // timeout. The browser's socket is never upgraded.
    assert_eq!(
        refused_with(open(&app, "/api/live/refuse", Some(&b), None, None).await),
        502
    );
    assert_eq!(
        refused_with(open(&app, "/api/hang/feed", Some(&b), None, None).await),
        504
    );

    // Still usable: the refusals changed nothing.
    let (mut ws, _) = open(&app, "/api/live/feed", Some(&b), None, None)
        .await
        .unwrap();
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        next(&mut ws, Duration::from_secs(2)).await,
        Some(Message::text("still here"))
    );

    // A public route: no session needed, no token sent.
    let (mut ws, _) = open(&app, "/api/open/feed", None, None, None)
        .await
        .unwrap();
    assert_eq!(header(&echo.last_handshake(), "authorization"), None);
    ws.send(Message::text("anyone")).await.unwrap();
    assert_eq!(
        next(&mut ws, Duration::from_secs(2)).await,
        Some(Message::text("anyone"))
    );
}

#[tokio::test]
async fn an_oversized_message_closes_that_socket_with_1009_and_no_other() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoSockets::spawn().await);
    let app = app_with(&tokens, &echo, None, |s| s.proxy.websocket_max_frame = 1024).await;
    let b = signed_in(&app).await;
    let (mut big, _) = open(&app, "/api/live/a", Some(&b), None, None)
        .await
        .unwrap();
    let (mut small, _) = open(&app, "/api/live/b", Some(&b), None, None)
        .await
        .unwrap();

    big.send(Message::binary(vec![7u8; 4096])).await.unwrap();
    let closed = next(&mut big, Duration::from_secs(2)).await;
    assert_eq!(close_code(closed), Some(u16::from(CloseCode::Size)));

    small.send(Message::binary(vec![1u8; 1000])).await.unwrap();
    assert_eq!(
        next(&mut small, Duration::from_secs(2)).await,
        Some(Message::binary(vec![1u8; 1000]))
    );
}

#[tokio::test]
async fn a_long_lived_socket_keeps_the_token_fresh_and_closes_when_refresh_is_refused() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoSockets::spawn().await);
    let app = app(&tokens, &echo).await;
    let b = signed_in(&app).await;
    let (mut ws, _) = open(&app, "/api/live/feed", Some(&b), None, None)
        .await
        .unwrap();

    // The hour passes: the token is refreshed in the background, the socket stays.
    app.clock.advance(Duration::from_secs(3600));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokens.refreshes() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tokens.refreshes(), 1);
    ws.send(Message::text("still open")).await.unwrap();
    assert_eq!(
        next(&mut ws, Duration::from_secs(2)).await,
        Some(Message::text("still open"))
    );

    // Another hour, and the provider refuses the refresh token: the sign-in is over.
    tokens.set_mode("reject");
    app.clock.advance(Duration::from_secs(3600));
    let closed = next(&mut ws, Duration::from_secs(2)).await;
    assert_eq!(close_code(closed), Some(4401));
}

#[tokio::test]
async fn a_browser_that_stops_reading_is_closed_with_1008_and_others_go_on() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoSockets::spawn().await);
    let app = app(&tokens, &echo).await;
    let b = signed_in(&app).await;
    let (mut stuck, _) = open(&app, "/api/live/a", Some(&b), None, None)
        .await
        .unwrap();
    let (mut other, _) = open(&app, "/api/live/b", Some(&b), None, None)
        .await
        .unwrap();

    // The upstream sends 125 MiB; this browser reads nothing for 1.5 s (the route's
    // timeout is 500 ms), so sessiongate stops waiting on it instead of buffering.
    stuck.send(Message::text("flood")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    other.send(Message::text("unaffected")).await.unwrap();
    assert_eq!(
        next(&mut other, Duration::from_secs(2)).await,
        Some(Message::text("unaffected"))
    );
    let mut received = 0usize;
    let code = loop {
        match next(&mut stuck, Duration::from_secs(5)).await {
            Some(Message::Binary(data)) => received += data.len(),
            other => break close_code(other),
        }
    };
    assert_eq!(code, Some(1008), "closed as not reading");
    assert!(
        received < 64 << 20,
        "it did not all go through: {received} bytes"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let metrics = app.metrics().await;
    assert!(
        metrics
            .contains(r#"sessiongate_websockets_closed_total{route="/api/live",reason="stuck"} 1"#),
        "{metrics}"
    );
}

/// OpenID Back-Channel Logout 1.0 §2.7: the provider's logout ends the RP's sessions of
/// that OP session, and with the session its sockets.
#[tokio::test]
async fn a_back_channel_logout_closes_the_sessions_sockets() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoSockets::spawn().await);
    let idp = crate::idp::StandInIdp::spawn(true).await;
    let eb = echo.base.clone();
    let app = app_with(&tokens, &echo, None, {
        let idp_base = idp.base.clone();
        move |s| {
            let table = [
                ("type", "oidc"),
                ("issuer", idp_base.as_str()),
                ("client_id", crate::idp::CLIENT_ID),
                ("client_secret", crate::idp::CLIENT_SECRET),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), figment::value::Value::from(v)))
            .collect();
            s.providers.others.insert("acme".into(), table);
            s.proxy.routes.push(ProxyRoute {
                prefix: "/api/acme".into(),
                upstream: eb,
                provider: Some("acme".into()),
                ..ProxyRoute::default()
            });
        }
    })
    .await;
    let mut b = Browser::new(&app, "SPA");
    crate::bff_logout::sign_in_acme(&mut b, &idp).await;
    let (mut ws, _) = open(&app, "/api/acme/feed", Some(&b), None, None)
        .await
        .unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(
        next(&mut ws, Duration::from_secs(2)).await,
        Some(Message::text("hi"))
    );

    let resp = app
        .client
        .post(app.url("/api/auth/backchannel-logout/acme"))
        .form(&[("logout_token", idp.logout_token(|_| {}))])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let closed = next(&mut ws, Duration::from_secs(2)).await;
    assert_eq!(close_code(closed), Some(4401));
}

#[tokio::test]
async fn a_browser_flooding_an_upstream_that_does_not_read_is_closed_not_buffered() {
    let (tokens, echo) = (TokenBackend::spawn(3600).await, EchoSockets::spawn().await);
    let app = app(&tokens, &echo).await;
    let b = signed_in(&app).await;
    let (flooder, _) = open(&app, "/api/live/sink", Some(&b), None, None)
        .await
        .unwrap();
    let (mut other, _) = open(&app, "/api/live/b", Some(&b), None, None)
        .await
        .unwrap();

    let (mut tx, mut rx) = flooder.split();
    let flood = tokio::spawn(async move {
        for _ in 0..2000 {
            if tx
                .send(Message::binary(vec![5u8; 64 * 1024]))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match rx.next().await {
                Some(Ok(Message::Close(Some(f)))) => return Some(u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await;
    flood.abort();
    // The upstream took nothing for longer than the route's timeout: the socket is
    // closed as stuck, and nothing piled up in between.
    assert_eq!(closed, Ok(Some(1008)));
    other.send(Message::text("unaffected")).await.unwrap();
    assert_eq!(
        next(&mut other, Duration::from_secs(2)).await,
        Some(Message::text("unaffected"))
    );
}
