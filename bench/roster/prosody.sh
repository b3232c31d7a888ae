#!/bin/bash
# Prosody shared roster benchmark (a measurement, not a test): one Nextcloud
# group of N members (default 2000) in the JSXC test backend; socket-mode
# cloudauth; a throwaway Prosody 0.12 with cloudauth_roster = true.
# Measures, in one run:
#  - the wire: cloudauth's answer to `roster:u0:localhost:-` (every bucket,
#    N-1 contacts), to the same request with the version it gave (`=`: the
#    floor, the same round trip and cloud request without any roster), and
#    after one member left (one bucket);
#  - Prosody: u0's first sync (N-1 contacts into his roster and u0 into N-1
#    other rosters) from the login until its log line, u1's first sync
#    (everything already there), the sync after one member left, each
#    against the floor: a login whose sync answers `=`;
#  - Prosody's resident memory before and after, cloudauth's peak.
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
leave() { users "$1" > "$W/users.json"; curl -sf -X POST "$BACKEND_CONTROL/reload" >/dev/null; }

# The wire, with a client that keeps the version like the module.
wire() { # wire STEP: 'full' (no version, then the version given: floor), 'delta' (after a change)
/usr/bin/python3 - "$SOCK" "$W/version" "$1" <<'PY'
import socket, sys, time
sock, vfile, step = sys.argv[1:]
s = socket.socket(socket.AF_UNIX); s.connect(sock); f = s.makefile("rwb")
def ask(v):
    t = time.monotonic(); f.write(f"roster:u0:localhost:{v}\n".encode()); f.flush()
    head = f.readline().decode().rstrip("\n"); size, longest, buckets = len(head) + 1, len(head) + 1, 0
    version = v
    if head.startswith("+"):
        _, lines, _, version, _ = head.split("\t", 4)
        for _ in range(int(lines)):
            line = f.readline(); size += len(line); longest = max(longest, len(line))
            buckets += line.startswith(b"#\t")
    return time.monotonic() - t, version, size, longest, buckets
if step == "full":
    full = [ask("-") for _ in range(3)]
    _, version, size, longest, buckets = full[0]
    same = [ask(version) for _ in range(3)]
    t_full, t_same = min(x[0] for x in full), min(x[0] for x in same)
    open(vfile, "w").write(version)
    print(f"# wire: first answer {buckets} buckets, {size} bytes, longest line {longest} bytes, "
          f"{t_full*1000:.1f} ms (best of 3); unchanged '=' {t_same*1000:.1f} ms (floor); "
          f"ratio {t_full/t_same:.1f}x")
else:
    t, _, size, longest, buckets = ask(open(vfile).read())
    print(f"# wire: after one member left {buckets} bucket(s), {size} bytes, {t*1000:.1f} ms")
PY
}
wire full
leave $(( N - 1 ))
wire delta
leave "$N"

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
# timed_sync USER PATTERN: log in as USER, ms until one more log line matching PATTERN
timed_sync() {
    local t0 n
    n=$(count "$LOG" "$2")
    t0=$(now_ms)
    login "$1@localhost" pw "$PORT" >/dev/null
    wait_count "$LOG" "$2" $(( n + 1 )) 900 || { echo -1; return; }
    echo $(( $(now_ms) - t0 ))
}
synced() { echo "roster $1@localhost: [0-9]+ contacts in the changed"; }
first=$(timed_sync u0 "$(synced u0)")
after=$(rss "$PROSODY_PID")
floor=$(timed_sync u0 "roster u0@localhost: unchanged")
second=$(timed_sync u1 "$(synced u1)")
leave $(( N - 1 ))
delta=$(timed_sync u0 "$(synced u0)")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }'; }
echo "# prosody, login until synced: floor (login, unchanged '=') $floor ms"
echo "# prosody: u0's first sync ($(( N - 1 )) contacts, u0 into $(( N - 1 )) other rosters) $first ms, $(ratio "$first" "$floor")x the floor; $(grep -E "$(synced u0)" "$LOG" | head -n 1 | sed 's/.*roster u0/u0/')"
echo "# prosody: u1's first sync (only u0 there yet) $second ms, $(ratio "$second" "$floor")x; $(grep -E "$(synced u1)" "$LOG" | tail -n 1 | sed 's/.*roster u1/u1/')"
echo "# prosody: u0 after one member left $delta ms, $(ratio "$delta" "$floor")x; $(grep -E "$(synced u0)" "$LOG" | tail -n 1 | sed 's/.*roster u0/u0/')"
echo "# memory: prosody RSS $before kB before, $after kB after u0's first sync (+$(( after - before )) kB), $(rss "$PROSODY_PID") kB at the end; cloudauth peak RSS $(hwm "$CA_PID") kB"
echo "# stored rosters: $(du -sk "$P/data" | cut -f1) kB in $P/data"
