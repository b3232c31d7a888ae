#!/bin/bash
# End to end: the nextcloud backend against the test backend's emulation of
# Nextcloud 34 (--nextcloud-version 34: a block after the 11th failed login
# within 30 minutes per address, JSON 401s, two-factor and disabled
# accounts, group display names), through
#   extauth: ejabberd 23.01 running `cloudauth -t ejabberd` (pool of 2)
#   in-VM:   ejabberd 23.01 with auth_method: cloud (roster sync on)
#   Prosody: mod_auth_cloudauth talking to a socket-mode cloudauth (logins)
# Two vhosts, one Nextcloud:
#   nc.localhost      the service account svc (subadmin of staff) with its app password
#   badsvc.localhost  the same account with a revoked password in its file
# Cases: a wrong service password is sent at most once per process (not
# once per isuser) and its new content is used at once; a disabled account
# does not exist and cannot log in; a two-factor account's password is a
# "no" with the app-password hint, its app password a session; shared
# roster groups carry display names and no disabled member; a block already
# on is named and answered "cannot tell", never "no", until it is reset.
set -u
. "$(dirname "$0")/../lib/common.sh"

W=$(workdir nextcloud32)
USERS='{"group_names": {"staff": "Staff Team"},
 "users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice Liddell", "groups": ["staff"]},
  {"uid": "bob", "password": "bob-pw", "groups": ["staff"]},
  {"uid": "frank", "password": "frank-pw", "groups": ["staff"], "disabled": true},
  {"uid": "erin", "password": "erin-pw", "groups": ["staff"], "two_factor": true, "app_passwords": ["erin-app-pw"]},
  {"uid": "svc", "password": "svc-login-pw", "subadmin": ["staff"], "app_passwords": ["svc-app-pw"]}
]}'
start_backend "$W" "unused-$$" "$USERS" --nextcloud-version 34 || die_setup "test backend did not start"
write_secret "$W/svc-pw" svc-app-pw
mkdir -p "$W/log"

failures() { # failures recorded by the emulated Nextcloud for 127.0.0.1
    curl -sf "$BACKEND_CONTROL/throttle" | /usr/bin/python3 -c \
        "import json,sys; print(json.load(sys.stdin)['failures'].get('127.0.0.1', 0))"
}
reset_failures() { curl -sf -X POST "$BACKEND_CONTROL/throttle/reset" >/dev/null; }
HOSTS='hosts:
  - nc.localhost
  - badsvc.localhost'

# revoked_service_password NAME MAX [DURING]: 30 isuser (isuser_badsvc)
# with a revoked service password reach Nextcloud's failure count at most
# MAX times (once per process), each answered DURING when given; then the
# file gets the right password.
revoked_service_password() {
    local n=$1 max=$2 during=${3:-} f answer answers=""
    reset_failures
    for _ in $(seq 30); do
        answer=$(isuser_badsvc bob)
        [ -n "$during" ] && [ "$answer" != "$during" ] && answers="$answers $answer"
    done
    [ -n "$during" ] && expect "$n: each isuser with the refused service password is $during" "" "$answers"
    f=$(failures)
    [ "$f" -ge 1 ] && [ "$f" -le "$max" ] \
        && ok "$n: 30 isuser with a revoked service password: $f failure(s) recorded by Nextcloud (at most $max, not 30)" \
        || not_ok "$n: 30 isuser with a revoked service password: $f failures recorded (at most $max)"
    login "alice@badsvc.localhost" alice-pw "$PORT"; expect "$n: meanwhile passwords still log in" 0 $?
    printf 'svc-app-pw\n' > "$W/badsvc-pw"
}

# account_cases NAME: disabled and two-factor accounts.
account_cases() {
    local n=$1
    login "frank@nc.localhost" frank-pw "$PORT"; expect "$n: a disabled account's right password -> refused" 1 $?
    login "erin@nc.localhost" erin-pw "$PORT"; expect "$n: a two-factor account's password -> refused" 1 $?
    login "erin@nc.localhost" erin-app-pw "$PORT"; expect "$n: its app password -> session" 0 $?
    expect "$n: disabled and two-factor logins were not counted as failures" 0 "$(failures)"
}

# block_cases NAME LOG: a block already on (11 failures sent by someone
# else from this address) is named and is no "no".
block_cases() {
    local n=$1 log=$2 i
    reset_failures
    for i in $(seq 11); do
        curl -s -o /dev/null -u "nobody$i:x" -H 'OCS-APIRequest: true' "$BACKEND_ORIGIN/ocs/v2.php/cloud/user?format=json"
    done
    login "bob@nc.localhost" bob-pw "$PORT"; expect "$n: during a block bob's right password gets no session" 1 $?
    wait_line "$log" "blocks this server's address.*whitelist_1 --value=ADDR/32" 10 \
        && ok "$n: the log names the block and the allow-list fix" || not_ok "$n: no block line in $log"
    grep -q "auth bob@nc.localhost: no via" "$log" && not_ok "$n: bob's right password was answered no during the block" \
        || ok "$n: bob's right password was never answered no (cannot tell)"
    reset_failures
    # During a block at most one request per 5 s goes to Nextcloud: the
    # next probe notices the end.
    sleep 5
    login "bob@nc.localhost" bob-pw "$PORT"; expect "$n: after occ security:bruteforce:reset -> session (at the next probe)" 0 $?
}

# --- extauth --------------------------------------------------------------------------
cat > "$W/domains" <<TXT
nc.localhost backend=nextcloud url=$BACKEND_ORIGIN service-user=svc service-password-file=$W/svc-pw
badsvc.localhost backend=nextcloud url=$BACKEND_ORIGIN service-user=svc service-password-file=$W/badsvc-pw
TXT
write_secret "$W/badsvc-pw" revoked-pw
XA="$W/extauth"
PORT=$(free_port)
cat > "$W/extauth.yml" <<YML
$HOSTS
auth_method: external
extauth_program: "$BIN_DIR/cloudauth -c /dev/null -t ejabberd -p $W/domains -l $W/log --timeout 5,10"
extauth_pool_size: 2
auth_use_cache: false
YML
start_ejabberd "$XA" "$PORT" "$W/extauth.yml" || die_setup "ejabberd (extauth) did not start"
LOG="$W/log/cloudauth.log"
isuser_badsvc() { "$SANDBOX" eval "$XA" "ejabberd_auth:user_exists(<<\"$1\">>, <<\"badsvc.localhost\">>)."; }
revoked_service_password extauth 2
expect "extauth: the new service password is used at once" true "$(isuser_badsvc bob)"
grep -q "Nextcloud refuses service-user svc's password: check service-password-file" "$LOG" \
    && ok "extauth: the log says the service password is refused, and which setting to fix" \
    || not_ok "extauth: no service password line in the log"
[ "$(grep -c "isuser bob@badsvc.localhost: no via" "$LOG")" = 0 ] \
    && ok "extauth: isuser was never answered no while the service password was refused" \
    || not_ok "extauth: isuser answered no with a refused service password"
expect "extauth: a disabled account does not exist" false \
    "$("$SANDBOX" eval "$XA" 'ejabberd_auth:user_exists(<<"frank">>, <<"nc.localhost">>).')"
account_cases extauth
grep -q '"erin": Nextcloud did not check the password .* only an app password works' "$LOG" \
    && ok "extauth: the log tells erin's admin to use an app password" || not_ok "extauth: no two-factor hint in the log"
block_cases extauth "$LOG"
"$SANDBOX" stop "$XA"

# --- in the VM ------------------------------------------------------------------------
VM="$W/vm"
"$ROOT/erlang/install.sh" "$VM/ext" >/dev/null 2>"$W/install.log" || { cat "$W/install.log"; die_setup "install.sh failed"; }
PORT=$(free_port)
write_secret "$W/badsvc-pw" revoked-pw
cat > "$W/vm.yml" <<YML
$HOSTS
auth_method: cloud
auth_cloud_timeout: "5,10"
auth_cloud_backend: nextcloud
auth_cloud_url: "$BACKEND_ORIGIN"
auth_cloud_service_user: svc
host_config:
  nc.localhost:
    auth_cloud_roster_sync: true
    auth_cloud_service_password_file: "$W/svc-pw"
  badsvc.localhost:
    auth_cloud_service_password_file: "$W/badsvc-pw"
YML
EJABBERD_SANDBOX_LOGLEVEL=debug start_ejabberd "$VM" "$PORT" "$W/vm.yml" || die_setup "ejabberd (vm) did not start"
ev() { "$SANDBOX" eval "$VM" "$1"; }
VLOG="$VM/log/ejabberd.log"
isuser_badsvc() { ev "ejabberd_auth_cloud:user_exists(<<\"$1\">>, <<\"badsvc.localhost\">>)."; }
revoked_service_password vm 1 "{nocache,{error,db_failure}}"
expect "vm: the new service password is used at once" "{nocache,true}" "$(isuser_badsvc bob)"
expect "vm: a disabled account does not exist" "{nocache,false}" \
    "$(ev 'ejabberd_auth_cloud:user_exists(<<"frank">>, <<"nc.localhost">>).')"
account_cases vm
# alice's login provisioned Nextcloud group staff under its display name,
# without frank (disabled).
login "alice@nc.localhost" alice-pw "$PORT"; expect "vm: alice -> session" 0 $?
STAFF='lists:sort([U || G <- mod_shared_roster:list_groups(<<"nc.localhost">>), proplists:get_value(label, mod_shared_roster:get_group_opts(<<"nc.localhost">>, G)) == <<"Staff Team">>, {U, _} <- mod_shared_roster:get_group_explicit_users(<<"nc.localhost">>, G)]).'
members=""
for _ in $(seq 50); do
    members=$(ev "$STAFF")
    [ "$members" = '[<<"alice">>,<<"bob">>,<<"erin">>]' ] && break
    sleep 0.2
done
expect "vm: group staff provisioned as \"Staff Team\", without the disabled frank" \
    '[<<"alice">>,<<"bob">>,<<"erin">>]' "$members"
block_cases vm "$VLOG"
"$SANDBOX" status "$VM" >/dev/null 2>&1; expect "vm: ejabberd still running" 0 $?
"$SANDBOX" stop "$VM"

# --- Prosody through a socket-mode cloudauth ------------------------------------------
SOCK="$W/cloudauth.sock"
"$BIN_DIR/cloudauth" -c /dev/null -p "$W/domains" -l "$W/log-socket" \
    --timeout 5,10 --listen "generic=$SOCK" 2>> "$W/cloudauth.stderr" &
CA_PID=$!
on_exit "kill $CA_PID"
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
P="$W/prosody"
mkdir -p "$P/data"
PORT=$(free_port)
{
    prosody_globals "$P" "$PORT" "$ROOT/prosody"
    printf 'VirtualHost "nc.localhost"\n    authentication = "cloudauth"\n    cloudauth_socket = "%s"\n    cloudauth_timeout = 20\n' "$SOCK"
} > "$P/prosody.cfg.lua"
prosody -F --config "$P/prosody.cfg.lua" > "$P/stdout" 2>&1 &
PROSODY_PID=$!
on_exit "kill $PROSODY_PID; wait $PROSODY_PID"
for _ in $(seq 100); do (exec 3<> "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
(exec 3<> "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || die_setup "prosody did not listen"
reset_failures
account_cases prosody
block_cases prosody "$W/log-socket/cloudauth.log"

leaked=""
for s in alice-pw bob-pw frank-pw erin-pw erin-app-pw svc-app-pw revoked-pw; do
    for f in "$LOG" "$VLOG" "$W/log-socket/cloudauth.log" "$P/prosody.log"; do
        grep -qF -- "$s" "$f" && leaked="$leaked $(basename "$f"):$s"
    done
done
[ -z "$leaked" ] && ok "no password in any log" || not_ok "passwords in logs:$leaked"
finish
