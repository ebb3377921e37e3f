"""The measuring half of bench/cluster.sh (python3, standard library only).

Usage: cluster.py SECONDS CONNS "PORT PORT PORT" "NODE_PORT ..."

1. Registers a user and signs in on the first instance (the NextAuth credentials flow).
2. Throughput: wrk with CONNS connections against each instance at once, for SECONDS,
   proxying GET /api/up/x with the session cookie; requests/s summed.
3. Redis commands per proxied request: INFO commandstats of every node before and after,
   less what no request sends (INFO, PING, replication and cluster chatter, PUBLISH of
   the 5 s heartbeats), divided by the requests wrk made.
4. Revocation: 20 times, a session read (so cached) on instances 2 and 3 is signed out
   on instance 1; the time from instance 1's answer to the first 401 on instance 2,
   polled back to back.
"""

import http.client
import json
import re
import statistics
import subprocess
import sys
import time
import urllib.parse
import uuid

seconds, conns = int(sys.argv[1]), int(sys.argv[2])
ports = [int(p) for p in sys.argv[3].split()]
nodes = [int(p) for p in sys.argv[4].split()]
CHATTER = ("info", "ping", "publish", "cluster", "role", "replconf", "psync", "sync",
           "command", "client", "hello", "subscribe")


class Browser:
    """Keeps cookies and one keep-alive connection per instance."""

    def __init__(self):
        self.cookies = {}
        self.conns = {}

    def request(self, port, method, path, body=None, form=False):
        conn = self.conns.get(port)
        if conn is None:
            conn = self.conns[port] = http.client.HTTPConnection("127.0.0.1", port)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            if form:
                body = urllib.parse.urlencode(body)
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                body = json.dumps(body)
                headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        for header in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            value = rest.split(";")[0]
            if value and "Max-Age=0" not in header:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return resp.status, data

    def csrf(self, port):
        return json.loads(self.request(port, "GET", "/api/auth/csrf")[1])["csrfToken"]

    def sign_in(self, port, username, password):
        form = {"csrfToken": self.csrf(port), "username": username,
                "password": password, "callbackUrl": "/", "json": "true"}
        status, body = self.request(port, "POST", "/api/auth/callback/credentials", form, True)
        assert status == 200, body

    def sign_out(self, port):
        form = {"csrfToken": self.csrf(port), "json": "true"}
        status, body = self.request(port, "POST", "/api/auth/signout", form, True)
        assert status == 200, body


def commands():
    total = 0
    for port in nodes:
        out = subprocess.run(["redis-cli", "-p", str(port), "info", "commandstats"],
                             capture_output=True, text=True).stdout
        for m in re.finditer(r"^cmdstat_([a-z|]+):calls=(\d+)", out, re.M):
            if not m.group(1).startswith(CHATTER):
                total += int(m.group(2))
    return total


tag = uuid.uuid4().hex[:10]
username, password = f"bench_{tag}", f"Tr0ub4dor&3-{tag}"
setup = Browser()
status, body = setup.request(ports[0], "POST", "/v1/auth/register",
                             {"username": username, "email": f"{username}@example.com",
                              "password": password})
assert status in (200, 201), body
setup.sign_in(ports[0], username, password)
cookie = "; ".join(f"{k}={v}" for k, v in setup.cookies.items())
for port in ports:
    status, body = setup.request(port, "GET", "/api/up/warm")
    assert status == 200, (port, status, body)

before = commands()
wrks = [subprocess.Popen(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-H", f"Cookie: {cookie}",
                          f"http://127.0.0.1:{port}/api/up/x"],
                         stdout=subprocess.PIPE, text=True) for port in ports]
outs = [w.communicate()[0] for w in wrks]
spent = commands() - before
rps, requests = 0.0, 0
for out in outs:
    if "Non-2xx" in out:
        sys.exit("wrk saw non-2xx answers:\n" + out)
    rps += float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests += int(re.search(r"(\d+) requests in", out).group(1))

lags = []
for _ in range(20):
    b = Browser()
    b.sign_in(ports[0], username, password)
    for port in ports[1:]:
        for _ in range(2):
            assert b.request(port, "GET", "/api/up/cached")[0] == 200
    b.sign_out(ports[0])
    signed_out = time.perf_counter()
    polls = 0
    while True:
        polls += 1
        status, _ = b.request(ports[1], "GET", "/api/up/after")
        if status == 401:
            break
        assert time.perf_counter() - signed_out < 5, "never refused"
    lags.append(((time.perf_counter() - signed_out) * 1000, polls))

ms = sorted(l for l, _ in lags)
print(f"instances: 3 on a 3-primary, 3-replica Redis Cluster; wrk -t1 -c{conns} -d{seconds}s on each at once")
print(f"throughput: {rps:,.0f} proxied requests/s in all ({requests:,} requests, 0 non-2xx)")
print(f"redis commands per proxied request: {spent / max(requests, 1):.4f} ({spent} commands)")
print(f"revocation seen on another instance: median {statistics.median(ms):.1f} ms, "
      f"max {ms[-1]:.1f} ms over 20 sign-outs (first poll already refused in "
      f"{sum(1 for _, p in lags if p == 1)} of 20)")
