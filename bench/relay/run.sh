#!/usr/bin/env bash
# Relay benchmark: the same turnutils_uclient load (coturn's own load tool) against coturn's turnserver and
# against `xjingle relay`, both on 127.0.0.1 only, in one run. Reports relayed messages/s, Mbit/s, loss and
# server CPU for each, and the ratio of throughput per CPU second (xjingle / coturn).
#
# Bounded: PARALLEL x CLIENTS x MSGS messages per server (default 1 x 50 x 1000 of 1 KiB), each uclient run
# under a 90 s timeout; servers are started by this script on loopback and killed by PID.
#
#   bench/relay/run.sh                      # from the repository root
#   CLIENTS=50 MSGS=1000 SIZE=1024 INTERVAL=1 SOCKETS=2 bench/relay/run.sh
#   PARALLEL=4 bench/relay/run.sh           # four loads at once: saturated
set -euo pipefail

CLIENTS=${CLIENTS:-50}
MSGS=${MSGS:-1000}
SIZE=${SIZE:-1024}
INTERVAL=${INTERVAL:-1}   # uclient -z: ms between a client's packets
SOCKETS=${SOCKETS:-$(nproc)}
PARALLEL=${PARALLEL:-1}   # uclient loads run at once against each server (4 saturates 2 cores)
SECRET=bench-$RANDOM$RANDOM
COTURN_PORT=${COTURN_PORT:-35478}
XJ_PORT=${XJ_PORT:-35488}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

command -v turnserver >/dev/null && command -v turnutils_uclient >/dev/null || {
	echo "need coturn (turnserver, turnutils_uclient)" >&2; exit 1; }

# Build xjingle; while the rest of cmd/xjingle is unfinished, fall back to the relay command alone (its test
# binary runs the command when XJINGLE_RELAY_TEST_MAIN=1).
export GOFLAGS=-mod=mod
XJ=("$WORK/xjingle" relay)
XJ_ENV=()
if ! (cd "$ROOT" && go build -o "$WORK/xjingle" ./cmd/xjingle) 2>/dev/null; then
	(cd "$ROOT" && go test -c -o "$WORK/xjingle" cmd/xjingle/relay.go cmd/xjingle/relay_test.go)
	XJ=("$WORK/xjingle")
	XJ_ENV=(XJINGLE_RELAY_TEST_MAIN=1)
fi

cat >"$WORK/turnserver.conf" <<CONF
listening-ip=127.0.0.1
relay-ip=127.0.0.1
listening-port=$COTURN_PORT
min-port=40000
max-port=44999
use-auth-secret
static-auth-secret=$SECRET
realm=bench
no-tls
no-dtls
no-tcp
no-cli
no-multicast-peers
allow-loopback-peers
no-stdout-log
log-file=$WORK/turnserver.log
simple-log
pidfile=$WORK/turnserver.pid
userdb=$WORK/turndb
CONF
printf '%s\n' "$SECRET" >"$WORK/secret"
chmod 600 "$WORK/secret"

wait_stun() { # port
	for _ in $(seq 50); do
		if timeout 1 turnutils_stunclient -p "$1" 127.0.0.1 >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	echo "server on port $1 did not answer" >&2
	return 1
}

cpu_ticks() { # pid: utime+stime of the process, in clock ticks
	awk '{print $14+$15}' "/proc/$1/stat"
}

declare -A RES
measure() { # name pid port
	local name=$1 pid=$2 port=$3 out c0 c1 t0 t1
	out="$WORK/$name.out"
	c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
	local k ucs=()
	for k in $(seq "$PARALLEL"); do
		timeout 90 turnutils_uclient -y -c -m "$CLIENTS" -n "$MSGS" -l "$SIZE" -z "$INTERVAL" \
			-W "$SECRET" -p "$port" 127.0.0.1 >"$out.$k" 2>&1 &
		ucs+=($!)
	done
	for k in "${ucs[@]}"; do wait "$k" || true; done
	t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
	local hz sent=0 recv=0 v
	hz=$(getconf CLK_TCK)
	for k in $(seq "$PARALLEL"); do
		v=$(grep -o 'tot_send_msgs=[0-9]*' "$out.$k" | tail -1 | cut -d= -f2); sent=$((sent + ${v:-0}))
		v=$(grep -o 'tot_recv_msgs=[0-9]*' "$out.$k" | tail -1 | cut -d= -f2); recv=$((recv + ${v:-0}))
	done
	RES[$name]=$(awk -v s="${sent:-0}" -v r="${recv:-0}" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" \
		-v hz="$hz" -v size="$SIZE" 'BEGIN {
			wall = t1 - t0; cpu = (c1 - c0) / hz; if (cpu <= 0) cpu = 1 / hz
			loss = s > 0 ? 100 * (s - r) / s : 100
			printf "%d %d %.2f %.0f %.1f %.2f %.2f %.0f", s, r, wall, r / wall, r * size * 8 / wall / 1e6, loss, cpu, r / cpu
		}')
}

turnserver -c "$WORK/turnserver.conf" >/dev/null 2>&1 &
PIDS+=($!); COTURN_PID=$!
wait_stun "$COTURN_PORT"
measure coturn "$COTURN_PID" "$COTURN_PORT"
kill "$COTURN_PID"; wait "$COTURN_PID" 2>/dev/null || true

env "${XJ_ENV[@]}" "${XJ[@]}" --listen "127.0.0.1:$XJ_PORT" --secret-file "$WORK/secret" --realm bench \
	--allow-peer 127.0.0.1/32 --min-port 45000 --max-port 49999 --user-quota -1 --max-bps -1 \
	--unauth-rate -1 --sockets "$SOCKETS" --log-level warn 2>"$WORK/xjingle.log" &
PIDS+=($!); XJ_PID=$!
wait_stun "$XJ_PORT"
measure xjingle "$XJ_PID" "$XJ_PORT"
kill -TERM "$XJ_PID"; wait "$XJ_PID" 2>/dev/null || true

echo "load: $PARALLEL x turnutils_uclient -y -c -m $CLIENTS -n $MSGS -l $SIZE -z $INTERVAL (client-to-client over the relay), $(nproc) cores, xjingle --sockets $SOCKETS"
printf '| server | sent | received | wall s | msg/s | Mbit/s | loss %% | server CPU s | msg per CPU s |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for n in coturn xjingle; do
	read -r s r w mps mb loss cpu per <<<"${RES[$n]}"
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$s" "$r" "$w" "$mps" "$mb" "$loss" "$cpu" "$per"
done
read -r _ _ _ cm _ _ _ cp <<<"${RES[coturn]}"
read -r _ _ _ xm _ _ _ xp <<<"${RES[xjingle]}"
awk -v cm="$cm" -v xm="$xm" -v cp="$cp" -v xp="$xp" 'BEGIN {
	printf "ratio xjingle/coturn: throughput %.2f, throughput per CPU second %.2f\n", xm / cm, xp / cp }'
