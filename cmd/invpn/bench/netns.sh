#!/usr/bin/env bash
# Throughput and latency of the invpn overlay against the raw veth underlay,
# in network namespaces this script creates and always removes.
#
#   sudo bash cmd/invpn/bench/netns.sh [RUNS] [SECONDS]
#   sudo bash cmd/invpn/bench/netns.sh transports [SECONDS]
#
# The second form compares the transports (TLS over TCP and QUIC, 2
# nodes) on a clean veth and on an impaired underlay (20 ms of round trip,
# 0, 1 and 3 % loss): TCP throughput and ping p50/p99 during the
# transfer, as a Markdown table (TestBenchTransports in
# cmd/invpn/bench_transports_test.go; INVPN_BENCH_MTU=N sets the TAP MTU).
#
# With PERF_DIR=dir set, the first overlay run of each measurement is
# profiled with perf record (daemons only) into dir/NAME.data, and the top
# of its report is written to dir/NAME.txt.
#
# Measures, in one run: TCP throughput (iperf3, SECONDS per run, RUNS runs,
# median) and ping RTT for (1) raw veth between two namespaces, (2)
# wireguard-go between the same two namespaces over the same veth (L3
# point-to-point, MTU 1420, its default), (3) the overlay between 2 invpn
# nodes, (4) a 3-node line where the middle node relays. Prints Gbit/s, the
# ratio to raw veth ("of raw") and to the wireguard-go row ("of wg-go",
# "-" without that row), RTT added, CPU seconds of the daemons per GB
# moved, and each daemon's peak RSS. All traffic stays inside the
# namespaces; nothing else is touched. Only one of wireguard-go and invpn
# runs at a time.
#
# The wireguard-go row is on by default: wireguard-go is built with go
# install (golang.zx2c4.com/wireguard@latest, from the module proxy) and
# wg is installed from wireguard-tools if missing. WG=0 skips the row; if
# the build or setup fails, the row is left out and the rest still runs.
#
# The tinc row (tinc 1.0, switch mode, TCP only: the closest to invpn, a
# layer-2 mesh over TCP) is on by default too: tinc is installed from
# Debian if missing. TINC=0 skips it; if setup fails, it is left out.
set -euo pipefail

# INVPN_BIN=path runs that invpn binary instead of building this tree's
# (an A/B against another commit in one sitting).
#
# OFFLOAD=0 runs the invpn rows with [tap] offload = false (every frame
# MSS-sized, as before TAP offloads), for a before/after in one sitting.
OFFLOAD_CONF=true
[ "${OFFLOAD:-1}" = 0 ] && OFFLOAD_CONF=false
RUNS=${1:-3}
SECS=${2:-10}
cd "$(dirname "$0")/../../.."

if [ "$(id -u)" -ne 0 ]; then echo "netns.sh: needs root (network namespaces and TAP devices)" >&2; exit 1; fi
if [ ! -c /dev/net/tun ]; then echo "netns.sh: /dev/net/tun is missing (modprobe tun)" >&2; exit 1; fi
if ! command -v iperf3 >/dev/null; then
  echo "== installing iperf3"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null
fi
command -v ping >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iputils-ping >/dev/null; }
command -v nft >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null; }

if [ "$RUNS" = transports ]; then
  # Namespaces, links and daemons are made and removed by the test.
  exec env INVPN_BENCH_TRANSPORTS=1 INVPN_REQUIRE_E2E=1 INVPN_BENCH_SECS="${2:-10}" \
    go test ./cmd/invpn -run '^TestBenchTransports$' -v -count=1 -timeout 30m
fi

P="ivb$((RANDOM % 9000 + 1000))"
WORK=$(mktemp -d)
PIDS=()
WGDIR_NEW=0; [ -d /var/run/wireguard ] || WGDIR_NEW=1 # wireguard-go makes it
cleanup() {
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done
  for i in 1 2 3; do # iperf3 servers and anything else left inside
    ip netns pids "$P-$i" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$P-$i" 2>/dev/null || true
  done
  # wireguard-go's UAPI sockets (left behind if it was killed with -9).
  rm -f "/var/run/wireguard/${P}w1.sock" "/var/run/wireguard/${P}w2.sock"
  [ "$WGDIR_NEW" = 1 ] && rmdir /var/run/wireguard 2>/dev/null || true # only if empty
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM # exit, so cleanup runs once (EXIT)

if [ -n "${INVPN_BIN:-}" ]; then
  INVPN=$(realpath "$INVPN_BIN") # a build to compare, e.g. of another commit
  echo "== invpn: $INVPN"
else
  echo "== building invpn"
  go build -o "$WORK/invpn" ./cmd/invpn
  INVPN="$WORK/invpn"
fi

WGGO="" # wireguard-go binary, empty when the row is skipped
if [ "${WG:-1}" = 0 ]; then
  echo "== wireguard-go: skipped (WG=0)"
else
  echo "== building wireguard-go"
  if GOBIN="$WORK/wgbin" go install golang.zx2c4.com/wireguard@latest >"$WORK/wgbuild.log" 2>&1 \
    && [ -x "$WORK/wgbin/wireguard" ]; then
    WGGO="$WORK/wgbin/wireguard"
    if ! command -v wg >/dev/null; then
      echo "== installing wireguard-tools"
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wireguard-tools >/dev/null; } || true
    fi
    if ! command -v wg >/dev/null; then
      echo "== wireguard-go: wg (wireguard-tools) is missing and could not be installed; row left out"
      WGGO=""
    fi
  else
    echo "== wireguard-go: build failed, row left out ($(tail -n 1 "$WORK/wgbuild.log"))"
  fi
fi

TINCD="" # tincd binary, empty when the row is skipped
if [ "${TINC:-1}" = 0 ]; then
  echo "== tinc: skipped (TINC=0)"
else
  if ! command -v tincd >/dev/null; then
    echo "== installing tinc"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tinc >/dev/null; } || true
  fi
  TINCD=$(command -v tincd || true)
  [ -n "$TINCD" ] || echo "== tinc: could not be installed; row left out"
fi

ns() { ip netns exec "$P-$1" "${@:2}"; }
for i in 1 2 3; do ip netns add "$P-$i"; ns "$i" ip link set lo up; done
# Underlay: 1 -- 2 -- 3 over veth pairs, addresses only inside the namespaces.
ip link add "$P-a" netns "$P-1" type veth peer name "$P-b" netns "$P-2"
ip link add "$P-c" netns "$P-2" type veth peer name "$P-d" netns "$P-3"
ns 1 ip addr add 10.201.12.1/24 dev "$P-a"; ns 1 ip link set "$P-a" up
ns 2 ip addr add 10.201.12.2/24 dev "$P-b"; ns 2 ip link set "$P-b" up
ns 2 ip addr add 10.201.23.2/24 dev "$P-c"; ns 2 ip link set "$P-c" up
ns 3 ip addr add 10.201.23.3/24 dev "$P-d"; ns 3 ip link set "$P-d" up

"$INVPN" ca init --dir "$WORK/ca" >/dev/null
for i in 1 2 3; do
  "$INVPN" cert issue --ca "$WORK/ca" --mac "02:50:56:00:00:0$i" --out "$WORK/n$i" >/dev/null
done

# config I INIT: writes node I's config, dialling INIT (may be empty).
config() {
  cat > "$WORK/n$1/invpn.conf" <<CONF
[ssl]
key = node.key
cert = node.crt
ca = ca.crt
[network]
port = 41744
cache = cache.json
init = $2
[tap]
name = ${P}t$1
address = 10.78.0.$1/24
offload = ${OFFLOAD_CONF:-true}
[log]
level = warn
[control]
socket = ctl.sock
CONF
}

start() { # start I: runs node I's daemon in its namespace
  # ip netns exec execs the daemon, so $! is the daemon's PID (not a
  # subshell's, as it would be through the ns function).
  ip netns exec "$P-$1" env ${DAEMON_ENV:-} "$INVPN" run -c "$WORK/n$1/invpn.conf" >"$WORK/n$1/log" 2>&1 &
  PIDS+=($!)
  eval "PID$1=$!"
}

stop_all() {
  if [ -n "${PERF_DIR:-}" ]; then for i in 1 2 3; do
    ip netns exec "$P-$i" ip -s link >"$PERF_DIR/$1.n$i.links" 2>/dev/null || true
    [ -S "$WORK/n$i/ctl.sock" ] && "$INVPN" status -c "$WORK/n$i/invpn.conf" >"$PERF_DIR/$1.n$i.status" 2>&1 || true
  done; fi
  for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  PIDS=()
  if [ -n "${PERF_DIR:-}" ]; then for i in 1 2 3; do [ -f "$WORK/n$i/log" ] && cp "$WORK/n$i/log" "$PERF_DIR/$1.n$i.log" || true; done; fi
}

wait_ping() { # wait_ping FROM ADDR: until one ping answers, at most 30 s
  for _ in $(seq 60); do ns "$1" ping -c1 -W1 -q "$2" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "no answer from $2 in namespace $1 after 30 s" >&2; return 1
}

cpu_ticks() { # cpu_ticks PID...: user+system clock ticks
  local t=0
  for pid in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  echo "$t"
}

# measure NAME FROM SERVER_NS ADDR PIDS...: prints one result line
measure() {
  local name=$1 from=$2 srv=$3 addr=$4; shift 4
  # RTT: median of 50 pings (the mean is dominated by the odd outlier of
  # a loaded 2-core machine), after 5 that warm up ARP and the daemons.
  local rtt
  ns "$from" ping -c 5 -i 0.05 -q "$addr" >/dev/null 2>&1 || true
  rtt=$(ns "$from" ping -c 50 -i 0.02 "$addr" | sed -n 's/.*time=\([0-9.]*\).*/\1/p' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  local results=() bytes=0 retrans=0 t0 t1
  t0=$(cpu_ticks "$@" 2>/dev/null || echo 0)
  local run=0 perfpid="" tag
  tag=$(echo "$name" | tr -c 'a-z0-9\n' '-')
  for _ in $(seq "$RUNS"); do
    run=$((run + 1))
    ns "$srv" iperf3 -s -D -1 >/dev/null 2>&1 || true
    sleep 0.2
    if [ -n "${PERF_DIR:-}" ] && [ $# -gt 0 ] && [ "$run" -eq 1 ]; then
      mkdir -p "$PERF_DIR"
      perf record -q -g -p "$(IFS=,; echo "$*")" -o "$PERF_DIR/$tag.data" -- sleep "$SECS" >/dev/null 2>&1 &
      perfpid=$!
    fi
    local out
    out=$(ns "$from" iperf3 -c "$addr" -t "$SECS" -J)
    if [ -n "$perfpid" ]; then
      wait "$perfpid" 2>/dev/null || true
      perf report -q --no-children --sort sym -i "$PERF_DIR/$tag.data" 2>/dev/null | grep -v '^$' | grep -v '^ *|' | grep -v -- '---' | head -50 >"$PERF_DIR/$tag.txt" || true
      perfpid=""
    fi
    results+=("$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["end"]["sum_received"]["bits_per_second"]/1e9)')")
    bytes=$((bytes + $(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(int(d["end"]["sum_received"]["bytes"]))')))
    retrans=$((retrans + $(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(int(d["end"]["sum_sent"].get("retransmits", 0)))')))
  done
  t1=$(cpu_ticks "$@" 2>/dev/null || echo 0)
  if [ -n "${PERF_DIR:-}" ]; then
    for pid in "$@"; do cat "/proc/$pid/smaps_rollup" >"$PERF_DIR/$tag.$pid.smaps" 2>/dev/null || true; done
  fi
  local med
  med=$(printf '%s\n' "${results[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  local cpu_per_gb="-"
  if [ $# -gt 0 ]; then
    cpu_per_gb=$(python3 -c "print(f'{($t1-$t0)/$(getconf CLK_TCK)/($bytes/1e9):.2f}')")
  fi
  local rss="-"
  if [ $# -gt 0 ]; then
    rss=$(for pid in "$@"; do awk '/VmHWM/ {printf "%.1f ", $2/1024}' "/proc/$pid/status"; done)
  fi
  echo "$name|$med|$rtt|$cpu_per_gb|$((retrans / RUNS))|$rss"
}

# wg_start: wireguard-go in namespaces 1 and 2 over the veth, 10.79.0.1 <->
# 10.79.0.2; sets WGPID1 and WGPID2. Returns non-zero if anything fails.
wg_start() {
  local i j
  for i in 1 2; do
    # ip netns exec and env exec, so $! is wireguard-go's PID.
    ip netns exec "$P-$i" env WG_PROCESS_FOREGROUND=1 "$WGGO" -f "${P}w$i" >"$WORK/wg$i.log" 2>&1 &
    PIDS+=($!)
    eval "WGPID$i=$!"
    (umask 077; wg genkey >"$WORK/wg$i.key") || return 1
    wg pubkey <"$WORK/wg$i.key" >"$WORK/wg$i.pub" || return 1
  done
  for i in 1 2; do # until its UAPI socket is there, at most 10 s
    for _ in $(seq 100); do [ -S "/var/run/wireguard/${P}w$i.sock" ] && break; sleep 0.1; done
    [ -S "/var/run/wireguard/${P}w$i.sock" ] || { echo "wireguard-go ${P}w$i did not start: $(tail -n 3 "$WORK/wg$i.log")" >&2; return 1; }
  done
  for i in 1 2; do
    j=$((3 - i))
    ns "$i" wg set "${P}w$i" listen-port 51820 private-key "$WORK/wg$i.key" \
      peer "$(cat "$WORK/wg$j.pub")" allowed-ips "10.79.0.$j/32" endpoint "10.201.12.$j:51820" || return 1
    ns "$i" ip addr add "10.79.0.$i/24" dev "${P}w$i" || return 1
    ns "$i" ip link set "${P}w$i" mtu 1420 up || return 1
  done
  wait_ping 1 10.79.0.2
}

wg_stop() { # kills wireguard-go by PID, removes its interfaces and sockets
  stop_all wg
  for i in 1 2; do
    ns "$i" ip link del "${P}w$i" 2>/dev/null || true
    rm -f "/var/run/wireguard/${P}w$i.sock"
  done
}

echo "== raw veth"
RAW=$(measure "raw veth" 1 2 10.201.12.2)

WGROW=""
if [ -n "$WGGO" ]; then
  echo "== wireguard-go, 2 nodes"
  if wg_start; then
    WGROW=$(measure "wireguard-go 2 nodes" 1 2 10.79.0.2 "$WGPID1" "$WGPID2") || WGROW=""
  fi
  [ -n "$WGROW" ] || echo "== wireguard-go: setup or measurement failed, row left out"
  wg_stop
fi

# tinc_start: tinc 1.0 in namespaces 1 and 2 over the veth, switch mode
# (a TAP, like invpn), TCP only, its default ciphers; 10.80.0.1 <->
# 10.80.0.2; sets TINCPID1 and TINCPID2.
tinc_start() {
  local i d
  for i in 1 2; do
    d="$WORK/tinc$i"
    mkdir -p "$d/hosts"
    cat >"$d/tinc.conf" <<CONF
Name = t$i
Mode = switch
DeviceType = tap
Interface = ${P}k$i
AddressFamily = ipv4
TCPOnly = yes
CONF
    [ "$i" = 2 ] && echo "ConnectTo = t1" >>"$d/tinc.conf"
    printf 'Address = 10.201.12.%s\nPort = 655\nTCPOnly = yes\n' "$i" >"$d/hosts/t$i"
    printf '#!/bin/sh\nip addr add 10.80.0.%s/24 dev "$INTERFACE" && ip link set "$INTERFACE" up\n' "$i" >"$d/tinc-up"
    chmod +x "$d/tinc-up"
    "$TINCD" -c "$d" -K 2048 </dev/null >"$d/keygen.log" 2>&1 || return 1
  done
  cp "$WORK/tinc1/hosts/t1" "$WORK/tinc2/hosts/t1"
  cp "$WORK/tinc2/hosts/t2" "$WORK/tinc1/hosts/t2"
  for i in 1 2; do
    d="$WORK/tinc$i"
    # ip netns exec execs tincd (-D: in the foreground), so $! is its PID.
    ip netns exec "$P-$i" "$TINCD" -c "$d" -D --pidfile="$d/pid" >"$d/log" 2>&1 &
    PIDS+=($!)
    eval "TINCPID$i=$!"
  done
  wait_ping 1 10.80.0.2
}

TINCROW=""
if [ -n "$TINCD" ]; then
  echo "== tinc, 2 nodes"
  if tinc_start; then
    TINCROW=$(measure "tinc 2 nodes" 1 2 10.80.0.2 "$TINCPID1" "$TINCPID2") || TINCROW=""
  fi
  [ -n "$TINCROW" ] || echo "== tinc: setup or measurement failed, row left out ($(tail -n 2 "$WORK/tinc1/log" 2>/dev/null))"
  stop_all tinc
fi

echo "== overlay, 2 nodes"
config 1 ""; config 2 "02:50:56:00:00:01@10.201.12.1:41744"
start 1; start 2
wait_ping 1 10.78.0.2
TWO=$(measure "overlay 2 nodes" 1 2 10.78.0.2 "$PID1" "$PID2")
stop_all two

echo "== overlay, 3-node line through a relay"
config 1 ""; config 2 "02:50:56:00:00:01@10.201.12.1:41744"; config 3 "02:50:56:00:00:02@10.201.23.2:41744"
rm -f "$WORK"/n*/cache.json
start 1; start 2; start 3
wait_ping 1 10.78.0.3
THREE=$(measure "overlay 3-node line" 1 3 10.78.0.3 "$PID1" "$PID2" "$PID3")
stop_all three

raw_gbps=$(echo "$RAW" | cut -d'|' -f2); raw_rtt=$(echo "$RAW" | cut -d'|' -f3)
wg_gbps=-; [ -n "$WGROW" ] && wg_gbps=$(echo "$WGROW" | cut -d'|' -f2)
echo
echo "invpn netns benchmark, $(date -u +%Y-%m-%d), $(nproc) cores, iperf3 ${SECS}s x ${RUNS} (median)"
printf '%-22s %9s %8s %8s %10s %12s %8s %s\n' "path" "Gbit/s" "of raw" "of wg-go" "RTT +ms" "CPU s/GB" "retrans" "peak RSS MiB"
for line in "$RAW" "$WGROW" "$TINCROW" "$TWO" "$THREE"; do
  [ -n "$line" ] || continue
  IFS='|' read -r name gbps rtt cpu retr rss <<<"$line"
  python3 - "$name" "$gbps" "$rtt" "$cpu" "$retr" "$rss" "$raw_gbps" "$raw_rtt" "$wg_gbps" <<'PY'
import sys
name, gbps, rtt, cpu, retr, rss, raw, raw_rtt, wg = sys.argv[1:]
ofwg = f"{float(gbps)/float(wg):7.2f}x" if wg != "-" and float(wg) > 0 else "-"
print(f"{name:<22} {float(gbps):9.2f} {float(gbps)/float(raw)*100:7.1f}% {ofwg:>8} {float(rtt)-float(raw_rtt):10.3f} {cpu:>12} {retr:>8} {rss}")
PY
done
