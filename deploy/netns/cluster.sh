#!/bin/bash
# A small multi-host cluster on one machine: one network namespace for the coordinator and one per
# worker host, each joined by a veth link to a bridge in a "switch" namespace. Every link is
# full-duplex at its own rate, each direction shaped once with tc tbf: a host's uplink on its own
# end of the veth, its downlink on the switch's end (a switch port's egress). Runs `ganfleet bench
# --attach` on the coordinator host and `ganfleet worker` on the worker hosts, over real addresses
# (coordinator 10.77.0.1, worker host i 10.77.0.(10+i)), then removes everything it made, also on
# Ctrl-C / SIGTERM / failure. Needs root (ip netns, tc); --dry-run does not.
#
#   deploy/netns/cluster.sh [--workers 1,2,4] [--coordinator-gbit 10] [--worker-gbit 1 | R1,R2,...]
#                           [--steps 30] [--warmup 5] [--out DIR] [--calibrate-steps N | --no-calibrate]
#                           [--dry-run] [-- extra bench flags]
#
#   --workers LIST         worker counts, one bench segment each (1..64 each; default 1,2)
#   --coordinator-gbit R   the coordinator host's link, Gbit/s each way (default 10)
#   --worker-gbit R        every worker host's link (default 1); or a list R1,R2,... with one rate per
#                          worker host (as many as the largest worker count): host i gets Ri
#   Rates are decimals in [0.001, 10] Gbit/s. The n-worker segment runs on worker hosts 1..n and no
#   others (spare hosts would receive every weights broadcast too); its model uses the coordinator's
#   rate and the slowest of those n hosts' rates.
#   --calibrate-steps N    first measure H, the rate TCP moves bytes between two hosts with the links
#                          unshaped (this machine's CPU), and run the same segments unshaped (N timed
#                          steps each, default min(20, --steps)); the shaped run's model then counts
#                          links above H as H (--host-gbit; such rates are named: there the CPU, not
#                          the link, bounds a step) and adds each segment's step time left over
#                          unshaped beyond compute + coordinator + wire at H as its per-step overhead
#                          (--overhead-ms; see coordinator/bench/report.ts)
#   --no-calibrate         no calibration run: no host rate and no overhead in the model
#   --dry-run              print the plan (hosts, addresses, the tc and ip commands) and exit
#
# Shaping (per link direction at rate R, in bytes per ms r = R·1e9/8/1000; every veth's GSO size G =
# the slowest link's quarter millisecond, clamped to 16–64 KiB, so that a packet is small against a
# burst): tbf burst = max(r · 1 ms, 4·G) and a queue of limit = max(r · 50 ms, 1 MiB, 4·G for each
# connection a link may carry), so that neither TCP's own queue on the sending host nor a switch
# port's drops packets or starves on late timers. See docs/netns-cluster.md for the measurements behind these sizes.
#
# Examples:
#   deploy/netns/cluster.sh --workers 1,2,4 --worker-gbit 1 --coordinator-gbit 10 --out runs/netns
#   deploy/netns/cluster.sh --workers 2 --coordinator-gbit 1 --worker-gbit 1,0.1 -- --synthetic-compute-ms 5
set -euo pipefail

usage_error() { echo "cluster.sh: $*" >&2; exit 2; }

WORKERS=1,2
CGBIT=10
WGBIT=1
STEPS=30
WARMUP=5
OUT=runs/netns-bench
CAL_STEPS=
CALIBRATE=1
DRY=0
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --workers | --coordinator-gbit | --worker-gbit | --steps | --warmup | --out | --calibrate-steps)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in
        --workers) WORKERS=$2 ;;
        --coordinator-gbit) CGBIT=$2 ;;
        --worker-gbit) WGBIT=$2 ;;
        --steps) STEPS=$2 ;;
        --warmup) WARMUP=$2 ;;
        --out) OUT=$2 ;;
        --calibrate-steps) CAL_STEPS=$2 ;;
      esac
      shift 2 ;;
    --no-calibrate) CALIBRATE=0; shift ;;
    --dry-run) DRY=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h | --help) awk 'NR > 1 && /^set -euo/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage_error "unknown option $1 (see --help)" ;;
  esac
done

# ---- validation: every value strictly, exit 2 naming the flag --------------------------------------
[[ $WORKERS =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] ||
  usage_error "--workers must be a list of worker counts like 1,2,4, got \"$WORKERS\""
MAXW=0
for n in ${WORKERS//,/ }; do
  (( n <= 64 )) || usage_error "--workers: at most 64 workers, got $n"
  if (( n > MAXW )); then MAXW=$n; fi
done
[[ $STEPS =~ ^[1-9][0-9]{0,5}$ ]] || usage_error "--steps must be a positive integer, got \"$STEPS\""
[[ $WARMUP =~ ^[1-9][0-9]{0,5}$ ]] || usage_error "--warmup must be a positive integer, got \"$WARMUP\""
[ -n "$OUT" ] || usage_error "--out must not be empty"
if [ -z "$CAL_STEPS" ]; then CAL_STEPS=$(( STEPS < 20 ? STEPS : 20 )); fi
[[ $CAL_STEPS =~ ^[1-9][0-9]{0,5}$ ]] ||
  usage_error "--calibrate-steps must be a positive integer, got \"$CAL_STEPS\""

# A rate: a decimal in [0.001, 10] Gbit/s. Prints it in kbit/s (an integer, what tc is given).
rate_kbit() {
  local flag=$1 v=$2
  [[ $v =~ ^[0-9]{1,2}(\.[0-9]{1,6})?$ ]] ||
    usage_error "$flag: a rate is a decimal number of Gbit/s like 0.5 or 2.5, got \"$v\""
  local k
  k=$(awk -v g="$v" 'BEGIN { printf "%d", g * 1e6 + 0.5 }')
  (( k >= 1000 && k <= 10000000 )) || usage_error "$flag: a rate must be in [0.001, 10] Gbit/s, got $v"
  echo "$k"
}
CKBIT=$(rate_kbit --coordinator-gbit "$CGBIT")
IFS=, read -r -a WLIST <<<"$WGBIT"
[[ $WGBIT =~ ^[^,]+(,[^,]+)*$ ]] || usage_error "--worker-gbit must be a rate or a list R1,R2,..., got \"$WGBIT\""
if [ "${#WLIST[@]}" -ne 1 ] && [ "${#WLIST[@]}" -ne "$MAXW" ]; then
  usage_error "--worker-gbit: ${#WLIST[@]} rates for $MAXW worker hosts (give one rate, or one per worker host)"
fi
WKBIT=()
WGBITS=()
for i in $(seq 1 "$MAXW"); do
  g=${WLIST[0]}
  if [ "${#WLIST[@]}" -gt 1 ]; then g=${WLIST[$((i - 1))]}; fi
  WKBIT+=("$(rate_kbit --worker-gbit "$g")")
  WGBITS+=("$g")
done
WGBIT_LIST=$(IFS=,; echo "${WGBITS[*]}")

# ---- sizes: GSO for every veth, then per direction burst and queue limit ------------------------------
SLOWEST=$CKBIT
for k in "${WKBIT[@]}"; do if (( k < SLOWEST )); then SLOWEST=$k; fi; done
# kbit/s ÷ 8 = bytes per ms; a quarter of that, clamped to [16 KiB, 64 KiB].
GSO=$(( SLOWEST / 32 < 16384 ? 16384 : SLOWEST / 32 > 65536 ? 65536 : SLOWEST / 32 ))
# A queue holds 4 GSO packets for every connection a link may carry at once (a worker's to the
# coordinator and to each of the others, the coordinator's to every worker): TCP keeps about two
# packets a connection in a host's queue, and a packet dropped there costs its connection a
# retransmission timeout, which doubles each time (a real host's NIC queue holds thousands of packets).
FLOWS_LIMIT=$(( (MAXW + 1) * 4 * GSO ))
tbf_args() { # KBIT → "rate Xkbit burst B limit L"
  local k=$1 per_ms=$(( $1 / 8 ))
  local burst=$(( per_ms > 4 * GSO ? per_ms : 4 * GSO ))
  local limit=$(( per_ms * 50 > 1048576 ? per_ms * 50 : 1048576 ))
  limit=$(( limit > FLOWS_LIMIT ? limit : FLOWS_LIMIT ))
  echo "rate ${k}kbit burst $burst limit $limit"
}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CLI="$ROOT/dist/cli/main.js"
TAG="gf$$"                 # unique per run: several runs (or a leftover) never collide
# A token for the run: the coordinator's hosts and the workers' relays refuse anyone without it.
GANFLEET_TOKEN=${GANFLEET_TOKEN:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export GANFLEET_TOKEN
SW="${TAG}sw"
HOSTS=(c)
ADDRS=(10.77.0.1)
KBITS=("$CKBIT")
GBITS=("$CGBIT")
for i in $(seq 1 "$MAXW"); do
  HOSTS+=("w$i")
  ADDRS+=("10.77.0.$((10 + i))")
  KBITS+=("${WKBIT[$((i - 1))]}")
  GBITS+=("${WGBITS[$((i - 1))]}")
done

if [ "$DRY" = 1 ]; then
  echo "plan: switch namespace ${SW} with bridge br0; veth GSO size $GSO bytes"
  for j in "${!HOSTS[@]}"; do
    h=${HOSTS[$j]}
    echo "plan: host $h ${ADDRS[$j]} namespace ${TAG}$h: ${GBITS[$j]} Gbit/s each way"
    echo "plan:   up:   ip netns exec ${TAG}$h tc qdisc add dev eth0 root tbf $(tbf_args "${KBITS[$j]}")"
    echo "plan:   down: ip netns exec $SW tc qdisc add dev ${TAG}${h}p root tbf $(tbf_args "${KBITS[$j]}")"
  done
  echo "plan: segments $WORKERS, each on worker hosts 1..n; calibration $([ "$CALIBRATE" = 1 ] &&
    echo "$CAL_STEPS unshaped steps per segment" || echo off)"
  echo "plan: bench --coordinator-gbit $CGBIT --worker-gbit $WGBIT_LIST --steps $STEPS --warmup $WARMUP --out $OUT"
  exit 0
fi

[ -f "$CLI" ] || { echo "cluster.sh: $CLI missing; run npx tsc -p tsconfig.json first" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "cluster.sh: needs root (ip netns, tc); --dry-run shows the plan" >&2; exit 1; }
TMPD=$(mktemp -d)
WPID=()                    # worker pid per host index (1-based), empty when none runs
BENCH_PID=

cleanup() {
  trap - EXIT INT TERM
  # A trap can run inside `IFS= read`, with IFS empty: split words as usual here.
  local IFS=$' \t\n' p
  for p in "${WPID[@]}" $BENCH_PID; do if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi; done
  sleep 0.2
  for p in "${WPID[@]}" $BENCH_PID; do if [ -n "$p" ]; then kill -9 "$p" 2>/dev/null || true; fi; done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${TAG}" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$TMPD"
}
trap cleanup EXIT
trap 'echo "cluster.sh: interrupted; cleaning up" >&2; exit 130' INT TERM

ip netns add "$SW"
ip netns exec "$SW" ip link add br0 type bridge
ip netns exec "$SW" ip link set br0 up
ip netns exec "$SW" ip link set lo up

# host NAME ADDR: a namespace with one veth to the bridge (not yet shaped).
host() {
  local ns="${TAG}$1" addr=$2 peer="${TAG}$1p"
  ip netns add "$ns"
  ip link add eth0 netns "$ns" type veth peer name "$peer" netns "$SW"
  ip netns exec "$ns" ip link set dev eth0 gso_max_size "$GSO"
  ip netns exec "$SW" ip link set dev "$peer" gso_max_size "$GSO"
  ip netns exec "$ns" ip addr add "$addr/24" dev eth0
  ip netns exec "$ns" ip link set eth0 up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$SW" ip link set "$peer" master br0
  ip netns exec "$SW" ip link set "$peer" up
}
for j in "${!HOSTS[@]}"; do host "${HOSTS[$j]}" "${ADDRS[$j]}"; done

# Every host knows every other's MAC address from the start (permanent neighbour entries): ARP
# requests queue behind bulk data on the shaped links, and when many hosts send to one (a relay
# takes every worker's slice) its downlink queue is full often enough that ARP gives up
# (EHOSTUNREACH). A real cluster resolves its neighbours once, off the critical path.
neighbours() {
  local j k macs=()
  for j in "${!HOSTS[@]}"; do macs+=("$(ip netns exec "${TAG}${HOSTS[$j]}" cat /sys/class/net/eth0/address)"); done
  for j in "${!HOSTS[@]}"; do
    for k in "${!HOSTS[@]}"; do
      [ "$j" = "$k" ] || echo "neigh replace ${ADDRS[$k]} lladdr ${macs[$k]} dev eth0 nud permanent"
    done | ip netns exec "${TAG}${HOSTS[$j]}" ip -batch -
  done
}
neighbours
echo "cluster.sh: coordinator 10.77.0.1 (${CGBIT} Gbit/s), ${MAXW} worker host(s) 10.77.0.11… \
(${WGBIT_LIST} Gbit/s)" >&2

# Every link direction shaped once; then each host's two qdiscs as tc reports them back.
shape() {
  local j h
  for j in "${!HOSTS[@]}"; do
    h=${HOSTS[$j]}
    # shellcheck disable=SC2046 # tbf_args is a list of words
    ip netns exec "${TAG}$h" tc qdisc add dev eth0 root tbf $(tbf_args "${KBITS[$j]}")
    # shellcheck disable=SC2046
    ip netns exec "$SW" tc qdisc add dev "${TAG}${h}p" root tbf $(tbf_args "${KBITS[$j]}")
  done
  for j in "${!HOSTS[@]}"; do
    h=${HOSTS[$j]}
    echo "cluster.sh: link $h ${ADDRS[$j]}: up $(tc_rate "${TAG}$h" eth0), down $(tc_rate "$SW" "${TAG}${h}p")" >&2
  done
}
tc_rate() { # NS DEV → "rate 1Gbit burst 125000b" as tc shows it
  ip netns exec "$1" tc qdisc show dev "$2" | grep -o 'rate [^ ]* burst [^ ]*' || echo unshaped
}

# Worker host i runs a worker exactly while a segment needs it (hosts 1..n for n workers).
start_worker() {
  local i=$1
  # --no-shm: the hosts share this machine's /dev/shm, and the bytes must cross the links.
  ip netns exec "${TAG}w$i" node "$CLI" worker --connect ws://10.77.0.1:8787 --no-shm \
    --backend "${GANFLEET_NETNS_BACKEND:-wasm}" --threads 1 --log-level warn --max-retries 30 </dev/null &
  WPID[i]=$!
}
stop_worker() {
  local i=$1 p=${WPID[$1]:-}
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  WPID[i]=
}
workers_exactly() {
  local n=$1 i
  for i in $(seq 1 "$MAXW"); do
    if (( i <= n )); then
      { [ -n "${WPID[$i]:-}" ] && kill -0 "${WPID[$i]}" 2>/dev/null; } || start_worker "$i"
    else
      stop_worker "$i"
    fi
  done
}

# run_bench ARGS...: the bench on the coordinator host; its progress lines pass through stderr, and
# "waiting for N worker(s)" brings the worker hosts to exactly 1..N. Returns the bench's status.
run_bench() {
  local fifo="$TMPD/bench-stderr" line rc=0 i
  rm -f "$fifo"
  mkfifo "$fifo"
  ip netns exec "${TAG}c" node "$CLI" bench --attach ws://10.77.0.1:8787 --workers "$WORKERS" \
    "$@" 2>"$fifo" &
  BENCH_PID=$!
  while IFS= read -r line; do
    printf '%s\n' "$line" >&2
    if [[ $line =~ waiting\ for\ ([0-9]+)\ worker ]]; then workers_exactly "${BASH_REMATCH[1]}"; fi
  done <"$fifo"
  wait "$BENCH_PID" || rc=$?
  BENCH_PID=
  for i in $(seq 1 "$MAXW"); do stop_worker "$i"; done
  return "$rc"
}

# H, the rate this machine moves bytes between two hosts with the links unshaped: 3 × 64 MiB over TCP
# from worker host 1 to the coordinator host (the path the bench's bytes take), the median.
# shellcheck disable=SC2016 # JavaScript, not shell
host_gbit() {
  local js='
    const net = require("net"), [mode, n] = [process.argv[1], 64 * 2 ** 20];
    if (mode === "serve") {
      const srv = net.createServer((s) => { let got = 0;
        s.on("data", (d) => { got += d.length; while (got >= n) { got -= n; s.write("k"); } });
        s.on("end", () => { s.end(); srv.close(); }); });
      srv.listen(8788, "10.77.0.1", () => console.log("listening"));
    } else {
      const s = net.connect(8788, "10.77.0.1"), chunk = Buffer.alloc(2 ** 20, 7), rates = [];
      const round = async () => { const t0 = performance.now();
        for (let i = 0; i < 64; i++) if (!s.write(chunk)) await new Promise((r) => s.once("drain", r));
        await new Promise((r) => s.once("data", r)); rates.push((n * 8) / ((performance.now() - t0) / 1000) / 1e9); };
      s.once("connect", async () => { for (let i = 0; i < 3; i++) await round();
        rates.sort((a, b) => a - b); console.log(rates[1].toFixed(3)); s.end(); });
    }'
  local fifo="$TMPD/host-gbit" line
  mkfifo "$fifo"
  ip netns exec "${TAG}c" node -e "$js" serve >"$fifo" &
  read -r line <"$fifo"
  ip netns exec "${TAG}w1" node -e "$js" send
  wait $!
}

MODEL_ARGS=()
if [ "$CALIBRATE" = 1 ]; then
  H=$(host_gbit)
  echo "cluster.sh: calibration: TCP between two hosts with the links unshaped: $H Gbit/s (the hosts' rate H);" \
    "the same segments unshaped, $CAL_STEPS timed steps each" >&2
  run_bench --steps "$CAL_STEPS" --warmup "$WARMUP" --coordinator-gbit "$H" --worker-gbit "$H" \
    --out "$OUT/calibration" "${EXTRA[@]}" >/dev/null
  # Per segment, the step time the model leaves over with every link at H, at least 0: the shaped
  # run's model gets it as its overhead, and H as the rate the hosts move bytes at.
  # shellcheck disable=SC2016 # JavaScript, not shell
  OVERHEAD=$(node -e '
    const [file, h, ...rates] = process.argv.slice(1);
    const r = JSON.parse(require("fs").readFileSync(file, "utf8"));
    console.log(r.results.map((x) => Math.max(0, x.stepMs.mean - x.modelStepMs).toFixed(2)).join(","));
    const say = (s) => console.error(`cluster.sh: ${s}`);
    say("unshaped: " + r.results.map((x) =>
      `${x.workers} worker(s) ${x.stepMs.mean.toFixed(1)} ms a step, model ${x.modelStepMs.toFixed(1)}`).join("; "));
    const bound = [...new Set(rates)].filter((g) => Number(g) > Number(h));
    if (bound.length) say(`note: ${bound.join(", ")} Gbit/s is above the ${h} Gbit/s this machine moves ` +
      "unshaped: there the CPU, not the link, bounds a step (the model counts those links as that rate)");' \
    "$OUT/calibration/bench.json" "$H" "$CGBIT" "${WGBITS[@]}")
  echo "cluster.sh: for the model: hosts $H Gbit/s, per-step overhead (ms) $OVERHEAD" >&2
  MODEL_ARGS=(--host-gbit "$H" --overhead-ms "$OVERHEAD")
fi
shape
run_bench --steps "$STEPS" --warmup "$WARMUP" --coordinator-gbit "$CGBIT" --worker-gbit "$WGBIT_LIST" \
  "${MODEL_ARGS[@]}" --out "$OUT" "${EXTRA[@]}"
