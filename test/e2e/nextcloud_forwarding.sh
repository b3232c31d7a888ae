#!/bin/bash
# End to end: the client's address passed on to Nextcloud (issue 19, item 2)
# through a real Prosody with mod_auth_cloudauth, a
# socket-mode cloudauth with forward-client-address on, and the test backend
# as Nextcloud 34. XMPP clients connect from different loopback addresses
# (the client binds its source address; Prosody's session.ip is that
# address), and the module sends it with `authfrom:`:
#   trusted   Nextcloud lists this server in trusted_proxies
#             (--trusted-proxy 127.0.0.1): a client guessing from 127.0.0.3
#             (12 wrong names and passwords) gets its failures recorded for
#             127.0.0.3, none for 127.0.0.1, and the users logging in from
#             127.0.0.4 meanwhile all get in; cloudauth logs that Nextcloud
#             honours the address
#   ignored   Nextcloud without trusted_proxies: the failures are recorded
#             for 127.0.0.1, the server's failure budget keeps them at most
#             8 (never blocked), one warning names the fix, doctor says so
#   at start  socket and stdio mode read Nextcloud's capabilities at start,
#             before any login (an allow-listed address is logged at once)
# The failures recorded per address are printed in the lines.
#
#   bash test/e2e/nextcloud_forwarding.sh                 Prosody 0.12 of the host (Debian 12)
#   bash test/e2e/nextcloud_forwarding.sh --root trixie   Prosody 13 instead, in a cached Debian root
#                                                         (test/lib/debian-root.sh; needs root)
set -u
. "$(dirname "$0")/../lib/common.sh"
. "$E2E_LIB/prosody-root.sh"

case ${1:-} in
    "") ROOT_NAME= ;;
    --root) ROOT_NAME=${2:?--root NAME} ;;
    *) die_setup "usage: $0 [--root NAME]" ;;
esac
command -v prosody >/dev/null || die_setup "prosody is not installed (Debian package prosody)"
SECRET="e2e-secret-$$-$RANDOM"
W=$(workdir nextcloud_forwarding)
D=fwd.localhost
USERS='{"users": [
  {"uid": "alice", "password": "alice-pw", "groups": ["staff"]},
  {"uid": "bob", "password": "bob-pw", "groups": ["staff"]},
  {"uid": "carol", "password": "carol-pw", "groups": ["staff"]},
  {"uid": "dave", "password": "dave-pw", "groups": ["staff"]},
  {"uid": "svc", "password": "svc-pw", "subadmin": ["staff"]}
]}'

# recorded ADDR: failed logins Nextcloud holds for ADDR; blocked ADDR: yes/no
recorded() {
    curl -sf "$BACKEND_CONTROL/throttle" | /usr/bin/python3 -c \
        "import json,sys; print(json.load(sys.stdin)['failures'].get('$1', 0))"
}
blocked() {
    curl -sf "$BACKEND_CONTROL/throttle" | /usr/bin/python3 -c \
        "import json,sys; print('yes' if '$1' in json.load(sys.stdin)['blocked'] else 'no')"
}

# logins SOURCE USER:PASSWORD...: one XMPP client connection per login from
# SOURCE (bound as the source address), SASL PLAIN; prints login-ok or
# login-failed CONDITION per login (slixmpp cannot bind a source address).
logins() {
    /usr/bin/python3 - "$1" "$PORT" "$D" "${@:2}" <<'PY'
import base64, re, socket, sys
src, port, domain = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for pair in sys.argv[4:]:
    user, password = pair.split(":", 1)
    s = socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(src, 0))
    s.sendall(("<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
               "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>" % domain).encode())
    buf = b""
    while b"</stream:features>" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    plain = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    s.sendall(("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" % plain).encode())
    buf = b""
    while not re.search(rb"<success|</failure>|<failure[^>]*/>", buf):
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    if b"<success" in buf:
        print("login-ok")
    else:
        m = re.search(rb"<failure[^>]*>\s*<([a-z-]+)", buf)
        print("login-failed %s" % (m.group(1).decode() if m else "-"))
    s.close()
PY
}

# start NAME [BACKEND_ARGS...]: a fresh Nextcloud 34, cloudauth (TCP on
# loopback: a Prosody in a root reaches it too) and Prosody (the host's, or
# $ROOT_NAME's in an unpacked root, with R set); sets PORT, LOG, dir
start() {
    local name=$1 ca_port
    shift
    dir="$W/$name${ROOT_NAME:+-$ROOT_NAME}"
    mkdir -p "$dir/log"
    stop_all
    start_backend "$dir" "$SECRET" "$USERS" --nextcloud-version 34 "$@" || die_setup "test backend did not start"
    write_secret "$dir/service-password" svc-pw
    ca_port=$(free_port)
    "$BIN_DIR/cloudauth" -c /dev/null --backend nextcloud --cache-storage memory -u "$BACKEND_ORIGIN" \
        --service-user svc --service-password-file "$dir/service-password" -l "$dir/log" \
        --forward-client-address --timeout 5 --listen "generic=127.0.0.1:$ca_port" 2>> "$dir/cloudauth.stderr" &
    CA_PID=$!
    wait_until 10 port_listens "$ca_port" \
        || die_setup "cloudauth did not listen on 127.0.0.1:$ca_port"
    LOG="$dir/log/cloudauth.log"
    PORT=$(free_port)
    prosody_config() { # prosody_config DIR MODULE_DIR
        prosody_globals "$1" "$PORT" "$2"
        prosody_vhost "$D" "$ca_port"
    }
    prosody_prepare "$dir"
    prosody_launch "$dir"
    prosody_listening "$PORT" "$dir"
}
stop_all() {
    [ -n "${PROSODY_PID:-}" ] && { kill "$PROSODY_PID"; wait "$PROSODY_PID"; } 2>/dev/null
    [ -n "${CA_PID:-}" ] && kill "$CA_PID" 2>/dev/null
    [ -n "${BACKEND_PID:-}" ] && kill "$BACKEND_PID" 2>/dev/null
    PROSODY_PID= CA_PID= BACKEND_PID=
}
on_exit 'stop_all'
doctor() {
    "$BIN_DIR/cloudauth" -c /dev/null doctor --backend nextcloud -u "$BACKEND_ORIGIN" --service-user svc \
        --service-password-file "$dir/service-password" --forward-client-address 2>&1
}
R=
[ -z "$ROOT_NAME" ] || prosody_root "$ROOT_NAME" "$W"
echo "# Prosody $(prosody_version)${ROOT_NAME:+ in root $ROOT_NAME}"
GUESSES=(nobody1:x nobody2:x nobody3:x nobody4:x nobody5:x nobody6:x
         alice:wrong1 alice:wrong2 alice:wrong3 bob:wrong1 bob:wrong2 bob:wrong3)

# --- trusted: Nextcloud counts the forwarded address --------------------------
start trusted --trusted-proxy 127.0.0.1
expect "trusted: alice logs in from 127.0.0.4" "login-ok" "$(logins 127.0.0.4 alice:alice-pw)"
logins 127.0.0.3 "${GUESSES[@]}" > "$dir/guesses.out"
n_ok=$(grep -c '^login-ok' "$dir/guesses.out")
[ "$n_ok" = 0 ] && ok "trusted: none of the 12 guesses from 127.0.0.3 logged in ($(sort "$dir/guesses.out" | uniq -c | tr -s ' ' | paste -sd,))" \
    || not_ok "trusted: a guess logged in: $(paste -sd'|' "$dir/guesses.out")"
guesser=$(recorded 127.0.0.3) server=$(recorded 127.0.0.1)
[ "$guesser" -ge 1 ] && [ "$guesser" -le 10 ] && [ "$server" = 0 ] \
    && ok "trusted: the guesses' failures are recorded for 127.0.0.3 ($guesser), none for 127.0.0.1 ($server)" \
    || not_ok "trusted: failures recorded for 127.0.0.3: $guesser, for 127.0.0.1: $server"
expect "trusted: Nextcloud never blocked the server's address" "no" "$(blocked 127.0.0.1)"
expect "trusted: the guesser's own address is not blocked either (its budget stops below the limit)" \
    "no" "$(blocked 127.0.0.3)"
expect "trusted: other users logging in from 127.0.0.4 meanwhile all get in (bob, carol, dave, alice)" \
    "login-ok login-ok login-ok login-ok" \
    "$(logins 127.0.0.4 bob:bob-pw carol:carol-pw dave:dave-pw alice:alice-pw | paste -sd' ')"
expect "trusted: after them, still nothing recorded for 127.0.0.1" "0" "$(recorded 127.0.0.1)"
[ "$(count "$LOG" "counts failed logins for the client address")" = 1 ] \
    && ok "trusted: cloudauth logged once that Nextcloud honours the forwarded address" \
    || not_ok "trusted: no (or more than one) 'counts failed logins for the client address' line in $LOG"
[ "$(count "$LOG" "ignores X-Forwarded-For")" = 0 ] \
    && ok "trusted: no 'ignores X-Forwarded-For' warning" || not_ok "trusted: an 'ignores' warning was logged"
grep -q "auth nobody1@$D: no via backend" "$LOG" \
    && ok "trusted: the guesses are logged per user, no password" || not_ok "trusted: no log line for nobody1"
grep -qE "wrong1|alice-pw|bob-pw" "$LOG" \
    && not_ok "trusted: a password reached cloudauth's log" || ok "trusted: no password in cloudauth's log"
echo "# trusted: failures recorded: 127.0.0.3 $guesser, 127.0.0.1 $(recorded 127.0.0.1)"

# --- ignored: Nextcloud does not trust this server ----------------------------
start ignored
expect "ignored: alice logs in from 127.0.0.4" "login-ok" "$(logins 127.0.0.4 alice:alice-pw)"
logins 127.0.0.3 "${GUESSES[@]}" > "$dir/guesses.out"
n_ok=$(grep -c '^login-ok' "$dir/guesses.out")
n_temp=$(grep -c 'temporary-auth-failure' "$dir/guesses.out")
[ "$n_ok" = 0 ] && [ "$n_temp" -ge 1 ] \
    && ok "ignored: no guess logged in; $n_temp of 12 were withheld as temporary failures by the server's budget" \
    || not_ok "ignored: guesses: $(paste -sd'|' "$dir/guesses.out")"
guesser=$(recorded 127.0.0.3) server=$(recorded 127.0.0.1)
[ "$guesser" = 0 ] && [ "$server" -ge 1 ] && [ "$server" -le 8 ] \
    && ok "ignored: the failures are recorded for 127.0.0.1 ($server, at most 8), none for 127.0.0.3" \
    || not_ok "ignored: failures recorded for 127.0.0.1: $server, for 127.0.0.3: $guesser"
expect "ignored: Nextcloud never blocked the server's address" "no" "$(blocked 127.0.0.1)"
expect "ignored: alice (logged in before) still gets in from 127.0.0.4" "login-ok" "$(logins 127.0.0.4 alice:alice-pw)"
[ "$(count "$LOG" "ignores X-Forwarded-For.*trusted_proxies")" = 1 ] \
    && ok "ignored: one warning that Nextcloud ignores X-Forwarded-For, with the trusted_proxies fix" \
    || not_ok "ignored: $(count "$LOG" "ignores X-Forwarded-For") 'ignores X-Forwarded-For' lines in $LOG"
out=$(doctor)
echo "$out" | grep -q "client address.*ignores it" && echo "$out" | grep -q "trusted_proxies 0 --value=" \
    && ok "ignored: doctor's client address line says Nextcloud ignores it, with the fix" \
    || not_ok "ignored: doctor: $(echo "$out" | grep -i "client address")"
echo "# ignored: failures recorded: 127.0.0.1 $server, 127.0.0.3 $guesser"

# --- at start: the capabilities are read before any login ---------------------
start at-start --allow-listed 127.0.0.1
wait_line "$LOG" "allow-lists this server's address" 5 \
    && ok "socket mode: Nextcloud's capabilities read at start (its allow-list logged before any login)" \
    || not_ok "socket mode: no allow-list line within 5 s of the start"
expect "socket mode: no login was sent for it" 0 "$(backend_count ocs_user)"
mkdir -p "$dir/stdio-log"
sleep 6 | "$BIN_DIR/cloudauth" -c /dev/null --backend nextcloud -u "$BACKEND_ORIGIN" -t generic \
    -l "$dir/stdio-log" > /dev/null 2>> "$dir/stdio.stderr" &
STDIO_PID=$!
wait_line "$dir/stdio-log/cloudauth.log" "allow-lists this server's address" 5 \
    && ok "stdio mode (-t generic): the capabilities read at start, before any request" \
    || not_ok "stdio mode: no allow-list line within 5 s of the start"
kill "$STDIO_PID" 2>/dev/null
stop_all
finish
