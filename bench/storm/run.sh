#!/bin/bash
# Login storm benchmark: N users, each with its own right password, start
# logging in within 5 s (evenly spread), as after an XMPP server restart,
# against the test backend standing in for a Nextcloud with 8 PHP workers:
# 8 password checks at once, 400 ms each, more wait inside it (PHP-FPM's
# listen queue). Physical limit of a storm: N x 0.4 s / 8. Everything talks
# to the backend through `storm proxy`, a relay that counts the requests at
# the backend at once (the backend's own count stops at its 8 workers).
#
# Rows (ids for --rows):
#   xcauth         2 x `cloudauth -t ejabberd`, each driven one request at a
#                  time (how ejabberd's extauth and xcauth work)
#   xcauth-py      xcauth itself, the same way (only when XCAUTH_DIR is set)
#   socket         `cloudauth --listen ejabberd=SOCK` + 2 x cloudauth-connect
#                  (extauth pool 2), requests pipelined into each
#   socket16       the same with 16 x cloudauth-connect (extauth pool 16)
#   vm             sandbox ejabberd 23.01, auth_method: cloud, N Erlang
#                  processes calling ejabberd_auth:check_password/4
#   vm-q           the same with auth_cloud_queue: N (nothing shed)
#   vm-large       the same as vm with more users (memory vs N; --large-users)
#   fill12, fill4  socket16 with the db cache (bcrypt cost 12 / 4): cold
#                  storms that leave a database for the warm rows
#   xcauth-warm12, socket-warm12, vm-warm12, xcauth-warm4, socket-warm4,
#   vm-warm4       the row restarted (new processes) on a copy of that database
# Groups: all (default), cold, warm, warm12, warm4. A warm row runs its fill.
#
# usage: bench/storm/run.sh [--users N] [--rows LIST] [--quick] [--out FILE]
#                           [--large-users N] [--queue Q] [--timeout C,T]
#   --users N        logins per storm (default 2000; 5000, 10000 work too)
#   --quick          400 users, vm-large 1000 (for development)
#   --out FILE       the JSON written (default bench/.work/storm-DATE.json)
#   --large-users N  the vm-large row's users (default 2.5 x N)
#   --queue Q        cloudauth's --cloud-queue / auth_cloud_queue (default 1000)
#   --timeout C,T    cloudauth's --timeout / auth_cloud_timeout (default 5,600:
#                    queued requests wait within the total)
# Prints one line per row, then the table (Markdown), the goals (PASS/FAIL)
# and notes. Goals that fail do not fail the script; a setup that fails does.
# Needs the release build (built here when missing: cargo build --release
# --workspace) and, for the in-VM rows, ejabberd 23.01 and rebar3 (the
# module is built and installed into the sandbox by erlang/install.sh).
# Honours CARGO_TARGET_DIR / CLOUDAUTH_BIN_DIR for the binaries. KEEP=1
# keeps the work directory (logs, databases).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2

USERS=2000 LARGE="" ROWS=all OUT="" QUEUE=1000
DELAY_MS=400 WORKERS=8 CONCURRENCY=8 SPREAD_S=5 TIMEOUT=5,600
usage() { sed -n '2,44p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --users) USERS=${2:-}; shift 2 ;;
        --rows) ROWS=${2:-}; shift 2 ;;
        --quick) USERS=400; LARGE=${LARGE:-1000}; shift ;;
        --out) OUT=${2:-}; shift 2 ;;
        --large-users) LARGE=${2:-}; shift 2 ;;
        --queue) QUEUE=${2:-}; shift 2 ;;
        --timeout) TIMEOUT=${2:-}; shift 2 ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
for v in "$USERS" "${LARGE:-1}" "$QUEUE"; do
    case $v in ''|*[!0-9]*) echo "not a number: $v" >&2; usage ;; esac
done
[ "$USERS" -ge 1 ] && [ "$USERS" -le 20000 ] || { echo "--users: 1..20000" >&2; exit 2; }
LARGE=${LARGE:-$((USERS * 5 / 2))}
mkdir -p bench/.work
OUT=${OUT:-bench/.work/storm-$(date +%Y%m%d-%H%M%S).json}
case $OUT in /*) ;; *) OUT="$ROOT/$OUT" ;; esac

# --- which rows ------------------------------------------------------------------
ORDER="xcauth xcauth-py socket socket16 vm vm-q vm-large fill12 xcauth-warm12 socket-warm12 vm-warm12 fill4 xcauth-warm4 socket-warm4 vm-warm4"
declare -A WANT=()
for r in ${ROWS//,/ }; do
    case $r in
        all) for x in $ORDER; do WANT[$x]=1; done ;;
        cold) for x in xcauth xcauth-py socket socket16 vm vm-q vm-large; do WANT[$x]=1; done ;;
        warm) for x in $ORDER; do case $x in fill*|*-warm*) WANT[$x]=1 ;; esac; done ;;
        warm12|warm4) for x in $ORDER; do case $x in fill${r#warm}|*-$r) WANT[$x]=1 ;; esac; done ;;
        *) case " $ORDER " in *" $r "*) WANT[$r]=1 ;; *) echo "unknown row: $r" >&2; usage ;; esac ;;
    esac
done
for c in 12 4; do
    for x in xcauth socket vm; do [ -n "${WANT[$x-warm$c]:-}" ] && WANT[fill$c]=1; done
done
if [ -z "${XCAUTH_DIR:-}" ] || [ ! -e "$XCAUTH_DIR/xcauth.py" ]; then unset 'WANT[xcauth-py]'; fi
SELECTED=""
for x in $ORDER; do [ -n "${WANT[$x]:-}" ] && SELECTED="$SELECTED $x"; done
[ -n "$SELECTED" ] || { echo "no rows selected" >&2; exit 2; }
wants_vm() { case "$SELECTED" in *vm*) return 0 ;; *) return 1 ;; esac; }

# --- binaries, the module, the sandbox helpers ----------------------------------------
export CLOUDAUTH_BIN_DIR=${CLOUDAUTH_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
BIN_DIR=$CLOUDAUTH_BIN_DIR
missing=""
for b in cloudauth cloudauth-connect jsxc-test-backend storm; do
    [ -x "$BIN_DIR/$b" ] || missing="$missing $b"
done
if [ -n "$missing" ]; then
    echo "missing in $BIN_DIR:$missing; building: cargo build --release --workspace --locked"
    timeout 3600 cargo build --release --workspace --locked || { echo "cargo build failed" >&2; exit 2; }
fi
if wants_vm && { [ ! -x /usr/sbin/ejabberdctl ] || ! command -v rebar3 >/dev/null 2>&1; }; then
    test/lib/install-deps.sh || exit 2
fi
# common.sh: the work directory (removed at exit unless KEEP=1), the test
# backend's start, ejabberd sandboxes, and the trap that stops all of it.
. test/lib/common.sh
STORM="$BIN_DIR/storm"
# Long steps run in the background and are waited for: bash runs a trap
# only between commands, so a signal (Ctrl-C, kill) stops the run at once
# instead of after the step. The trap stops the step running then too.
CURRENT=""
on_exit 'kill $CURRENT'
bg() {
    "$@" &
    CURRENT=$!
    wait "$CURRENT"
    local rc=$?
    CURRENT=""
    return $rc
}

W=$(workdir storm)
ROWS_FILE="$W/rows.jsonl"
: > "$ROWS_FILE"
MAX_USERS=$USERS
[ -n "${WANT[vm-large]:-}" ] && [ "$LARGE" -gt "$MAX_USERS" ] && MAX_USERS=$LARGE
"$STORM" users --users "$MAX_USERS" --out "$W/users.json" || exit 2
SECRET="storm-secret-$$-$RANDOM"
write_secret "$W/secret" "$SECRET"
start_backend "$W" "$SECRET" "$(cat "$W/users.json")" --delay-ms "$DELAY_MS" --workers "$WORKERS" \
    || { echo "test backend did not start" >&2; exit 2; }
# The relay in front of the backend; cloudauth and the VM use CLOUD_URL.
mkfifo "$W/proxy.ready"
"$STORM" proxy --to "${BACKEND_ORIGIN#http://}" > "$W/proxy.ready" 2> "$W/proxy.log" &
PROXY_PID=$!
on_exit "kill $PROXY_PID"
read -r -t 10 line < "$W/proxy.ready" || { echo "storm proxy did not start" >&2; exit 2; }
line=${line#READY listen=}
PROXY_CONTROL=${line##* control=}
CLOUD_URL="http://${line%% control=*}/${BACKEND_URL#http://*/}"

if wants_vm; then
    EXT="$W/ext"
    bg timeout 1800 erlang/install.sh "$EXT" >/dev/null 2>"$W/install.log" || { cat "$W/install.log" >&2; exit 2; }
    # rebar.config's hook builds the NIF with cargo (into CARGO_TARGET_DIR
    # when set) and copies target/release/libcloud_nif.so: elsewhere, that
    # copy may be an old build. Say so rather than measure old code.
    if [ -n "${CARGO_TARGET_DIR:-}" ] && ! [ "$ROOT/target/release/libcloud_nif.so" -ef "$CARGO_TARGET_DIR/release/libcloud_nif.so" ]; then
        echo "warning: CARGO_TARGET_DIR is set, but rebar3 installs target/release/libcloud_nif.so: the NIF measured may be an old build" >&2
    fi
    mkdir -p "$W/ebin"
    erlc -o "$W/ebin" bench/ejabberd/cloudauth_storm.erl || exit 2
fi

# --- rows --------------------------------------------------------------------------------
# Generous: the slowest row (2 in flight) needs N x 0.2 s.
deadline() { echo $(( $1 * 3 / 10 + 120 )); }
run_storm() { bg "$STORM" "$@"; }
row_failed() { echo "  $1: row failed: $2"; }
common() { # common ID LABEL MODE KIND COST USERS [QUEUE] -> COMMON=(...)
    local a=(--row "$1" --label "$2" --mode "$3" --kind "$4" --users "$6"
        --spread-s "$SPREAD_S" --deadline-s "$(deadline "$6")" --concurrency "$CONCURRENCY"
        --queue "${7:-$QUEUE}" --control "$BACKEND_CONTROL" --proxy-control "$PROXY_CONTROL" --out "$ROWS_FILE")
    [ "$5" != - ] && a+=(--cost "$5")
    COMMON=("${a[@]}")
}
cache_args() { # cache_args COST DB -> CACHE=(...)
    CACHE=()
    [ "$1" = - ] && return
    CACHE=(--cache-storage db --db "$2")
    [ "$1" = 12 ] || CACHE+=(--cache-bcrypt-rounds "$1")
}

# cloudauth in socket mode, for one row: SERVER_PID, SOCK
start_server() { # start_server ID CACHE_ARGS...
    local id=$1 i
    shift
    mkdir -p "$W/$id/log"
    SOCK="$W/$id/ejabberd.sock"
    "$BIN_DIR/cloudauth" -c /dev/null -u "$CLOUD_URL" --secret-file "$W/secret" -l "$W/$id/log" \
        --timeout "$TIMEOUT" --cloud-concurrency "$CONCURRENCY" --cloud-queue "$QUEUE" \
        --listen "ejabberd=$SOCK" "$@" </dev/null >/dev/null 2>"$W/$id/server.stderr" &
    SERVER_PID=$!
    on_exit "kill $SERVER_PID"
    for i in $(seq 1 100); do [ -S "$SOCK" ] && return 0; sleep 0.1; done
    return 1
}
stop_server() { # graceful, so that the cache database is complete
    local i
    kill -TERM "$SERVER_PID" 2>/dev/null
    for i in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null
}

xcauth_row() { # xcauth_row ID KIND COST LABEL
    local id=$1 kind=$2 cost=$3 label=$4
    mkdir -p "$W/$id/log"
    common "$id" "$label" xcauth-style "$kind" "$cost" "$USERS"
    cache_args "$cost" "$W/$id.sqlite3"
    run_storm port "${COMMON[@]}" --procs 2 --stderr-log "$W/$id/stderr" -- \
        "$BIN_DIR/cloudauth" -c /dev/null -t ejabberd -u "$CLOUD_URL" --secret-file "$W/secret" \
        -l "$W/$id/log" --timeout "$TIMEOUT" "${CACHE[@]}" || row_failed "$id" "driver failed"
}

xcauth_py_row() {
    local id=xcauth-py
    mkdir -p "$W/$id/log"
    common "$id" "xcauth (Python), 2 processes, one request at a time" xcauth cold - "$USERS"
    run_storm port "${COMMON[@]}" --procs 2 --stderr-log "$W/$id/stderr" -- \
        "$XCAUTH_DIR/xcauth.py" -c /dev/null -t ejabberd -u "$CLOUD_URL" -s "$SECRET" \
        -l "$W/$id/log" --timeout 600 || row_failed "$id" "driver failed"
}

socket_row() { # socket_row ID KIND COST PROCS LABEL
    local id=$1 kind=$2 cost=$3 procs=$4 label=$5
    cache_args "$cost" "$W/$id.sqlite3"
    start_server "$id" "${CACHE[@]}" || { row_failed "$id" "cloudauth did not listen"; return; }
    common "$id" "$label" socket "$kind" "$cost" "$USERS"
    run_storm port "${COMMON[@]}" --procs "$procs" --pipeline --rss-pid "cloudauth=$SERVER_PID" \
        --stderr-log "$W/$id/stderr" -- "$BIN_DIR/cloudauth-connect" "$SOCK" || row_failed "$id" "driver failed"
    # Answers do not wait for their hash while bcrypt is busy: the entries
    # of a fill are finished in the background. The "restart" comes when
    # they are all stored, so that the warm rows measure a full cache.
    [ "$kind" = fill ] && wait_cache_rows "$W/$id.sqlite3" "$USERS"
    stop_server
}

wait_cache_rows() { # wait_cache_rows DB N: until the authcache has N rows (at most 900 s)
    local start=$SECONDS n=0
    while [ $((SECONDS - start)) -lt 900 ]; do
        n=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from authcache").fetchone()[0])' "$1" 2>/dev/null || echo 0)
        [ "$n" -ge "$2" ] && break
        sleep 1
    done
    echo "  $n cache entries stored $((SECONDS - start)) s after the storm's last answer"
}

vm_row() { # vm_row ID KIND COST USERS QUEUE LABEL [YAML_LINE...]
    local id=$1 kind=$2 cost=$3 users=$4 queue=$5 label=$6 port line
    shift 6
    local E="$W/$id/ejabberd"
    mkdir -p "$E/ebin"
    cp -r "$EXT" "$E/ext" && cp "$W/ebin/cloudauth_storm.beam" "$E/ebin/" || { row_failed "$id" "setup"; return; }
    port=$(free_port)
    {
        echo "hosts:"
        echo "  - localhost"
        echo "loglevel: warning"
        echo "auth_method: cloud"
        echo "auth_cloud_url: \"$CLOUD_URL\""
        echo "auth_cloud_secret_file: \"$W/secret\""
        echo "auth_cloud_timeout: \"$TIMEOUT\""
        echo "auth_cloud_concurrency: $CONCURRENCY"
        echo "auth_cloud_queue: $queue"
        for line in "$@"; do echo "$line"; done
    } > "$W/$id/extra.yml"
    on_exit "'$SANDBOX' stop '$E'"
    # (bounded by the sandbox's own start timeout)
    bg "$SANDBOX" start "$E" "$port" "$W/$id/extra.yml" >/dev/null || {
        row_failed "$id" "ejabberd did not start (logs in $E/log)"
        "$SANDBOX" stop "$E" >/dev/null 2>&1
        return
    }
    common "$id" "$label" vm "$kind" "$cost" "$users" "$queue"
    run_storm vm "${COMMON[@]}" --sandbox "$SANDBOX" --dir "$E" --host localhost || row_failed "$id" "driver failed"
    bg timeout 60 "$SANDBOX" stop "$E" >/dev/null 2>&1
}

warm_copy() { # warm_copy COST ID -> the row's own copy of fill COST's database
    local f
    [ -s "$W/fill$1.sqlite3" ] || { row_failed "$2" "no database from fill$1"; return 1; }
    for f in "" -wal -shm; do
        [ -e "$W/fill$1.sqlite3$f" ] && cp "$W/fill$1.sqlite3$f" "$W/$2.sqlite3$f"
    done
    return 0
}
vm_cache_yaml() { # vm_cache_yaml COST DB -> YAML=(...)
    YAML=("auth_cloud_cache_storage: db" "auth_cloud_cache_db: \"$2\"")
    [ "$1" = 12 ] || YAML+=("auth_cloud_cache_bcrypt_rounds: $1")
}

echo "login storm: $USERS users within $SPREAD_S s; backend: $WORKERS workers x $DELAY_MS ms; cloudauth: --cloud-concurrency $CONCURRENCY --cloud-queue $QUEUE --timeout $TIMEOUT"
echo "rows:$SELECTED"
echo "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); work directory $W"
for id in $SELECTED; do
    echo "row $id ($(date +%H:%M:%S))"
    case $id in
        xcauth) xcauth_row xcauth cold - "xcauth-style: 2 x cloudauth -t ejabberd, one request at a time" ;;
        xcauth-py) xcauth_py_row ;;
        socket) socket_row socket cold - 2 "socket mode: cloudauth + 2 x cloudauth-connect" ;;
        socket16) socket_row socket16 cold - 16 "socket mode: cloudauth + 16 x cloudauth-connect" ;;
        vm) vm_row vm cold - "$USERS" "$QUEUE" "in-VM (auth_method: cloud)" ;;
        vm-q) vm_row vm-q cold - "$USERS" "$USERS" "in-VM, auth_cloud_queue: $USERS" ;;
        vm-large) vm_row vm-large cold - "$LARGE" "$QUEUE" "in-VM, $LARGE users" ;;
        fill12|fill4)
            c=${id#fill}
            socket_row "$id" fill "$c" 16 "cold with db cache, bcrypt $c (fills the database): socket mode, 16 x cloudauth-connect" ;;
        xcauth-warm*)
            c=${id#xcauth-warm}; warm_copy "$c" "$id" || continue
            xcauth_row "$id" warm "$c" "warm restart, bcrypt $c: xcauth-style, 2 processes" ;;
        socket-warm*)
            c=${id#socket-warm}; warm_copy "$c" "$id" || continue
            socket_row "$id" warm "$c" 2 "warm restart, bcrypt $c: socket mode, 2 x cloudauth-connect" ;;
        vm-warm*)
            c=${id#vm-warm}; warm_copy "$c" "$id" || continue; vm_cache_yaml "$c" "$W/$id.sqlite3"
            vm_row "$id" warm "$c" "$USERS" "$QUEUE" "warm restart, bcrypt $c: in-VM" "${YAML[@]}" ;;
    esac
done

run_storm report --rows "$ROWS_FILE" --json "$OUT" --users "$USERS" --delay-ms "$DELAY_MS" \
    --workers "$WORKERS" --spread-s "$SPREAD_S" --command "bench/storm/run.sh --users $USERS --rows $ROWS"
rc=$?
# Goals that fail (1) are results, not failures of the script.
[ "$rc" -le 1 ] || exit 2
exit 0
