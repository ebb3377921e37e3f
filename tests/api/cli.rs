//! The binary as a user runs it: configuration errors, keygen, openapi, serve with env
//! overrides and JSON logs, graceful shutdown on SIGTERM.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::tempdir::TempDir;

use crate::helpers::{serve_binary, sessiongate};

#[test]
fn a_bad_env_value_stops_the_start_naming_the_key() {
    let out = sessiongate()
        .env("SESSIONGATE_SERVER__LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("server.listen"), "{stderr}");
}

#[test]
fn clients_add_list_remove_and_signing_key_rotation() {
    let dir = TempDir::new();
    let db = format!("sqlite://{}/cli.db", dir.0.display());
    let run = |args: &[&str]| {
        let out = sessiongate()
            .env("SESSIONGATE_DATABASE__URL", &db)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&[
        "clients",
        "add",
        "--name",
        "Prescriptions",
        "--redirect-uri",
        "http://127.0.0.1:5000/callback",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let added: Value = serde_json::from_str(out.trim()).unwrap();
    let id = added["client_id"].as_str().unwrap().to_owned();
    assert!(added["client_secret"].as_str().unwrap().len() >= 43);
    let (_, out, _) = run(&[
        "clients",
        "add",
        "--name",
        "SPA",
        "--redirect-uri",
        "https://spa.example/cb",
        "--public",
        "--json",
    ]);
    let public: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(public["client_secret"].is_null());

    let (_, out, _) = run(&["clients", "list", "--json"]);
    let list: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        !out.contains(added["client_secret"].as_str().unwrap()),
        "secrets are never listed"
    );

    let (code, _, err) = run(&["clients", "remove", &id]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&["clients", "remove", &id]);
    assert_eq!(code, Some(1));
    assert!(err.contains(&format!("no client `{id}`")), "{err}");
    let (code, _, err) = run(&[
        "clients",
        "add",
        "--name",
        "Bad",
        "--redirect-uri",
        "http://evil.example/cb",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("must be https"), "{err}");
    for (flag, value, says) in [
        (
            "--id-token-alg",
            "HS256",
            "id_token_signed_response_alg `HS256` is not offered",
        ),
        (
            "--post-logout-redirect-uri",
            "http://evil.example/bye",
            "post_logout_redirect_uris",
        ),
        (
            "--backchannel-logout-uri",
            "https://rp.example/bc#frag",
            "backchannel_logout_uri",
        ),
        // Front-Channel Logout §2: on the origin of one of the redirect URIs.
        (
            "--frontchannel-logout-uri",
            "https://elsewhere.example/fc",
            "frontchannel_logout_uri `https://elsewhere.example/fc` must have the scheme",
        ),
    ] {
        let (code, _, err) = run(&[
            "clients",
            "add",
            "--name",
            "Bad",
            "--redirect-uri",
            "https://rp.example/cb",
            flag,
            value,
        ]);
        assert_eq!(code, Some(1), "{flag}");
        assert!(err.contains(says), "{flag}: {err}");
    }

    // Framed under `frame-src`, whose hosts are names or IPv4 addresses (CSP §2.3.1).
    let (code, _, err) = run(&[
        "clients",
        "add",
        "--name",
        "Six",
        "--redirect-uri",
        "http://[::1]:5000/cb",
        "--frontchannel-logout-uri",
        "http://[::1]:5000/fc",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("must be a name or an IPv4 address"), "{err}");

    let (_, first, _) = run(&["rotate-signing-key"]);
    let (_, second, _) = run(&["rotate-signing-key"]);
    // Both algorithms' keys rotate together: one new kid of each per rotation.
    let kids: Vec<&str> = first.lines().collect();
    assert_eq!(kids.len(), 2, "{first}");
    assert!(
        kids[0].starts_with("rs256-") && kids[1].starts_with("es256-"),
        "{first}"
    );
    assert!(second.lines().all(|k| !kids.contains(&k)), "{second}");
}

#[test]
fn provider_tables_are_checked_at_start() {
    let dir = TempDir::new();
    let file = dir.0.join("providers.toml");
    std::fs::write(
        &file,
        "[providers.acme]\ntype = \"oidc\"\nissuer = \"http://id.acme.example\"\n\
         client_id = \"a\"\nclient_secret = \"b\"\n\
         [providers.forge]\ntype = \"oauth2\"\nclient_id = \"a\"\nclient_secret = \"b\"\n\
         authorize_url = \"https://forge.example/a\"\ntoken_url = \"https://forge.example/t\"\n\
         profile_url = \"https://forge.example/me\"\nclientsecret = \"typo\"\n",
    )
    .unwrap();
    let out = sessiongate().arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("providers.acme.issuer: `http://id.acme.example` must be https"),
        "{stderr}"
    );
    assert!(
        stderr.contains("providers.forge.clientsecret: unknown configuration key"),
        "{stderr}"
    );

    // 42 needs both halves of its credentials (a number from the environment is text).
    let out = sessiongate()
        .env("SESSIONGATE_PROVIDERS__FORTYTWO__CLIENT_ID", "12345")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "sessiongate: invalid configuration: providers.fortytwo.client_secret: required"
    );
}

#[test]
fn config_file_errors_name_each_key() {
    let dir = TempDir::new();
    let file = dir.0.join("bad.toml");
    std::fs::write(
        &file,
        "[server]\nlisen = \"127.0.0.1:1\"\n[session]\nidle_timeout = \"soon\"\n",
    )
    .unwrap();
    let out = sessiongate().arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.lisen: unknown configuration key"),
        "{stderr}"
    );

    std::fs::write(&file, "[session]\nidle_timeout = \"soon\"\n").unwrap();
    let out = sessiongate().arg("--config").arg(&file).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("session.idle_timeout"));

    std::fs::write(
        &file,
        "[auth]\njwt_secret = \"short\"\n[server]\npublic_url = \"ftp://x\"\nworkers = 1000\n",
    )
    .unwrap();
    let out = sessiongate().arg("--config").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.workers: at most 256"), "{stderr}");
    assert!(
        stderr.contains("auth.jwt_secret: must be at least 32 characters"),
        "{stderr}"
    );
    assert!(
        stderr.contains("server.public_url"),
        "every problem is reported: {stderr}"
    );

    let out = sessiongate()
        .args(["--config", "/no/such/file.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn keygen_prints_a_256_bit_key_and_openapi_the_spec() {
    let out = sessiongate().arg("keygen").output().unwrap();
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap();
    assert!(sessiongate::crypto::decode_key(key.trim()).is_some());

    let out = sessiongate().arg("openapi").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        sessiongate::openapi::spec_json()
    );
}

#[tokio::test]
async fn serve_reads_env_logs_json_and_shuts_down_gracefully() {
    let dir = TempDir::new();
    let mut cmd = sessiongate();
    cmd.arg("serve")
        .env("SESSIONGATE_SERVER__LISTEN", "127.0.0.1:0")
        .env("SESSIONGATE_SERVER__METRICS_LISTEN", "")
        .env(
            "SESSIONGATE_DATABASE__URL",
            format!("sqlite://{}/users.db", dir.0.display()),
        )
        .env("SESSIONGATE_LOG__FORMAT", "json")
        .env("SESSIONGATE_LOG__REQUESTS", "true");
    let served = serve_binary(cmd);
    let (mut child, base, rx) = (served.child, served.base, served.log);
    let lines: Vec<Value> = served
        .startup
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("JSON log line: {line}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"),
        "memory-store warning logged"
    );
    let client = reqwest::Client::new();
    let resp = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // the request's log line is JSON and carries its request id
    let request_log = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("request logged");
        let json: Value = serde_json::from_str(&line).unwrap();
        if json["fields"]["message"] == "request finished" {
            break json;
        }
    };
    assert_eq!(request_log["fields"]["path"], "/healthz");
    assert_eq!(request_log["fields"]["method"], "GET");
    assert_eq!(request_log["request_id"].as_str().map(str::len), Some(32));

    // A request in flight when SIGTERM arrives still gets its answer.
    let pending = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/v1/auth/register");
        async move {
            client
                .post(url)
                .json(&serde_json::json!({"username": "late_user", "email": "late@example.com", "password": "a long enough password"}))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let resp = pending.await.unwrap().expect("in-flight request completes");
    assert_eq!(resp.status(), 201);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exits cleanly: {status:?}");
}
