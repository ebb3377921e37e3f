// next.config.js — a Next.js app that used NextAuth, with sessiongate in its place.
//
// The browser talks only to Next; these rewrites pass sessiongate's paths through, so the
// app and sessiongate share one origin: the session cookie is first-party and
// next-auth/react's <SessionProvider>, useSession, signIn and signOut keep calling
// /api/auth/* as before. Delete the NextAuth route (pages/api/auth/[...nextauth].js or
// app/api/auth/[...nextauth]/route.js); docs/deploy/use-with-your-app.md lists the rest.
//
// Start sessiongate with Next's origin as its public URL, e.g. for `next dev`:
//
//   SESSIONGATE_SERVER__PUBLIC_URL=http://localhost:3000 \
//   SESSIONGATE_SERVER__STATIC_DIR= cargo run
//
// tests/deploy/next.sh runs this file as it is, with only SESSIONGATE_URL set.

// Where sessiongate listens (server.listen), as Next's server reaches it.
const sessiongate = process.env.SESSIONGATE_URL ?? "http://127.0.0.1:8080";

/** @type {import('next').NextConfig} */
const nextConfig = {
  async rewrites() {
    // A plain array is checked after your own files under pages/ (and app/, public/) but
    // before dynamic routes: a static route of yours such as pages/api/hello.js still
    // answers, a leftover pages/api/auth/[...nextauth].js does not. Everything else under
    // /api goes to sessiongate (/api/auth/*: sessions; /api/**: your upstream APIs, called
    // with the session's token).
    return [
      { source: "/api/:path*", destination: `${sessiongate}/api/:path*` },
      // Only for "Sign in with sessiongate" and apps that sign in through sessiongate's
      // OAuth server: its pages and discovery are served at the public URL, too.
      { source: "/oauth/:path*", destination: `${sessiongate}/oauth/:path*` },
      { source: "/.well-known/:path*", destination: `${sessiongate}/.well-known/:path*` },
      { source: "/manage-apps", destination: `${sessiongate}/manage-apps` },
    ];
  },
};

module.exports = nextConfig;
