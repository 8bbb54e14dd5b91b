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
import urllib.request
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


def wait_for(pred, what, within=6.0):
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
    for secret in ["e2e-acedata-token", "e2e-client-secret", "access-1", "refresh-1"]:
        check(secret not in logs and secret not in text, f"secret {secret!r} absent from logs and /metrics")

if failures:
    print(f"\n{len(failures)} check(s) failed; exporter log:\n" + logs[-4000:])
    sys.exit(1)
print("\nall end-to-end checks passed")
