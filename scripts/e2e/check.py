#!/usr/bin/env python3
"""End-to-end check of the real binary against the independent Python simulator
(seed_sim.py): exact upstream numbers, changes followed, faults survived."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BALANCE_EXPORTER_BIN", "target/release/balance-exporter")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def http(url, data=None, method=None):
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


sim = subprocess.Popen([sys.executable, os.path.join(HERE, "seed_sim.py")], stdout=subprocess.PIPE, text=True)
port = int(sim.stdout.readline())
SIM = f"http://127.0.0.1:{port}"


def control(path, body):
    return http(SIM + path, json.dumps(body).encode(), "POST")


tmp = tempfile.mkdtemp()
cfg = os.path.join(tmp, "config.yaml")
with open(cfg, "w") as f:
    f.write(f"""
defaults:
  interval: 1s
  timeout: 1s
  max_staleness: 1h
acedata:
  - name: main
    base_url: {SIM}
    token_file: {tmp}/ace-token
    low_balance_threshold: 10
    history: {{ page_size: 7, full_sync_interval: 1h }}
    application_thresholds: {{ midjourney: 100, "*": 20 }}
    usage_interval: 3s
yeastar:
  - name: partner
    base_url: {SIM}
    client_id: e2e-client-id
    client_secret_file: {tmp}/ys-secret
""")
with open(os.path.join(tmp, "ace-token"), "w") as f:
    f.write("e2e-acedata-token\n")
with open(os.path.join(tmp, "ys-secret"), "w") as f:
    f.write("e2e-client-secret\n")

log = open(os.path.join(tmp, "exporter.log"), "w+")
exp = subprocess.Popen([BIN, "--config.file", cfg, "--web.listen-address", "127.0.0.1:0", "--log.level", "debug"],
                       stderr=log, stdout=log)
addr = None
for _ in range(100):
    time.sleep(0.1)
    log.seek(0)
    m = re.search(r"message=listening address=(\S+)", log.read())
    if m:
        addr = "http://" + m.group(1)
        break
assert addr, "exporter did not start"
for _ in range(100):
    if http(addr + "/-/ready")[0] == 200:
        break
    time.sleep(0.1)


def scrape():
    return samples(http(addr + "/metrics")[1])


def wait_for(pred, what, within=20.0):
    # A generous bound: only a failure waits it out, and a loaded machine (shared cores)
    # can stretch four 1 s polls well past 6 s.
    deadline = time.time() + within
    s = scrape()
    while not pred(s) and time.time() < deadline:
        time.sleep(0.1)
        s = scrape()
    check(pred(s), what)
    return s


try:
    s = scrape()
    A = '{account="main"}'
    P = '{account="main",package="Basic Package",package_id="pkg-uuid"}'
    check(s.get(f"acedata_balance_credits{A}") == 100.0, "credits = 100.00")
    check(s.get(f"acedata_balance_package_amount{P}") == 100.0, "package amount")
    check(s.get(f"acedata_balance_package_price{P}") == 9.9, "package price 9.90")
    check(s.get(f"acedata_balance_updated_timestamp_seconds{A}") == 1705314600.0, "updated_at")
    check(s.get(f"acedata_distribution_level{A}") == 1.0, "level")
    check(s.get(f"acedata_distribution_commission_ratio{A}") == 0.1, "commission ratio")
    check(s.get(f"acedata_distribution_invitee_spend{A}") == 500.0, "invitee spend")
    check(s.get(f"acedata_distribution_reward{A}") == 50.0, "reward")
    check(s.get(f"acedata_distribution_next_level_spend_remaining{A}") == 500.0, "remaining to next level")
    for lvl, th, pc in [(1, 0, 0.1), (2, 1000, 0.15), (3, 5000, 0.2)]:
        L = f'{{account="main",level="{lvl}"}}'
        check(s.get(f"acedata_distribution_level_threshold{L}") == th, f"level {lvl} threshold")
        check(s.get(f"acedata_distribution_level_commission_ratio{L}") == pc, f"level {lvl} ratio")
    req = urllib.request.Request(SIM + "/api/v1/distribution-histories/?limit=1000&offset=0",
                                 headers={"authorization": "Bearer e2e-acedata-token"})
    hist = json.loads(urllib.request.urlopen(req).read(), parse_float=Decimal)
    for inv in (False, True):
        rs = [r for r in hist["results"] if r["invalid"] == inv]
        L = f'{{account="main",invalid="{str(inv).lower()}"}}'
        check(s.get(f"acedata_distribution_history_records{L}") == len(rs), f"history records invalid={inv}")
        check(s.get(f"acedata_distribution_history_reward{L}") == float(sum(r["reward"] for r in rs)),
              f"history reward invalid={inv} = {sum(r['reward'] for r in rs)}")
        check(s.get(f"acedata_distribution_history_order_amount{L}") == float(sum(r["order"]["price"] for r in rs)),
              f"history order amount invalid={inv}")
    check(s.get('yeastar_account_balance{account="partner"}') == 675.24, "yeastar balance 675.24")

    # Service quotas: every application and API key, read here straight from the
    # simulator (all pages), must be exported with exactly its numbers.
    def applications():
        apps, offset = [], 0
        while True:
            req = urllib.request.Request(SIM + f"/api/v1/applications/?user_id=me&limit=100&offset={offset}",
                                         headers={"authorization": "Bearer e2e-acedata-token"})
            page = json.loads(urllib.request.urlopen(req).read(), parse_float=Decimal)
            apps += page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["count"]:
                return apps

    def epoch(text):
        return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    def app_labels(app, extra=""):
        service = app["service"]["alias"] or app["service_id"]
        return f'{{account="main",application_id="{app["id"]}"{extra},service="{service}"}}'

    def expected_apps(apps):
        """Every series the applications collector must export, with its value."""
        want = {}
        for app in apps:
            L = app_labels(app)
            want[f"acedata_application_remaining_amount{L}"] = float(app["remaining_amount"])
            want[f"acedata_application_used_amount{L}"] = float(app["used_amount"])
            want[f"acedata_application_disabled{L}"] = float(app["disabled"])
            want[f"acedata_application_allow_consume_global{L}"] = float(app["allow_consume_global"])
            if app["expired_at"] is not None:
                want[f"acedata_application_expiry_timestamp_seconds{L}"] = epoch(app["expired_at"])
            service = app["service"]["alias"] or app["service_id"]
            want[(f'acedata_application_info{{account="main",application_id="{app["id"]}",scope="{app["scope"]}",'
                  f'service="{service}",service_name="{app["service"]["name"]}",type="{app["type"]}"}}')] = 1.0
            want[f'balance_exporter_application_low_threshold{{account="main",service="{service}"}}'] = (
                100.0 if service == "midjourney" else 20.0)
            for key in app["credentials"]:
                K = app_labels(app, f',credential_id="{key["id"]}"')
                want[f"acedata_credential_used_amount{K}"] = float(key["used_amount"])
                if key["limited_amount"] is not None:
                    want[f"acedata_credential_limit_amount{K}"] = float(key["limited_amount"])
                if key["expired_at"] is not None:
                    want[f"acedata_credential_expiry_timestamp_seconds{K}"] = epoch(key["expired_at"])
        return want

    APP_FAMILIES = ("acedata_application_", "acedata_credential_", "balance_exporter_application_low_threshold")

    def exported_apps(s):
        return {k: v for k, v in s.items()
                if k.startswith(APP_FAMILIES) and not k.startswith("acedata_application_auto_recharge")}

    apps = applications()
    check(len(apps) == 10, "the simulator lists 10 applications over 3 pages")
    want = expected_apps(apps)
    got = exported_apps(s)
    check(got == want, f"every application and API key exported exactly ({len(want)} series)"
          + ("" if got == want else f": missing {sorted(set(want) - set(got))[:5]}, extra "
             f"{sorted(set(got) - set(want))[:5]}, wrong {[k for k in want if k in got and got[k] != want[k]][:5]}"))
    q = urllib.parse.parse_qs(json.loads(http(SIM + "/_control/last_query?path=/api/v1/applications/")[1])["query"])
    check(q.get("user_id") == ["me"], f"user_id=me sent on the applications list ({q})")
    c0 = json.loads(http(SIM + "/_control/count?path=/api/v1/applications/")[1])["count"]
    time.sleep(3.2)
    c1 = json.loads(http(SIM + "/_control/count?path=/api/v1/applications/")[1])["count"]
    check(c1 - c0 <= 3 * 4, f"applications: one request per page per interval ({c1 - c0} requests in ~3 cycles)")
    for _ in range(20):
        scrape()
    c2 = json.loads(http(SIM + "/_control/count?path=/api/v1/applications/")[1])["count"]
    check(c2 - c1 <= 3 * 2, f"scrapes cost no application requests ({c2 - c1} during 20 scrapes)")

    # A change, a vanished application and a vanished key, all within one interval.
    control("/_control/set", {"application": {"id": "e2e-app-1", "remaining_amount": 12.34, "used_amount": 487.66}})
    control("/_control/set", {"remove_application": "e2e-app-5"})
    control("/_control/set", {"remove_credential": ["e2e-app-2", "e2e-key-2-1"]})
    apps = applications()
    s = wait_for(lambda s: exported_apps(s) == expected_apps(apps),
                 "applications: change followed, vanished application and key dropped within an interval")
    check(not any("e2e-app-5" in k or "e2e-key-2-1" in k for k in s),
          "  no series of the vanished application or key is left")
    check('balance_exporter_application_low_threshold{account="main",service="luma"}' not in s,
          "  the vanished service's threshold series is gone")

    # Faults on the applications endpoint: counted by reason, last good values kept.
    good = expected_apps(apps)
    APPS = "acedata_applications"
    for fault, reason in [
        ({"status": 500, "body": '{"detail": "boom"}'}, "http_status"),
        ({"status": 403, "body": '{"detail": "You do not have permission to perform this action."}'}, "http_status"),
        ({"status": 429, "body": "", "headers": {"Retry-After": "1"}}, "rate_limited"),
        ({"status": 401, "body": '{"detail": "Invalid token."}'}, "unauthorized"),
        ({"status": 200, "body": '{"count": 10, "items": [{"id": "x", "remaining_amount": "lots"}]}'}, "decode"),
        ({"status": 200, "body": '{"count": 10, "items": [{"id": "e2e-a'}, "decode"),
        ({"delay": 2.5, "status": 200, "body": "{}"}, "timeout"),
    ]:
        before = scrape().get(f'balance_exporter_collector_errors_total{{account="main",collector="{APPS}",reason="{reason}"}}', 0)
        control("/_control/fault", dict(fault, path="/api/v1/applications/", times=4))
        s = wait_for(lambda s: s.get(f'balance_exporter_collector_errors_total{{account="main",collector="{APPS}",reason="{reason}"}}', 0) > before,
                     f"applications fault {fault.get('status')} {fault.get('body', '')[:20]!r} counted as {reason}")
        check(exported_apps(s) == good, f"  last good application values kept after {reason}")
        wait_for(lambda s: s.get(f'balance_exporter_collector_success{{account="main",collector="{APPS}"}}') == 1.0,
                 "  recovers")

    # Changes upstream show within one interval.
    control("/_control/set", {"credits": "42.17", "accountBalance": 12.5,
                              "add_history": {"reward": 1.11, "price": 11.1, "invalid": False}})
    wait_for(lambda s: s.get(f"acedata_balance_credits{A}") == 42.17
             and s.get('yeastar_account_balance{account="partner"}') == 12.5
             and s.get('acedata_distribution_history_records{account="main",invalid="false"}')
             == len([r for r in hist["results"] if not r["invalid"]]) + 1,
             "changes followed within an interval")

    # Steady history cycles cost at most 2 requests.
    c0 = json.loads(http(SIM + "/_control/count?path=/api/v1/distribution-histories/")[1])["count"]
    time.sleep(3.2)
    c1 = json.loads(http(SIM + "/_control/count?path=/api/v1/distribution-histories/")[1])["count"]
    check(c1 - c0 <= 2 * 4, f"steady history cycles: {c1 - c0} requests in ~3 cycles")

    def err(c, a, reason):
        return f'balance_exporter_collector_errors_total{{account="{a}",collector="{c}",reason="{reason}"}}'

    faults = [
        ({"status": 500, "body": '{"detail": "boom"}'}, "http_status"),
        ({"status": 502, "body": "<html><body>Bad Gateway</body></html>"}, "http_status"),
        ({"status": 429, "body": "", "headers": {"Retry-After": "1"}}, "rate_limited"),
        ({"status": 401, "body": '{"detail": "Invalid token."}'}, "unauthorized"),
        ({"status": 200, "body": '{"credits": "1'}, "decode"),
        ({"status": 200, "body": '{"credits": {"x": 1}, "packages": []}'}, "decode"),
        ({"status": 200, "body": '{"credits": "abc", "packages": []}'}, "decode"),
        ({"status": 200, "body": ""}, "decode"),
        ({"delay": 2.5, "status": 200, "body": "{}"}, "timeout"),
    ]
    for fault, reason in faults:
        before = scrape().get(err("acedata_balance", "main", reason), 0)
        # Four times: a single fault could be cured by a retry inside the attempt.
        control("/_control/fault", dict(fault, path="/api/v1/balances/initialize/", times=4))
        s = wait_for(lambda s: s.get(err("acedata_balance", "main", reason), 0) > before,
                     f"fault {fault.get('status')} {fault.get('body', '')[:20]!r} counted as {reason}")
        check(s.get(f"acedata_balance_credits{A}") == 42.17, f"  last good credits kept after {reason}")
        wait_for(lambda s: s.get('balance_exporter_collector_success{account="main",collector="acedata_balance"}') == 1.0,
                 "  recovers")

    # Yeastar: an API error on HTTP 200, and a 401 that a token refresh cures.
    control("/_control/fault", {"path": "/user/openapi/user/v1/client/account_balance", "status": 200,
                                "body": '{"code":"quota_exceeded","detailMessage":"x","requestId":"q1","result":null,"status":200}'})
    wait_for(lambda s: s.get(err("yeastar_balance", "partner", "api_error"), 0) >= 1, "yeastar code != success is api_error")
    control("/_control/set", {"expire_tokens": True, "accountBalance": 3.5})
    s = wait_for(lambda s: s.get('yeastar_account_balance{account="partner"}') == 3.5, "yeastar recovers after token expiry")
    check(s.get(err("yeastar_balance", "partner", "unauthorized"), 0) == 0, "  401 cured by refresh-and-retry, not counted")

    # --- Spend, orders and auto-recharge: exact values computed here from the
    # simulator's own answers, with Decimal, and the windows worked out here.
    def sim_get(path):
        req = urllib.request.Request(SIM + path, headers={"authorization": "Bearer e2e-acedata-token"})
        return json.loads(urllib.request.urlopen(req).read(), parse_float=Decimal)

    def esc(v):
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    def last_query(path):
        return urllib.parse.parse_qs(json.loads(http(SIM + f"/_control/last_query?path={path}")[1])["query"])

    def count(path):
        return json.loads(http(SIM + f"/_control/count?path={path}")[1])["count"]

    USAGE, ORDERS, AR = "/api/v1/usage/apis/aggregate/", "/api/v1/orders/", "/api/v1/auto-recharge-configs/"
    today = datetime.now(timezone.utc).date()
    start = min(today.replace(day=1), today - timedelta(days=6))
    q = last_query(USAGE)
    check(q.get("created_at_from") == [f"{start.isoformat()}T00:00:00Z"] and q.get("user_id") == ["me"],
          f"usage: created_at_from is the earlier of the month's start and 6 days ago ({q})")

    def expected_usage():
        body = sim_get(f"{USAGE}?user_id=me&created_at_from={start.isoformat()}T00:00:00Z")
        names = {k: v.get("name") or v.get("title") for k, v in (body.get("api_map") or body.get("apis")).items()}
        sums = {}
        for row in body.get("results", body.get("items")):
            day = datetime.strptime(row["date"], "%Y-%m-%d").date()
            amount = Decimal(str(row["amount"]))
            for window, inside in (("today", day == today), ("last_7d", today - timedelta(days=6) <= day <= today),
                                   ("month_to_date", (day.year, day.month) == (today.year, today.month) and day <= today)):
                if inside:
                    key = (window, row["api_id"])
                    sums[key] = sums.get(key, Decimal(0)) + amount
        return {f'acedata_usage_{w}_credits{{account="main",api="{esc(names.get(api) or api)}",api_id="{api}"}}': float(v)
                for (w, api), v in sums.items()}

    def exported(s, prefix):
        return {k: v for k, v in s.items() if k.startswith(prefix)}

    want_usage = expected_usage()
    s = wait_for(lambda s: exported(s, "acedata_usage_") == want_usage,
                 f"usage: every API's today, 7-day and month-to-date spend exactly ({len(want_usage)} series)")
    check('api="Say \\"hi\\"\\\\ back\\nnow: ünïcode 音声"' in http(addr + "/metrics")[1],
          "usage: an API name with quotes, a backslash, a newline and non-ASCII text is a valid label")
    check(not any("e2e-api-nameless" in k and "today" in k for k in s), "usage: no row today, no today series")

    thirty_days_ago = (datetime.now(timezone.utc) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def expected_orders():
        orders, offset = [], 0
        while True:
            page = sim_get(f"{ORDERS}?user_id=me&limit=100&offset={offset}&created_at_from={thirty_days_ago}")
            orders += page["results"]
            offset += len(page["results"])
            if not page["results"] or offset >= page["count"]:
                break
        counts = {st: 0 for st in ("Pending", "Paid", "Finished", "Expired", "Failed", "Refunded")}
        last, price, pending = {}, Decimal(0), []
        for o in orders:
            counts[o["state"]] = counts.get(o["state"], 0) + 1
            t = epoch(o["created_at"])
            last[o["state"]] = max(last.get(o["state"], t), t)
            if o["state"] == "Finished":
                price += Decimal(str(o["price"]))
            if o["state"] == "Pending":
                pending.append(t)
        want = {f'acedata_orders_last_30d{{account="main",state="{st}"}}': float(n) for st, n in counts.items()}
        want.update({f'acedata_order_last_created_timestamp_seconds{{account="main",state="{st}"}}': t
                     for st, t in last.items()})
        want['acedata_orders_finished_price_last_30d{account="main"}'] = float(price)
        if pending:
            want['acedata_order_oldest_pending_timestamp_seconds{account="main"}'] = min(pending)
        return want, len(orders)

    want_orders, n_orders = expected_orders()
    s = wait_for(lambda s: exported(s, ("acedata_order_", "acedata_orders_")) == want_orders,
                 f"orders: counts per state (an undocumented one as given), Finished price, newest and oldest pending "
                 f"exactly ({len(want_orders)} series)")
    got = exported(s, ("acedata_order_", "acedata_orders_"))
    if got != want_orders:
        print("  want", sorted(want_orders.items()), "\n  got ", sorted(got.items()))
    check(s.get('acedata_orders_finished_price_last_30d{account="main"}') == 30.1, "orders: 10.01 + \"20.02\" + 0.07 = 30.1")
    q = last_query(ORDERS)
    sent_from = epoch(q.get("created_at_from", ["1970-01-01T00:00:00Z"])[0])
    check(abs(sent_from - (time.time() - 30 * 86400)) < 120 and q.get("user_id") == ["me"],
          f"orders: created_at_from is 30 days back ({q.get('created_at_from')})")

    want_ar = {f'acedata_application_auto_recharge{{account="main",application_id="{c["application_id"]}",status="{c["status"]}"}}': 1.0
               for c in json.loads(http(SIM + "/_control/auto_recharge")[1])["configs"]
               if c.get("status") and c.get("application_id")}
    wait_for(lambda s: exported(s, "acedata_application_auto_recharge") == want_ar,
             f"auto-recharge: one series per configuration with a status ({len(want_ar)} series)")

    # Upstream cost: one aggregate request per usage_interval (3 s); every order page
    # (8 orders in the window, 2 a page: 4) and auto-recharge page (5 configs: 3) per
    # interval (1 s). Bounds as in the Rust tests: attempts in a window of t seconds
    # are at most floor(t / interval) + 2.
    c0 = {p: count(p) for p in (USAGE, ORDERS, AR)}
    t0 = time.time()
    time.sleep(6.5)
    elapsed = time.time() - t0
    c1 = {p: count(p) for p in (USAGE, ORDERS, AR)}
    polls = int(elapsed // 1) + 2
    check(1 <= c1[USAGE] - c0[USAGE] <= int(elapsed // 3) + 2,
          f"usage: {c1[USAGE] - c0[USAGE]} aggregate requests in {elapsed:.1f} s at usage_interval 3s")
    check(4 <= c1[ORDERS] - c0[ORDERS] <= 4 * polls,
          f"orders: {c1[ORDERS] - c0[ORDERS]} page requests in {elapsed:.1f} s (4 pages a poll)")
    check(last_query(ORDERS).get("limit") == ["100"], "orders: limit=100 asked, the server cut it to 2")
    check(c1[AR] - c0[AR] <= 3 * polls, f"auto-recharge: {c1[AR] - c0[AR]} page requests in {elapsed:.1f} s (3 pages a poll)")
    check(n_orders == 8, f"the simulator lists 8 orders in the window ({n_orders})")

    # The clients' shape of the aggregate gives the same values.
    control("/_control/set", {"usage_shape": "items"})
    c0 = count(USAGE)
    wait_for(lambda s: count(USAGE) >= c0 + 2, "usage: a full poll of the `items` + `apis{title}` shape")
    check(exported(scrape(), "acedata_usage_") == want_usage, "usage: the same values from `items` + `apis{title}`")

    # Faults on each new endpoint, counted by reason; the last good values stay.
    for path, collector, fault, reason, family in [
        (USAGE, "acedata_usage", {"status": 200, "body": '{"results": [{"date": "2024-13-01", "api_id": "x", "amount": 1}]}'},
         "decode", "acedata_usage_"),
        (USAGE, "acedata_usage", {"status": 503, "body": '{"detail": "down"}'}, "http_status", "acedata_usage_"),
        (ORDERS, "acedata_orders", {"status": 200, "body": '{"count": 1, "results": [{"id": "o", "state": "Finished", "price": "ten"}]}'},
         "decode", ("acedata_order_", "acedata_orders_")),
        (ORDERS, "acedata_orders", {"status": 500, "body": '{"detail": "boom"}'}, "http_status", ("acedata_order_", "acedata_orders_")),
        (AR, "acedata_auto_recharge", {"status": 429, "body": "", "headers": {"Retry-After": "1"}}, "rate_limited",
         "acedata_application_auto_recharge"),
        (AR, "acedata_auto_recharge", {"status": 401, "body": '{"detail": "Invalid token."}'}, "unauthorized",
         "acedata_application_auto_recharge"),
    ]:
        good = exported(scrape(), family)
        before = scrape().get(err(collector, "main", reason), 0)
        control("/_control/fault", dict(fault, path=path, times=4))
        s = wait_for(lambda s: s.get(err(collector, "main", reason), 0) > before,
                     f"{collector}: fault {fault['status']} {fault['body'][:24]!r} counted as {reason}")
        check(exported(s, family) == good, f"  last good {collector} values kept after {reason}")
        wait_for(lambda s: s.get(f'balance_exporter_collector_success{{account="main",collector="{collector}"}}') == 1.0,
                 "  recovers")

    text = http(addr + "/metrics")[1]
    promtool = os.environ.get("PROMTOOL", "promtool")
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    check(p.returncode == 0 and not (p.stdout + p.stderr).strip(), "promtool check metrics " + (p.stdout + p.stderr).strip())
finally:
    exp.terminate()
    code = exp.wait(timeout=15)
    sim.terminate()
    check(code == 0, f"exit code 0 on SIGTERM (got {code})")
    log.seek(0)
    logs = log.read()
    for secret in ["e2e-acedata-token", "e2e-client-secret", "access-1", "refresh-1", "sk-e2e-never-export-"]:
        check(secret not in logs and secret not in text, f"secret {secret!r} absent from logs and /metrics")

if failures:
    print(f"\n{len(failures)} check(s) failed; exporter log:\n" + logs[-4000:])
    sys.exit(1)
print("\nall end-to-end checks passed")
