#!/bin/bash
# End to end: a real ejabberd 23.01 with auth_method: external runs
# `cloudauth -t ejabberd` (pool of 2) against the JSXC test backend; slixmpp
# logs in by password and by token.
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
TIMEOUT=3
W=$(workdir extauth)
start_backend "$W" "$SECRET" "$STANDARD_USERS" || die_setup "test backend did not start"

write_secret "$W/secret" "$SECRET"
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
login_cases "$PORT" "$D" "$SECRET"

outage_cases "$PORT" "$D" $(( (TIMEOUT + 5) * 1000 ))

slow_cloud_case "$PORT" "$D" $(( (TIMEOUT + 5) * 1000 ))

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
for s in alice-pw bob-pw 'a: b c :d' 'pässwörd-ü' wrong-pw "$SECRET" "$ALICE_TOKEN" "$BOB_TOKEN" "$EXPIRED" "$JUERGEN_TOKEN"; do
    grep -qF -- "$s" "$LOG" && leaked="$leaked $s"
done
[ -z "$leaked" ] && ok "no password, token or secret in the log" || not_ok "log leaks:$leaked"
"$SANDBOX" status "$W/ejabberd" >/dev/null 2>&1; expect "ejabberd still running" 0 $?
finish
