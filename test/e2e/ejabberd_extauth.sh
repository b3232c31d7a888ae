#!/bin/bash
# End to end: a real ejabberd 23.01 with auth_method: external runs
# `cloudauth -t ejabberd` (pool of 2) against the JSXC test backend; slixmpp
# logs in by password and by token.
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
TIMEOUT=3
W=$(workdir extauth)
start_backend "$W" "$SECRET" '{"users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice"},
  {"uid": "bob", "password": "bob-pw", "name": "Bob"},
  {"uid": "carol", "password": "a:b:c"},
  {"uid": "jürgen", "password": "pässwörd-ü"}
]}' || die_setup "test backend did not start"

printf '%s\n' "$SECRET" > "$W/secret"
chmod 600 "$W/secret"
mkdir -p "$W/log"
PORT=$(free_port)
cat > "$W/extra.yml" <<YML
auth_method: external
extauth_program: "$BIN_DIR/cloudauth -c /dev/null -t ejabberd -u $BACKEND_URL --secret-file $W/secret -l $W/log --timeout $TIMEOUT"
extauth_pool_size: 2
auth_use_cache: false
YML
start_ejabberd "$W/ejabberd" "$PORT" "$W/extra.yml" || die_setup "ejabberd did not start"

D=localhost
ALICE_TOKEN=$(mint alice $D "$SECRET" --ttl 1h)
BOB_TOKEN=$(mint bob $D "$SECRET" --ttl 1h)
EXPIRED=$(mint alice $D "$SECRET" --expiry $(( $(date +%s) - 60 )))
JUERGEN_TOKEN=$(mint jürgen $D "$SECRET" --ttl 1h)

auth_before=$(backend_count auth)
login "alice@$D" alice-pw "$PORT"; expect "right password -> session" 0 $?
login "alice@$D" wrong-pw "$PORT"; expect "wrong password -> refused" 1 $?
login "mallory@$D" alice-pw "$PORT"; expect "unknown user -> refused" 1 $?
login "carol@$D" 'a:b:c' "$PORT"; expect "password with colons -> session" 0 $?
login "jürgen@$D" 'pässwörd-ü' "$PORT"; expect "non-ASCII user by password -> session" 0 $?
auth_after=$(backend_count auth)
expect "password logins reached the backend" 5 $((auth_after - auth_before))

login "alice@$D" "$ALICE_TOKEN" "$PORT"; expect "valid token -> session" 0 $?
login "alice@$D" "$EXPIRED" "$PORT"; expect "expired token -> refused" 1 $?
login "alice@$D" "$BOB_TOKEN" "$PORT"; expect "another user's token -> refused" 1 $?
login "jürgen@$D" "$JUERGEN_TOKEN" "$PORT"; expect "non-ASCII user by token -> session" 0 $?
expect "token logins never reached the backend" "$auth_after" "$(backend_count auth)"

fault down
read -r rc ms < <(timed_login "alice@$D" alice-pw "$PORT")
expect "backend down: password login refused" 1 "$rc" "${ms} ms"
[ "$ms" -lt $(( (TIMEOUT + 5) * 1000 )) ] && ok "backend down: refusal within the timeout (${ms} ms)" \
    || not_ok "backend down: refusal took ${ms} ms"
login "alice@$D" "$ALICE_TOKEN" "$PORT"; expect "backend down: token login still works" 0 $?

fault delay 10000
read -r rc ms < <(timed_login "bob@$D" bob-pw "$PORT" --timeout 20)
expect "slow backend: password login refused" 1 "$rc" "${ms} ms"
[ "$ms" -lt $(( (TIMEOUT + 5) * 1000 )) ] && ok "slow backend: no hang past the ${TIMEOUT} s timeout (${ms} ms)" \
    || not_ok "slow backend: login took ${ms} ms"

fault http500
login "alice@$D" alice-pw "$PORT"; expect "backend HTTP 500 -> refused" 1 $?
fault nonjson
login "alice@$D" alice-pw "$PORT"; expect "backend non-JSON -> refused" 1 $?
fault ok
login "alice@$D" alice-pw "$PORT"; expect "backend back: password login works again" 0 $?

LOG="$W/log/cloudauth.log"
[ -s "$LOG" ] && ok "cloudauth wrote its log" || not_ok "no cloudauth log at $LOG"
grep -q "auth alice@$D: yes via token" "$LOG" && ok "log has token decisions" || not_ok "no token decision in the log"
grep -q "backend trouble" "$LOG" && ok "log names backend trouble" || not_ok "no backend trouble line in the log"
leaked=""
for s in alice-pw bob-pw 'a:b:c' 'pässwörd-ü' wrong-pw "$SECRET" "$ALICE_TOKEN" "$BOB_TOKEN" "$EXPIRED" "$JUERGEN_TOKEN"; do
    grep -qF -- "$s" "$LOG" && leaked="$leaked $s"
done
[ -z "$leaked" ] && ok "no password, token or secret in the log" || not_ok "log leaks:$leaked"
"$SANDBOX" status "$W/ejabberd" >/dev/null 2>&1; expect "ejabberd still running" 0 $?
finish
