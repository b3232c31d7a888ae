#!/bin/bash
# End to end: "cannot tell" between mod_auth_cloudauth and cloudauth
# (`hello:tristate`, negotiated per connection) on a real Prosody with
# mod_offline, through socket-mode cloudauth and the JSXC test backend.
#
#   bash test/e2e/prosody_tristate.sh                  both of these, one after the other:
#   bash test/e2e/prosody_tristate.sh --host           Prosody 0.12 of the host (Debian 12)
#   bash test/e2e/prosody_tristate.sh --root trixie    Prosody 13 in a cached Debian root
#                                                      (test/lib/debian-root.sh; needs root)
#
# With Nextcloud down: a client of the generic protocol that never says
# hello still gets `0` for trouble, byte for byte; one that does gets `?`.
# Through Prosody: a login cloudauth cannot decide fails with SASL
# temporary-auth-failure (not not-authorized); alice (cached password) sends
# dave, who exists but never logged in, a message and a subscription
# request: neither is bounced, both are stored and reach dave at his first
# login once Nextcloud is back.
#
# Known users (cloudauth with --db), on both Prosody versions: bob logged in
# once. With Nextcloud down, cloudauth and Prosody restarted: alice's message
# and subscription request to the offline bob are stored (cloudauth answers
# `1` from the known users it kept in --db, not `?`), Prosody is restarted
# again, and bob's next login (a token, Nextcloud still down) gets both; 20
# messages to him with Nextcloud up cost at most one isuser request. bob's
# password changed in Nextcloud stops working after --cache-revalidate (2 s),
# the new one works at once.
set -u
. "$(dirname "$0")/../lib/common.sh"
. "$E2E_LIB/prosody-root.sh"

prosody_runs "$@"
SECRET="e2e-secret-$$-$RANDOM"
BASE=$(workdir prosody-tristate)
USERS='{"users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice"},
  {"uid": "bob", "password": "bob-pw", "name": "Bob"},
  {"uid": "carol", "password": "carol-pw", "name": "Carol"},
  {"uid": "dave", "password": "dave-pw", "name": "Dave"}
]}'
start_backend "$BASE" "$SECRET" "$USERS" || die_setup "test backend did not start"
write_secret "$BASE/secret" "$SECRET"


tristate_run() {
ROOT_NAME=${1#host} R=
W="$BASE/$1"
mkdir -p "$W/log"
fault ok || die_setup "backend reset"
CA_PORT=$(free_port)
start_cloudauth() { # known users and cached passwords in --db: kept across a restart
    "$BIN_DIR/cloudauth" -c /dev/null -u "$BACKEND_URL" --secret-file "$BASE/secret" -l "$W/log" \
        --cache-storage db --db "$W/state.db" --cache-bcrypt-rounds 4 --cache-revalidate 2s \
        --timeout 2 --listen "generic=127.0.0.1:$CA_PORT" 2>> "$W/cloudauth.stderr" &
    CA_PID=$!
    wait_until 10 port_listens "$CA_PORT" || die_setup "cloudauth did not listen on 127.0.0.1:$CA_PORT"
}
start_cloudauth
on_exit 'kill $CA_PID'

PORT=$(free_port)
prosody_config() { # prosody_config DIR MODULE_DIR
    # mod_offline on (prosody_globals disables it): messages to offline users are stored.
    prosody_globals "$1" "$PORT" "$2" | sed -e 's/"ping" }/"ping", "offline" }/' -e 's/, "offline" }$/ }/'
    prosody_vhost localhost "$CA_PORT"
}
[ -z "$ROOT_NAME" ] || prosody_root "$ROOT_NAME" "$W"
prosody_prepare "$W"
prosody_launch "$W"
on_exit 'kill $PROSODY_PID; wait $PROSODY_PID'
prosody_listening "$PORT" "$W"
LOG="$P/prosody.log"
restart() { # restart [cloudauth]: Prosody (and cloudauth) stopped and started again
    kill "$PROSODY_PID"; wait "$PROSODY_PID" 2>/dev/null
    if [ "${1:-}" = cloudauth ]; then
        kill "$CA_PID"; wait "$CA_PID" 2>/dev/null
        start_cloudauth
    fi
    prosody_launch "$W"; prosody_listening "$PORT" "$W"
}
D=localhost
echo "# Prosody $(prosody_version)${ROOT_NAME:+ in root $ROOT_NAME}"

# alice logs in once while Nextcloud is up: her password is cached.
out=$(probe "alice@$D" alice-pw "$PORT")
expect "Nextcloud up: alice logs in" "login-ok" "$out"

fault down || not_ok "backend fault"
# The generic protocol without hello: trouble is `0`, as it always was.
expect "Nextcloud down, no hello: isuser and auth answered 0 (today's answer)" \
    "0 0" "$(say "$CA_PORT" "isuser:dave:$D" "auth:carol:$D:carol-pw" | tr '\n' ' ' | sed 's/ $//')"
expect "Nextcloud down, after hello:tristate: answered hello:tristate, then ? for isuser and auth" \
    "hello:tristate ? ? 1" \
    "$(say "$CA_PORT" "hello:tristate" "isuser:dave:$D" "auth:carol:$D:carol-pw" "auth:alice:$D:alice-pw" | tr '\n' ' ' | sed 's/ $//')"
expect "hello without tristate: answered hello:, trouble stays 0" \
    "hello: 0" "$(say "$CA_PORT" "hello:future" "isuser:dave:$D" | tr '\n' ' ' | sed 's/ $//')"

out=$(probe "carol@$D" carol-pw "$PORT")
expect "Nextcloud down: carol (not cached) gets SASL temporary-auth-failure, not not-authorized" \
    "login-failed temporary-auth-failure" "$out"
out=$(probe "alice@$D" alice-pw "$PORT" --message "dave@$D" --body "while-down" --subscribe "dave@$D" --wait 4)
echo "$out" | grep -qx "login-ok" || not_ok "alice (cached) could not log in with Nextcloud down: $out"
echo "$out" | grep -qx "message-no-error" \
    && ok "Nextcloud down: alice's message to dave (exists, never logged in) is not bounced" \
    || not_ok "message to dave bounced: $(echo "$out" | tr '\n' ';')"
echo "$out" | grep -qx "subscribe-no-error" \
    && ok "Nextcloud down: alice's subscription request to dave is not refused" \
    || not_ok "subscription to dave refused: $(echo "$out" | tr '\n' ';')"
grep -q "isuser dave@$D: cloudauth cannot tell; taken as existing" "$LOG" \
    && ok "the module logged 'isuser dave@$D: cloudauth cannot tell; taken as existing'" \
    || not_ok "no 'taken as existing' line in Prosody's log"
grep -rqs "alice@$D" "$P/data/localhost/roster/dave.dat" \
    && ok "Nextcloud down: alice's subscription request is stored in dave's roster (survives a restart)" \
    || not_ok "subscription request not stored: $(ls "$P/data/localhost/roster/" 2>&1 | tr '\n' ' ')"

fault ok
out=$(probe "dave@$D" dave-pw "$PORT" --collect 4)
echo "$out" | grep -qx "received-message alice@$D while-down" \
    && ok "Nextcloud back: dave's first login delivers the stored message" \
    || not_ok "message not delivered to dave: $(echo "$out" | tr '\n' ';')"
echo "$out" | grep -qx "received-subscribe alice@$D" \
    && ok "Nextcloud back: dave's first login delivers alice's subscription request" \
    || not_ok "subscription request not delivered to dave: $(echo "$out" | tr '\n' ';')"
out=$(probe "carol@$D" wrong-pw "$PORT")
expect "Nextcloud back: a wrong password is still not-authorized" "login-failed not-authorized" "$out"
known_run; known_password
kill "$PROSODY_PID" "$CA_PID" 2>/dev/null; wait "$PROSODY_PID" "$CA_PID" 2>/dev/null
}

# Known users across restarts, 20 messages, revalidation (see the top).
known_run() {
    out=$(probe "bob@$D" bob-pw "$PORT")
    expect "known: bob logs in by password once (now a known user, kept in --db)" "login-ok" "$out"
    fault down || not_ok "backend fault"
    restart cloudauth
    ok "known: Nextcloud down, cloudauth and Prosody restarted"
    ALICE=$(mint alice $D "$SECRET" --ttl 1h); BOB=$(mint bob $D "$SECRET" --ttl 1h)
    # With tristate a name cloudauth cannot tell is taken as existing, so the
    # unknown name's message is stored too (prosody/README.md).
    KNOWN_NOBODY="login-ok|message-no-error" KNOWN_BETWEEN=known_between known_offline_cases "$PORT"
}
known_between() { # after the sends, before bob's login: what answered them; Prosody restarted
    grep -q "isuser bob@$D: yes via cache (known user)" "$W/log/cloudauth.log" \
        && ! grep -q "isuser bob@$D: cloudauth cannot tell" "$LOG" \
        && ok "known: the restarted cloudauth answered yes for bob from --db (known user), not 'cannot tell'" \
        || not_ok "known: bob's isuser was not answered as a known user: $(grep "bob@$D" "$W/log/cloudauth.log" | tail -n 3 | tr '\n' ';')"
    grep -q "isuser nobody@$D: cloudauth cannot tell; taken as existing" "$LOG" \
        && ok "known: ... while for the unknown name it could not tell (taken as existing)" \
        || not_ok "known: no 'cannot tell' line for the unknown name"
    restart
}
known_password() { # bob's password changed in Nextcloud; --cache-revalidate 2s
    # bob-pw was confirmed by Nextcloud at his first login.
    sed -i 's/"bob-pw"/"bob-new"/' "$BASE/users.json"
    curl -sf -X POST "$BACKEND_CONTROL/reload" > /dev/null || not_ok "backend reload"
    sleep 2.5
    login "bob@$D" bob-pw "$PORT"; expect "known: changed in Nextcloud, the old password still answers from the cache at once" 0 $?
    wait_until 10 sh -c "! /usr/bin/python3 '$E2E_LIB/xmpp_login.py' 'bob@$D' bob-pw $PORT" &&
        ok "known: the old password stops working after --cache-revalidate (2 s)" ||
        not_ok "known: the old password still works 10 s after --cache-revalidate"
    login "bob@$D" bob-new "$PORT"; expect "known: the new password works at once" 0 $?
    # The next run (another Prosody) starts from bob-pw again.
    sed -i 's/"bob-new"/"bob-pw"/' "$BASE/users.json"
    curl -sf -X POST "$BACKEND_CONTROL/reload" > /dev/null || not_ok "backend reload"
}

for run in "${RUNS[@]}"; do tristate_run "$run"; done
finish
