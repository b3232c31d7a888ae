#!/bin/bash
# End to end: the account sweep with Prosody 0.12 (Debian 12's) and 13 (a
# cached Debian 13 root, as prosody_tristate.sh runs it), through
# socket-mode cloudauth (`--listen generic=…`, --backend nextcloud with the
# service account svc, --cache-storage memory, --account-sweep 3s) and
# mod_auth_cloudauth (cloudauth_departed_poll = 1), against the test
# backend as Nextcloud.
#
# alice and bob log in by password and stay online; bob is disabled in the
# cloud. Within a sweep and a poll his session is closed, his password is
# refused, alice stays online. On the wire: hello:tristate,departed is
# answered with both, departed:localhost:- with the version now.
#
#   bash test/e2e/prosody_sweep.sh                  both, one after the other
#   bash test/e2e/prosody_sweep.sh --host           Prosody 0.12 of the host
#   bash test/e2e/prosody_sweep.sh --root trixie    Prosody 13 (needs root)
set -u
. "$(dirname "$0")/../lib/common.sh"
. "$E2E_LIB/prosody-root.sh"

prosody_runs "$@"
D=localhost
BASE=$(workdir prosody-sweep)
users() { # users BOB_DISABLED
    printf '{"users": [{"uid": "alice", "password": "alice-pw"}, {"uid": "bob", "password": "bob-pw", "disabled": %s}, {"uid": "svc", "password": "svc-pw", "admin": true}]}\n' "$1"
}
start_backend "$BASE" "unused-$$" "$(users false)" || die_setup "test backend did not start"
printf 'svc-pw' > "$BASE/service-password"; chmod 600 "$BASE/service-password"

sweep_run() {
ROOT_NAME=${1#host} R= V=$1
W="$BASE/$1"
mkdir -p "$W/log"
fault ok || die_setup "backend reset"
users false > "$BASE/users.json"; curl -sf -X POST "$BACKEND_CONTROL/reload" > /dev/null || die_setup "reload"
CA_PORT=$(free_port)
"$BIN_DIR/cloudauth" -c /dev/null --backend nextcloud -u "$BACKEND_ORIGIN" --service-user svc \
    --service-password-file "$BASE/service-password" -l "$W/log" --cache-storage memory \
    --cache-bcrypt-rounds 4 --timeout 3 --account-sweep 3s --listen "generic=127.0.0.1:$CA_PORT" \
    2>> "$W/cloudauth.stderr" &
CA_PID=$!
on_exit "kill $CA_PID"
wait_until 10 port_listens "$CA_PORT" || die_setup "cloudauth did not listen on 127.0.0.1:$CA_PORT"

answer=$(say "$CA_PORT" "hello:tristate,departed" "departed:$D:-" | tr '\n' ' ')
[[ $answer =~ ^hello:tristate,departed\ \+$'\t'0$'\t'[0-9]+$'\t'1\ $ ]] &&
    ok "$V: hello:tristate,departed is granted; departed:$D:- answers the version now" ||
    not_ok "$V: hello/departed answered: $answer"

PORT=$(free_port)
prosody_config() { # prosody_config DIR MODULE_DIR
    prosody_globals "$1" "$PORT" "$2"
    prosody_vhost localhost "$CA_PORT"
    echo '    cloudauth_departed_poll = 1'
}
[ -z "$ROOT_NAME" ] || prosody_root "$ROOT_NAME" "$W"
prosody_prepare "$W"
prosody_launch "$W"
on_exit "kill $PROSODY_PID; wait $PROSODY_PID"
prosody_listening "$PORT" "$W"
LOG="$P/prosody.log"
V=$(prosody_version)
echo "# Prosody $V${ROOT_NAME:+ in root $ROOT_NAME}"

probe "alice@$D" alice-pw "$PORT" --collect 25 > "$W/alice.out" 2>&1 & A=$!
probe "bob@$D" bob-pw "$PORT" --collect 25 > "$W/bob.out" 2>&1 & B=$!
on_exit "kill $A $B 2>/dev/null"
# The probes print when they end: Prosody's log tells when both are in.
wait_line "$LOG" "Authenticated as bob@$D" 10 && wait_line "$LOG" "Authenticated as alice@$D" 5 ||
    not_ok "$V: alice and bob did not log in"
sleep 1
t0=$(now_ms)
users true > "$BASE/users.json"; curl -sf -X POST "$BACKEND_CONTROL/reload" > /dev/null || die_setup "reload"
if wait_until 12 sh -c "! kill -0 $B 2>/dev/null"; then
    ok "$V: bob, disabled in the cloud, is disconnected by Prosody within a sweep and a poll ($(( $(now_ms) - t0 )) ms, sweep 3 s, poll 1 s)"
else
    not_ok "$V: bob still connected 12 s after he was disabled"
fi
kill -0 "$A" 2>/dev/null && ok "$V: alice stays connected" || not_ok "$V: alice was disconnected too"
wait_line "$LOG" "bob@$D: account gone from Nextcloud; 1 sessions closed" 5 &&
    ok "$V: the module logs that it closed bob's session" || not_ok "$V: no 'sessions closed' line in Prosody's log"
out=$(probe "bob@$D" bob-pw "$PORT")
expect "$V: bob's password is refused afterwards" "login-failed not-authorized" "$out"
fault down || die_setup "fault down"
out=$(probe "bob@$D" bob-pw "$PORT")
[ "$out" != login-ok ] && ok "$V: cloud down: bob's cached password is gone ($out)" ||
    not_ok "$V: cloud down: bob still logs in from the cache"
expect "$V: cloud down: alice logs in from the cache" login-ok "$(probe "alice@$D" alice-pw "$PORT")"
fault ok
kill "$A" 2>/dev/null; wait "$A" 2>/dev/null
kill "$PROSODY_PID" "$CA_PID" 2>/dev/null; wait "$PROSODY_PID" 2>/dev/null
grep -qF -- "svc-pw" "$W/log/cloudauth.log" "$LOG" && not_ok "$V: a log holds the service password" ||
    ok "$V: no service password in the logs"
}

for run in "${RUNS[@]}"; do sweep_run "$run"; done
finish
