// Socket soak: SOCKETS_N WebSockets (1,000 by default) held open through sessiongate's
// proxy for SOCKETS_SECONDS (60), each echoing a message every 5 s, against the `ws`
// package's echo server (started here). Prints one JSON line with the server's RSS
// before, with every socket open, at the end, and after they closed (bench/sockets.sh
// passes the server's pid and address).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
// The e2e tests' `ws` (tests/e2e/package.json pins it).
const { WebSocket, WebSocketServer } = createRequire(join(ROOT, "tests/e2e/package.json"))("ws");

const [base, pid, echoPortFile] = process.argv.slice(2);
const N = Number(process.env.SOCKETS_N || 1000);
const SECONDS = Number(process.env.SOCKETS_SECONDS || 60);
const rssKib = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (process.env.SOCKETS_ECHO) {
  // Echo mode: the upstream, in its own process (so its memory is not the server's).
  const http = createServer();
  new WebSocketServer({ server: http }).on("connection", (ws) => ws.on("message", (d, binary) => ws.send(d, { binary })));
  http.listen(0, "127.0.0.1", () => {
    process.stdout.write(`${http.address().port}\n`);
  });
} else {
  const password = "violet tractor umbrella 93";
  const name = `sock${process.pid}`;
  await fetch(`${base}/v1/auth/register`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: name, email: `${name}@example.com`, password }),
  });
  const csrfResp = await fetch(`${base}/api/auth/csrf`);
  const csrfCookie = csrfResp.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  const { csrfToken } = await csrfResp.json();
  const signIn = await fetch(`${base}/api/auth/callback/credentials`, {
    method: "POST", redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: csrfCookie },
    body: new URLSearchParams({ csrfToken, username: name, password, json: "true" }),
  });
  const cookie = signIn.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  if (!cookie.includes("sessiongate=")) throw new Error(`no session: ${signIn.status}`);

  await sleep(1000);
  const before = rssKib();
  const url = `${base.replace(/^http/, "ws")}/api/live/feed`;
  const sockets = [];
  let echoes = 0, failures = 0, closedEarly = 0;
  for (let i = 0; i < N; i += 1) {
    const ws = new WebSocket(url, { headers: { cookie, origin: base } });
    ws.on("message", () => { echoes += 1; });
    ws.on("close", () => { if (!ws.done) closedEarly += 1; });
    ws.on("error", () => { failures += 1; });
    sockets.push(await new Promise((ok) => { ws.once("open", () => ok(ws)); ws.once("error", () => ok(ws)); }));
  }
  const open = sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length;
  await sleep(1000);
  const allOpen = rssKib();
  const started = Date.now();
  let sent = 0;
  while (Date.now() - started < SECONDS * 1000) {
    for (const ws of sockets) {
      if (ws.readyState === WebSocket.OPEN) { ws.send(`ping ${sent}`); sent += 1; }
    }
    await sleep(5000);
  }
  await sleep(500);
  const end = rssKib();
  for (const ws of sockets) { ws.done = true; ws.close(1000); }
  await sleep(2000);
  const closed = rssKib();
  console.log(JSON.stringify({
    sockets: N, open, seconds: SECONDS, sent, echoes, failures, closed_early: closedEarly,
    rss_kib_before: before, rss_kib_all_open: allOpen, rss_kib_end: end, rss_kib_after_close: closed,
    kib_per_socket: Number(((end - before) / Math.max(open, 1)).toFixed(1)),
  }));
  if (open !== N || failures || closedEarly || echoes < sent) process.exitCode = 1;
}
