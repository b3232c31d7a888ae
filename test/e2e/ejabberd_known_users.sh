#!/bin/bash
# End to end: known users and revalidation with ejabberd 23.01 extauth
# (`cloudauth -t ejabberd`, pool of 2, `--cache-storage db`), mod_offline on,
# against the JSXC test backend.
#
# bob logs in by password once (now known). With the cloud down, alice
# (token) sends bob a message and a subscription request: stored (today's
# cloudauth bounced the message and dropped the request), and bob gets both
# at his next login (token, the cloud still down). With the cloud up, 20
# messages to the offline known bob cost at most one isuser request.
# bob's password changed in the cloud: the old one still works from the
# cache at once, stops working within --cache-revalidate (2 s) after that,
# and the new one works at once. `cloudauth forget` drops carol: the next
# message to her asks the cloud again.
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
D=localhost
W=$(workdir known)
users() { # users BOB_PASSWORD: the cloud's users file
    printf '{"users": [{"uid": "alice", "password": "alice-pw"}, {"uid": "bob", "password": "%s"}, {"uid": "carol", "password": "carol-pw"}]}\n' "$1"
}
start_backend "$W" "$SECRET" "$(users bob-pw)" || die_setup "test backend did not start"
write_secret "$W/secret" "$SECRET"
mkdir -p "$W/log"
DB=$W/state.db
FLAGS="-c /dev/null -u $BACKEND_URL --secret-file $W/secret --cache-storage db --db $DB"
PORT=$(free_port)
cat > "$W/extra.yml" <<YML
auth_method: external
extauth_program: "$BIN_DIR/cloudauth $FLAGS -t ejabberd -l $W/log --timeout 3 --cache-revalidate 2s"
extauth_pool_size: 2
auth_use_cache: false
modules:
  mod_disco: {}
  mod_roster: {}
  mod_offline: {}
YML
start_ejabberd "$W/ejabberd" "$PORT" "$W/extra.yml" || die_setup "ejabberd did not start"

ALICE=$(mint alice $D "$SECRET" --ttl 1h)
BOB=$(mint bob $D "$SECRET" --ttl 1h)

probe "bob@$D" bob-pw "$PORT" > "$W/bob.login" 2>&1
expect "bob logs in by password (now a known user)" "login-ok" "$(joined "$W/bob.login")"

fault down || die_setup "fault down"
known_offline_cases "$PORT"

# A changed password: bob-pw was confirmed by the cloud at the first login.
users bob-new > "$W/users.json"
curl -sf -X POST "$BACKEND_CONTROL/reload" > /dev/null || die_setup "reload"
sleep 3
login "bob@$D" bob-pw "$PORT"; expect "changed in the cloud: the old password still answers from the cache at once" 0 $?
wait_until 10 sh -c "! /usr/bin/python3 '$E2E_LIB/xmpp_login.py' 'bob@$D' bob-pw $PORT" &&
    ok "the old password stops working after --cache-revalidate (re-checked in the background)" ||
    not_ok "the old password still works 10 s after --cache-revalidate"
login "bob@$D" bob-new "$PORT"; expect "the new password works at once" 0 $?
grep -q "bob@$D: the backend no longer accepts the cached password; its cache row is dropped" "$W/log/cloudauth.log" &&
    ok "cloudauth logs the dropped row" || not_ok "no log line for the dropped row"

# forget: carol known from a message to her, then forgotten.
probe "alice@$D" "$ALICE" "$PORT" --message "carol@$D" --body one --wait 1 > /dev/null 2>&1
before=$(backend_count isuser)
probe "alice@$D" "$ALICE" "$PORT" --message "carol@$D" --body two --wait 1 > /dev/null 2>&1
expect "a known carol costs no isuser request" "$before" "$(backend_count isuser)"
"$BIN_DIR/cloudauth" $FLAGS forget carol $D > "$W/forget.out" 2>&1
expect "cloudauth forget carol exits 0" 0 $?
grep -q "^carol@$D: dropped known-user entry in $DB; close the sessions with \`ejabberdctl kick_user carol $D\`" "$W/forget.out" &&
    ok "forget says what it dropped" || not_ok "forget said: $(cat "$W/forget.out")"
probe "alice@$D" "$ALICE" "$PORT" --message "carol@$D" --body three --wait 1 > /dev/null 2>&1
expect "after forget, the next message to carol asks the cloud" $((before + 1)) "$(backend_count isuser)"

leaked=""
for s in alice-pw bob-pw bob-new carol-pw "$SECRET" "$ALICE" "$BOB"; do
    grep -qF -- "$s" "$W/log/cloudauth.log" && leaked="$leaked $s"
done
[ -z "$leaked" ] && ok "no password, token or secret in the log" || not_ok "log leaks:$leaked"
finish
