# Shared helpers for the end-to-end tests (bash; source it).
# Everything runs on 127.0.0.1; every started process is stopped by cleanup.

E2E_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$E2E_LIB/../.." && pwd)
# cargo's target directory: $CARGO_TARGET_DIR (relative to the repo) or target/
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR;; esac
BIN_DIR=${CLOUDAUTH_BIN_DIR:-$TARGET_DIR/release}
SANDBOX="$E2E_LIB/ejabberd-sandbox"
PASS=0
FAIL=0
CLEANUP=()

# --- reporting -------------------------------------------------------------
ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
# expect NAME EXPECTED ACTUAL [DETAIL]
expect() {
    if [ "$2" = "$3" ]; then ok "$1${4:+ ($4)}"; else not_ok "$1: expected $2, got $3${4:+ ($4)}"; fi
}
# finish: prints the closing line and exits accordingly
finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
    exit $?
}
die_setup() {
    not_ok "setup: $*"
    finish
}

# --- processes -------------------------------------------------------------
on_exit() { CLEANUP+=("$*"); }
run_cleanup() {
    local i
    for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[$i]}" >/dev/null 2>&1; done
}
trap run_cleanup EXIT
trap 'exit 130' INT TERM

# Every work directory of this script lives under one root, removed at exit
# (unless KEEP=1). Registered here, in the script's own shell: workdir is
# called as W=$(workdir NAME), a subshell whose on_exit would be lost.
mkdir -p "$ROOT/test/.work"
WORK_ROOT=$(mktemp -d "$ROOT/test/.work/$(basename "$0" .sh).XXXXXX")
[ "${KEEP:-0}" = 1 ] || on_exit "rm -rf '$WORK_ROOT'"
workdir() { # workdir NAME -> a fresh directory under WORK_ROOT
    mktemp -d "$WORK_ROOT/$1.XXXXXX"
}

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

now_ms() { date +%s%3N; }
port_listens() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2>/dev/null; } # port_listens PORT: on 127.0.0.1

# --- the JSXC test backend ---------------------------------------------------
# start_backend DIR SECRET USERS_JSON_TEXT [EXTRA_ARGS...] -> sets BACKEND_URL
# (the JSXC API), BACKEND_ORIGIN (http://127.0.0.1:PORT: the OCS API's base,
# and the JSON API's at /json), BACKEND_CONTROL and BACKEND_PID
start_backend() {
    local dir=$1 secret=$2 users=$3 line
    shift 3
    printf '%s\n' "$users" > "$dir/users.json"
    mkfifo "$dir/backend.ready"
    "$BIN_DIR/jsxc-test-backend" --secret "$secret" --users "$dir/users.json" --quiet "$@" \
        > "$dir/backend.ready" 2> "$dir/backend.log" &
    BACKEND_PID=$!
    on_exit "kill $BACKEND_PID"
    read -r -t 10 line < "$dir/backend.ready" || return 1
    line=${line#READY api=}
    BACKEND_URL=${line%% control=*}
    BACKEND_CONTROL=${line##* control=}
    BACKEND_ORIGIN=${BACKEND_URL%"${BACKEND_URL#http://*/}"}
    BACKEND_ORIGIN=${BACKEND_ORIGIN%/}
    [ -n "$BACKEND_URL" ] && [ -n "$BACKEND_CONTROL" ]
}

fault() { # fault MODE [MS]
    curl -sf -X POST "$BACKEND_CONTROL/fault?mode=$1${2:+&ms=$2}" >/dev/null
}

backend_count() { # backend_count OP -> requests of that operation (a /stats key) so far
    curl -sf "$BACKEND_CONTROL/stats" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"
}
auth_count_at_least() { [ "$(backend_count auth)" -ge "$1" ]; }

throttle() { # throttle on|off [SCALE_MS_PER_S]: Nextcloud's brute-force throttle, emulated
    local on=0
    [ "$1" = on ] && on=1
    curl -sf -X POST "$BACKEND_CONTROL/throttle?on=$on${2:+&scale_ms_per_s=$2}" >/dev/null &&
        curl -sf -X POST "$BACKEND_CONTROL/throttle/reset" >/dev/null
}

# --- ejabberd ----------------------------------------------------------------
# start_ejabberd DIR PORT EXTRA_YAML_FILE
start_ejabberd() {
    on_exit "'$SANDBOX' stop '$1'"
    "$SANDBOX" start "$1" "$2" "$3" || {
        echo "# ejabberd log tail:"; tail -n 30 "$1/log/ejabberd.log" 2>/dev/null | sed 's/^/#   /'
        echo "# erl.out tail:"; tail -n 30 "$1/log/erl.out" 2>/dev/null | sed 's/^/#   /'
        return 1
    }
}

# --- Prosody -------------------------------------------------------------------
# prosody_globals DIR PORT PLUGIN_DIR: the global section of a throwaway
# Prosody's config: pid file, data and debug log in DIR (as Prosody sees it),
# c2s on 127.0.0.1:PORT without TLS (PLAIN allowed), no s2s, plugins also
# from PLUGIN_DIR (mod_auth_cloudauth's). VirtualHost sections follow it.
prosody_globals() {
    local as_root=false
    [ "$(id -u)" = 0 ] && as_root=true
    cat <<LUA
run_as_root = $as_root
pidfile = "$1/prosody.pid"
data_path = "$1/data"
installer_plugin_path = "$1/custom_plugins"
plugin_paths = { "$3" }
log = { debug = "$1/prosody.log" }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { $2 }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
modules_enabled = { "roster", "saslauth", "disco", "ping" }
modules_disabled = { "s2s", "s2s_auth_certs", "offline" }
LUA
}

# prosody_vhost HOST CA_PORT: a VirtualHost section authenticating through
# mod_auth_cloudauth against cloudauth's generic protocol on
# 127.0.0.1:CA_PORT (a blank line first); the host's own options follow it.
prosody_vhost() {
    printf '\nVirtualHost "%s"\n    authentication = "cloudauth"\n    cloudauth_host = "127.0.0.1"\n    cloudauth_port = %s\n' "$1" "$2"
}

# say PORT LINE... -> the answer lines of cloudauth's generic protocol on
# 127.0.0.1:PORT, the LINEs sent as one client connection sends them
say() {
    /usr/bin/python3 - "$@" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
f = s.makefile("rwb")
for line in sys.argv[2:]:
    f.write(line.encode() + b"\n")
    f.flush()
    print(f.readline().decode().rstrip("\n"))
PY
}

# --- XMPP ----------------------------------------------------------------------
# login JID PASSWORD PORT [extra args] -> exit status of xmpp_login.py (0 ok, 1 refused, 2 error)
login() {
    /usr/bin/python3 "$E2E_LIB/xmpp_login.py" "$@"
}

# probe JID PASSWORD PORT [xmpp_probe.py options]: one client session that
# reports what happened, a line each; joined FILE: those lines as a|b|c
probe() { /usr/bin/python3 "$E2E_LIB/xmpp_probe.py" "$@"; }
joined() { paste -sd'|' "$1"; }

# timed_login JID PASSWORD PORT -> prints "RC MS"
timed_login() {
    local t0 rc
    t0=$(now_ms)
    login "$@"
    rc=$?
    echo "$rc $(( $(now_ms) - t0 ))"
}

# The accounts the standard login cases below rely on.
STANDARD_USERS='{"users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice"},
  {"uid": "bob", "password": "bob-pw", "name": "Bob"},
  {"uid": "carol", "password": "a: b c :d "},
  {"uid": "jürgen", "password": "pässwörd-ü"}
]}'

# login_cases PORT DOMAIN SECRET: the login cases every server path must
# pass, with slixmpp over SASL PLAIN: right and wrong password, unknown
# user, colons in the password, a non-ASCII user by password and by token,
# valid, expired and another user's token; password logins reach the cloud,
# token logins never do. Needs STANDARD_USERS in the (current) backend.
# Sets ALICE_TOKEN, BOB_TOKEN, EXPIRED and JUERGEN_TOKEN for later use.
login_cases() {
    local port=$1 d=$2 secret=$3 before
    ALICE_TOKEN=$(mint alice "$d" "$secret" --ttl 1h)
    BOB_TOKEN=$(mint bob "$d" "$secret" --ttl 1h)
    EXPIRED=$(mint alice "$d" "$secret" --expiry $(( $(date +%s) - 60 )))
    JUERGEN_TOKEN=$(mint jürgen "$d" "$secret" --ttl 1h)
    before=$(backend_count auth)
    login "alice@$d" alice-pw "$port"; expect "right password -> session" 0 $?
    login "alice@$d" wrong-pw "$port"; expect "wrong password -> refused" 1 $?
    login "mallory@$d" alice-pw "$port"; expect "unknown user -> refused" 1 $?
    login "carol@$d" 'a: b c :d ' "$port"; expect "password with ':' and spaces -> session" 0 $?
    login "jürgen@$d" 'pässwörd-ü' "$port"; expect "non-ASCII user by password -> session" 0 $?
    expect "password logins reached the cloud" 5 $(( $(backend_count auth) - before ))
    before=$(backend_count auth)
    login "alice@$d" "$ALICE_TOKEN" "$port"; expect "valid token -> session" 0 $?
    login "alice@$d" "$EXPIRED" "$port"; expect "expired token -> refused" 1 $?
    login "alice@$d" "$BOB_TOKEN" "$port"; expect "another user's token -> refused" 1 $?
    login "jürgen@$d" "$JUERGEN_TOKEN" "$port"; expect "non-ASCII user by token -> session" 0 $?
    expect "token logins never reached the cloud" 0 $(( $(backend_count auth) - before ))
}

write_secret() { # write_secret FILE VALUE: a secret file only its owner reads
    printf '%s\n' "$2" > "$1" && chmod 600 "$1"
}

# slow_cloud_case PORT DOMAIN LIMIT_MS: with the cloud answering after 10 s,
# bob's password login is refused within LIMIT_MS. Leaves the cloud slow.
slow_cloud_case() {
    local port=$1 d=$2 limit=$3 rc ms
    fault delay 10000
    read -r rc ms < <(timed_login "bob@$d" bob-pw "$port" --timeout 20)
    expect "cloud slower than the timeout: password login refused" 1 "$rc" "${ms} ms"
    [ "$ms" -lt "$limit" ] && ok "slow cloud: refused within ${limit} ms (${ms} ms)" \
        || not_ok "slow cloud: login took ${ms} ms (limit ${limit} ms)"
}

# outage_cases PORT DOMAIN LIMIT_MS: with the cloud down, alice's password
# login is refused within LIMIT_MS and her token (from login_cases) still
# works. Leaves the cloud down.
outage_cases() {
    local port=$1 d=$2 limit=$3 rc ms
    fault down
    read -r rc ms < <(timed_login "alice@$d" alice-pw "$port")
    expect "backend down: password login refused" 1 "$rc" "${ms} ms"
    [ "$ms" -lt "$limit" ] && ok "backend down: refused within ${limit} ms (${ms} ms)" \
        || not_ok "backend down: refusal took ${ms} ms (limit ${limit} ms)"
    login "alice@$d" "$ALICE_TOKEN" "$port"; expect "backend down: token login still works" 0 $?
}

# slow_isolation PORT DOMAIN ALICE_TOKEN DELAY_MS check|report: with the
# cloud answering after DELAY_MS, bob's and carol's password logins wait on
# it; meanwhile alice's token login gets a session. "check" asserts that it
# came while both password logins still waited (whatever the machine's
# speed); "report" only leaves its time in ISOLATION_MS. Then both password
# logins succeed. Leaves the cloud answering at once.
slow_isolation() {
    local port=$1 d=$2 token=$3 delay=$4 mode=$5 before rc ms u p1 p2 waiting=no
    local dir; dir=$(mktemp -d "$WORK_ROOT/slow.XXXXXX")
    ISOLATION_MS=
    fault delay "$delay"
    before=$(backend_count auth)
    ( timed_login "bob@$d" bob-pw "$port" > "$dir/bob" ) &
    p1=$!
    ( timed_login "carol@$d" 'a: b c :d ' "$port" > "$dir/carol" ) &
    p2=$!
    if wait_until 5 auth_count_at_least $(( before + 2 )); then
        read -r rc ms < <(timed_login "alice@$d" "$token" "$port")
        ISOLATION_MS=$ms
        kill -0 "$p1" 2>/dev/null && [ ! -s "$dir/bob" ] && kill -0 "$p2" 2>/dev/null && [ ! -s "$dir/carol" ] \
            && waiting=yes
        expect "slow backend: a token login while 2 password logins wait -> session" 0 "$rc" "${ms} ms"
        [ "$mode" = check ] && expect "slow backend: the token login was answered while both password logins still waited" \
            yes "$waiting" "${ms} ms"
    else
        not_ok "slow backend: the 2 password logins never reached the backend"
    fi
    wait "$p1" "$p2"
    for u in bob carol; do
        read -r rc ms < "$dir/$u"
        [ "$rc" = 0 ] && [ "$ms" -ge $(( delay - 200 )) ] \
            && ok "slow backend: $u's password login waited for the backend, then session (${ms} ms)" \
            || not_ok "slow backend: $u's password login: exit $rc after ${ms} ms"
    done
    fault ok
}

# write_totp_files DIR: the test vectors' TOTP seed and token secret as
# DIR/totp-seed and DIR/totp-secret (files only their owner reads).
write_totp_files() {
    write_secret "$1/totp-seed" "PUL3GGUVO4KFVN4R"
    write_secret "$1/totp-secret" "OHCMULRVFWI2SR5W2S22C2JMA63OC5SV"
}

totp_token() { # totp_token DIR USER DOMAIN: a fresh TOTP token from DIR's files
    "$BIN_DIR/cloudauth" -c /dev/null --tokens totp --totp-seed-file "$1/totp-seed" \
        --totp-secret-file "$1/totp-secret" token --format totp "$2" "$3"
}

wait_until() { # wait_until SECONDS COMMAND...: until COMMAND succeeds
    local i
    for i in $(seq $(( $1 * 10 ))); do "${@:2}" && return 0; sleep 0.1; done
    return 1
}

# wait_line FILE PATTERN [SECONDS]: until a line matches (grep -E), or time is up.
wait_line() {
    local i
    for i in $(seq $(( ${3:-15} * 10 ))); do
        grep -qE -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

count() { grep -cE -- "$2" "$1" 2>/dev/null; } # count FILE PATTERN: matching lines

# wait_count FILE PATTERN N [SECONDS]: until at least N lines match.
wait_count() {
    local i
    for i in $(seq $(( ${4:-15} * 10 ))); do
        [ "$(count "$1" "$2")" -ge "$3" ] && return 0
        sleep 0.1
    done
    return 1
}

mint() { # mint USER DOMAIN SECRET [--ttl T | --expiry UNIX]
    local u=$1 d=$2 s=$3
    shift 3
    "$BIN_DIR/cloudauth" -c /dev/null -s "$s" token "$u" "$d" "$@"
}

# known_offline_cases PORT: the cloud is down (the caller set `fault down`)
# and bob, offline, logged in before (a known user): alice's message and
# subscription request to him are stored, a message to an unknown name still
# bounces, and bob's next login (a token, the cloud still down) gets both;
# then, the cloud up, 20 messages to the offline bob cost at most one isuser
# request and all reach him. Needs ALICE and BOB (tokens), W and D.
# KNOWN_NOBODY: what the unknown name's message gets, if not a bounce;
# KNOWN_BETWEEN: a command run before bob's login (e.g. a server restart).
known_offline_cases() {
    local port=$1 before after n
    probe "alice@$D" "$ALICE" "$port" --message "bob@$D" --subscribe "bob@$D" --body down-msg --wait 2 \
        > "$W/down.send" 2>&1
    expect "cloud down: message and subscription to the known offline bob accepted" \
        "login-ok|message-no-error|subscribe-no-error" "$(joined "$W/down.send")"
    probe "alice@$D" "$ALICE" "$port" --message "nobody@$D" --wait 2 > "$W/down.nobody" 2>&1
    if [ -n "${KNOWN_NOBODY:-}" ]; then
        expect "cloud down: a message to an unknown name: $KNOWN_NOBODY" "$KNOWN_NOBODY" "$(joined "$W/down.nobody")"
    else
        expect "cloud down: a message to an unknown name still bounces (cannot tell)" \
            "login-ok|message-error cancel service-unavailable" "$(joined "$W/down.nobody")"
    fi
    [ -z "${KNOWN_BETWEEN:-}" ] || { $KNOWN_BETWEEN; ok "cloud down: ran '$KNOWN_BETWEEN' before bob's login"; }
    probe "bob@$D" "$BOB" "$port" --collect 1.5 > "$W/down.collect" 2>&1
    grep -qxF "received-message alice@$D down-msg" "$W/down.collect" &&
        grep -qxF "received-subscribe alice@$D" "$W/down.collect" &&
        ok "bob's next login (cloud still down) delivers the stored message and subscription" ||
        not_ok "bob did not get what alice sent while the cloud was down: $(joined "$W/down.collect")"
    fault ok
    before=$(backend_count isuser)
    probe "alice@$D" "$ALICE" "$port" --message "bob@$D" --body flood --repeat 20 --wait 2 > "$W/flood.send" 2>&1
    expect "20 messages to the offline known bob: no error" "login-ok|message-no-error" "$(joined "$W/flood.send")"
    after=$(backend_count isuser)
    [ $((after - before)) -le 1 ] && ok "20 messages to a known offline user cost $((after - before)) isuser request(s) (at most 1)" ||
        not_ok "20 messages to a known offline user cost $((after - before)) isuser requests"
    probe "bob@$D" "$BOB" "$port" --collect 1.5 > "$W/flood.collect" 2>&1
    n=$(grep -c "^received-message alice@$D flood" "$W/flood.collect")
    expect "bob gets all 20 stored messages" 20 "$n"
}
