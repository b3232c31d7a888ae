#!/bin/bash
# End to end: ONE cloudauth in socket mode serves a saslauthd unix socket and a
# Postfix tcp_table on loopback, against the JSXC test backend. The real
# clients talk to it: testsaslauthd (sasl2-bin) and `postmap -q` (postfix,
# with a throwaway config directory; no running postfix, /etc/postfix untouched).
# Then garbage on both sockets, and log hygiene.
set -u
. "$(dirname "$0")/../lib/common.sh"

PY=/usr/bin/python3
for tool in testsaslauthd postmap; do
    command -v "$tool" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin
    command -v "$tool" >/dev/null 2>&1 || die_setup "$tool not installed (sasl2-bin, postfix)"
done

SECRET="e2e-secret-$$-$RANDOM"
TIMEOUT=2
D=localhost
W=$(workdir saslpf)
start_backend "$W" "$SECRET" '{"users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice"},
  {"uid": "bob", "password": "bob-pw", "name": "Bob"},
  {"uid": "carol", "password": "a: b c :d "},
  {"uid": "100%pure", "password": "pure-pw"},
  {"uid": "dave@example.org", "password": "dave-pw"},
  {"uid": "jürgen", "password": "pässwörd-ü"}
]}' || die_setup "test backend did not start"

write_secret "$W/secret" "$SECRET"
mkdir -p "$W/log" "$W/postfix"
: > "$W/postfix/main.cf"   # postmap only needs a readable main.cf
MUX="$W/mux"
PF_PORT=$(free_port)
# One domain with settings of its own: bücher.example is example.org to the
# backend (dave exists only as dave@example.org), so a login there works only
# when the request reaches these settings.
printf 'bücher.example %s %s example.org\n' "$SECRET" "$BACKEND_URL" > "$W/domains"
chmod 600 "$W/domains"
"$BIN_DIR/cloudauth" -c /dev/null -u "$BACKEND_URL" --secret-file "$W/secret" -l "$W/log" \
    -p "$W/domains" \
    --timeout "$TIMEOUT" --listen "saslauthd=$MUX" --listen "postfix=127.0.0.1:$PF_PORT" \
    --throttle-failures 3 \
    > "$W/cloudauth.out" 2>&1 &
CA_PID=$!
on_exit "kill $CA_PID"

# Python helper: raw protocol clients for readiness, raw replies and garbage.
cat > "$W/raw.py" <<'PY'
import os, socket, sys, time

def connect(where):
    if where.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(where)
    else:
        s = socket.create_connection(("127.0.0.1", int(where)))
    s.settimeout(8)
    return s

def field(b):
    return len(b).to_bytes(2, "big") + b

def sasl_req(login, pw, service=b"imap", realm=b"localhost"):
    return field(login) + field(pw) + field(service) + field(realm)

def read_sasl_reply(s):
    head = b""
    while len(head) < 2:
        c = s.recv(2 - len(head))
        if not c:
            return None
        head += c
    n = int.from_bytes(head, "big")
    body = b""
    while len(body) < n:
        c = s.recv(n - len(body))
        if not c:
            return None
        body += c
    return body.decode("utf-8", "replace")

def read_line(f):
    line = f.readline()
    if not line.endswith(b"\n"):
        return None
    return line[:-1].decode("utf-8", "replace")

def drain(s):
    """Reads until EOF (or timeout); returns the bytes."""
    out = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            out += c
    except socket.timeout:
        out += b"<timeout>"
    return out

def ready(where):
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            connect(where).close()
            return 0
        except OSError:
            time.sleep(0.05)
    return 1

def sasl(where, login, pw, service, realm):
    s = connect(where)
    s.sendall(sasl_req(login.encode(), pw.encode(), service.encode(), realm.encode()))
    print(read_sasl_reply(s))

def pf(port, key):
    s = connect(port)
    s.sendall(b"get " + key.encode() + b"\n")
    print(read_line(s.makefile("rb")))

def check(name, want_prefix, got):
    good = got is not None and got.startswith(want_prefix)
    print(("ok" if good else "bad"), name, repr(got))
    return good

def garbage_sasl(mux):
    good = True
    rnd = os.urandom(4096)
    # 1. random bytes, then half-close: whatever comes back, the peer must end the session
    s = connect(mux); s.sendall(rnd); s.shutdown(socket.SHUT_WR)
    out = drain(s); s.close()
    good &= check("sasl random bytes: session ends", "", "" if not out.endswith(b"<timeout>") else None)
    # 2. random bytes, then slam the connection shut without reading
    s = connect(mux); s.sendall(rnd[:1000]); s.close()
    # 3. oversized field (> 1024 bytes) then a good request on the same connection
    s = connect(mux)
    s.sendall(sasl_req(b"alice", b"x" * 5000) + sasl_req(b"alice", b"alice-pw"))
    good &= check("sasl oversized field -> NO", "NO", read_sasl_reply(s))
    good &= check("sasl good request after oversized field -> OK", "OK", read_sasl_reply(s))
    s.close()
    # 4. a 65535-byte field announced, only part sent, then EOF
    s = connect(mux); s.sendall(b"\xff\xff" + b"y" * 300); s.shutdown(socket.SHUT_WR)
    good &= check("sasl field cut short at EOF -> NO", "NO", read_sasl_reply(s))
    s.close()
    # 5. truncated request: two of four fields, then EOF
    s = connect(mux); s.sendall(field(b"alice") + field(b"alice-pw")); s.shutdown(socket.SHUT_WR)
    good &= check("sasl truncated request -> NO", "NO", read_sasl_reply(s))
    good &= check("sasl truncated request: then EOF", "", "" if drain(s) == b"" else None)
    s.close()
    # 6. invalid UTF-8 in login, password and realm; a NUL byte; then a good request
    s = connect(mux)
    s.sendall(sasl_req(b"al\xffice", b"alice-pw") + sasl_req(b"alice", b"alice-pw\xc3")
              + sasl_req(b"alice", b"alice-pw", realm=b"local\xfe") + sasl_req(b"alice", b"alice-pw\x00")
              + sasl_req(b"", b"", b"", b"") + sasl_req(b"alice", b"alice-pw"))
    for what in ["login", "password", "realm"]:
        good &= check("sasl invalid UTF-8 in %s -> NO" % what, "NO", read_sasl_reply(s))
    good &= check("sasl NUL in password -> NO", "NO", read_sasl_reply(s))
    good &= check("sasl all fields empty -> NO", "NO", read_sasl_reply(s))
    good &= check("sasl good request after bad bytes -> OK", "OK", read_sasl_reply(s))
    s.close()
    return good

def garbage_postfix(port):
    good = True
    rnd = os.urandom(4096)
    s = connect(port); s.sendall(rnd + b"\n"); s.shutdown(socket.SHUT_WR)
    out = drain(s); s.close()
    good &= check("postfix random bytes: session ends", "", "" if not out.endswith(b"<timeout>") else None)
    s = connect(port); s.sendall(rnd[:1000]); s.close()
    # an oversized line (no newline for 100 KB), then good requests
    s = connect(port)
    s.sendall(b"get " + b"a" * 100000 + b"@localhost\nget alice@localhost\n")
    f = s.makefile("rb")
    good &= check("postfix oversized line -> 500", "500", read_line(f))
    good &= check("postfix good request after oversized line -> 200", "200", read_line(f))
    s.close()
    s = connect(port)
    s.sendall(b"get al\xffice@localhost\nget a%ff@localhost\nget a%4@localhost\nget a%00b@localhost\n"
              b"get alice\nput alice@localhost x\n\n\r\nget alice@localhost\r\n")
    f = s.makefile("rb")
    for what in ["raw invalid UTF-8", "%ff", "bad %-escape", "%00", "no domain", "put", "empty line", "CRLF empty line"]:
        good &= check("postfix %s -> 500" % what, "500", read_line(f))
    good &= check("postfix good request (CRLF) after bad lines -> 200", "200", read_line(f))
    s.close()
    # truncated: a last line without newline is still answered, then EOF
    s = connect(port); s.sendall(b"get alic"); s.shutdown(socket.SHUT_WR)
    good &= check("postfix truncated line -> 500", "500", read_line(s.makefile("rb")))
    s.close()
    return good

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "ready":
        sys.exit(ready(sys.argv[2]))
    if cmd == "sasl":
        sasl(*sys.argv[2:7])
    if cmd == "pf":
        pf(sys.argv[2], sys.argv[3])
    if cmd == "garbage-sasl":
        sys.exit(0 if garbage_sasl(sys.argv[2]) else 1)
    if cmd == "garbage-postfix":
        sys.exit(0 if garbage_postfix(sys.argv[2]) else 1)
PY

$PY "$W/raw.py" ready "$MUX" && $PY "$W/raw.py" ready "$PF_PORT" || {
    sed 's/^/#   /' "$W/cloudauth.out"
    die_setup "cloudauth did not listen on $MUX and 127.0.0.1:$PF_PORT"
}
ok "cloudauth listens on a unix saslauthd socket and a loopback tcp_table"
mode=$(stat -c %a "$MUX")
expect "saslauthd socket mode" 660 "$mode"

ALICE_TOKEN=$(mint alice $D "$SECRET" --ttl 1h)
JUERGEN_TOKEN=$(mint jürgen $D "$SECRET" --ttl 1h)
EXPIRED=$(mint alice $D "$SECRET" --expiry $(( $(date +%s) - 60 )))

# --- saslauthd via testsaslauthd (exit 0 + `0: OK "Success."`, 255 + `0: NO ...`)
sasl() { # sasl EXPECTED_RC NAME testsaslauthd-args...
    local want=$1 name=$2 out rc
    shift 2
    out=$(testsaslauthd -f "$MUX" "$@" 2>&1)
    rc=$?
    expect "testsaslauthd: $name" "$want" "$rc" "$out"
}
auth_before=$(backend_count auth)
sasl 0 "right password -> OK" -u alice -r $D -p alice-pw
sasl 255 "wrong password -> NO" -u alice -r $D -p wrong-pw
sasl 255 "unknown user -> NO" -u mallory -r $D -p alice-pw
sasl 255 "other user's password -> NO" -u bob -r $D -p alice-pw
sasl 0 "password with ':' and spaces -> OK" -u carol -r $D -p 'a: b c :d ' -s smtp
sasl 255 "password trimmed of its trailing space -> NO" -u carol -r $D -p 'a: b c :d'
sasl 0 "non-ASCII user and password -> OK" -u jürgen -r $D -p 'pässwörd-ü'
sasl 0 "'%' in the user -> OK" -u '100%pure' -r $D -p pure-pw
sasl 0 "login user@domain, empty realm -> OK" -u "bob@$D" -p bob-pw -s xmpp
sasl 0 "realm is the domain (user only in example.org) -> OK" -u dave -r example.org -p dave-pw
sasl 255 "realm is the domain (dave not in $D) -> NO" -u dave -r $D -p dave-pw
sasl 0 "login user@domain wins over the realm -> OK" -u dave@example.org -r $D -p dave-pw
sasl 255 "no domain at all -> NO" -u bob -p bob-pw
sasl 255 "empty password -> NO" -u alice -r $D -p ''
expect "password checks reached the backend" 12 $(( $(backend_count auth) - auth_before ))
auth_before=$(backend_count auth)
sasl 0 "token -> OK" -u alice -r $D -p "$ALICE_TOKEN" -s smtp
sasl 0 "non-ASCII user's token -> OK" -u jürgen -r $D -p "$JUERGEN_TOKEN"
expect "valid tokens never reached the backend" 0 $(( $(backend_count auth) - auth_before ))
sasl 255 "another user's token -> NO" -u bob -r $D -p "$ALICE_TOKEN"
sasl 255 "expired token -> NO" -u alice -r $D -p "$EXPIRED"

# --- issue 24: every spelling of a domain reaches its per-domain settings
# (full-width letters, 。 and ． as dots, punycode; they fell through to the
# global settings, where dave@bücher.example is nobody)
for spelling in "bücher.example" "ｂüｃｈｅｒ．ｅｘａｍｐｌｅ" "bücher。example" "xn--bcher-kva.example" \
        "BÜCHER.EXAMPLE." "ＢÜＣＨＥＲ．example。"; do
    sasl 0 "per-domain settings at $spelling -> OK" -u "dave@$spelling" -r $D -p dave-pw
done
sasl 0 "per-domain settings: realm ｂüｃｈｅｒ．example -> OK" -u dave -r "ｂüｃｈｅｒ．example" -p dave-pw
"$BIN_DIR/cloudauth" -c /dev/null -u "$BACKEND_URL" --secret-file "$W/secret" -l "$W/log-oneshot" \
    -p "$W/domains" -A dave "xn--bcher-kva.example" dave-pw > "$W/oneshot.out" 2>&1
expect "one-shot check at the punycode spelling -> yes" 0 $?
"$BIN_DIR/cloudauth" -c /dev/null -u "$BACKEND_URL" --secret-file "$W/secret" -l "$W/log-oneshot" \
    -p "$W/domains" -A dave "ｂüｃｈｅｒ．example" dave-pw > "$W/oneshot.out" 2>&1
expect "one-shot check at the full-width spelling -> yes" 0 $?
sasl 255 "a name UTS 46 refuses -> NO" -u "dave@xn--a.example" -r $D -p dave-pw

# --- guessing bob's password (--throttle-failures 3; his right password above
# forgot his earlier refusal)
auth_before=$(backend_count auth)
for g in 1 2 3; do sasl 255 "guess $g for bob -> NO" -u bob -r $D -p "guess-$g"; done
expect "guesses before the limit reached the backend" 3 $(( $(backend_count auth) - auth_before ))
auth_before=$(backend_count auth)
sasl 255 "throttled: guess 4 for bob -> NO" -u bob -r $D -p guess-4
raw=$($PY "$W/raw.py" sasl "$MUX" bob guess-5 imap $D)
case $raw in
    "NO temporary failure"*) ok "throttled: a paused check is a temporary failure, not a wrong password ($raw)" ;;
    *) not_ok "throttled: raw saslauthd reply: $raw" ;;
esac
expect "throttled guesses never reached the backend" 0 $(( $(backend_count auth) - auth_before ))
# issue 24: an attacker's guess per pause kept the user out; the password
# bob last logged in with (above) is never paused, and his login does not
# give the attacker a fresh set of guesses.
sasl 0 "throttled: bob's last successful password is not paused -> OK" -u bob -r $D -p bob-pw
sasl 255 "throttled: bob's login did not reset the count: guess 6 -> NO" -u bob -r $D -p guess-6
expect "throttled: only bob's own password reached the backend" 1 $(( $(backend_count auth) - auth_before ))
BOB_TOKEN=$(mint bob $D "$SECRET" --ttl 1h)
sasl 0 "throttled: bob's token still -> OK" -u bob -r $D -p "$BOB_TOKEN"
sasl 0 "throttled: alice is not paused -> OK" -u alice -r $D -p alice-pw
sleep 2.1
sasl 0 "after the pause bob's right password -> OK" -u bob -r $D -p bob-pw

# --- issue 24: invented domains do not multiply the guessing budget. Global
# settings serve every domain and the login's user@domain wins over the
# realm, so any SMTP/IMAP client can choose the domain; the backend checks
# the bare user too (JSXC tries user@domain, then user).
auth_before=$(backend_count auth)
for i in 1 2 3 4 5 6; do
    sasl 255 "guess $i for 100%pure at x$i.invalid -> NO" -u "100%pure@x$i.invalid" -r $D -p "inv-$i"
done
expect "guesses at invented domains that reached the backend (throttle-failures 3)" 3 \
    $(( $(backend_count auth) - auth_before ))
auth_before=$(backend_count auth)
for i in 1 2 3 4 5 6; do
    sasl 255 "one wrong password for jürgen at y$i.invalid -> NO" -u "jürgen@y$i.invalid" -r $D -p same-wrong
done
expect "one wrong password at invented domains reached the backend (throttle-failures 3)" 3 \
    $(( $(backend_count auth) - auth_before ))
sasl 255 "invented domains paused the user at the real domain too" -u 100%pure -r $D -p inv-7
sasl 0 "but not 100%pure's last successful password -> OK" -u 100%pure -r $D -p pure-pw

# --- Postfix tcp_table via postmap -q
# found: exit 0, value on stdout; not found: exit 1, nothing printed;
# temporary failure (400): exit 1, "postmap: fatal: table tcp:...: query error" on stderr.
pmap() { # pmap KEY -> sets PM_RC PM_OUT PM_ERR
    PM_OUT=$(postmap -c "$W/postfix" -q "$1" "tcp:127.0.0.1:$PF_PORT" 2> "$W/postmap.err")
    PM_RC=$?
    PM_ERR=$(cat "$W/postmap.err")
}
found() { # found NAME KEY
    pmap "$2"
    expect "postmap: $1 -> found" "0 OK " "$PM_RC $PM_OUT $PM_ERR"
}
not_found() { # not_found NAME KEY
    pmap "$2"
    expect "postmap: $1 -> not found" "1  " "$PM_RC $PM_OUT $PM_ERR"
}
found "alice@$D" "alice@$D"
not_found "nobody@$D" "nobody@$D"
found "non-ASCII key jürgen@$D (sent as j%C3%BCrgen)" "jürgen@$D"
found "'%' in the key 100%pure@$D (sent as 100%25pure)" "100%pure@$D"
not_found "space in the key (sent as %20)" "al ice@$D"
not_found "key without a domain" "alice"
found "domain is passed on: dave@example.org" "dave@example.org"
not_found "domain is passed on: dave@$D" "dave@$D"

# --- backend down
fault down || die_setup "cannot switch the backend down"
t0=$(now_ms)
sasl 255 "backend down: password -> NO" -u alice -r $D -p alice-pw
ms=$(( $(now_ms) - t0 ))
[ "$ms" -lt $(( TIMEOUT * 1000 + 2000 )) ] && ok "backend down: saslauthd answer within the timeout (${ms} ms)" \
    || not_ok "backend down: saslauthd answer took ${ms} ms"
raw=$($PY "$W/raw.py" sasl "$MUX" alice alice-pw imap $D)
case $raw in
    "NO temporary failure"*) ok "backend down: raw saslauthd reply says temporary failure ($raw)" ;;
    *) not_ok "backend down: raw saslauthd reply: $raw" ;;
esac
sasl 0 "backend down: token still -> OK" -u alice -r $D -p "$ALICE_TOKEN"
t0=$(now_ms)
pmap "alice@$D"
ms=$(( $(now_ms) - t0 ))
case "$PM_RC|$PM_OUT|$PM_ERR" in
    "1||postmap: fatal: table tcp:127.0.0.1:$PF_PORT: query error"*)
        ok "postmap: backend down -> temporary failure (exit 1, 'query error', ${ms} ms)" ;;
    *) not_ok "postmap: backend down: expected a query error, got rc=$PM_RC out=[$PM_OUT] err=[$PM_ERR]" ;;
esac
raw=$($PY "$W/raw.py" pf "$PF_PORT" "alice@$D")
case $raw in
    "400 "*) ok "backend down: raw tcp_table reply is 400 ($raw)" ;;
    *) not_ok "backend down: raw tcp_table reply: $raw" ;;
esac
# postmap's fatal exit sleeps 1 s by itself
[ "$ms" -lt $(( TIMEOUT * 1000 + 3000 )) ] && ok "backend down: postmap answer within the timeout (${ms} ms)" \
    || not_ok "backend down: postmap answer took ${ms} ms"

fault delay 10000
t0=$(now_ms)
sasl 255 "slow backend: password -> NO" -u bob -r $D -p bob-pw
ms=$(( $(now_ms) - t0 ))
[ "$ms" -lt $(( TIMEOUT * 1000 + 2000 )) ] && ok "slow backend: no hang past the ${TIMEOUT} s timeout (${ms} ms)" \
    || not_ok "slow backend: answer took ${ms} ms"

fault ok
sasl 0 "backend back: password -> OK" -u alice -r $D -p alice-pw
found "backend back: alice@$D" "alice@$D"

# --- garbage on both sockets; the listeners must keep serving
$PY "$W/raw.py" garbage-sasl "$MUX" > "$W/garbage.out" 2>&1
expect "saslauthd socket survives garbage" 0 $? "$(grep -c '^ok' "$W/garbage.out") raw checks"
grep '^bad\|Error' "$W/garbage.out" | sed 's/^/#   /'
$PY "$W/raw.py" garbage-postfix "$PF_PORT" > "$W/garbage.out" 2>&1
expect "tcp_table survives garbage" 0 $? "$(grep -c '^ok' "$W/garbage.out") raw checks"
grep '^bad\|Error' "$W/garbage.out" | sed 's/^/#   /'
sasl 0 "after garbage: right password -> OK" -u alice -r $D -p alice-pw
sasl 255 "after garbage: wrong password -> NO" -u alice -r $D -p wrong-pw
found "after garbage: alice@$D" "alice@$D"
not_found "after garbage: nobody@$D" "nobody@$D"
kill -0 "$CA_PID" 2>/dev/null && ok "cloudauth still running" || not_ok "cloudauth died"

# --- the log (complete once cloudauth has exited: it buffers info lines)
kill "$CA_PID" 2>/dev/null
for _ in $(seq 50); do kill -0 "$CA_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$CA_PID" 2>/dev/null && not_ok "cloudauth ignored SIGTERM" || ok "cloudauth stopped on SIGTERM"
LOG="$W/log/cloudauth.log"
[ -s "$LOG" ] && ok "cloudauth wrote its log" || not_ok "no cloudauth log at $LOG"
grep -q "auth alice@$D: yes via token" "$LOG" && ok "log has token decisions" || not_ok "no token decision in the log"
grep -q "isuser jürgen@$D: yes" "$LOG" && ok "log has non-ASCII isuser decisions" || not_ok "no isuser jürgen decision in the log"
grep -q "backend trouble" "$LOG" && ok "log names backend trouble" || not_ok "no backend trouble line in the log"
grep -q "bad input\|bad request" "$LOG" && ok "log names the bad input" || not_ok "no bad input line in the log"
grep -q "auth bob@$D: cannot tell via throttle" "$LOG" && ok "log names the throttle" || not_ok "no throttle line in the log"
leaked=""
for s in alice-pw bob-pw 'a: b c :d' pure-pw dave-pw 'pässwörd-ü' wrong-pw "$SECRET" "$ALICE_TOKEN" "$JUERGEN_TOKEN" "$EXPIRED"; do
    grep -qF -- "$s" "$LOG" "$W/cloudauth.out" && leaked="$leaked $s"
done
[ -z "$leaked" ] && ok "no password, token or secret in the log" || not_ok "log leaks:$leaked"

finish
