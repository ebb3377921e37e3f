#!/usr/bin/env bash
# deploy/kubernetes/ and deploy/grafana/, without a cluster or a Grafana:
# - every manifest against the Kubernetes API's schemas (PyPI's kubernetes-validate,
#   --strict: an unknown field fails too; an unknown kind, a warning there, fails here),
#   for the oldest and newest Kubernetes checked; kustomization.yaml as YAML, listing
#   exactly the other files;
# - the references between them: selectors, named ports, the Secret's keys, the HPA's
#   target;
# - the Deployment's environment, with the Secret's keys generated and the variables
#   Kubernetes adds for the Service, accepted by sessiongate (`sessiongate migrate` on a
#   scratch SQLite file: the configuration's checks, no Redis needed);
# - the dashboard is JSON, and every sessiongate_ metric it queries exists in src/.
# The validators are in target/k8s-venv (lib.sh's deploy_venv).
set -euo pipefail
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"

k8s_versions=(1.30.0 1.37.0)
dir="$repo/deploy/kubernetes"
deploy_venv
py="$venv_bin/python"

manifests=()
for f in "$dir"/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
[ "${#manifests[@]}" -gt 0 ] || fail "no manifests in $dir"

# kustomization.yaml: YAML, a Kustomization, listing every manifest and nothing else.
"$py" - "$dir" >"$work/kustomization.log" 2>&1 <<'EOF' || fail "deploy/kubernetes/kustomization.yaml"
import os, sys, yaml
d = sys.argv[1]
k = yaml.safe_load(open(os.path.join(d, "kustomization.yaml")))
assert k["kind"] == "Kustomization", k.get("kind")
listed = sorted(k["resources"])
present = sorted(f for f in os.listdir(d) if f.endswith(".yaml") and f != "kustomization.yaml")
assert listed == present, f"resources {listed} != files {present}"
EOF

# The schemas. --quiet prints only warnings and errors: any output is a failure.
args=()
for v in "${k8s_versions[@]}"; do args+=(-k "$v"); done
if ! "$venv_bin/kubernetes-validate" --strict --quiet "${args[@]}" "${manifests[@]}" \
    >"$work/validate.log" 2>&1 || [ -s "$work/validate.log" ]; then
  fail "kubernetes-validate --strict ${args[*]} deploy/kubernetes/*.yaml"
fi

# The references between the objects; then the Deployment's environment, one VAR=value a
# line (the Secret's values as secret.yaml has them, replaced below).
"$py" - "$dir" >"$work/deployment.env" 2>"$work/references.log" <<'EOF' ||
import os, sys, yaml
d = sys.argv[1]
objs = {}
for f in sorted(os.listdir(d)):
    if f.endswith(".yaml") and f != "kustomization.yaml":
        docs = [o for o in yaml.safe_load_all(open(os.path.join(d, f))) if o]
        assert docs, f"{f}: no object"
        for o in docs:
            objs[o["kind"]] = o
dep, svc, pdb, hpa, secret = (objs[k] for k in
    ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Secret"))
pod = dep["spec"]["template"]
labels = pod["metadata"]["labels"]
def selects(sel):
    return sel and all(labels.get(k) == v for k, v in sel.items())
assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), "Deployment selector"
assert selects(svc["spec"]["selector"]), "the Service selects the pods"
assert selects(pdb["spec"]["selector"]["matchLabels"]), "the PodDisruptionBudget selects the pods"
t = hpa["spec"]["scaleTargetRef"]
assert (t["kind"], t["name"]) == ("Deployment", dep["metadata"]["name"]), "the HPA scales the Deployment"
(c,) = pod["spec"]["containers"]
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
assert ports.get("http") == 8080 and ports.get("metrics") == 9464, ports
for p in svc["spec"]["ports"]:
    assert p["targetPort"] in ports, f"Service targetPort {p['targetPort']}"
    assert p["targetPort"] != "metrics" and p["targetPort"] != 9464, "metrics stay out of the Service"
for probe in ("readinessProbe", "livenessProbe"):
    assert c[probe]["httpGet"]["port"] in ports, probe
assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
assert "cpu" in c["resources"]["requests"], "the HPA's utilization needs a CPU request"
data = secret["stringData"]
for e in c["env"]:
    if "valueFrom" in e:
        ref = e["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in data, f"{e['name']}: {ref}"
        value = data[ref["key"]]
    else:
        value = e["value"]
    assert "\n" not in value, e["name"]
    print(f"{e['name']}={value}")
# What Kubernetes adds for the Service (docs: "Environment variables" of Services).
name = svc["metadata"]["name"].upper().replace("-", "_")
ip = "10.96.0.10"
first = svc["spec"]["ports"][0]
print(f"{name}_SERVICE_HOST={ip}")
print(f"{name}_SERVICE_PORT={first['port']}")
print(f"{name}_PORT=tcp://{ip}:{first['port']}")
for p in svc["spec"]["ports"]:
    if "name" in p:
        print(f"{name}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}={p['port']}")
    pre = f"{name}_PORT_{p['port']}_TCP"
    print(f"{pre}=tcp://{ip}:{p['port']}")
    print(f"{pre}_PROTO=tcp")
    print(f"{pre}_PORT={p['port']}")
    print(f"{pre}_ADDR={ip}")
EOF
  fail "references between deploy/kubernetes/'s objects"
mapfile -t deployment_env <"$work/deployment.env"

# sessiongate accepts that environment, with keys in place of the Secret's placeholders
# (and a scratch SQLite file for its PostgreSQL URL).
check_config k8s-config "${deployment_env[@]}" \
  SESSIONGATE_SESSION__KEYS="[\"$(openssl rand -base64 32)\"]" \
  SESSIONGATE_AUTH__JWT_SECRET="$(openssl rand -base64 32)" ||
  fail "sessiongate refuses the Deployment's environment"

# The dashboard: JSON, and only metrics sessiongate has.
dashboard="$repo/deploy/grafana/sessiongate.json"
python3 -m json.tool "$dashboard" >/dev/null 2>"$work/dashboard.log" ||
  fail "deploy/grafana/sessiongate.json is not JSON"
metrics="$(grep -o 'sessiongate_[a-z0-9_]*' "$dashboard" | sed -E 's/_(bucket|sum|count)$//' | sort -u)"
[ -n "$metrics" ] || fail "deploy/grafana/sessiongate.json queries no sessiongate_ metric"
for m in $metrics; do
  grep -rqw -- "$m" "$repo/src" || fail "deploy/grafana/sessiongate.json: $m is not in src/"
done
