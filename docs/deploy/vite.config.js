// vite.config.js — the Vite dev server in front of sessiongate.
//
// The browser talks only to Vite (http://localhost:5173); Vite serves your SPA and passes
// sessiongate's paths through. SPA and sessiongate share one origin, as they do in
// production behind nginx: the session cookie is first-party, no CORS is involved, and
// next-auth/react or plain fetch("/api/...") work without any base URL.
//
// Start sessiongate with the dev server's origin as its public URL (redirects, sign-in
// callbacks and OAuth redirect URIs are built from it), and without the demo SPA:
//
//   SESSIONGATE_SERVER__PUBLIC_URL=http://localhost:5173 \
//   SESSIONGATE_SERVER__STATIC_DIR= cargo run            # or the container, see docker.md
//
// Open the app at exactly that origin (not http://127.0.0.1:5173): sign-in redirects go
// to the public URL, and a cookie set for one host name is not sent to the other.
// tests/deploy/vite.sh runs this file as it is, with only SESSIONGATE_URL and --port set.
import { defineConfig } from "vite";

// Where sessiongate listens (server.listen).
const sessiongate = process.env.SESSIONGATE_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  server: {
    port: 5173,
    strictPort: true,
    proxy: {
      // /api/auth/*: sign-in, session, sign-out (NextAuth's protocol);
      // /api/**: your APIs, called with the session's token by sessiongate.
      "/api/": sessiongate,
      // Only for "Sign in with sessiongate" and apps that sign in through sessiongate's
      // OAuth server: its pages and discovery are served at the public URL, too.
      "/oauth/": sessiongate,
      "/.well-known/": sessiongate,
      "/manage-apps": sessiongate,
    },
  },
});
