#!/bin/bash
# End to end: ONE long-lived `cloudauth --listen ejabberd=SOCK` serves a real
# ejabberd 23.01 whose extauth_program is the tiny relay `cloudauth-connect
# SOCK` (pool of 2, auth cache off); slixmpp logs in by password and by token.
# Then the socket server is taken away and brought back while ejabberd and
# its relays keep running: restarted with connections open, idle-closed,
# stopped (logins refused quickly), started again (logins work).
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
D=localhost
QUICK_MS=5000     # bound for a refusal with cloudauth down (ejabberd's own limit: 30 s)
W=$(workdir socket)
SOCK=$W/ejabberd.sock
LOG=$W/log/cloudauth.log
start_backend "$W" "$SECRET" "$STANDARD_USERS" || die_setup "test backend did not start"
write_secret "$W/secret" "$SECRET"
mkdir -p "$W/log"

# --- the one cloudauth ----------------------------------------------------------
CA_PID=""
CA_STARTS=0
stop_cloudauth() {
    [ -n "$CA_PID" ] || return 0
    kill -TERM "$CA_PID" 2>/dev/null
    wait "$CA_PID" 2>/dev/null
    CA_PID=""
}
on_exit stop_cloudauth
sock_accepts() {
    /usr/bin/python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(1)
s.connect(sys.argv[1])' "$SOCK" 2>/dev/null
}
# start_cloudauth [EXTRA ARGS] -> background; returns once the socket accepts
start_cloudauth() {
    local i
    "$BIN_DIR/cloudauth" -c /dev/null -u "$BACKEND_URL" --secret-file "$W/secret" \
        -l "$W/log" --timeout 3 --listen "ejabberd=$SOCK" "$@" 2>> "$W/cloudauth.stderr" &
    CA_PID=$!
    CA_STARTS=$((CA_STARTS + 1))
    for ((i = 0; i < 100; i++)); do
        kill -0 "$CA_PID" 2>/dev/null || return 1
        sock_accepts && return 0
        sleep 0.1
    done
    return 1
}
start_cloudauth || die_setup "cloudauth --listen did not start"
expect "socket is mode 0660" 660 "$(stat -c %a "$SOCK")"

# --- ejabberd with the relay ----------------------------------------------------
PORT=$(free_port)
RELAY="$BIN_DIR/cloudauth-connect $SOCK"
cat > "$W/extra.yml" <<YML
auth_method: external
extauth_program: "$RELAY"
extauth_pool_size: 2
auth_use_cache: false
YML
start_ejabberd "$W/ejabberd" "$PORT" "$W/extra.yml" || die_setup "ejabberd did not start"
EJ_PID=$(cat "$W/ejabberd/ejabberd.pid" 2>/dev/null)
ERL_OUT=$W/ejabberd/log/erl.out

relay_pids() { pgrep -d ' ' -f -- "^$RELAY\$"; }
relays=""
for ((i = 0; i < 50; i++)); do
    relays=$(relay_pids)
    [ "$(wc -w <<< "$relays")" -ge 2 ] && break
    sleep 0.1
done
expect "ejabberd runs a pool of 2 relays" 2 "$(wc -w <<< "$relays")" "pids $relays"
trouble_lines() { grep -c "^cloudauth-connect: " "$ERL_OUT" 2>/dev/null; }

# --- logins through the relay ------------------------------------------------------
login_cases "$PORT" "$D" "$SECRET"

# Every decision is in the one cloudauth's log, one line per login. The line
# is written just after the reply: give the last one a moment.
decisions() { grep -cE " (auth|isuser) [^ ]+: (yes|no|backend trouble) via " "$LOG"; }
for ((i = 0; i < 20; i++)); do [ "$(decisions)" -ge 9 ] && break; sleep 0.1; done
expect "all 9 logins decided by the one cloudauth" 9 "$(decisions)"
grep -q "auth alice@$D: yes via backend" "$LOG" && grep -q "auth alice@$D: no via backend" "$LOG" \
    && grep -q "auth mallory@$D: no via backend" "$LOG" && grep -q "auth alice@$D: yes via token" "$LOG" \
    && grep -q "auth jürgen@$D: yes via backend" "$LOG" && grep -q "auth jürgen@$D: yes via token" "$LOG" \
    && ok "log names each decision" || not_ok "decisions missing from the log"
expect "no trouble reported by the relays" 0 "$(trouble_lines)"
for p in $relays; do
    echo "# relay $p: $(grep -E '^VmHWM' "/proc/$p/status" | tr -s ' \t' ' ')"
done
hwm=$(for p in $relays; do awk '/^VmHWM/ {print $2}' "/proc/$p/status"; done | sort -n | tail -n1)
[ -n "$hwm" ] && [ "$hwm" -lt 8192 ] && ok "relays are small (peak RSS ${hwm} kB)" \
    || not_ok "relay peak RSS ${hwm:-?} kB"

# --- cloudauth restarted while the relays hold connections to the old one ----------
# The relays' kept connections are dead now; each must retry once on a fresh one.
# The new instance closes connections idle for 2 s.
stop_cloudauth
start_cloudauth --idle-timeout 2s || die_setup "cloudauth did not start again"
fails=0 slow=0
for n in 1 2 3 4; do   # four logins: both pool members are asked
    read -r rc ms < <(timed_login "bob@$D" bob-pw "$PORT")
    [ "$rc" = 0 ] || fails=$((fails + 1))
    [ "$ms" -lt 3000 ] || slow=$((slow + 1))
done
expect "cloudauth restarted: logins work at once, ejabberd untouched" "0 0" "$fails $slow"

sleep 3   # longer than --idle-timeout: the server closes both relays' connections
fails=0 slow=0
for n in 1 2 3 4; do
    read -r rc ms < <(timed_login "bob@$D" bob-pw "$PORT")
    [ "$rc" = 0 ] || fails=$((fails + 1))
    [ "$ms" -lt 3000 ] || slow=$((slow + 1))
done
expect "connections closed while idle: logins work at once" "0 0" "$fails $slow"
expect "no trouble reported across restart and idle close" 0 "$(trouble_lines)"

# --- cloudauth stopped: refused quickly; started: works again ------------------------
stop_cloudauth
read -r rc ms < <(timed_login "alice@$D" alice-pw "$PORT")
expect "cloudauth down: password login refused" 1 "$rc" "${ms} ms"
[ "$ms" -lt "$QUICK_MS" ] && ok "cloudauth down: refused quickly (${ms} ms < ${QUICK_MS} ms)" \
    || not_ok "cloudauth down: refusal took ${ms} ms"
read -r rc ms < <(timed_login "bob@$D" bob-pw "$PORT")
expect "cloudauth down: second refusal (other pool member)" 1 "$rc" "${ms} ms"
[ "$ms" -lt "$QUICK_MS" ] || not_ok "cloudauth down: second refusal took ${ms} ms"
login "alice@$D" "$ALICE_TOKEN" "$PORT"
expect "cloudauth down: token login refused too (only cloudauth checks tokens)" 1 $?
grep -q "^cloudauth-connect: $SOCK: cannot connect: .*; answering tempfail" "$ERL_OUT" \
    && ok "relay reported the outage on stderr (ejabberd's erl.out)" \
    || not_ok "no outage line from the relay in $ERL_OUT"

start_cloudauth || die_setup "cloudauth did not start a third time"
login "alice@$D" alice-pw "$PORT"; expect "cloudauth back: password login works again" 0 $?
login "jürgen@$D" 'pässwörd-ü' "$PORT"; expect "cloudauth back: second pool member works" 0 $?
login "alice@$D" "$ALICE_TOKEN" "$PORT"; expect "cloudauth back: token login works" 0 $?
grep -q "^cloudauth-connect: $SOCK: relaying again" "$ERL_OUT" \
    && ok "relay reported the recovery" || not_ok "no recovery line from the relay"

# --- the same ejabberd and relays all along; nothing secret anywhere -----------------
"$SANDBOX" status "$W/ejabberd" >/dev/null 2>&1; expect "ejabberd still running" 0 $?
expect "ejabberd never restarted" "$EJ_PID" "$(cat "$W/ejabberd/ejabberd.pid" 2>/dev/null)"
expect "relays never restarted" "$relays" "$(relay_pids)"
expect "three cloudauth runs, one log" 3 "$(grep -c 'listening for Ejabberd on' "$LOG")"
leaked=""
for f in "$LOG" "$W/cloudauth.stderr" "$W/ejabberd/log/ejabberd.log" "$ERL_OUT"; do
    for s in alice-pw bob-pw wrong-pw 'pässwörd-ü' "$SECRET" "$ALICE_TOKEN" "$JUERGEN_TOKEN"; do
        grep -qF -- "$s" "$f" 2>/dev/null && leaked="$leaked $(basename "$f"):$s"
    done
done
[ -z "$leaked" ] && ok "no password, token or secret in any log" || not_ok "logs leak:$leaked"
finish
