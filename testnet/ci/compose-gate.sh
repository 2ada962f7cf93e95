#!/usr/bin/env bash
# CI: a 4-validator docker-compose testnet built from nothing (FROM scratch +
# a static bizra), agreement proved over its published gRPC ports with
# `bizra wq-proof`, then torn down. Skips (one line) when no Docker engine.
# Usage: testnet/ci/compose-gate.sh STATIC_BIZRA_BINARY [BASE_PORT]
# IMAGE_TAR=FILE also saves the image (`docker save`) there, for the release bundle.
set -euo pipefail
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
BASE=${2:-29400}
if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "compose gate: no Docker engine on this machine; skipped"
  exit 0
fi
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
WORK=$(mktemp -d /tmp/bizra-compose.XXXXXX)
DIR=$WORK/c4
PROJECT=bizraci$$
"$BIN" testnet compose --validators 4 --out "$DIR" --base-port "$BASE" --publish-grpc 4 --subnet 172.29.0.0/24 --block-interval-ms 200 >/dev/null
down() { (cd "$DIR" && "${COMPOSE[@]}" -p "$PROJECT" down -v --remove-orphans >/dev/null 2>&1) || true; }
trap down EXIT
(cd "$DIR" && BIZRA_BIN="$BIN" ./build-image.sh >/dev/null)
if [ -n "${IMAGE_TAR:-}" ]; then
  image=$(sed -n 's/^ *image: *//p' "$DIR/docker-compose.yml" | head -n 1 | tr -d '"')
  docker save "$image" -o "$IMAGE_TAR"
fi
(cd "$DIR" && "${COMPOSE[@]}" -p "$PROJECT" up -d >/dev/null)
urls=""
for k in 0 1 2 3; do
  url="http://127.0.0.1:$((BASE + 100 + k))"
  urls="${urls:+$urls,}$url"
  for _ in $(seq 1 150); do "$BIN" head --grpc "$url" >/dev/null 2>&1 && break; sleep 0.4; done
done
set +e
"$BIN" wq-proof --grpc "$urls" --min-height 3 --timeout 180 --genesis "$DIR/genesis.json" --out "$WORK/wq_proof.json" >"$WORK/out" 2>&1
rc=$?
set -e
if [ $rc -ne 0 ]; then
  cat "$WORK/out"
  (cd "$DIR" && "${COMPOSE[@]}" -p "$PROJECT" logs --tail 30) || true
  echo "FAIL: wq-proof over the compose testnet exited $rc"
  exit 1
fi
"$BIN" verify "$WORK/wq_proof.json" --genesis "$DIR/genesis.json" >/dev/null
echo "compose testnet (4 containers): $(tail -n 1 "$WORK/out")"
