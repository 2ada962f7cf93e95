#!/usr/bin/env python3
"""End-to-end check with a real Prometheus server (stdlib only).

Given a running Prometheus that scrapes the CI testnet, waits until every
target is up, the bizra rules are loaded, and a PromQL query over the
finality histogram returns a finite number; prints that number.

Usage: prometheus_check.py PROM_URL EXPECTED_TARGETS [--timeout SECS]
Exit 0 on success, 1 when the deadline passes first (saying what was missing).
"""
import argparse
import json
import math
import sys
import time
import urllib.parse
import urllib.request

QUERY = "histogram_quantile(0.5, sum by (le) (rate(bizra_finality_latency_seconds_bucket[20s])))"


def get(base, path, **params):
    url = base.rstrip("/") + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("prom")
    ap.add_argument("targets", type=int)
    ap.add_argument("--timeout", type=float, default=90)
    a = ap.parse_args()
    deadline = time.time() + a.timeout
    missing = "nothing asked yet"
    while time.time() < deadline:
        try:
            up = get(a.prom, "/api/v1/query", query='up{job="bizra"} == 1')["data"]["result"]
            if len(up) < a.targets:
                missing = f"{len(up)} of {a.targets} targets up"
                raise RuntimeError(missing)
            groups = get(a.prom, "/api/v1/rules")["data"]["groups"]
            alerts = [r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"]
            unhealthy = [r["name"] for g in groups for r in g["rules"] if r.get("health") == "err"]
            if not alerts:
                missing = "no alerting rules loaded"
                raise RuntimeError(missing)
            if unhealthy:
                print(f"FAIL: rules evaluate with errors: {unhealthy}")
                return 1
            res = get(a.prom, "/api/v1/query", query=QUERY)["data"]["result"]
            if not res:
                missing = "finality query returned no series yet"
                raise RuntimeError(missing)
            value = float(res[0]["value"][1])
            if not math.isfinite(value):
                missing = f"finality query returned {value}"
                raise RuntimeError(missing)
            print(
                f"ok: Prometheus scrapes {len(up)} validators, {len(alerts)} alerting rules loaded and healthy; "
                f"finality p50 over 20 s = {value * 1000:.1f} ms ({QUERY})"
            )
            return 0
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            missing = str(e)
            time.sleep(1)
    print(f"FAIL: Prometheus check timed out: {missing}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
