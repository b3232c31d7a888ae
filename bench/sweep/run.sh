#!/bin/bash
# Account sweep benchmark: what one sweep of N known users costs Nextcloud
# (requests it receives, time), against N plain isuser requests at the same
# concurrency in the same run, for N = 1,000 and 10,000 (or --users LIST).
# The test backend emulates Nextcloud's OCS API with 8 PHP workers and
# --delay-ms per request (default 20); cloudauth's cloud-concurrency is 8,
# so the sweep asks 4 at a time (half) and so does the baseline.
#
# usage: bench/sweep/run.sh [--users "1000 10000"] [--delay-ms MS] [--concurrency C]
# Needs the release build (cargo build --release --workspace --locked).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN_DIR=${CLOUDAUTH_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
USERS="1000 10000" DELAY=20 CONC=8 BPID=
while [ $# -gt 0 ]; do
    case $1 in
        --users) USERS=$2; shift 2 ;;
        --delay-ms) DELAY=$2; shift 2 ;;
        --concurrency) CONC=$2; shift 2 ;;
        *) sed -n '2,10p' "$0" >&2; exit 2 ;;
    esac
done
for b in jsxc-test-backend sweep; do
    [ -x "$BIN_DIR/$b" ] || { echo "missing $BIN_DIR/$b: cargo build --release --workspace --locked" >&2; exit 2; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/cloudauth-sweep-bench.XXXXXX")
trap 'kill $BPID 2>/dev/null; rm -rf "$W"' EXIT
printf 'svc-pw' > "$W/svc"; chmod 600 "$W/svc"
for n in $USERS; do
    /usr/bin/python3 - "$n" > "$W/users.json" <<'PY'
import json, sys
n = int(sys.argv[1])
users = [{"uid": f"u{i}", "password": f"pw{i}"} for i in range(n)]
users.append({"uid": "svc", "password": "svc-pw", "admin": True})
print(json.dumps({"users": users}))
PY
    mkfifo "$W/ready.$n"
    "$BIN_DIR/jsxc-test-backend" --secret unused --users "$W/users.json" --quiet \
        --workers 8 --delay-ms "$DELAY" --nextcloud-version 32 > "$W/ready.$n" 2> "$W/backend.log" &
    BPID=$!
    read -r -t 10 line < "$W/ready.$n" || { echo "backend did not start" >&2; exit 1; }
    line=${line#READY api=}; api=${line%% control=*}; control=${line##* control=}
    base=${api%"${api#http://*/}"}; base=${base%/}
    "$BIN_DIR/sweep" "$base" "$control" "$W/svc" "$n" "$CONC" || exit 1
    kill $BPID; wait $BPID 2>/dev/null
done
