#!/bin/bash
# Prosody shared roster benchmark (a measurement, not a test): one Nextcloud
# group of N members (default 2000) in the JSXC test backend; socket-mode
# cloudauth; a throwaway Prosody 0.12 with cloudauth_roster = true.
# Measures, in one run:
#  - cloudauth's answer to `roster:u0:localhost:-` (the whole roster, N-1
#    lines) and to the same request with the version it returned (`=`), the
#    floor: the same round trip without any roster work;
#  - the module's first sync of u0 (all N-1 contacts, both sides) from the
#    login until its log line, and the re-sync after one member left;
#  - Prosody's and cloudauth's resident memory before and after.
#
# usage: bench/roster/prosody.sh [--members N]
set -u
cd "$(dirname "$0")/../.." || exit 2
N=2000
[ "${1:-}" = --members ] && N=$2
. test/lib/common.sh
SECRET="bench-secret-$RANDOM$RANDOM"
W=$(workdir bench-prosody-roster)
users() { # users COUNT -> users file: u0..u(N-1); the first COUNT in "Staff Team"
    /usr/bin/python3 -c 'import json, sys
n, count = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps({"users": [{"uid": f"u{i}", "password": "pw", "name": f"User {i}",
                             "groups": ["Staff Team"] if i < count else []} for i in range(n)]}))' "$N" "$1"
}
start_backend "$W" "$SECRET" "$(users "$N")" || die_setup "test backend did not start"
write_secret "$W/secret" "$SECRET"
mkdir -p "$W/log"
SOCK="$W/cloudauth.sock"
"$BIN_DIR/cloudauth" -c /dev/null -u "$BACKEND_URL" --secret-file "$W/secret" -l "$W/log" \
    --timeout 20 --listen "generic=$SOCK" 2>> "$W/cloudauth.stderr" &
CA_PID=$!
on_exit "kill $CA_PID"
wait_until 10 test -S "$SOCK" || die_setup "cloudauth did not listen"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; } # rss PID -> kB
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# The wire: whole roster, then unchanged (the floor).
/usr/bin/python3 - "$SOCK" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
def ask(v):
    t = time.monotonic(); f.write(f"roster:u0:localhost:{v}\n".encode()); f.flush()
    head = f.readline().decode().rstrip("\n"); lines = 0; size = len(head) + 1
    if head.startswith("+"):
        _, version, count, _ = head.split("\t", 3)
        for _ in range(int(count)):
            line = f.readline(); lines += 1; size += len(line)
    else:
        version = v
    return time.monotonic() - t, head[:1], version, lines, size
full = [ask("-") for _ in range(3)]
t_full = min(x[0] for x in full)
_, _, version, lines, size = full[0]
same = [ask(version) for _ in range(3)]
t_same = min(x[0] for x in same)
print(f"# wire: whole roster {lines} lines, {size} bytes, longest answer line bounded; "
      f"{t_full*1000:.1f} ms (best of 3); unchanged '=' {t_same*1000:.1f} ms; ratio {t_full/t_same:.1f}x")
PY

P="$W/prosody"
mkdir -p "$P/data"
PORT=$(free_port)
{
    prosody_globals "$P" "$PORT" "$ROOT/prosody"
    cat <<LUA

VirtualHost "localhost"
    authentication = "cloudauth"
    cloudauth_socket = "$SOCK"
    cloudauth_timeout = 60
    cloudauth_roster = true
LUA
} > "$P/prosody.cfg.lua"
prosody -F --config "$P/prosody.cfg.lua" > "$P/stdout" 2>&1 &
PROSODY_PID=$!
on_exit "kill $PROSODY_PID; wait $PROSODY_PID"
wait_until 10 bash -c "exec 3<> /dev/tcp/127.0.0.1/$PORT" 2>/dev/null || die_setup "prosody did not listen"
LOG="$P/prosody.log"
before=$(rss "$PROSODY_PID")
# timed_sync LABEL NTH: log in as u0, time until the NTH "roster u0@localhost: version" line
timed_sync() {
    local t0 t1
    t0=$(now_ms)
    login "u0@localhost" pw "$PORT" >/dev/null
    local tl; tl=$(now_ms)
    wait_count "$LOG" "roster u0@localhost: version" "$2" 600 || { echo "# $1: no sync line"; return; }
    t1=$(now_ms)
    echo "# prosody $1: login $((tl - t0)) ms (floor), sync done $((t1 - t0)) ms after the login started: ratio $(( (t1 - t0) / (tl - t0 > 0 ? tl - t0 : 1) ))x; $(grep "roster u0@localhost: version" "$LOG" | tail -n 1 | sed 's/.*roster u0/u0/')"
}
timed_sync "first sync ($((N - 1)) contacts, both sides)" 1
after=$(rss "$PROSODY_PID")
users $(( N - 1 )) > "$W/users.json"; curl -sf -X POST "$BACKEND_CONTROL/reload" >/dev/null
timed_sync "re-sync after one member left" 2
echo "# memory: prosody RSS $before kB before, $after kB after the first sync (+$(( after - before )) kB), $(rss "$PROSODY_PID") kB at the end; cloudauth peak RSS $(hwm "$CA_PID") kB"
echo "# stored rosters: $(du -sk "$P/data" | cut -f1) kB in $P/data"
