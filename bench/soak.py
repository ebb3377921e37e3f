#!/usr/bin/env python3
"""Soak: mixed traffic against a running sessiongate for a bounded time.

Each worker is one user in one browser (its own cookie jar): sign in, read the session,
make proxied calls (the access token lives 15 s, so refreshes happen all along), list the
sessions, sign out; again. At the end every session is signed out, and the report gives
requests and errors by kind, and the server's RSS (taken by bench/soak.sh).
Standard library only.
"""
import http.cookiejar
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter

BASE = os.environ["SOAK_BASE"]
SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
WORKERS = int(os.environ.get("SOAK_WORKERS", "8"))
PASSWORD = "violet tractor umbrella 93"

counts = Counter()
errors = Counter()
lock = threading.Lock()


def note(kind, ok):
    with lock:
        counts[kind] += 1
        if not ok:
            errors[kind] += 1


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def browser():
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())


def call(opener, kind, method, path, form=None, body=None, headers=None, expect=(200,)):
    data = None
    hdrs = dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        hdrs["content-type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        hdrs["content-type"] = "application/json"
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=hdrs)
    try:
        with opener.open(req, timeout=30) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    except Exception:  # connection reset, timeout: an error
        note(kind, False)
        return None
    ok = status in expect
    note(kind, ok)
    if not ok:
        sys.stderr.write(f"{kind}: {status} {text[:200]!r}\n")
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def worker(n, deadline):
    name = f"soak{os.getpid()}x{n}"
    plain = browser()
    call(plain, "register", "POST", "/v1/auth/register",
         body={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
         expect=(201,))
    while time.time() < deadline:
        b = browser()
        csrf = (call(b, "csrf", "GET", "/api/auth/csrf") or {}).get("csrfToken", "")
        call(b, "sign-in", "POST", "/api/auth/callback/credentials",
             form={"csrfToken": csrf, "username": name, "password": PASSWORD, "json": "true"})
        for _ in range(20):
            if time.time() >= deadline:
                break
            call(b, "session", "GET", "/api/auth/session")
            call(b, "proxied", "GET", "/api/users/me")
            time.sleep(0.05)
        call(b, "sessions", "GET", "/api/auth/sessions")
        call(b, "sign-out", "POST", "/api/auth/signout", form={"csrfToken": csrf, "json": "true"})


deadline = time.time() + SECONDS
threads = [threading.Thread(target=worker, args=(n, deadline)) for n in range(WORKERS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"requests": dict(counts), "errors": dict(errors),
                  "total": sum(counts.values()), "failed": sum(errors.values())}))
