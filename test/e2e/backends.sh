#!/bin/bash
# End to end: the json and nextcloud backends and TOTP tokens, through
#   extauth: ejabberd 23.01 running `cloudauth -t ejabberd` (pool of 2, one --db)
#   in-VM:   ejabberd 23.01 with auth_method: cloud, per-vhost host_config
#   Prosody: mod_auth_cloudauth talking to a socket-mode cloudauth
# Three vhosts on each, backends chosen per domain (per-domain file for
# cloudauth, host_config in ejabberd):
#   json.localhost   the JSON login API with a bearer token; TOTP tokens
#   nc.localhost     Nextcloud's OCS API with a service account; TOTP and JSXC tokens
#   nosvc.localhost  Nextcloud's OCS API without a service account
# against the test backend's emulation of both APIs (XML 401s, the
# brute-force throttle). slixmpp logs in over SASL PLAIN.
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
W=$(workdir backends)
USERS='{"users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice Liddell", "groups": ["staff"], "app_passwords": ["alice-app-pw"]},
  {"uid": "bob", "password": "bob-pw", "name": "Bob", "groups": ["staff"]},
  {"uid": "carol", "password": "a: b c :d "},
  {"uid": "jürgen", "password": "pässwörd-ü"},
  {"uid": "dave", "password": "dave-pw", "login": "eve"},
  {"uid": "svc", "password": "svc-pw", "admin": true}
]}'
printf 'api-token-%s\n' "$RANDOM$RANDOM" > "$W/api-token"
chmod 600 "$W/api-token"
start_backend "$W" "$SECRET" "$USERS" --api-token-file "$W/api-token" || die_setup "test backend did not start"
write_secret "$W/secret" "$SECRET"
write_secret "$W/svc-pw" svc-pw
write_totp_files "$W"
mkdir -p "$W/log"

TOTP_FILES="totp-seed-file=$W/totp-seed totp-secret-file=$W/totp-secret"
# This script sends wrong passwords on purpose, more than the failure
# budget for Nextcloud 32/34 allows (bruteforce-max-attempts, checked in
# nextcloud_protection.sh); the emulated Nextcloud 24 here only delays.
cat > "$W/domains" <<TXT
json.localhost backend=json url=$BACKEND_ORIGIN/json api-token-file=$W/api-token tokens=totp $TOTP_FILES
nc.localhost backend=nextcloud url=$BACKEND_ORIGIN service-user=svc service-password-file=$W/svc-pw tokens=totp,jsxc $TOTP_FILES secret-file=$W/secret bruteforce-max-attempts=1000
nosvc.localhost backend=nextcloud url=$BACKEND_ORIGIN bruteforce-max-attempts=1000
TXT
HOSTS='hosts:
  - json.localhost
  - nc.localhost
  - nosvc.localhost'


# backend_cases NAME PORT DOMAIN COUNTER: the password and TOTP cases for a
# vhost whose backend counts its password checks under COUNTER (/stats).
backend_cases() {
    local n=$1 port=$2 d=$3 c=$4 before t
    before=$(backend_count "$c")
    login "alice@$d" alice-pw "$port"; expect "$n $d: right password -> session" 0 $?
    login "alice@$d" wrong-pw "$port"; expect "$n $d: wrong password -> refused" 1 $?
    login "mallory@$d" alice-pw "$port"; expect "$n $d: unknown user -> refused" 1 $?
    login "carol@$d" 'a: b c :d ' "$port"; expect "$n $d: password with ':' and spaces -> session" 0 $?
    login "jürgen@$d" 'pässwörd-ü' "$port"; expect "$n $d: non-ASCII user -> session" 0 $?
    expect "$n $d: each password login reached the backend" 5 $(( $(backend_count "$c") - before ))
    before=$(backend_count "$c")
    t=$(totp_token "$W" bob "$d")
    login "bob@$d" "$t" "$port"; expect "$n $d: TOTP token -> session" 0 $?
    login "bob@$d" "$t" "$port"; expect "$n $d: the same TOTP token again -> refused" 1 $?
    login "alice@$d" "$(totp_token "$W" bob "$d")" "$port"; expect "$n $d: bob's TOTP token for alice -> refused" 1 $?
    login "bob@$d" "$(totp_token "$W" bob other.localhost)" "$port"; expect "$n $d: a TOTP token for another domain -> refused" 1 $?
    # Shifted tokens (issue 18): signed over the same bytes as a real token
    # for another user, with the boundary between nonce and user name moved.
    t=$(totp_token "$W" xbob "$d")
    login "bob@$d" "${t%% *}x ${t#* }" "$port"
    expect "$n $d: xbob's TOTP token with the x moved into the nonce, as bob -> refused" 1 $?
    t=$(totp_token "$W" bob "$d"); w=${t%% *}
    login "${w: -3}bob@$d" "${w:0:-3} ${t#* }" "$port"
    expect "$n $d: bob's TOTP token with 3 nonce digits moved into the user name, as ${w: -3}bob -> refused" 1 $?
    login "bob@$d" "$t" "$port"; expect "$n $d: that token of bob's itself -> session" 0 $?
    login "bob@$d" "$t" "$port"; expect "$n $d: and only once -> refused" 1 $?
    expect "$n $d: no TOTP token reached the backend" 0 $(( $(backend_count "$c") - before ))
}

# nextcloud_cases NAME PORT MAX_SENT: app passwords, an alias of another
# account, a stale password retried (sent at most MAX_SENT times: once per
# process), and a throttling Nextcloud.
nextcloud_cases() {
    local n=$1 port=$2 max=$3 d=nc.localhost before sent rc ms
    login "alice@$d" alice-app-pw "$port"; expect "$n $d: app password -> session" 0 $?
    login "eve@$d" dave-pw "$port"; expect "$n $d: a login name of another account (dave's alias eve) -> refused" 1 $?
    before=$(backend_count ocs_user)
    for _ in 1 2 3 4; do login "bob@$d" bob-stale-pw "$port" >/dev/null; done
    sent=$(( $(backend_count ocs_user) - before ))
    [ "$sent" -ge 1 ] && [ "$sent" -le "$max" ] && ok "$n $d: a stale password retried 4 times reached Nextcloud $sent time(s) (at most $max)" \
        || not_ok "$n $d: a stale password retried 4 times reached Nextcloud $sent times (at most $max)"
    # Nextcloud's brute-force throttle: after failed logins from the
    # server's address every request waits, right passwords too.
    throttle on 1000
    for p in t1 t2 t3 t4 t5; do login "carol@$d" "wrong-$p" "$port" --timeout 30 >/dev/null; done
    read -r rc ms < <(timed_login "alice@$d" alice-pw "$port" --timeout 30)
    expect "$n $d: throttled Nextcloud: the right password still logs in" 0 "$rc" "${ms} ms"
    throttle off
}

# --- extauth --------------------------------------------------------------------------
XA="$W/extauth"
PORT_XA=$(free_port)
cat > "$W/extauth.yml" <<YML
$HOSTS
auth_method: external
extauth_program: "$BIN_DIR/cloudauth -c /dev/null -t ejabberd -p $W/domains --db $W/xcauth.sqlite3 -l $W/log --timeout 5,30"
extauth_pool_size: 2
auth_use_cache: false
YML
start_ejabberd "$XA" "$PORT_XA" "$W/extauth.yml" || die_setup "ejabberd (extauth) did not start"
backend_cases extauth "$PORT_XA" json.localhost login
backend_cases extauth "$PORT_XA" nc.localhost ocs_user
login "alice@nc.localhost" "$(mint alice nc.localhost "$SECRET" --ttl 1h)" "$PORT_XA"
expect "extauth nc.localhost: a JSXC token too (tokens=totp,jsxc) -> session" 0 $?
nextcloud_cases extauth "$PORT_XA" 2
login "alice@nosvc.localhost" alice-pw "$PORT_XA"; expect "extauth nosvc.localhost: password without a service account -> session" 0 $?
"$BIN_DIR/cloudauth" -c /dev/null -p "$W/domains" -I alice nosvc.localhost > "$W/isuser.out" 2>&1
expect "nosvc.localhost: isuser without a service account is trouble (exit 2), not no" 2 $?
grep -q "service account" "$W/isuser.out" && ok "nosvc.localhost: the answer names the missing service account" \
    || not_ok "nosvc.localhost: isuser said: $(cat "$W/isuser.out")"
"$BIN_DIR/cloudauth" -c /dev/null -p "$W/domains" -I bob nc.localhost >/dev/null 2>&1
expect "nc.localhost: isuser with the service account -> yes" 0 $?
"$BIN_DIR/cloudauth" -c /dev/null -p "$W/domains" -I mallory nc.localhost >/dev/null 2>&1
expect "nc.localhost: isuser of an unknown user -> no" 1 $?
"$BIN_DIR/cloudauth" -c /dev/null -p "$W/domains" -I bob json.localhost >/dev/null 2>&1
expect "json.localhost: isuser (POST /exists) -> yes" 0 $?
LOG="$W/log/cloudauth.log"
grep -q "throttl" "$LOG" && ok "extauth: the log says Nextcloud throttles this server, and what to do" \
    || not_ok "extauth: no throttling line in the log"
grep -q "bruteforce" "$LOG" && ok "extauth: the log names the brute-force settings" || not_ok "extauth: no remedy in the log"

# --- in the VM ------------------------------------------------------------------------
VM="$W/vm"
"$ROOT/erlang/install.sh" "$VM/ext" >/dev/null 2>"$W/install.log" || { cat "$W/install.log"; die_setup "install.sh failed"; }
PORT_VM=$(free_port)
cat > "$W/vm.yml" <<YML
$HOSTS
auth_method: cloud
auth_cloud_timeout: "5,30"
host_config:
  json.localhost:
    auth_cloud_backend: json
    auth_cloud_url: "$BACKEND_ORIGIN/json"
    auth_cloud_api_token_file: "$W/api-token"
    auth_cloud_tokens: [totp]
    auth_cloud_totp_seed_file: "$W/totp-seed"
    auth_cloud_totp_secret_file: "$W/totp-secret"
  nc.localhost:
    auth_cloud_backend: nextcloud
    auth_cloud_url: "$BACKEND_ORIGIN"
    auth_cloud_roster_sync: true
    auth_cloud_service_user: svc
    auth_cloud_service_password_file: "$W/svc-pw"
    auth_cloud_tokens: [totp, jsxc]
    auth_cloud_secret_file: "$W/secret"
    auth_cloud_totp_seed_file: "$W/totp-seed"
    auth_cloud_totp_secret_file: "$W/totp-secret"
    auth_cloud_bruteforce_max_attempts: 1000
  nosvc.localhost:
    auth_cloud_backend: nextcloud
    auth_cloud_url: "$BACKEND_ORIGIN"
    auth_cloud_bruteforce_max_attempts: 1000
YML
EJABBERD_SANDBOX_LOGLEVEL=debug start_ejabberd "$VM" "$PORT_VM" "$W/vm.yml" || die_setup "ejabberd (vm) did not start"
ev() { "$SANDBOX" eval "$VM" "$1"; }
backend_cases vm "$PORT_VM" json.localhost login
backend_cases vm "$PORT_VM" nc.localhost ocs_user
login "alice@nc.localhost" "$(mint alice nc.localhost "$SECRET" --ttl 1h)" "$PORT_VM"
expect "vm nc.localhost: a JSXC token too -> session" 0 $?
nextcloud_cases vm "$PORT_VM" 1
login "alice@nosvc.localhost" alice-pw "$PORT_VM"; expect "vm nosvc.localhost: password without a service account -> session" 0 $?
expect "vm nosvc.localhost: user_exists without a service account is db_failure, not false" \
    "{nocache,{error,db_failure}}" "$(ev 'ejabberd_auth_cloud:user_exists(<<"alice">>, <<"nosvc.localhost">>).')"
expect "vm nc.localhost: user_exists with the service account" "{nocache,true}" \
    "$(ev 'ejabberd_auth_cloud:user_exists(<<"bob">>, <<"nc.localhost">>).')"
expect "vm nc.localhost: user_exists of an unknown user" "{nocache,false}" \
    "$(ev 'ejabberd_auth_cloud:user_exists(<<"mallory">>, <<"nc.localhost">>).')"
expect "vm json.localhost: user_exists (POST /exists)" "{nocache,true}" \
    "$(ev 'ejabberd_auth_cloud:user_exists(<<"bob">>, <<"json.localhost">>).')"
# alice's logins provisioned her Nextcloud group "staff" (alice, bob) as a
# shared roster group, through the service account.
STAFF='lists:sort([U || G <- mod_shared_roster:list_groups(<<"nc.localhost">>), proplists:get_value(label, mod_shared_roster:get_group_opts(<<"nc.localhost">>, G)) == <<"staff">>, {U, _} <- mod_shared_roster:get_group_explicit_users(<<"nc.localhost">>, G)]).'
members=""
for _ in $(seq 50); do
    members=$(ev "$STAFF")
    [ "$members" = '[<<"alice">>,<<"bob">>]' ] && break
    sleep 0.2
done
expect "vm nc.localhost: Nextcloud group staff provisioned as a shared roster group (service account)" \
    '[<<"alice">>,<<"bob">>]' "$members"
VLOG="$VM/log/ejabberd.log"
grep -q "cloudauth: Nextcloud at .* no service account, so isuser cannot find out .* to turn them on" "$VLOG" \
    && ok "vm: the core's own warning (no service account, how to turn isuser on) reached ejabberd's log" \
    || not_ok "vm: the core's service account warning is not in ejabberd's log"
"$SANDBOX" ctl "$VM" cloud_auth_stats nc.localhost > "$W/stats.txt" 2>&1
grep -q 'cloudauth_requests_total{protocol="vm",operation="auth",outcome="yes",path="token"}' "$W/stats.txt" \
    && grep -q 'cloudauth_requests_total{protocol="vm",operation="auth",outcome="no",path="recent"}' "$W/stats.txt" \
    && grep -q 'cloudauth_backend_throttling_seen_total [1-9]' "$W/stats.txt" \
    && ok "vm: ejabberdctl cloud_auth_stats counts token logins, recent refusals and the throttling seen" \
    || not_ok "vm: cloud_auth_stats said: $(head -c 600 "$W/stats.txt")"
"$SANDBOX" status "$VM" >/dev/null 2>&1; expect "vm: ejabberd still running" 0 $?

# --- Prosody through a socket-mode cloudauth ------------------------------------------
SOCK="$W/cloudauth.sock"
"$BIN_DIR/cloudauth" -c /dev/null -p "$W/domains" --db "$W/xcauth.sqlite3" -l "$W/log" \
    --timeout 5,30 --listen "generic=$SOCK" 2>> "$W/cloudauth.stderr" &
CA_PID=$!
on_exit "kill $CA_PID"
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
P="$W/prosody"
mkdir -p "$P/data"
PORT_P=$(free_port)
{
    prosody_globals "$P" "$PORT_P" "$ROOT/prosody"
    for h in json.localhost nc.localhost nosvc.localhost; do
        printf 'VirtualHost "%s"\n    authentication = "cloudauth"\n    cloudauth_socket = "%s"\n    cloudauth_timeout = 40\n' "$h" "$SOCK"
    done
} > "$P/prosody.cfg.lua"
prosody -F --config "$P/prosody.cfg.lua" > "$P/stdout" 2>&1 &
PROSODY_PID=$!
on_exit "kill $PROSODY_PID; wait $PROSODY_PID"
for _ in $(seq 100); do (exec 3<> "/dev/tcp/127.0.0.1/$PORT_P") 2>/dev/null && break; sleep 0.1; done
(exec 3<> "/dev/tcp/127.0.0.1/$PORT_P") 2>/dev/null || die_setup "prosody did not listen"
backend_cases prosody "$PORT_P" json.localhost login
backend_cases prosody "$PORT_P" nc.localhost ocs_user
nextcloud_cases prosody "$PORT_P" 1
login "alice@nosvc.localhost" alice-pw "$PORT_P"; expect "prosody nosvc.localhost: password -> session" 0 $?

leaked=""
for s in alice-pw bob-pw alice-app-pw bob-stale-pw 'a: b c :d' 'pässwörd-ü' svc-pw "$SECRET" \
    "$(cat "$W/api-token")" OHCMULRVFWI2SR5W2S22C2JMA63OC5SV PUL3GGUVO4KFVN4R; do
    for f in "$LOG" "$VLOG" "$P/prosody.log"; do
        grep -qF -- "$s" "$f" && leaked="$leaked $(basename "$f"):$s"
    done
done
[ -z "$leaked" ] && ok "no password, token or secret in cloudauth's, ejabberd's or Prosody's logs" || not_ok "logs leak:$leaked"
finish
