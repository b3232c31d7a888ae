#!/bin/bash
# End to end: a real Prosody 0.12 with authentication = "cloudauth"
# (prosody/mod_auth_cloudauth.lua) talks the generic protocol to a long-running
# `cloudauth --listen generic=UNIX_SOCKET` in front of the JSXC test backend;
# slixmpp logs in by password and by token.
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
CA_TIMEOUT=3     # cloudauth --timeout (backend requests)
MOD_TIMEOUT=2    # cloudauth_timeout (the module waiting for cloudauth)
W=$(workdir prosody)
start_backend "$W" "$SECRET" "$STANDARD_USERS" || die_setup "test backend did not start"

write_secret "$W/secret" "$SECRET"
mkdir -p "$W/log"
SOCK="$W/cloudauth.sock"
CA_PORT=$(free_port) # the same cloudauth also listens on TCP, for a second VirtualHost

# wait_sock: until cloudauth accepts connections on $SOCK and $CA_PORT (or 10 s)
wait_sock() {
    /usr/bin/python3 - "$SOCK" "$CA_PORT" <<'PY'
import socket, sys, time
end = time.monotonic() + 10
for family, addr in ((socket.AF_UNIX, sys.argv[1]), (socket.AF_INET, ("127.0.0.1", int(sys.argv[2])))):
    while True:
        s = socket.socket(family)
        try:
            s.connect(addr)
            break
        except OSError:
            if time.monotonic() > end:
                sys.exit(1)
            time.sleep(0.05)
        finally:
            s.close()
PY
}
CA_PID=
start_cloudauth() {
    "$BIN_DIR/cloudauth" -c /dev/null -u "$BACKEND_URL" --secret-file "$W/secret" -l "$W/log" \
        --timeout "$CA_TIMEOUT" --listen "generic=$SOCK" --listen "generic=127.0.0.1:$CA_PORT" \
        2>> "$W/cloudauth.stderr" &
    CA_PID=$!
    wait_sock
}
stop_cloudauth() {
    kill -CONT "$CA_PID" 2>/dev/null
    kill "$CA_PID" 2>/dev/null && wait "$CA_PID" 2>/dev/null
}
on_exit 'stop_cloudauth'
start_cloudauth || die_setup "cloudauth did not listen on $SOCK"
# A second cloudauth with the default --timeout, for a VirtualHost with the
# module's default cloudauth_timeout.
SOCK_DEFAULTS="$W/defaults.sock"
mkdir -p "$W/log-defaults"
"$BIN_DIR/cloudauth" -c /dev/null -u "$BACKEND_URL" --secret-file "$W/secret" -l "$W/log-defaults" \
    --listen "generic=$SOCK_DEFAULTS" 2>> "$W/cloudauth.stderr" &
CA_DEFAULTS_PID=$!
on_exit "kill $CA_DEFAULTS_PID"
for _ in $(seq 100); do [ -S "$SOCK_DEFAULTS" ] && break; sleep 0.1; done

# Prosody with a throwaway config: everything in $W/prosody, c2s on loopback.
command -v prosody >/dev/null || die_setup "prosody is not installed (Debian package prosody)"
P="$W/prosody"
mkdir -p "$P/data" "$P/certs"
PORT=$(free_port)
{
    prosody_globals "$P" "$PORT" "$ROOT/prosody"
    cat <<LUA

VirtualHost "localhost"
    authentication = "cloudauth"
    cloudauth_socket = "$SOCK"
    cloudauth_timeout = $MOD_TIMEOUT

VirtualHost "defaults.localhost"
    authentication = "cloudauth"
    cloudauth_socket = "$SOCK_DEFAULTS"

VirtualHost "tcp.localhost"
    authentication = "cloudauth"
    cloudauth_host = "127.0.0.1"
    cloudauth_port = $CA_PORT
    cloudauth_timeout = $(( CA_TIMEOUT + 2 ))
LUA
} > "$P/prosody.cfg.lua"
prosody -F --config "$P/prosody.cfg.lua" > "$P/stdout" 2>&1 &
PROSODY_PID=$!
on_exit "kill $PROSODY_PID; wait $PROSODY_PID"
for _ in $(seq 100); do
    (exec 3<> "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$PROSODY_PID" 2>/dev/null || break
    sleep 0.1
done
(exec 3<> "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || {
    echo "# prosody output:"; tail -n 30 "$P/stdout" "$P/prosody.log" 2>/dev/null | sed 's/^/#   /'
    die_setup "prosody did not listen on 127.0.0.1:$PORT"
}

# features_ms: milliseconds until Prosody offers SASL mechanisms on a new stream
features_ms() {
    /usr/bin/python3 - "$PORT" <<'PY'
import socket, sys, time
t0 = time.monotonic()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
data = b""
try:
    while b"</mechanisms>" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except OSError:
    pass
print(int((time.monotonic() - t0) * 1000) if b"</mechanisms>" in data else 99999)
PY
}

D=localhost
login_cases "$PORT" "$D" "$SECRET"

T=tcp.localhost # the VirtualHost reaching cloudauth over TCP
login "alice@$T" alice-pw "$PORT"; expect "TCP: right password -> session" 0 $?
login "alice@$T" wrong-pw "$PORT"; expect "TCP: wrong password -> refused" 1 $?
login "bob@$T" "$(mint bob $T "$SECRET" --ttl 1h)" "$PORT"; expect "TCP: valid token -> session" 0 $?
login "bob@$T" "$BOB_TOKEN" "$PORT"; expect "TCP: token for another domain -> refused" 1 $?

# Concurrent logins spread over the module's connection pool (at most
# cloudauth_connections, default 4); logins one after another reuse an idle
# connection.
conns() { grep -c "Connected (FD [0-9]* ($SOCK" "$P/prosody.log"; } # module connections so far
c0=$(conns)
fault delay 300
declare -A want=([alice]=0 [bob]=0 [carol]=0 [mallory]=1 [jürgen]=1 [bobtoken]=0)
declare -A cred=([alice]=alice-pw [bob]=bob-pw [carol]='a: b c :d ' [mallory]=x [jürgen]=wrong [bobtoken]="$BOB_TOKEN")
pids=()
for k in "${!want[@]}"; do
    ( login "${k%token}@$D" "${cred[$k]}" "$PORT"; echo $? > "$W/par.$k" ) &
    pids+=($!)
done
wait "${pids[@]}"
fault ok
bad=""
for k in "${!want[@]}"; do
    [ "$(cat "$W/par.$k" 2>/dev/null)" = "${want[$k]}" ] || bad="$bad $k=$(cat "$W/par.$k" 2>/dev/null)"
done
[ -z "$bad" ] && ok "6 concurrent logins each got their own answer" || not_ok "concurrent logins wrong:$bad"
c1=$(conns)
[ "$c0" -ge 1 ] && [ $(( c1 - c0 )) -ge 1 ] && [ $(( c1 - c0 )) -le 4 ] \
    && ok "concurrent logins opened more connections, at most the pool's 4 ($c0 before, $c1 after)" \
    || not_ok "concurrent logins: module connections $c0 before, $c1 after (expected 1 to 4 more)"
for u in alice bob alice; do login "$u@$D" "$u-pw" "$PORT" >/dev/null; done
expect "3 logins one after another: no new connection (an idle one is reused)" "$c1" "$(conns)"

# A slow cloud: a token login is not stuck behind password logins waiting on
# it (each waits on its own connection; answers on one come in order).
slow_isolation "$PORT" "$T" "$(mint alice "$T" "$SECRET" --ttl 1h)" 2500 check

outage_cases "$PORT" "$D" $(( (CA_TIMEOUT + 2) * 1000 ))
fault ok

# Issue 24: with both defaults the module (10 s) gave up before cloudauth's
# decision deadline (--timeout 10 s, and 1 s) and dropped its connection;
# its default is above it now, so a slow backend's "cannot tell" comes from
# cloudauth.
mod_default=$(sed -n 's/.*get_option_number("cloudauth_timeout", \([0-9]*\)).*/\1/p' "$ROOT/prosody/mod_auth_cloudauth.lua")
ca_total=$("$BIN_DIR/cloudauth" --help 2>&1 | sed -n 's/.*CONNECT,TOTAL \[default: [0-9]*,\([0-9]*\)\].*/\1/p')
[ -n "$mod_default" ] && [ -n "$ca_total" ] && [ "$mod_default" -gt $(( ca_total + 1 )) ] \
    && ok "defaults: the module's cloudauth_timeout ($mod_default s) is above cloudauth's decision deadline ($ca_total s + 1 s)" \
    || not_ok "defaults: the module's cloudauth_timeout (${mod_default:-?} s) is not above cloudauth's decision deadline (${ca_total:-?} s + 1 s)"
no_answer() { grep -c "No answer from cloudauth at unix:$SOCK_DEFAULTS" "$P/prosody.log"; }
n0=$(no_answer)
fault delay 15000
read -r rc ms < <(timed_login "alice@defaults.localhost" alice-pw "$PORT" --timeout 25)
fault ok
expect "defaults: backend slower than cloudauth's timeout: login refused" 1 "$rc" "${ms} ms"
expect "defaults: the module waited for cloudauth's own answer (${ms} ms)" "$n0" "$(no_answer)"
login "alice@defaults.localhost" alice-pw "$PORT"; expect "defaults: backend back: login works" 0 $?

# cloudauth hangs (SIGSTOP): the module gives up after cloudauth_timeout, and
# Prosody keeps serving other streams meanwhile.
auths() { grep -c "mechanism='PLAIN'" "$P/prosody.log"; } # SASL exchanges Prosody saw
kill -STOP "$CA_PID"
n=$(auths)
timed_login "bob@$D" bob-pw "$PORT" > "$W/hung.out" &
hung_pid=$!
for _ in $(seq 100); do [ "$(auths)" -gt "$n" ] && break; sleep 0.05; done
fms=$(features_ms)
[ "$fms" -lt 1000 ] && ok "cloudauth hung: Prosody still serves new streams (${fms} ms)" \
    || not_ok "cloudauth hung: Prosody stalled (${fms} ms)"
wait "$hung_pid"
read -r rc ms < "$W/hung.out"
expect "cloudauth hung: password login refused" 1 "$rc" "${ms} ms"
[ "$ms" -ge $(( MOD_TIMEOUT * 1000 )) ] && [ "$ms" -lt $(( (MOD_TIMEOUT + 3) * 1000 )) ] && ok "cloudauth hung: refusal after the ${MOD_TIMEOUT} s module timeout (${ms} ms)" \
    || not_ok "cloudauth hung: refusal took ${ms} ms"
kill -CONT "$CA_PID"
login "bob@$D" bob-pw "$PORT"; expect "cloudauth resumed: login works again" 0 $?

# cloudauth gone, then restarted: refused fast, then the module reconnects.
stop_cloudauth
read -r rc ms < <(timed_login "alice@$D" alice-pw "$PORT")
expect "cloudauth down: password login refused" 1 "$rc" "${ms} ms"
[ "$ms" -lt 3000 ] && ok "cloudauth down: refused without waiting (${ms} ms)" || not_ok "cloudauth down: refusal took ${ms} ms"
read -r rc ms < <(timed_login "alice@$T" alice-pw "$PORT")
expect "cloudauth down: TCP password login refused" 1 "$rc" "${ms} ms"
[ "$ms" -lt 3000 ] && ok "cloudauth down: TCP refused without waiting (${ms} ms)" || not_ok "cloudauth down: TCP refusal took ${ms} ms"
start_cloudauth || not_ok "cloudauth did not restart"
login "alice@$D" alice-pw "$PORT"; expect "cloudauth restarted: password login works (reconnect)" 0 $?
login "alice@$D" "$ALICE_TOKEN" "$PORT"; expect "cloudauth restarted: token login works" 0 $?
kill -KILL "$CA_PID"; wait "$CA_PID" 2>/dev/null
start_cloudauth || not_ok "cloudauth did not restart after SIGKILL"
login "bob@$D" bob-pw "$PORT"; expect "cloudauth killed and restarted: next login works at once" 0 $?
login "bob@$T" bob-pw "$PORT"; expect "cloudauth killed and restarted: next TCP login works at once" 0 $?

kill -0 "$PROSODY_PID" 2>/dev/null; expect "prosody still running" 0 $?

PLOG="$P/prosody.log"
CLOG="$W/log/cloudauth.log"
grep -q "No answer from cloudauth" "$PLOG" && ok "prosody log names the module timeout" \
    || not_ok "no module timeout line in the prosody log"
grep -q "Cannot connect to cloudauth" "$PLOG" && ok "prosody log names the connect failure" \
    || not_ok "no connect failure line in the prosody log"
leaked=""
plain_b64() { printf '\0%s\0%s' "$1" "$2" | base64 -w0; } # the SASL PLAIN payload
for s in alice-pw bob-pw 'a: b c :d' 'pässwörd-ü' wrong-pw "$SECRET" "$ALICE_TOKEN" "$BOB_TOKEN" "$EXPIRED" \
    "$(plain_b64 alice alice-pw)" "$(plain_b64 alice "$ALICE_TOKEN")"; do
    for f in "$CLOG" "$PLOG" "$P/stdout"; do
        grep -qF -- "$s" "$f" && leaked="$leaked $(basename "$f"):$s"
    done
done
[ -z "$leaked" ] && ok "no password, token or secret in the cloudauth and prosody logs" || not_ok "logs leak:$leaked"
finish
