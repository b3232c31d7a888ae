#!/bin/bash
# End to end: Nextcloud 32/34's brute-force protection (a block of every
# login from an address after more than 10 failures within 30 minutes; to
# Nextcloud every XMPP user comes from the XMPP server's address) never
# gets the server blocked, through
#   extauth: ejabberd 23.01 running `cloudauth -t ejabberd`, a pool of 2
#            sharing one --db (and so one failure budget)
#   in-VM:   ejabberd 23.01 with auth_method: cloud
#   Prosody: mod_auth_cloudauth talking to a socket-mode cloudauth
# against the test backend as Nextcloud 32 (and 34 for one scenario). Each
# scenario starts a fresh Nextcloud and a fresh ejabberd:
#   service   a wrong service password, isuser asked 30 times
#   guessing  one user sending 12 different wrong passwords
#   mistyping 20 users each mistyping once, then typing right
#   block     a block already on (another client at the address caused it)
#   allowed   the address allow-listed: cloudauth's own throttle is the defence
# The failures each scenario sent to Nextcloud are printed in its lines.
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
W=$(workdir nextcloud_protection)
mkdir -p "$W/log"
D=nc.localhost
USERS='{"users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice Liddell", "groups": ["staff"]},
  {"uid": "bob", "password": "bob-pw", "groups": ["staff"]},
  {"uid": "carol", "password": "carol-pw", "groups": ["staff"]},'
for i in $(seq 1 20); do USERS="$USERS
  {\"uid\": \"u$i\", \"password\": \"u$i-pw\", \"groups\": [\"staff\"]},"; done
USERS="$USERS
  {\"uid\": \"svc\", \"password\": \"svc-pw\", \"subadmin\": [\"staff\"]}
]}"
"$ROOT/erlang/install.sh" "$W/ext" >/dev/null 2>"$W/install.log" || { cat "$W/install.log"; die_setup "install.sh failed"; }

# recorded: failed logins Nextcloud holds for 127.0.0.1; blocked: yes/no
recorded() {
    curl -sf "$BACKEND_CONTROL/throttle" | /usr/bin/python3 -c \
        "import json,sys; print(json.load(sys.stdin)['failures'].get('127.0.0.1', 0))"
}
blocked() {
    curl -sf "$BACKEND_CONTROL/throttle" | /usr/bin/python3 -c \
        "import json,sys; print('yes' if '127.0.0.1' in json.load(sys.stdin)['blocked'] else 'no')"
}
never_blocked() { # never_blocked LABEL
    local n
    n=$(recorded)
    [ "$(blocked)" = no ] && [ "$n" -le 8 ] && ok "$1: Nextcloud never blocked this server ($n failures recorded, at most 8)" \
        || not_ok "$1: $n failures recorded at Nextcloud, blocked: $(blocked)"
}

# start PATH VERSION SVC_PASSWORD [BACKEND_ARGS...]: a fresh Nextcloud and
# ejabberd; sets PORT, E, LOG
RUN=0
start() {
    local path=$1 version=$2 svcpw=$3 dir yml
    shift 3
    RUN=$((RUN + 1))
    dir="$W/run$RUN"
    mkdir -p "$dir/log"
    [ -n "${BACKEND_PID:-}" ] && kill "$BACKEND_PID" 2>/dev/null
    start_backend "$dir" "$SECRET" "$USERS" --nextcloud-version "$version" "$@" || die_setup "test backend did not start"
    write_secret "$dir/service-password" "$svcpw"
    [ -n "${E:-}" ] && "$SANDBOX" stop "$E" >/dev/null 2>&1
    stop_prosody
    E="$dir/ejabberd"
    PORT=$(free_port)
    yml="$dir/ejabberd.yml"
    if [ "$path" = prosody ]; then
        SOCK="$dir/cloudauth.sock"
        "$BIN_DIR/cloudauth" -c /dev/null --backend nextcloud --cache-storage memory -u "$BACKEND_ORIGIN" \
            --service-user svc --service-password-file "$dir/service-password" -l "$dir/log" \
            --timeout 5 --listen "generic=$SOCK" 2>> "$dir/cloudauth.stderr" &
        CA_PID=$!
        for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
        P="$dir/prosody"
        mkdir -p "$P/data"
        {
            prosody_globals "$P" "$PORT" "$ROOT/prosody"
            printf 'VirtualHost "%s"\n    authentication = "cloudauth"\n    cloudauth_socket = "%s"\n' "$D" "$SOCK"
        } > "$P/prosody.cfg.lua"
        prosody -F --config "$P/prosody.cfg.lua" > "$P/stdout" 2>&1 &
        PROSODY_PID=$!
        for _ in $(seq 100); do (exec 3<> "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
        (exec 3<> "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || die_setup "prosody did not listen"
        E=
        LOG="$dir/log/cloudauth.log"
        return
    fi
    if [ "$path" = extauth ]; then
        printf '%s\n' "$D" > "$dir/hosts"
        cat > "$yml" <<YML
hosts:
  - $D
auth_method: external
extauth_program: "$BIN_DIR/cloudauth -c /dev/null -t ejabberd --backend nextcloud --cache-storage db --db $dir/state.sqlite3 -u $BACKEND_ORIGIN --service-user svc --service-password-file $dir/service-password -l $dir/log --timeout 5"
extauth_pool_size: 2
auth_use_cache: false
YML
        LOG="$dir/log/cloudauth.log"
    else
        cat > "$yml" <<YML
hosts:
  - $D
auth_method: cloud
auth_use_cache: false
auth_cloud_backend: nextcloud
auth_cloud_cache_storage: memory
auth_cloud_url: "$BACKEND_ORIGIN"
auth_cloud_service_user: svc
auth_cloud_service_password_file: "$dir/service-password"
YML
        mkdir -p "$E" && cp -r "$W/ext" "$E/ext"
        LOG="$E/log/ejabberd.log"
    fi
    EJABBERD_SANDBOX_LOGLEVEL=info start_ejabberd "$E" "$PORT" "$yml" || die_setup "ejabberd ($path) did not start"
}
stop_prosody() {
    [ -n "${PROSODY_PID:-}" ] && { kill "$PROSODY_PID"; wait "$PROSODY_PID"; } 2>/dev/null
    [ -n "${CA_PID:-}" ] && kill "$CA_PID" 2>/dev/null
    PROSODY_PID= CA_PID=
}
on_exit '[ -n "${E:-}" ] && "$SANDBOX" stop "$E"; stop_prosody'

ISUSER_OUT="$W/isuser.out"
isuser_many() { # isuser_many N: N isuser questions through the server (Prosody: its socket)
    if [ -z "${E:-}" ]; then
        /usr/bin/python3 - "$SOCK" "$1" "$D" > "$ISUSER_OUT" 2>&1 <<'PY'
import socket, sys
path, n, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
f = s.makefile("rwb")
for i in range(1, n + 1):
    f.write(f"isuser:u{i}:{d}\n".encode())
    f.flush()
    print(f.readline().decode().strip())
PY
    else
        "$SANDBOX" eval "$E" "[ejabberd_auth:user_exists(<<\"u\", (integer_to_binary(I))/binary>>, <<\"$D\">>) || I <- lists:seq(1, $1)]." > "$ISUSER_OUT" 2>&1
    fi
}

for path in ${PATHS:-extauth vm prosody}; do
    # --- a wrong service password -------------------------------------------------
    start "$path" 32 not-the-svc-pw
    isuser_many 30
    # The refused password is remembered per process: a pool of 2 sends it twice.
    n=$(recorded) most=1
    [ "$path" = extauth ] && most=2
    [ "$n" -le "$most" ] && ok "$path service: 30 isuser with a refused service password sent $n failure(s) to Nextcloud (at most $most)" \
        || not_ok "$path service: 30 isuser with a refused service password sent $n failures to Nextcloud (at most $most)"
    grep -qx "true\|.*true.*\|1" "$ISUSER_OUT" && not_ok "$path service: isuser said yes without Nextcloud: $(cat "$ISUSER_OUT")" \
        || ok "$path service: isuser was not answered yes"
    wait_line "$LOG" "refuses service-user svc" 5 && ok "$path service: the log says Nextcloud refuses svc's password" \
        || not_ok "$path service: no 'refuses service-user svc's password' in the log"
    login "alice@$D" alice-pw "$PORT"; expect "$path service: alice still logs in (her own password)" 0 $?
    never_blocked "$path service"

    # --- one user guessing --------------------------------------------------------
    start "$path" 32 svc-pw
    login "bob@$D" bob-pw "$PORT"; expect "$path guessing: bob logs in" 0 $?
    for i in $(seq 1 12); do login "mallory@$D" "guess-$i" "$PORT" >/dev/null; done
    n=$(recorded)
    [ "$n" -le 3 ] && ok "$path guessing: 12 guesses at one name sent $n failures to Nextcloud (at most 3)" \
        || not_ok "$path guessing: 12 guesses at one name sent $n failures to Nextcloud"
    login "carol@$D" carol-pw "$PORT"; expect "$path guessing: carol's first login works meanwhile" 0 $?
    login "bob@$D" bob-pw "$PORT"; expect "$path guessing: bob logs in again" 0 $?
    never_blocked "$path guessing"

    # --- users mistyping ----------------------------------------------------------
    start "$path" 32 svc-pw
    for i in $(seq 1 20); do login "u$i@$D" "typo-$i" "$PORT" >/dev/null; done
    never_blocked "$path mistyping (20 typos)"
    bad=0
    for i in $(seq 1 20); do login "u$i@$D" "u$i-pw" "$PORT" || bad=$((bad + 1)); done
    expect "$path mistyping: all 20 then log in with the right password (refused)" 0 "$bad"
    never_blocked "$path mistyping"
    wait_line "$LOG" "failed logins there within 30 minutes" 5 && ok "$path mistyping: the log says the budget is being kept" \
        || not_ok "$path mistyping: no budget line in the log"

    # --- a block already on -------------------------------------------------------
    start "$path" 32 svc-pw
    login "alice@$D" alice-pw "$PORT"; expect "$path block: alice logs in before the block" 0 $?
    for i in $(seq 1 11); do
        curl -s -o /dev/null -u "web$i:wrong" -H 'OCS-APIRequest: true' "$BACKEND_ORIGIN/ocs/v2.php/cloud/user?format=json"
    done
    [ "$(blocked)" = yes ] && ok "$path block: another client got the address blocked" || not_ok "$path block: the emulation did not block"
    login "bob@$D" bob-pw "$PORT"; rc=$?
    [ "$rc" != 0 ] && ok "$path block: bob cannot log in during the block" || not_ok "$path block: bob logged in during a block"
    before=$(backend_count ocs_user)
    for i in 1 2 3 4 5 6; do login "u$i@$D" "u$i-pw" "$PORT" >/dev/null; done
    sent=$(( $(backend_count ocs_user) - before ))
    [ "$sent" -le 2 ] && ok "$path block: 6 logins during the block sent $sent request(s) to Nextcloud (one probe per 5 s)" \
        || not_ok "$path block: 6 logins during the block sent $sent requests to Nextcloud"
    login "alice@$D" alice-pw "$PORT"; expect "$path block: alice's cached password still works" 0 $?
    wait_line "$LOG" "brute-force protection blocks this server's address" 5 && ok "$path block: the log names the block" \
        || not_ok "$path block: the block is not named in the log"
    grep -q "occ security:bruteforce:reset" "$LOG" && ok "$path block: the log says what to do" || not_ok "$path block: no remedy in the log"
    curl -sf -X POST "$BACKEND_CONTROL/throttle/reset" >/dev/null   # occ security:bruteforce:reset
    # Each process probes once per 5 s: with a pool, the one bob reaches may
    # have probed a moment ago.
    sleep 5
    login "bob@$D" bob-pw "$PORT" >/dev/null || { sleep 5; login "bob@$D" bob-pw "$PORT"; }
    expect "$path block: after the reset, bob logs in at the next probe (within 10 s)" 0 $?

    # --- allow-listed -------------------------------------------------------------
    start "$path" 34 svc-pw --allow-listed 127.0.0.1
    login "alice@$D" alice-pw "$PORT"; expect "$path allowed: alice logs in" 0 $?
    wait_line "$LOG" "allow-lists this server's address" 5 && ok "$path allowed: the log says Nextcloud allow-lists this server" \
        || not_ok "$path allowed: no allow-list line in the log"
    before=$(backend_count ocs_user)
    for i in $(seq 1 6); do login "mallory@$D" "guess-$i" "$PORT" >/dev/null; done
    sent=$(( $(backend_count ocs_user) - before ))
    expect "$path allowed: every guess goes to Nextcloud (nothing withheld)" 6 "$sent"
done

# --- doctor tells allow-listed from not ------------------------------------------------
[ -n "${E:-}" ] && "$SANDBOX" stop "$E" >/dev/null 2>&1; stop_prosody; E=
dir="$W/doctor"; mkdir -p "$dir"
kill "$BACKEND_PID" 2>/dev/null
start_backend "$dir" "$SECRET" "$USERS" --nextcloud-version 34 || die_setup "test backend did not start"
write_secret "$dir/service-password" svc-pw
doctor() { "$BIN_DIR/cloudauth" -c /dev/null doctor --backend nextcloud -u "$BACKEND_ORIGIN" --service-user svc --service-password-file "$dir/service-password" 2>&1; }
doctor > "$dir/out1"
grep -q "not allow-listed" "$dir/out1" && ok "doctor: says this address is not allow-listed" || not_ok "doctor said: $(cat "$dir/out1")"
kill "$BACKEND_PID" 2>/dev/null
mkdir -p "$dir/listed"
start_backend "$dir/listed" "$SECRET" "$USERS" --nextcloud-version 34 --allow-listed 127.0.0.1 || die_setup "test backend did not start"
doctor > "$dir/out2"
grep -q "is allow-listed" "$dir/out2" && ok "doctor: says this address is allow-listed" || not_ok "doctor said: $(cat "$dir/out2")"

grep -rl "alice-pw\|bob-pw\|svc-pw\|not-the-svc-pw" "$W"/run*/log "$W"/run*/ejabberd/log 2>/dev/null | grep -q . \
    && not_ok "a password is in a log" || ok "no password in cloudauth's or ejabberd's logs"
finish
