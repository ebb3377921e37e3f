#!/usr/bin/env bash
# The Docker image's build, checked without a Docker engine.
#
# Reads the Dockerfile and reproduces its builder stage in a fresh directory: every COPY
# from the build context copies exactly what it names, filtered by .dockerignore as
# `docker build` filters it, into that directory (the stage's WORKDIR), and every RUN runs
# there with /bin/sh -c, in order. Then it checks what the image takes from the stage
# (each `COPY --from=builder` source must exist) and runs the image's ENTRYPOINT binary
# with --version, so a stub left by the dependency-caching step would fail. Every other
# stage's COPY from the context must find its sources too. So a Dockerfile that cannot
# build (a missing file, a wrong COPY, a .dockerignore that hides a source, a manifest
# Cargo refuses) fails here the way it would fail in `docker build`.
#
# Cheap enough for CI, without changing what is checked:
# - The stage's `target/` is a symlink to target/docker-steps/target, which persists, so
#   a re-run on the same machine rebuilds only what changed (as Docker's layer cache
#   would). The stage directory sits at a fixed path, so Cargo's fingerprints stay valid.
# - The release profile is built at opt-level 0, without LTO and with 16 codegen units
#   (CARGO_PROFILE_RELEASE_* overrides). Optimisation changes how long rustc and the
#   linker spend on code, not whether the Dockerfile's steps succeed: the same manifest,
#   lock file (--locked), targets, features, cfg set (debug-assertions stay off) and
#   sources are compiled and linked. DOCKER_STEPS_FAITHFUL=1 drops the overrides.
#   Measured on a 2-core machine: the dependencies take about 3 minutes cold either
#   way, but sessiongate itself, rebuilt on every run, takes ~20 s instead of ~200 s
#   (thin LTO at opt-level 3); a warm re-run is ~20 s in all.
#
#   bash .ci/docker-steps.sh
#   DOCKER_STEPS_CONTEXT=/some/checkout bash .ci/docker-steps.sh   # another context
# Environment: DOCKER_STEPS_CONTEXT (default: the repository), DOCKER_STEPS_DOCKERFILE
# (default: <context>/Dockerfile), DOCKER_STEPS_STAGE (default: builder),
# DOCKER_STEPS_CACHE (default: <repository>/target/docker-steps), DOCKER_STEPS_FAITHFUL.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
context="$(cd "${DOCKER_STEPS_CONTEXT:-$repo}" && pwd)"
dockerfile="${DOCKER_STEPS_DOCKERFILE:-$context/Dockerfile}"
stage="${DOCKER_STEPS_STAGE:-builder}"
cache="${DOCKER_STEPS_CACHE:-$repo/target/docker-steps}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"

exec python3 - "$context" "$dockerfile" "$stage" "$cache" <<'PY'
import json, os, re, shutil, subprocess, sys, time

context, dockerfile, stage_name, cache = sys.argv[1:5]
root = os.path.join(cache, "root")      # the stage's filesystem: "/" of the container
logs = os.path.join(cache, "logs")


def fail(msg):
    print(f"docker-steps: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


# --- Dockerfile parsing (the subset of the format this repository uses) -----------------

def instructions(path):
    """Logical instructions: (line number, KEYWORD, rest), continuation lines joined."""
    out, buf, start = [], None, 0
    with open(path) as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        stripped = line.strip()
        if n <= 5 and re.match(r"#\s*escape\s*=", stripped):
            fail(f"{path}:{n}: a custom escape character is not supported")
        if buf is None:
            if not stripped or stripped.startswith("#"):
                continue
            buf, start = "", n
        elif not stripped or stripped.startswith("#"):
            continue                        # comments and blank lines inside a continuation
        m = re.search(r"\\[ \t]*$", line)
        if m:
            buf += line[: m.start()]
            continue
        buf += line
        keyword, _, rest = buf.strip().partition(" ")
        out.append((start, keyword.upper(), rest.strip()))
        buf = None
    if buf is not None:
        fail(f"{path}: the last instruction ends with a line continuation")
    return out


def split_flags(rest):
    flags = []
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        flags.append(flag)
        rest = rest.lstrip()
    return flags, rest


def substitute(text, env):
    def repl(m):
        name = m.group(1) or m.group(2)
        return env.get(name, "")
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, text)


def copy_args(rest, env):
    if rest.startswith("["):
        args = json.loads(rest)
    else:
        args = rest.split()
    args = [substitute(a, env) for a in args]
    if len(args) < 2:
        fail(f"COPY needs a source and a destination: {rest}")
    return args[:-1], args[-1]


def parse_env(rest, env):
    if "=" not in rest.split(" ")[0]:
        key, _, value = rest.partition(" ")
        return [(key, substitute(value.strip(), env))]
    pairs = []
    for m in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\'[^\']*\'|\S*)', rest):
        value = m.group(2)
        if value[:1] in "\"'":
            value = value[1:-1]
        pairs.append((m.group(1), substitute(value, env)))
    return pairs


stages, current = [], None
for line, keyword, rest in instructions(dockerfile):
    if keyword == "FROM":
        flags, rest = split_flags(rest)
        words = rest.split()
        name = words[2] if len(words) >= 3 and words[1].lower() == "as" else str(len(stages))
        current = {"name": name, "image": words[0], "line": line, "steps": []}
        stages.append(current)
    elif current is None:
        if keyword != "ARG":
            fail(f"{dockerfile}:{line}: {keyword} before the first FROM")
    else:
        current["steps"].append((line, keyword, rest))
by_name = {s["name"]: s for s in stages}
if stage_name not in by_name:
    fail(f"{dockerfile}: no stage named {stage_name!r} (stages: {[s['name'] for s in stages]})")
builder = by_name[stage_name]


# --- .dockerignore, with moby/patternmatcher's rules ----------------------------------

def load_ignore():
    for name in (os.path.basename(dockerfile) + ".dockerignore", ".dockerignore"):
        path = os.path.join(os.path.dirname(dockerfile) if name != ".dockerignore" else context, name)
        if os.path.isfile(path):
            break
    else:
        return []
    patterns = []
    with open(path) as f:
        for raw in f:
            p = raw.strip()
            if not p or p.startswith("#"):
                continue
            exclusion = p.startswith("!")
            if exclusion:
                p = p[1:].strip()
            p = os.path.normpath(p.lstrip("/")) if p.lstrip("/") else "."
            patterns.append((exclusion, re.compile(pattern_regex(p)), p))
    return patterns


def pattern_regex(p):
    out, i = "^", 0
    while i < len(p):
        c = p[i]
        if c == "*":
            if p[i + 1 : i + 2] == "*":
                i += 1
                if p[i + 1 : i + 2] == "/":
                    i += 1
                    out += "(.*/)?"
                else:
                    out += ".*"
            else:
                out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = p.find("]", i + 1)
            if j < 0:
                fail(f".dockerignore: bad pattern {p!r}")
            cls = p[i + 1 : j]
            out += "[" + ("^" + cls[1:] if cls.startswith("^") else cls) + "]"
            i = j
        elif c == "\\" and i + 1 < len(p):
            i += 1
            out += re.escape(p[i])
        else:
            out += re.escape(c)
        i += 1
    return out + "$"


IGNORE = load_ignore()


def excluded(rel):
    """Whether the context path `rel` (relative, '/'-separated) is left out of the context."""
    matched = False
    parents = rel.split("/")[:-1]
    for exclusion, regex, _ in IGNORE:
        if exclusion != matched:
            continue
        hit = bool(regex.match(rel)) or any(
            regex.match("/".join(parents[: i + 1])) for i in range(len(parents))
        )
        if hit:
            matched = not exclusion
    return matched


def context_files(src):
    """The files of the context a COPY source names, after .dockerignore: (rel, abs) pairs."""
    rel = os.path.normpath(src.lstrip("/")) if src.strip("/") else "."
    if rel.startswith(".."):
        fail(f"COPY source {src!r} is outside the build context")
    if any(ch in rel for ch in "*?["):
        import glob
        bases = sorted(os.path.relpath(p, context) for p in glob.glob(os.path.join(context, rel)))
    else:
        bases = [rel] if os.path.lexists(os.path.join(context, rel)) else []
    found = []
    for base in bases:
        full = os.path.join(context, base)
        if os.path.isdir(full) and not os.path.islink(full):
            for dirpath, dirnames, filenames in os.walk(full):
                dirnames.sort()
                for fn in sorted(filenames):
                    a = os.path.join(dirpath, fn)
                    r = os.path.relpath(a, context)
                    if not excluded(r):
                        found.append((os.path.relpath(a, full), a, base))
        elif not excluded(base):
            found.append((os.path.basename(base), full, base))
    return bases, found


def check_context_copy(stage, line, rest):
    flags, rest = split_flags(rest)
    if any(f.startswith("--from") for f in flags):
        return None
    srcs, dest = copy_args(rest, {})
    for src in srcs:
        bases, found = context_files(src)
        if not found:
            why = "is excluded by .dockerignore" if bases else "does not exist in the context"
            fail(f"{dockerfile}:{line}: COPY source {src!r} (stage {stage}) {why}")
    return True


for s in stages:
    for line, keyword, rest in s["steps"]:
        if keyword == "COPY":
            check_context_copy(s["name"], line, rest)
        elif keyword == "ADD":
            fail(f"{dockerfile}:{line}: ADD is not supported here; use COPY")


# --- reproduce the builder stage -------------------------------------------------------

def host(path, workdir):
    """The host path of a container path."""
    path = path if path.startswith("/") else os.path.join(workdir, path)
    return os.path.join(root, os.path.normpath(path).lstrip("/"))


if os.path.lexists(root):
    shutil.rmtree(root)
os.makedirs(logs, exist_ok=True)
os.makedirs(os.path.join(cache, "target"), exist_ok=True)

env = {k: os.environ[k] for k in ("PATH", "HOME", "CARGO_HOME", "RUSTUP_HOME", "http_proxy",
                                  "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                                  "NO_PROXY") if k in os.environ}
speed = {}
if os.environ.get("DOCKER_STEPS_FAITHFUL") != "1":
    speed = {"CARGO_PROFILE_RELEASE_OPT_LEVEL": "0", "CARGO_PROFILE_RELEASE_LTO": "false",
             "CARGO_PROFILE_RELEASE_CODEGEN_UNITS": "16"}
stage_env = {}
workdir = "/"
steps = builder["steps"]
runs = sum(1 for _, k, _ in steps if k == "RUN")
print(f"docker-steps: stage {stage_name!r} of {os.path.relpath(dockerfile, context)} "
      f"({builder['image']}), context {context}")
if speed:
    print("docker-steps: release profile overrides: "
          + " ".join(f"{k}={v}" for k, v in speed.items()))
run_no = 0
for line, keyword, rest in steps:
    where = f"{os.path.basename(dockerfile)}:{line}"
    if keyword == "WORKDIR":
        workdir = os.path.normpath(os.path.join(workdir, substitute(rest, stage_env)))
        os.makedirs(host(workdir, "/"), exist_ok=True)
        target = os.path.join(host(workdir, "/"), "target")
        if not os.path.lexists(target):
            os.symlink(os.path.join(cache, "target"), target)
    elif keyword in ("ENV", "ARG"):
        if keyword == "ARG" and "=" not in rest:
            continue
        for k, v in parse_env(rest, stage_env):
            stage_env[k] = v
    elif keyword == "COPY":
        flags, rest = split_flags(rest)
        if any(f.startswith("--from") for f in flags):
            fail(f"{where}: COPY --from in the {stage_name} stage is not supported here")
        srcs, dest = copy_args(rest, stage_env)
        into_dir = dest.endswith("/") or len(srcs) > 1
        count = 0
        for src in srcs:
            bases, found = context_files(src)
            for rel, absolute, base in found:
                whole_dir = os.path.isdir(os.path.join(context, base))
                if whole_dir or into_dir:
                    target = os.path.join(host(dest, workdir), rel)
                else:
                    target = host(dest, workdir)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(absolute, target, follow_symlinks=False)   # keeps mtimes
                count += 1
        print(f"docker-steps: {where} COPY {' '.join(srcs)} -> {dest} ({count} files)")
    elif keyword == "RUN":
        flags, rest = split_flags(rest)
        for f in flags:
            if not f.startswith("--mount=type=cache"):
                fail(f"{where}: RUN {f} is not supported here")
        if rest.lstrip().startswith("<<"):
            fail(f"{where}: RUN heredocs are not supported here")
        if re.search(r"(?<![\w.])" + re.escape(workdir) + r"(/|\b)", rest) and workdir != "/":
            fail(f"{where}: RUN names the absolute WORKDIR {workdir}; use paths relative to it")
        run_no += 1
        argv = json.loads(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]
        log = os.path.join(logs, f"run{run_no}.log")
        first = " ".join(rest.split())[:60]
        print(f"docker-steps: {where} RUN ({run_no}/{runs}) {first}…", flush=True)
        t0 = time.monotonic()
        with open(log, "w") as out:
            rc = subprocess.call(argv, cwd=host(workdir, "/"), env={**env, **stage_env, **speed},
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        took = time.monotonic() - t0
        if rc != 0:
            with open(log) as f:
                tail = f.read().splitlines()[-40:]
            print("\n".join("    " + l for l in tail), file=sys.stderr)
            fail(f"{where}: RUN exited with {rc} after {took:.0f} s (log: {log})")
        print(f"docker-steps:   ok in {took:.0f} s")
    elif keyword in ("LABEL", "EXPOSE", "VOLUME", "CMD", "ENTRYPOINT", "HEALTHCHECK",
                     "STOPSIGNAL", "MAINTAINER"):
        pass
    else:
        fail(f"{where}: {keyword} in the {stage_name} stage is not supported here")


# --- what the image takes from the stage ------------------------------------------------

taken = {}
for s in stages:
    for line, keyword, rest in s["steps"]:
        if keyword != "COPY":
            continue
        flags, rest = split_flags(rest)
        if f"--from={stage_name}" not in flags:
            continue
        srcs, dest = copy_args(rest, {})
        for src in srcs:
            path = host(src, "/")
            if not os.path.exists(path):
                fail(f"{os.path.basename(dockerfile)}:{line}: COPY --from={stage_name} {src}: "
                     f"the stage has no such file")
            taken[dest if not dest.endswith("/") else dest + os.path.basename(src)] = path
            print(f"docker-steps: {os.path.basename(dockerfile)}:{line} "
                  f"COPY --from={stage_name} {src}: present")

final = stages[-1]
entry = [rest for _, k, rest in final["steps"] if k == "ENTRYPOINT"]
if entry and entry[-1].startswith("["):
    program = json.loads(entry[-1])[0]
    if program in taken:
        out = subprocess.run([taken[program], "--version"], capture_output=True, text=True)
        if out.returncode != 0 or not out.stdout.strip():
            fail(f"ENTRYPOINT {program} (from {stage_name}) --version: exit {out.returncode}, "
                 f"output {out.stdout.strip()!r}: not the real program")
        print(f"docker-steps: ENTRYPOINT {program} --version: {out.stdout.strip()}")
print("docker-steps: ok")
PY
