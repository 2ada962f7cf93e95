#!/usr/bin/env bash
# CI: a 4-validator bizra stack on a one-node Docker Swarm (the multi-host
# path, tried on one host): deploy with no registry, prove agreement with
# `bizra wq-proof` over the published gRPC ports, kill one task, see Swarm
# restart it on a new IP and the validator rejoin by DNS name, prove agreement
# again, remove the stack, and leave the swarm only if this script created it.
# Skips (one line) when no Docker engine.
# Usage: testnet/ci/swarm-gate.sh STATIC_BIZRA_BINARY [BASE_PORT]
set -euo pipefail
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
BASE=${2:-31400}
if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "swarm gate: no Docker engine on this machine; skipped"
  exit 0
fi
WORK=$(mktemp -d /tmp/bizra-swarm.XXXXXX)
DIR=$WORK/st4
STACK=bizraci$$
created_swarm=0
cleanup() {
  docker stack rm "$STACK" >/dev/null 2>&1 || true
  # Wait for the tasks and the network to go before leaving (or the next run reuses names).
  for _ in $(seq 1 60); do
    [ -z "$(docker ps -q --filter "label=com.docker.stack.namespace=$STACK")" ] &&
      ! docker network inspect "${STACK}_bizra" >/dev/null 2>&1 && break
    sleep 1
  done
  # The stack's named volumes outlive it; a removed task's container may hold one for a moment.
  for _ in $(seq 1 20); do
    vols=$(docker volume ls -q --filter "name=^${STACK}_")
    [ -z "$vols" ] && break
    echo "$vols" | xargs -r docker volume rm >/dev/null 2>&1 || sleep 1
  done
  if [ $created_swarm = 1 ]; then docker swarm leave --force >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "swarm gate: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  created_swarm=1
fi
"$BIN" testnet stack --validators 4 --out "$DIR" --base-port "$BASE" --block-interval-ms 200 >/dev/null
(cd "$DIR" && BIZRA_BIN="$BIN" ./build-image.sh >/dev/null)
docker stack deploy -c "$DIR/stack.yml" --resolve-image never --detach=true "$STACK" >/dev/null
urls=""
for k in 0 1 2 3; do urls="${urls:+$urls,}http://127.0.0.1:$((BASE + 100 + k))"; done
proof() { # $1: min height, $2: output
  # Runs inside $(...): diagnostics go to stderr, or a failure would vanish into the variable.
  if ! "$BIN" wq-proof --grpc "$urls" --min-height "$1" --timeout 240 --genesis "$DIR/genesis.json" --out "$2" >"$2.out" 2>&1; then
    {
      cat "$2.out"
      docker service ls --filter "label=com.docker.stack.namespace=$STACK" || true
      docker service ps --no-trunc "$STACK"_node0 "$STACK"_node1 "$STACK"_node2 "$STACK"_node3 || true
      for k in 0 1 2 3; do echo "--- node$k"; docker service logs --tail 15 "${STACK}_node$k" 2>&1 || true; done
      echo "FAIL: wq-proof over the swarm stack (min height $1)"
    } >&2
    exit 1
  fi
  if ! "$BIN" verify "$2" --genesis "$DIR/genesis.json" >"$2.verify" 2>&1; then
    { cat "$2.verify"; echo "FAIL: bizra verify refused the swarm proof $2"; } >&2
    exit 1
  fi
  tail -n 1 "$2.out"
}
first=$(proof 3 "$WORK/proof1.json")
echo "swarm stack (4 services): $first"

# Kill node2's task: Swarm starts a new one, on a new IP; the others must find it by name.
svc=${STACK}_node2
task_ip() { docker inspect -f "{{(index .NetworkSettings.Networks \"${STACK}_bizra\").IPAddress}}" "$1"; }
old=$(docker ps -q --filter "label=com.docker.swarm.service.name=$svc")
old_ip=$(task_ip "$old")
docker kill "$old" >/dev/null
new=""
for _ in $(seq 1 120); do
  new=$(docker ps -q --filter "label=com.docker.swarm.service.name=$svc")
  [ -n "$new" ] && [ "$new" != "$old" ] && break
  sleep 1
done
[ -n "$new" ] && [ "$new" != "$old" ] || { echo "FAIL: Swarm did not restart $svc"; exit 1; }
new_ip=$(task_ip "$new")
echo "killed $svc task ($old_ip); Swarm restarted it at $new_ip"
h=$(echo "$first" | sed -n 's/.* at height \([0-9]*\).*/\1/p')
second=$(proof $((h + 5)) "$WORK/proof2.json")
# node2 itself must have finalized past the kill: its own head report is in the proof.
echo "after the restart: $second"
if [ "$old_ip" = "$new_ip" ]; then
  echo "note: the restarted task got the same IP ($new_ip); the name was still re-resolved"
fi
