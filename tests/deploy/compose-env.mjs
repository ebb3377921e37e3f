// docker-compose.yml read the way `docker compose` reads it: the sessiongate service's
// wiring is checked, then its environment is printed, one VAR=value a line, after the
// image's own ENV (the Dockerfile's last stage) — what the container would see. The two
// secrets are interpolated from this process's environment, as compose would.
// Used by compose-env.sh, which starts sessiongate with that environment.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parse } from "yaml";

const repo = new URL("../../", import.meta.url);
const compose = parse(readFileSync(new URL("docker-compose.yml", repo), "utf8"));

// Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error},
// ${VAR?error}, and $$ for a literal $.
function interpolate(text, env) {
  return String(text).replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (all, name, colon, op, arg, bare) => {
      if (all === "$$") return "$";
      if (bare) return env[bare] ?? "";
      const value = env[name];
      const missing = value === undefined || (colon === ":" && value === "");
      if (op === "?" && missing) throw new Error(`${name}: ${arg}`);
      if (op === "-" && missing) return arg;
      return value ?? "";
    },
  );
}

const services = compose.services ?? {};
const sg = services.sessiongate;
assert.ok(sg, "a `sessiongate` service");
assert.equal(sg.build, ".", "sessiongate is built from this repository's Dockerfile");

// Published ports: the stack is plain http, so only on loopback; never the metrics port.
for (const p of sg.ports ?? []) {
  assert.match(String(p), /^127\.0\.0\.1:\d+:\d+$/, `port ${p} must be published on 127.0.0.1 only`);
  assert.ok(!String(p).endsWith(":9464"), "the metrics port is never published");
}

// It waits for healthy stores, and the stores it names are the services that exist.
for (const store of ["redis", "postgres"]) {
  assert.ok(services[store]?.healthcheck, `a ${store} service with a healthcheck`);
  assert.equal(sg.depends_on?.[store]?.condition, "service_healthy", `waits for ${store}`);
}

const environment = Array.isArray(sg.environment)
  ? Object.fromEntries(sg.environment.map((l) => [l.split("=")[0], l.split("=").slice(1).join("=")]))
  : { ...sg.environment };

// Without the secrets compose must refuse to start (`:?`), not run with empty keys.
for (const secret of ["SESSIONGATE_AUTH__JWT_SECRET", "SESSIONGATE_SESSION__KEYS"]) {
  assert.throws(() => interpolate(environment[secret], {}), `${secret} is required (:?)`);
}

const env = Object.fromEntries(
  Object.entries(environment).map(([k, v]) => [k, interpolate(v ?? "", process.env)]),
);

// The store URLs name the compose services, with the credentials PostgreSQL is given.
const pg = services.postgres.environment;
const db = new URL(env.SESSIONGATE_DATABASE__URL);
assert.equal(db.protocol, "postgres:");
assert.equal(db.hostname, "postgres", "database.url names the postgres service");
assert.equal(decodeURIComponent(db.username), pg.POSTGRES_USER);
assert.equal(decodeURIComponent(db.password), pg.POSTGRES_PASSWORD);
assert.equal(db.pathname, `/${pg.POSTGRES_DB}`);
const redis = new URL(env.SESSIONGATE_REDIS__URL);
assert.equal(redis.hostname, "redis", "redis.url names the redis service");

// The image's ENV (last stage of the Dockerfile), then the service's environment.
const dockerfile = readFileSync(new URL("Dockerfile", repo), "utf8").replace(/\\\n/g, " ");
const lastStage = dockerfile.split(/^FROM\s/m).pop();
const image = {};
for (const line of lastStage.split("\n")) {
  const m = line.match(/^ENV\s+(.*)$/);
  if (!m) continue;
  for (const [, k, v] of m[1].matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)) {
    image[k] = v.startsWith('"') ? v.slice(1, -1) : v;
  }
}
assert.equal(image.SESSIONGATE_SERVER__LISTEN, "0.0.0.0:8080", "the image listens on every interface");
assert.equal(image.SESSIONGATE_SERVER__STATIC_DIR, "", "the image serves no SPA by default");

for (const [k, v] of Object.entries({ ...image, ...env })) {
  assert.ok(!v.includes("\n"), `${k} is one line`);
  console.log(`${k}=${v}`);
}
