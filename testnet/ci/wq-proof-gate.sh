#!/usr/bin/env bash
# The gate: a real 3-validator testnet on loopback, `bizra wq-proof` over
# their gRPC endpoints, `bizra verify` and the independent Python verifier on
# the proof; a PoI attestation submitted, finalized and verified offline; the
# metrics checked by `promtool check metrics` and scraped by a real Prometheus
# server with the shipped rules. Always stops the processes it started (by PID).
# Usage: testnet/ci/wq-proof-gate.sh [BIZRA_BINARY] [BASE_PORT]
# GATE_ARTIFACTS=DIR keeps wq_proof.json and attestation.json there.
# REQUIRE_PROMETHEUS=1 fails (instead of skipping) when promtool/prometheus are missing.
set -euo pipefail
BIN=${1:-./target/release/bizra}
BASE=${2:-27400}
WORK=$(mktemp -d /tmp/bizra-gate.XXXXXX)
NET=$WORK/net
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
trap cleanup EXIT

"$BIN" testnet init --validators 3 --out "$NET" --base-port "$BASE" --block-interval-ms 100 >/dev/null
for k in 0 1 2; do
  "$BIN" run --home "$NET/node$k" >"$WORK/node$k.log" 2>&1 &
  pids+=($!)
done
urls=""
for k in 0 1 2; do
  urls="${urls:+$urls,}http://127.0.0.1:$((BASE + 100 + k))"
done
# No wait for the nodes here: wq-proof retries connecting within --timeout,
# as a CI script that starts nodes and queries at once needs.
set +e
"$BIN" wq-proof --grpc "$urls" --min-height 3 --timeout 120 --genesis "$NET/genesis.json" --out "$WORK/wq_proof.json" >"$WORK/wq-proof.out" 2>&1
rc=$?
set -e
if [ $rc -ne 0 ]; then
  cat "$WORK/wq-proof.out"
  for k in 0 1 2; do echo "--- node$k log tail"; tail -n 20 "$WORK/node$k.log"; done
  echo "FAIL: bizra wq-proof exited $rc"
  exit 1
fi
"$BIN" verify "$WORK/wq_proof.json" --genesis "$NET/genesis.json"
if python3 -c 'import cryptography' 2>/dev/null; then
  python3 tests/spec_verifier/verify_wq_proof.py "$WORK/wq_proof.json" --genesis "$NET/genesis.json"
else
  echo "note: python cryptography missing; independent verifier skipped"
fi
# A PoI attestation (validator 1 about validator 2), finalized, exported and checked offline.
echo "gate evidence" >"$WORK/evidence.bin"
subject=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$NET/node2/validator.key")
"$BIN" attest --grpc "http://127.0.0.1:$((BASE + 101))" --key "$NET/node1/validator.key" --subject "$subject" \
  --evidence "$WORK/evidence.bin" --dim quality=8000:6000 --dim reach=5000:4000 --wait --timeout 60 \
  --out "$WORK/attestation.json" >"$WORK/attest.out" 2>&1 || { cat "$WORK/attest.out"; echo "FAIL: bizra attest"; exit 1; }
"$BIN" verify "$WORK/attestation.json" --genesis "$NET/genesis.json"
if [ -n "${GATE_ARTIFACTS:-}" ]; then
  mkdir -p "$GATE_ARTIFACTS"
  cp "$WORK/wq_proof.json" "$WORK/attestation.json" "$GATE_ARTIFACTS/"
fi
# Metrics: the exposition passes promtool's lint, and a real Prometheus server
# scrapes all three nodes with the shipped rules and answers a finality query.
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  python3 -c 'import sys,urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://127.0.0.1:$((BASE + 200))/metrics" >"$WORK/metrics.txt"
  if ! promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.out" 2>&1; then
    cat "$WORK/promtool.out"; echo "FAIL: promtool check metrics on node0"; exit 1
  fi
  echo "ok: promtool check metrics is clean on node0 ($(grep -c '^# TYPE' "$WORK/metrics.txt") families)"
  PROM_PORT=$((BASE + 300))
  cat >"$WORK/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$ROOT/ops/prometheus/bizra-rules.yml"]
scrape_configs:
  - job_name: bizra
    static_configs:
      - targets: ["127.0.0.1:$((BASE + 200))", "127.0.0.1:$((BASE + 201))", "127.0.0.1:$((BASE + 202))"]
YML
  prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
  pids+=($!)
  if ! python3 "$HERE/prometheus_check.py" "http://127.0.0.1:$PROM_PORT" 3 --timeout 90; then
    tail -n 20 "$WORK/prometheus.log"; echo "FAIL: Prometheus end-to-end check"; exit 1
  fi
elif [ "${REQUIRE_PROMETHEUS:-0}" = 1 ]; then
  echo "FAIL: promtool/prometheus not installed (REQUIRE_PROMETHEUS=1)"; exit 1
else
  echo "note: promtool/prometheus missing (apt-get install prometheus); metrics lint and Prometheus check skipped"
fi
# A client generated from proto/ by stock tooling (grpcio-tools' protoc) calls
# every rpc of bizra.node.v1.Node, health and reflection on node0.
if python3 -c 'import grpc, grpc_tools.protoc, grpc_health.v1.health_pb2, grpc_reflection.v1alpha.reflection_pb2' 2>/dev/null; then
  if ! python3 tests/stock_client/stock_client.py --grpc "http://127.0.0.1:$((BASE + 100))" >"$WORK/stock-client.out" 2>&1; then
    cat "$WORK/stock-client.out"
    echo "--- node0 log tail"; tail -n 20 "$WORK/node0.log"
    echo "FAIL: stock gRPC client against node0"
    exit 1
  fi
  tail -n 1 "$WORK/stock-client.out"
else
  echo "note: python grpcio/grpcio-tools/grpcio-health-checking/grpcio-reflection missing; stock gRPC client skipped"
fi
# The agreement line, last.
tail -n 1 "$WORK/wq-proof.out"
