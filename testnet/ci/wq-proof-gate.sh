#!/usr/bin/env bash
# The gate: a real 3-validator testnet on loopback, `bizra wq-proof` over
# their gRPC endpoints, `bizra verify` and the independent Python verifier on
# the proof. Always stops the nodes it started (by PID).
# Usage: testnet/ci/wq-proof-gate.sh [BIZRA_BINARY] [BASE_PORT]
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
trap cleanup EXIT

"$BIN" testnet init --validators 3 --out "$NET" --base-port "$BASE" --block-interval-ms 100 >/dev/null
for k in 0 1 2; do
  "$BIN" run --home "$NET/node$k" >"$WORK/node$k.log" 2>&1 &
  pids+=($!)
done
urls=""
for k in 0 1 2; do
  url="http://127.0.0.1:$((BASE + 100 + k))"
  urls="${urls:+$urls,}$url"
  # wq-proof treats a dead endpoint as a failure: wait until each answers.
  for _ in $(seq 1 150); do
    "$BIN" head --grpc "$url" >/dev/null 2>&1 && break
    sleep 0.2
  done
done
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
