# sessiongate — container image.
#
#   docker build -t sessiongate .
#   docker run --rm sessiongate keygen                  # print a fresh base64 256-bit key
#   docker run --rm -p 127.0.0.1:8080:8080 \
#     -e SESSIONGATE_AUTH__JWT_SECRET=... -e 'SESSIONGATE_SESSION__KEYS=["..."]' sessiongate
#
# Configuration is the embedded config/default.toml, then `--config FILE` (mount one, e.g.
# `-v ./prod.toml:/app/config.toml:ro` and run `--config /app/config.toml serve`), then
# SESSIONGATE_* environment variables. See docker-compose.yml for a full stack and
# docs/deploy/docker.md for serving your own SPA, metrics and TLS.
#
# CI reproduces the builder stage below without a Docker engine (.ci/docker-steps.sh): it
# copies exactly what the COPY lines name (after .dockerignore) into an empty directory
# and runs the RUN lines there. Keep RUN paths relative to WORKDIR so it can.

# ---------------------------------------------------------------------------------------
# Builder: the crate needs rustc >= 1.89 (rust-version in Cargo.toml); sqlx's SQLite
# driver compiles bundled SQLite C code (libsqlite3-sys), so gcc is needed — this image
# has it.
# ---------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /build

# 1. Dependencies only: with the manifest and lock file alone, build a dummy crate of the
#    same shape. This layer is reused until Cargo.toml or Cargo.lock change, so editing the
#    sources does not rebuild every dependency.
#    Cargo refuses a manifest whose declared targets have no file (`[[bench]] name =
#    "load"` needs benches/load.rs), so the awk program below reads every [lib], [[bin]],
#    [[bench]], [[test]] and [[example]] table of Cargo.toml (its `path`, or Cargo's default
#    path for its `name`) and writes a stub for each (`fn main() {}`; an empty file for the
#    lib): a target added later cannot break this step again. src/lib.rs and src/main.rs are stubbed too (targets Cargo finds
#    without a table). Afterwards the dummy crate's artifacts are removed (`cargo clean -p`;
#    the dependencies stay), so the real build below recompiles the package whatever the
#    copied files' mtimes are, and the lib/bin stubs are deleted, so a bin outside src/
#    that step 2 does not COPY fails loudly instead of shipping a stub. The bench, test and
#    example stubs stay: `cargo build` never compiles them, but the manifest needs them.
COPY Cargo.toml Cargo.lock ./
RUN set -eu; \
    awk ' \
      function flush() { if (kind != "") print kind, (path != "" ? path : guess()); kind = "" }; \
      function guess() { \
        if (kind == "lib") return "src/lib.rs"; \
        if (kind == "bin") return (name == pkg ? "src/main.rs" : "src/bin/" name ".rs"); \
        return (kind == "bench" ? "benches/" : kind == "test" ? "tests/" : "examples/") name ".rs" }; \
      function value(v) { \
        v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]*(#.*)?$/, "", v); \
        gsub(/^["\047]|["\047]$/, "", v); return v }; \
      /^[ \t]*\[/ { \
        flush(); table = $0; sub(/#.*/, "", table); gsub(/[][ \t]/, "", table); \
        if (table ~ /^(lib|bin|bench|test|example)$/) { kind = table; name = ""; path = "" }; \
        next }; \
      table == "package" && /^[ \t]*name[ \t]*=/ { pkg = value(); print "package", pkg }; \
      kind != "" && /^[ \t]*name[ \t]*=/ { name = value() }; \
      kind != "" && /^[ \t]*path[ \t]*=/ { path = value() }; \
      END { flush() }' Cargo.toml > .targets; \
    printf 'lib src/lib.rs\nbin src/main.rs\n' >> .targets; \
    while read -r kind path; do \
      case "$kind" in \
        package) package="$path" ;; \
        lib) mkdir -p "$(dirname "$path")"; touch "$path" ;; \
        *) mkdir -p "$(dirname "$path")"; [ -s "$path" ] || echo 'fn main() {}' > "$path" ;; \
      esac; \
    done < .targets; \
    cat .targets; \
    cargo build --release --locked; \
    cargo clean --release --locked -p "$package"; \
    while read -r kind path; do \
      case "$kind" in lib|bin) rm -f "$path" ;; esac; \
    done < .targets; \
    rm -rf src .targets

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
RUN mkdir -p /app/data \
 && chown 10001:10001 /app/data

COPY --from=builder /build/target/release/sessiongate /app/sessiongate

USER 10001:10001

# The embedded default binds 127.0.0.1, unreachable from outside a container.
ENV SESSIONGATE_SERVER__LISTEN=0.0.0.0:8080
# No SPA unless you ask for one (the embedded default, "web", is the repository's demo).
# Serve your own build output: mount or COPY it, e.g. to /app/web, and set
# SESSIONGATE_SERVER__STATIC_DIR=/app/web (docs/deploy/docker.md).
ENV SESSIONGATE_SERVER__STATIC_DIR=""
# /metrics stays on the container's loopback (server.metrics_listen = 127.0.0.1:9464),
# so nothing outside can scrape it. To scrape it from a private network, set
# SESSIONGATE_SERVER__METRICS_LISTEN=0.0.0.0:9464 and publish 9464 only there (never
# next to 8080 on a public interface).
EXPOSE 8080

# /readyz is 200 only when the database and (if configured) Redis answer.
# If you change the listen port, change it here too.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1

ENTRYPOINT ["/app/sessiongate"]
CMD ["serve"]
