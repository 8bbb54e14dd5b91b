#!/usr/bin/env python3
"""A second, independent simulator of the two vendors' APIs, written in Python from the
vendors' documents (the seed JSON examples), used to check the real binary end to end
against something that shares no code with it.

Control endpoints (not part of the vendors' APIs):
  POST /_control/fault   body: {"path": "...", "status": 500, "body": "...", "times": 1,
                                 "headers": {...}, "delay": 0.0}
  POST /_control/set     body: {"credits": "12.34"} / {"accountBalance": 1.5} /
                               {"add_history": {"reward": 1.1, "price": 11.0, "invalid": false}} /
                               {"application": {"id": "...", "remaining_amount": 1.5, "used_amount": 2}} /
                               {"remove_application": "<id>"} / {"remove_credential": ["<app id>", "<key id>"]}
  GET  /_control/count?path=...   requests seen on a path
  GET  /_control/last_query?path=...   the query string of the last request on a path

Spend, orders and auto-recharge follow the SPEC's "Spend, orders and auto-recharge":
  GET /api/v1/usage/apis/aggregate/   rows dated relative to today (UTC), filtered by the date
                                      of `created_at_from`; `results` + `api_map{name, path}`
                                      or, after /_control/set {"usage_shape": "items"},
                                      `items` + `apis{title}`
  GET /api/v1/orders/                 filtered by `created_at_from`, newest first, pages of at
                                      most LIST_MAX_LIMIT; `price` a number or a decimal string
  GET /api/v1/auto-recharge-configs/  pages of at most LIST_MAX_LIMIT
All three answer 403 permission_denied without `user_id`.

Applications (GET /api/v1/applications/) follow the SPEC's "Ace Data Cloud service
quotas": without `user_id` the list answers 403 permission_denied; pages are cut to
APPLICATIONS_MAX_LIMIT whatever `limit` asks (a server-side maximum page size), and the
page sits under `items` (the key the vendor's own clients read) so both keys are used.
"""
import datetime
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "e2e-acedata-token"
CLIENT_ID = "e2e-client-id"
CLIENT_SECRET = "e2e-client-secret"

APPLICATIONS_MAX_LIMIT = 4
LIST_MAX_LIMIT = 2
STARTED = time.time()
API_KEY_PREFIX = "sk-e2e-never-export-"

lock = threading.Lock()
state = {
    "balance": {
        "id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "user_id": "user-uuid",
        "credits": "100.00",
        "packages": [{"id": "pkg-uuid", "name": "Basic Package", "amount": 100, "price": "9.90"}],
        "created_at": "2024-01-15T10:30:00Z",
        "updated_at": "2024-01-15T10:30:00Z",
    },
    "status": {
        "id": "status-uuid",
        "user_id": "b87f67c1-b04f-4332-99a1-7a5e651331c6",
        "level": {"id": "level-uuid", "level": 1, "threshold": 0, "percentage": 0.1},
        "price": 500.0,
        "reward": 50.0,
        "tags": None,
        "metadata": None,
        "created_at": "2024-01-01T00:00:00.000000Z",
        "updated_at": "2024-08-01T00:00:00.000000Z",
    },
    "levels": [
        {"id": "level-1-uuid", "level": 1, "threshold": 0, "percentage": 0.1, "tags": None, "metadata": None},
        {"id": "level-2-uuid", "level": 2, "threshold": 1000, "percentage": 0.15, "tags": None, "metadata": None},
        {"id": "level-3-uuid", "level": 3, "threshold": 5000, "percentage": 0.2, "tags": None, "metadata": None},
    ],
    "history": [],  # newest first
    "applications": [],
    "account_balance": 675.24,
    "tokens": {},
    "faults": [],
    "counts": {},
}


def record(i, reward, price, invalid):
    return {
        "id": f"history-{i}",
        "user_id": "b87f67c1-b04f-4332-99a1-7a5e651331c6",
        "inviter_id": "b87f67c1-b04f-4332-99a1-7a5e651331c6",
        "invitee_id": f"new-user-{i}",
        "order_id": f"order-{i}",
        "percentage": 0.1,
        "reward": reward,
        "invalid": invalid,
        "order": {"id": f"order-{i}", "price": price, "state": "Finished"},
        "invitee": {"id": f"new-user-{i}", "nickname": "New User"},
        "tags": None,
        "metadata": None,
        "created_at": "2024-08-01T%02d:00:00.000000Z" % (i % 24),
    }


# 20 records as in the seed's count, with cent values.
for i in range(20):
    state["history"].insert(0, record(i, [5.0, 0.1, 12.35, 0.2][i % 4], [50.0, 1.0, 123.5, 2.0][i % 4], i % 7 == 3))


def application(n, alias, kind, remaining, used, allow_global, expired_at=None, keys=()):
    """One application in the documented shape; keys are (limited_amount, used_amount, expired_at)."""
    return {
        "id": f"e2e-app-{n}", "user_id": "u-e2e", "service_id": f"svc-{n}",
        "type": kind, "scope": "Individual",
        "remaining_amount": remaining, "used_amount": used, "paid": True, "disabled": n == 9,
        "allow_consume_global": allow_global, "expired_at": expired_at,
        "service": {"id": f"svc-{n}", "alias": alias, "name": f"Service {n}"},
        "packages": [{"id": f"p-{n}", "name": "Package", "type": kind, "price": 9.99, "amount": 100}],
        "credentials": [
            {"id": f"e2e-key-{n}-{i}", "token": f"{API_KEY_PREFIX}{n}-{i}", "type": "Token", "host": None,
             "limited_amount": limit, "used_amount": key_used, "expired_at": key_exp}
            for i, (limit, key_used, key_exp) in enumerate(keys)
        ],
        "tags": None, "metadata": None,
        "created_at": "2024-05-30T14:41:20.052849Z", "updated_at": "2024-08-16T07:51:15.603207Z",
    }


# Ten applications: three pages of at most four. Cent values so that float slips show.
state["applications"] = [
    application(1, "midjourney", "Usage", 312.5, 187.5, False, keys=[(200, 150.25, None)]),
    application(2, "suno", "Period", 40.01, 59.99, False, "2031-01-02T03:04:05.000000Z",
                keys=[(None, 12.34, "2030-12-31T00:00:00Z"), (50, 45.67, None)]),
    application(3, "openai", "Usage", 0.1, 999.9, True, keys=[(100, 95.5, None)]),
    application(4, None, "Usage", 7.77, 2.23, False),
    application(5, "luma", "Usage", 1000, 0, False, keys=[(None, 0, None)]),
    application(6, "kling", "Usage", 0.3, 0.7, False, keys=[(1, 0.7, None)]),
    application(7, "flux", "Usage", 123.45, 6.55, True),
    application(8, "serp", "Period", 55.55, 44.45, False, "2030-06-01T00:00:00Z", keys=[(10, 0.01, None)]),
    application(9, "veo", "Usage", 0, 10, False, keys=[(None, 10, None)]),
    application(10, "claude", "Usage", 19.99, 0.01, False, keys=[(0.5, 0.01, None), (None, 0, None)]),
]


# Usage rows: (days before today, api id, amount). Amounts with cents, some as strings.
state["usage"] = (
    [(d, "e2e-api-flux", 7.35) for d in range(0, 40)]
    + [(0, "e2e-api-odd", 0.1), (0, "e2e-api-odd", "0.2"), (5, "e2e-api-odd", 3.03), (12, "e2e-api-odd", 1)]
    + [(d, "e2e-api-nameless", 11.11) for d in (1, 6, 7, 29)]
)
state["usage_names"] = {
    "e2e-api-flux": {"name": "Flux Pro", "path": "/flux/images"},
    "e2e-api-odd": {"name": 'Say "hi"\\ back\nnow: ünïcode 音声', "path": "/odd"},
}
state["usage_shape"] = "results"


def order(n, state_, price, age_hours):
    created = datetime.datetime.fromtimestamp(STARTED - age_hours * 3600, datetime.timezone.utc)
    return {"id": f"e2e-order-{n}", "user_id": "u-e2e", "state": state_, "price": price, "amount": 100,
            "application_id": "e2e-app-1", "created_at": created.isoformat().replace("+00:00", "Z")}


# Newest first, as the list answers.
state["orders"] = sorted([
    order(1, "Finished", 10.01, 30),
    order(2, "Finished", "20.02", 100),
    order(3, "Finished", 0.07, 200),
    order(4, "Pending", 5, 0.5),
    order(5, "Pending", "5.00", 3),
    order(6, "Paid", 1, 50),
    order(7, "Disputed", 2, 60),
    order(8, "Failed", 3, 600),
    order(9, "Finished", 999, 24 * 40),  # older than 30 days
], key=lambda o: o["created_at"], reverse=True)

state["auto_recharge"] = [
    {"id": "e2e-ar-1", "application_id": "e2e-app-1", "status": "Active", "threshold": 10},
    {"id": "e2e-ar-2", "application_id": "e2e-app-2", "status": "Paused", "threshold": 10},
    {"id": "e2e-ar-3", "application_id": "e2e-app-6", "status": "Suspended"},
    {"id": "e2e-ar-4", "application_id": "e2e-app-7"},  # no status: no series
    {"id": "e2e-ar-5", "application_id": "e2e-app-8", "status": "Disabled"},
]


def created_from(query):
    text = query.get("created_at_from", [None])[0]
    return None if text is None else datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def page(query, items):
    limit = min(int(query.get("limit", ["10"])[0]), LIST_MAX_LIMIT)
    offset = int(query.get("offset", ["0"])[0])
    return {"count": len(items), "results": items[offset:offset + limit]}


def usage(query):
    today = datetime.datetime.now(datetime.timezone.utc).date()
    start = created_from(query)
    rows = []
    for days, api, amount in state["usage"]:
        day = today - datetime.timedelta(days=days)
        if start is None or day >= start.date():
            rows.append({"date": day.isoformat(), "api_id": api, "amount": amount})
    if state["usage_shape"] == "items":
        return {"items": rows, "total": 0, "apis": {k: {"title": v["name"]} for k, v in state["usage_names"].items()}}
    return {"results": rows, "total": 0, "api_map": state["usage_names"]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def fault(self, path):
        with lock:
            for f in state["faults"]:
                if f["path"] == path and f["times"] != 0:
                    if f["times"] > 0:
                        f["times"] -= 1
                    return dict(f)
        return None

    def handle_any(self, method):
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        raw = self.body()
        if path.startswith("/_control/"):
            return self.control(path, raw, query)
        with lock:
            state["counts"][path] = state["counts"].get(path, 0) + 1
            state.setdefault("queries", {})[path] = url.query
        f = self.fault(path)
        if f:
            time.sleep(f.get("delay", 0))
            if "status" in f:
                return self.reply(f["status"], f.get("body", "").encode(), f.get("headers"))
        if path.startswith("/api/v1/"):
            if self.headers.get("authorization") != f"Bearer {TOKEN}":
                return self.reply(401, {"detail": "Invalid token."})
            return self.acedata(method, path, query)
        return self.yeastar(method, path, raw)

    def acedata(self, method, path, query):
        with lock:
            if method == "POST" and path == "/api/v1/balances/initialize/":
                return self.reply(200, state["balance"])
            if method == "GET" and path == "/api/v1/distribution-statuses/":
                return self.reply(200, {"count": 1, "results": [state["status"]]})
            if method == "GET" and path == "/api/v1/distribution-levels/":
                return self.reply(200, {"count": 3, "results": state["levels"]})
            if method == "GET" and path == "/api/v1/distribution-histories/":
                limit = int(query.get("limit", ["10"])[0])
                offset = int(query.get("offset", ["0"])[0])
                h = state["history"]
                return self.reply(200, {"count": len(h), "results": h[offset:offset + limit]})
            if method == "GET" and path in ("/api/v1/usage/apis/aggregate/", "/api/v1/orders/",
                                            "/api/v1/auto-recharge-configs/") and not query.get("user_id"):
                return self.reply(403, {"detail": "You do not have permission to perform this action."})
            if method == "GET" and path == "/api/v1/usage/apis/aggregate/":
                return self.reply(200, usage(query))
            if method == "GET" and path == "/api/v1/orders/":
                start = created_from(query)
                orders = [o for o in state["orders"] if start is None
                          or datetime.datetime.fromisoformat(o["created_at"].replace("Z", "+00:00")) >= start]
                return self.reply(200, page(query, orders))
            if method == "GET" and path == "/api/v1/auto-recharge-configs/":
                return self.reply(200, page(query, state["auto_recharge"]))
            if method == "GET" and path == "/api/v1/applications/":
                if not query.get("user_id"):
                    return self.reply(403, {"detail": "You do not have permission to perform this action."})
                limit = min(int(query.get("limit", ["10"])[0]), APPLICATIONS_MAX_LIMIT)
                offset = int(query.get("offset", ["0"])[0])
                apps = state["applications"]
                return self.reply(200, {"count": len(apps), "items": apps[offset:offset + limit]})
        return self.reply(404, {"detail": "Not found."})

    def yeastar(self, method, path, raw):
        if not self.headers.get("User-Agent"):
            return self.reply(400, {"code": "parameter_validation_failed", "status": 400})
        if method == "POST" and path == "/auth/openapi/v1/oauth/token":
            form = urllib.parse.parse_qs(raw.decode())
            get = lambda k: form.get(k, [""])[0]
            ok = (get("grant_type") == "pp_credentials" and get("client_id") == CLIENT_ID
                  and get("client_secret") == CLIENT_SECRET) or (
                get("grant_type") == "refresh_token" and get("refresh_token") in state["tokens"].values())
            if not ok:
                return self.reply(200, {"code": "invalid_client", "detailMessage": "bad credentials",
                                        "requestId": "r", "result": None, "status": 401})
            with lock:
                n = len(state["tokens"]) + 1
                state["tokens"][f"access-{n}"] = f"refresh-{n}"
            return self.reply(200, {"code": "success", "detailMessage": "", "requestId": "r",
                                    "result": {"token": f"access-{n}", "refreshToken": f"refresh-{n}",
                                               "expiresIn": "1800", "tokenHead": "Bearer "}, "status": 200})
        if method == "GET" and path == "/user/openapi/user/v1/client/account_balance":
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in state["tokens"]:
                return self.reply(401, {"code": "access_token_invalid", "detailMessage": "", "requestId": "r",
                                        "status": 401})
            return self.reply(200, {"code": "success", "detailMessage": "", "requestId": "85fa7686fa9f8a090c937bad50f565ad",
                                    "result": {"accountBalance": state["account_balance"]}, "status": 200})
        return self.reply(404, {"code": "not_found", "status": 404})

    def control(self, path, raw, query):
        with lock:
            if path == "/_control/fault":
                f = json.loads(raw)
                f.setdefault("times", 1)
                state["faults"].append(f)
            elif path == "/_control/clear":
                state["faults"].clear()
            elif path == "/_control/set":
                s = json.loads(raw)
                if "credits" in s:
                    state["balance"]["credits"] = s["credits"]
                if "accountBalance" in s:
                    state["account_balance"] = s["accountBalance"]
                if "add_history" in s:
                    a = s["add_history"]
                    state["history"].insert(0, record(len(state["history"]), a["reward"], a["price"], a["invalid"]))
                if "application" in s:
                    change = s["application"]
                    for app in state["applications"]:
                        if app["id"] == change["id"]:
                            app.update(change)
                if "remove_application" in s:
                    state["applications"] = [a for a in state["applications"] if a["id"] != s["remove_application"]]
                if "remove_credential" in s:
                    app_id, key_id = s["remove_credential"]
                    for app in state["applications"]:
                        if app["id"] == app_id:
                            app["credentials"] = [k for k in app["credentials"] if k["id"] != key_id]
                if "usage_shape" in s:
                    state["usage_shape"] = s["usage_shape"]
                if "usage" in s:
                    state["usage"] = [tuple(r) for r in s["usage"]]
                if "add_order" in s:
                    state["orders"].insert(0, s["add_order"])
                if "auto_recharge" in s:
                    state["auto_recharge"] = s["auto_recharge"]
                if "expire_tokens" in s:
                    state["tokens"] = {}
            elif path == "/_control/last_query":
                return self.reply(200, {"query": state.get("queries", {}).get(query["path"][0])})
            elif path == "/_control/auto_recharge":
                return self.reply(200, {"configs": state["auto_recharge"]})
            elif path == "/_control/count":
                return self.reply(200, {"count": state["counts"].get(query["path"][0], 0)})
        return self.reply(200, {"ok": True})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
