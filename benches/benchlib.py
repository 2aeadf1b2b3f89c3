#!/usr/bin/env python3
"""Helpers for benches/bench.sh. Standard library only.

  benchlib.py bodies OUT N [--sign-method M]   N signed TOP request bodies, one per line
  benchlib.py stats URL                        the simulator's counters, as KEY=VALUE lines
  benchlib.py sendrate DB                      send phase of the ledger's attempts
  benchlib.py firstsend DB EPOCH               seconds from EPOCH to the first attempt after it

The bodies are what `campaign` itself POSTs to `tmall.nrt.certificate.send` (TOP signing:
the sorted name+value pairs of every parameter but `sign`, blank values left out, hashed with
the secret): every parameter in the form body, signed with the
simulator's defaults (app key 10000001, secret sim-secret, session sim-session), timestamp in
GMT+8 taken now (the simulator accepts 10 minutes of skew, so generate right before use).
Each body has its own open_id, so the simulator does the same bookkeeping as for a campaign.
"""

import datetime
import hashlib
import hmac
import json
import sqlite3
import sys
import urllib.parse
import urllib.request

APP_KEY = "10000001"
SECRET = "sim-secret"
SESSION = "sim-session"
METHOD = "tmall.nrt.certificate.send"
OBJECT_PARAM = "nrt_certificate_send_d_t_o"
GMT8 = datetime.timezone(datetime.timedelta(hours=8))


def sign(params, secret, method):
    message = "".join(
        k + v for k, v in sorted(params.items()) if k != "sign" and k.strip() and v.strip()
    )
    if method == "md5":
        digest = hashlib.md5((secret + message + secret).encode()).hexdigest()
    elif method == "hmac":
        digest = hmac.new(secret.encode(), message.encode(), hashlib.md5).hexdigest()
    elif method == "hmac-sha256":
        digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    else:
        raise SystemExit(f"unknown sign method {method}")
    return digest.upper()


def bodies(out, count, sign_method):
    timestamp = datetime.datetime.now(GMT8).strftime("%Y-%m-%d %H:%M:%S")
    with open(out, "w") as f:
        for i in range(count):
            dto = json.dumps(
                {"channel": 7, "open_id": f"WRK{i:09d}", "out_id": 123, "biz_code": "23"},
                separators=(",", ":"),
            )
            params = {
                "method": METHOD,
                "app_key": APP_KEY,
                "timestamp": timestamp,
                "format": "json",
                "v": "2.0",
                "sign_method": sign_method,
                "session": SESSION,
                OBJECT_PARAM: dto,
            }
            params["sign"] = sign(params, SECRET, sign_method)
            f.write(urllib.parse.urlencode(params) + "\n")


def stats(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        data = json.load(r)
    outcomes = data.get("calls_by_outcome", {})
    for key in ("calls", "issued", "duplicates", "peak_calls_per_second",
                "rejected_signatures", "throttled"):
        print(f"{key}={data.get(key, 0)}")
    print(f"outcome_issued={outcomes.get('issued', 0)}")
    print("outcomes=" + json.dumps(outcomes, separators=(",", ":")).replace(" ", ""))


def parse_time(text):
    return datetime.datetime.fromisoformat(text).timestamp()


def attempt_times(db):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = conn.execute("SELECT started_at, latency_ms FROM attempts").fetchall()
    conn.close()
    return [(parse_time(s), ms / 1000.0) for s, ms in rows]


def sendrate(db):
    times = attempt_times(db)
    if len(times) < 2:
        raise SystemExit(f"{db}: fewer than two attempts")
    starts = sorted(t for t, _ in times)
    last_end = max(t + l for t, l in times)
    # Sends are evenly spaced under a rate limit: n sends span n-1 periods.
    span = starts[-1] - starts[0]
    print(f"attempts={len(starts)}")
    print(f"span_s={span:.3f}")
    print(f"rate={(len(starts) - 1) / span:.2f}")
    # Throughput: rows answered per second from first send to last answer.
    print(f"answered_rate={len(starts) / (last_end - starts[0]):.1f}")


def firstsend(db, epoch):
    after = [t for t, _ in attempt_times(db) if t >= epoch - 0.002]
    if not after:
        raise SystemExit(f"{db}: no attempt after {epoch}")
    print(f"{min(after) - epoch:.3f}")


def main(argv):
    if len(argv) >= 3 and argv[0] == "bodies":
        method = "hmac-sha256"
        if "--sign-method" in argv:
            method = argv[argv.index("--sign-method") + 1]
        bodies(argv[1], int(argv[2]), method)
    elif len(argv) == 2 and argv[0] == "stats":
        stats(argv[1])
    elif len(argv) == 2 and argv[0] == "sendrate":
        sendrate(argv[1])
    elif len(argv) == 3 and argv[0] == "firstsend":
        firstsend(argv[1], float(argv[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
