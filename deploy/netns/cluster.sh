#!/bin/bash
# A small multi-host cluster on one machine: one network namespace for the coordinator and one per
# worker, joined by veth links to a bridge in a "switch" namespace, each link rate-limited with tc
# tbf (both directions: egress of both veth ends). Runs `ganfleet bench --attach` on the coordinator
# host and `ganfleet worker` on each worker host, over real addresses (10.77.0.0/24), then removes
# everything it made, also on Ctrl-C / SIGTERM / failure. Needs root (ip netns, tc).
#
#   deploy/netns/cluster.sh [--workers 1,2,4] [--coordinator-gbit 10] [--worker-gbit 1]
#                           [--steps 30] [--warmup 5] [--out DIR] [-- extra bench flags]
#
# Example: deploy/netns/cluster.sh --workers 1,2,4 --worker-gbit 1 --coordinator-gbit 10 --out runs/netns
set -euo pipefail

WORKERS=1,2
CGBIT=10
WGBIT=1
STEPS=30
WARMUP=5
OUT=runs/netns-bench
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) WORKERS=$2; shift 2 ;;
    --coordinator-gbit) CGBIT=$2; shift 2 ;;
    --worker-gbit) WGBIT=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "cluster.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $WORKERS =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "cluster.sh: --workers must be a list like 1,2,4" >&2; exit 2; }
[[ $CGBIT =~ ^[0-9]+(\.[0-9]+)?$ && $WGBIT =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
  { echo "cluster.sh: link rates must be numbers (Gbit/s)" >&2; exit 2; }
MAXW=$(tr ',' '\n' <<<"$WORKERS" | sort -n | tail -1)
(( MAXW >= 1 && MAXW <= 64 )) || { echo "cluster.sh: at most 64 workers" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CLI="$ROOT/dist/cli/main.js"
[ -f "$CLI" ] || { echo "cluster.sh: $CLI missing; run npx tsc -p tsconfig.json first" >&2; exit 1; }
TAG="gf$$"                 # unique per run: several runs (or a leftover) never collide
SW="${TAG}sw"
PIDS=()

cleanup() {
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.2
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${TAG}" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'echo "cluster.sh: interrupted; cleaning up" >&2; exit 130' INT TERM

# tbf at RATE Gbit/s on DEV in namespace NS: burst of ≥ 1 ms of traffic, 10 ms of queue.
limit() {
  local ns=$1 dev=$2 gbit=$3
  local bytes_per_ms
  bytes_per_ms=$(awk -v g="$gbit" 'BEGIN { printf "%d", g * 1e9 / 8 / 1000 }')
  local burst=$(( bytes_per_ms > 65536 ? bytes_per_ms : 65536 ))
  ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate "${gbit}gbit" burst "$burst" latency 10ms
}

ip netns add "$SW"
ip netns exec "$SW" ip link add br0 type bridge
ip netns exec "$SW" ip link set br0 up
ip netns exec "$SW" ip link set lo up

# host NAME ADDR GBIT: a namespace with one veth to the bridge, rate-limited both ways.
host() {
  local ns="${TAG}$1" addr=$2 gbit=$3 peer="${TAG}$1p"
  ip netns add "$ns"
  ip link add eth0 netns "$ns" type veth peer name "$peer" netns "$SW"
  ip netns exec "$ns" ip addr add "$addr/24" dev eth0
  ip netns exec "$ns" ip link set eth0 up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$SW" ip link set "$peer" master br0
  ip netns exec "$SW" ip link set "$peer" up
  limit "$ns" eth0 "$gbit"
  limit "$SW" "$peer" "$gbit"
}

host c 10.77.0.1 "$CGBIT"
for i in $(seq 1 "$MAXW"); do host "w$i" "10.77.0.$((10 + i))" "$WGBIT"; done
echo "cluster.sh: coordinator 10.77.0.1 (${CGBIT} Gbit/s)," \
  "${MAXW} worker host(s) 10.77.0.11… (${WGBIT} Gbit/s each)" >&2

for i in $(seq 1 "$MAXW"); do
  ip netns exec "${TAG}w$i" node "$CLI" worker --connect ws://10.77.0.1:8787 \
    --backend "${GANFLEET_NETNS_BACKEND:-wasm}" --threads 1 --log-level warn --max-retries 30 &
  PIDS+=($!)
done

# In the background, then `wait`: bash runs the INT/TERM trap at once during a wait, but only after
# a foreground command ends, and a Ctrl-C must not wait for the whole bench.
ip netns exec "${TAG}c" node "$CLI" bench --attach ws://10.77.0.1:8787 --insecure --workers "$WORKERS" \
  --steps "$STEPS" --warmup "$WARMUP" --coordinator-gbit "$CGBIT" --worker-gbit "$WGBIT" --out "$OUT" "${EXTRA[@]}" &
PIDS+=($!)
wait "$!"
