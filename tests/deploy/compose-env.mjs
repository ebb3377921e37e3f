// docker-compose.yml read the way `docker compose` reads it (merge keys included): the
// sessiongate service's wiring and the `cluster` profile's are checked, then the
// environment of the service named on the command line (default: sessiongate) is
// printed, one VAR=value a line, after the image's own ENV (the Dockerfile's last
// stage) — what the container would see. The two secrets are interpolated from this
// process's environment, as compose would.
// Used by compose-env.sh, which starts sessiongate with that environment.
//
//   node compose-env.mjs [SERVICE]
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parse } from "yaml";

const repo = new URL("../../", import.meta.url);
const compose = parse(readFileSync(new URL("docker-compose.yml", repo), "utf8"), { merge: true });

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

// A service's `environment`, as written (a list of VAR=value or a mapping).
const environmentOf = (service) =>
  Array.isArray(service.environment)
    ? Object.fromEntries(service.environment.map((l) => [l.split("=")[0], l.split("=").slice(1).join("=")]))
    : { ...service.environment };
const environment = environmentOf(sg);

// Without the secrets compose must refuse to start (`:?`), not run with empty keys.
for (const secret of ["SESSIONGATE_AUTH__JWT_SECRET", "SESSIONGATE_SESSION__KEYS"]) {
  assert.throws(() => interpolate(environment[secret], {}), `${secret} is required (:?)`);
}

const interpolated = (written) =>
  Object.fromEntries(Object.entries(written).map(([k, v]) => [k, interpolate(v ?? "", process.env)]));
const env = interpolated(environment);

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

// --- Profile `cluster`: a Redis Cluster, sessiongate-1..3 on it, nginx in front. ---------
const inProfile = ([, s]) => (s.profiles ?? []).includes("cluster");
for (const name of ["redis", "postgres", "sessiongate"]) {
  assert.equal(services[name].profiles, undefined, `${name} is in no profile: \`docker compose up\` is unchanged`);
}
for (const [name, s] of Object.entries(services)) {
  if (!["redis", "postgres", "sessiongate"].includes(name)) {
    assert.deepEqual(s.profiles, ["cluster"], `${name} is in profile cluster only`);
  }
}
const named = (re) => Object.entries(services).filter(([n]) => re.test(n)).filter(inProfile);
const nodes = named(/^redis-node-\d+$/);
const instances = named(/^sessiongate-\d+$/);
const lb = services["sessiongate-lb"];
const init = services["redis-cluster-init"];
assert.equal(nodes.length, 6, "six Redis nodes (3 primaries, 3 replicas)");
assert.equal(instances.length, 3, "three sessiongate instances");
assert.ok(lb && init, "sessiongate-lb and redis-cluster-init");

// Fixed addresses: distinct, in the subnet, outside the range dynamic addresses come from.
const ipv4 = (a) => a.split(".").reduce((n, o) => n * 256 + Number(o), 0);
const inCidr = (a, cidr) => {
  const [base, bits] = cidr.split("/");
  const size = 2 ** (32 - Number(bits));
  return Math.floor(ipv4(a) / size) === Math.floor(ipv4(base) / size);
};
const [pool] = compose.networks?.cluster?.ipam?.config ?? [];
assert.ok(pool?.subnet && pool?.ip_range, "the cluster network has a subnet and an ip_range");
const fixed = {};
for (const [name, s] of Object.entries(services).filter(inProfile)) {
  const at = s.networks?.cluster?.ipv4_address;
  if (name === "redis-cluster-init") continue;
  assert.ok(at, `${name} has a fixed address on the cluster network`);
  assert.ok(inCidr(at, pool.subnet) && !inCidr(at, pool.ip_range), `${name}: ${at} in ${pool.subnet}, not in ${pool.ip_range}`);
  assert.ok(!Object.values(fixed).includes(at), `${name}: ${at} is taken`);
  fixed[name] = at;
}

// Each node runs in cluster mode and announces its own fixed address; the init makes the
// cluster of exactly those nodes, once they are healthy.
const script = init.command.join(" ");
for (const [name, s] of nodes) {
  const cmd = s.command.join(" ");
  assert.match(cmd, /--cluster-enabled yes/, `${name} is in cluster mode`);
  assert.ok(cmd.includes(`--cluster-announce-ip ${fixed[name]}`), `${name} announces ${fixed[name]}`);
  assert.ok(s.healthcheck, `${name} has a healthcheck`);
  assert.equal(init.depends_on?.[name]?.condition, "service_healthy", `redis-cluster-init waits for ${name}`);
}
const listed = script.match(/nodes="([^"]*)"/)?.[1].split(/\s+/) ?? [];
assert.deepEqual(listed.sort(), nodes.map(([n]) => `${fixed[n]}:6379`).sort(), "redis-cluster-init names every node");
assert.match(script, /--cluster create \$\$nodes --cluster-replicas 1 --cluster-yes/);

// The instances: the sessiongate service's configuration, with a cluster for redis.url,
// the balancer's URL and its address as the one trusted proxy.
const [, published] = String(lb.ports?.[0]).match(/^127\.0\.0\.1:(\d+):80$/) ?? [];
assert.ok(published, "sessiongate-lb is published on 127.0.0.1 only");
assert.ok(lb.volumes?.includes("./deploy/compose/nginx-lb.conf:/etc/nginx/conf.d/default.conf:ro"));
const lbConf = readFileSync(new URL("deploy/compose/nginx-lb.conf", repo), "utf8");
const upstream = [...lbConf.matchAll(/^\s*server\s+([^\s;]+);/gm)].map((m) => m[1]);
assert.deepEqual(upstream.sort(), instances.map(([n]) => `${n}:8080`).sort(), "nginx-lb.conf balances every instance");
assert.match(lbConf, /proxy_set_header X-Forwarded-For\s+\$proxy_add_x_forwarded_for;/);
const expected = { ...environment };
delete expected.SESSIONGATE_REDIS__URL;
delete expected.SESSIONGATE_SERVER__PUBLIC_URL;
for (const [name, s] of instances) {
  assert.equal(s.build, ".", `${name} is built from this repository's Dockerfile`);
  assert.equal(s.ports, undefined, `${name} publishes no port (only the balancer does)`);
  assert.equal(s.depends_on?.["redis-cluster-init"]?.condition, "service_completed_successfully");
  assert.equal(s.depends_on?.postgres?.condition, "service_healthy");
  assert.ok("default" in (s.networks ?? {}), `${name} is on the default network (postgres)`);
  assert.equal(lb.depends_on?.[name]?.condition, "service_healthy", `sessiongate-lb waits for ${name}`);
  const own = environmentOf(s);
  const { SESSIONGATE_REDIS__CLUSTER: seeds, SESSIONGATE_SERVER__TRUSTED_PROXIES: trusted,
          SESSIONGATE_SERVER__PUBLIC_URL: url, SESSIONGATE_SERVER__METRICS_LISTEN: _metrics, ...rest } = own;
  assert.deepEqual(rest, expected, `${name}: the sessiongate service's environment, less redis.url`);
  assert.deepEqual(JSON.parse(trusted), [fixed["sessiongate-lb"]], `${name} trusts sessiongate-lb only`);
  assert.equal(new URL(url).port, published, `${name}: server.public_url is the balancer's`);
  for (const seed of JSON.parse(seeds)) {
    const u = new URL(seed);
    assert.ok(nodes.some(([n]) => n === u.hostname) && u.port === "6379", `${name}: seed ${seed} is a node`);
  }
}

const target = process.argv[2] ?? "sessiongate";
assert.ok(services[target], `a service ${target}`);
const printed = target === "sessiongate" ? env : interpolated(environmentOf(services[target]));
for (const [k, v] of Object.entries({ ...image, ...printed })) {
  assert.ok(!v.includes("\n"), `${k} is one line`);
  console.log(`${k}=${v}`);
}
