# sessiongate — container image.
#
#   docker build -t sessiongate .
#   docker run --rm sessiongate keygen                  # print a fresh base64 256-bit key
#   docker run --rm -p 8080:8080 \
#     -e SESSIONGATE_AUTH__JWT_SECRET=... -e 'SESSIONGATE_SESSION__KEYS=["..."]' sessiongate
#
# Configuration is the embedded config/default.toml, then `--config FILE` (mount one, e.g.
# `-v ./prod.toml:/app/config.toml:ro` and run `--config /app/config.toml serve`), then
# SESSIONGATE_* environment variables. See docker-compose.yml for a full stack.

# ---------------------------------------------------------------------------------------
# Builder: the crate needs rustc >= 1.85 (rust-version in Cargo.toml); sqlx's SQLite
# driver compiles bundled SQLite C code (libsqlite3-sys), so gcc is needed — this image
# has it.
# ---------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /build

# 1. Dependencies only: with the manifest and lock file alone, build a dummy crate of the
#    same shape (lib src/lib.rs + bin src/main.rs). This layer is reused until Cargo.toml
#    or Cargo.lock change, so editing the sources does not rebuild every dependency.
#    Afterwards the dummy crate's own artifacts are deleted (dependencies stay), so the
#    real build below recompiles sessiongate whatever the copied files' mtimes are.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src \
      target/release/sessiongate target/release/sessiongate.d \
      target/release/deps/sessiongate-* target/release/deps/libsessiongate-* \
      target/release/.fingerprint/sessiongate-*

# 2. The real sources. config/default.toml (include_str!) and migrations/ (sqlx::migrate!)
#    are embedded at compile time, so they must be here, not only at run time.
COPY src/ src/
COPY config/ config/
COPY migrations/ migrations/
COPY openapi/ openapi/
RUN cargo build --release --locked

# ---------------------------------------------------------------------------------------
# Runtime: same Debian release as the builder (glibc), CA roots for outbound TLS to
# identity providers and upstream APIs, curl for the HEALTHCHECK. Nothing else.
# ---------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

# An unprivileged user with a fixed uid/gid, so mounted volumes can be chown'ed to match.
RUN groupadd --system --gid 10001 sessiongate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin sessiongate

WORKDIR /app

# /app/data: the embedded defaults keep the SQLite database (data/sessiongate.db) and the
# mail outbox (data/outbox) here, relative to the working directory; it must be writable.
# Mount a volume on it to keep them.
#
# /app/web: server.static_dir defaults to "web": the demo SPA served at `/`. Replace it
# with your own SPA's build output (mount or COPY over it), or set
# SESSIONGATE_SERVER__STATIC_DIR. (The NextAuth-compat page needs an npm build and is
# not in the image.)
RUN mkdir -p /app/data \
 && chown 10001:10001 /app/data

COPY --from=builder /build/target/release/sessiongate /app/sessiongate
COPY web/index.html web/app.js web/style.css /app/web/

USER 10001:10001

# The embedded default binds 127.0.0.1, unreachable from outside a container.
ENV SESSIONGATE_SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080

# /readyz is 200 only when the database and (if configured) Redis answer.
# If you change the listen port, change it here too.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1

ENTRYPOINT ["/app/sessiongate"]
CMD ["serve"]
