// A local stand-in for the 42 intranet, speaking its OAuth2 over real HTTP on 127.0.0.1:
// /oauth/authorize approves at once and redirects with a code; /oauth/token takes
// authorization_code (checking the client, redirect_uri, single use and the PKCE
// verifier) and refresh_token; /v2/me answers a 42-shaped profile for a live token.
import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";

export const CLIENT_ID = "u-s4t2ud-e2e";
export const CLIENT_SECRET = "s-s4t2ud-e2e-secret";

const token = (p) => `${p}-${randomBytes(16).toString("hex")}`;
const b64url = (buf) => buf.toString("base64").replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

export function startFortyTwo() {
  const codes = new Map();
  const access = new Set();
  const refresh = new Set();
  const user = {
    id: 90210, login: "jdoe", email: "jdoe@student.42.fr", first_name: "Jane",
    last_name: "Doe", displayname: "Jane Doe", "staff?": false, "active?": true,
    image: { link: "https://cdn.intra.42.fr/users/jdoe.jpg", versions: {} },
  };
  const json = (res, status, body) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const issue = () => {
    const a = token("at"), r = token("rt");
    access.add(a); refresh.add(r);
    return { access_token: a, token_type: "bearer", expires_in: 7200, refresh_token: r,
             scope: "public", created_at: Math.floor(Date.now() / 1000) };
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    if (req.method === "GET" && url.pathname === "/oauth/authorize") {
      const q = url.searchParams;
      if (q.get("client_id") !== CLIENT_ID || q.get("code_challenge_method") !== "S256") {
        return json(res, 400, { error: "invalid_request" });
      }
      const code = token("code");
      codes.set(code, { redirect: q.get("redirect_uri"), challenge: q.get("code_challenge") });
      const back = new URL(q.get("redirect_uri"));
      back.searchParams.set("code", code);
      back.searchParams.set("state", q.get("state"));
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (req.method === "POST" && url.pathname === "/oauth/token") {
      let body = "";
      req.on("data", (c) => { body += c; });
      req.on("end", () => {
        const f = new URLSearchParams(body);
        if (f.get("client_id") !== CLIENT_ID || f.get("client_secret") !== CLIENT_SECRET) {
          return json(res, 401, { error: "invalid_client" });
        }
        if (f.get("grant_type") === "authorization_code") {
          const grant = codes.get(f.get("code"));
          codes.delete(f.get("code"));
          const verifier = f.get("code_verifier") || "";
          if (!grant || grant.redirect !== f.get("redirect_uri")
              || b64url(createHash("sha256").update(verifier).digest()) !== grant.challenge) {
            return json(res, 400, { error: "invalid_grant" });
          }
          return json(res, 200, issue());
        }
        if (f.get("grant_type") === "refresh_token" && refresh.delete(f.get("refresh_token"))) {
          return json(res, 200, issue());
        }
        return json(res, 400, { error: "invalid_grant" });
      });
      return;
    }
    if (req.method === "GET" && url.pathname === "/v2/me") {
      const auth = req.headers.authorization || "";
      if (!access.has(auth.replace(/^Bearer /, ""))) return json(res, 401, { error: "invalid_token" });
      return json(res, 200, user);
    }
    json(res, 404, { error: "not_found" });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({ base: `http://127.0.0.1:${server.address().port}`, close: () => server.close() });
    });
  });
}
