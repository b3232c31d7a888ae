#!/bin/bash
# cloudauth demo, end to end: builds the binaries, starts the project's JSXC
# test backend and a throwaway ejabberd on 127.0.0.1 that authenticates
# through `cloudauth -t ejabberd`, then logs in with a real XMPP client by
# password and by token and prints what happened. Installs the Debian
# packages it needs (ejabberd, python3-slixmpp) when run as root.
set -u
cd "$(dirname "$0")" || exit 1
test/lib/install-deps.sh || exit 1
echo "== building (cargo build --release)"
cargo build --release --locked -p cloudauth -p jsxc-test-backend || exit 1
. test/lib/common.sh

SECRET="demo-secret-$RANDOM$RANDOM"
W=$(workdir demo)
echo "== starting the JSXC test backend (stands in for Nextcloud with the JSXC app)"
start_backend "$W" "$SECRET" '{"users": [
  {"uid": "alice", "password": "correct horse", "name": "Alice Liddell"},
  {"uid": "bob", "password": "battery staple", "name": "Bob"}
]}' || { echo "backend did not start"; exit 1; }
echo "   API at $BACKEND_URL"
printf '%s\n' "$SECRET" > "$W/secret" && chmod 600 "$W/secret"
PORT=$(free_port)
cat > "$W/extra.yml" <<YML
auth_method: external
extauth_program: "$BIN_DIR/cloudauth -c /dev/null -t ejabberd -u $BACKEND_URL --secret-file $W/secret -l $W"
extauth_pool_size: 2
auth_use_cache: false
YML
echo "== starting ejabberd on 127.0.0.1:$PORT with extauth_program cloudauth"
start_ejabberd "$W/ejabberd" "$PORT" "$W/extra.yml" >/dev/null || { echo "ejabberd did not start"; exit 1; }

TOKEN=$(mint alice localhost "$SECRET" --ttl 10m)
failures=0
try() { # try DESCRIPTION EXPECTED JID PASSWORD
    login "$3" "$4" "$PORT"
    local rc=$?
    local word
    case $rc in 0) word="logged in";; 1) word="refused";; *) word="error";; esac
    if [ "$rc" = "$2" ]; then printf '   %-48s %s\n' "$1" "$word"; else printf '   %-48s %s  (UNEXPECTED)\n' "$1" "$word"; failures=$((failures + 1)); fi
}
echo "== logging in with slixmpp"
try "alice, Nextcloud password:" 0 alice@localhost "correct horse"
try "alice, JSXC token (cloudauth token ...):" 0 alice@localhost "$TOKEN"
try "bob, Nextcloud password:" 0 bob@localhost "battery staple"
try "alice, wrong password:" 1 alice@localhost "wrong"
try "bob, alice's token:" 1 bob@localhost "$TOKEN"
echo "== cloudauth's log ($W/cloudauth.log):"
sed 's/^/   /' "$W/cloudauth.log"
if [ "$failures" = 0 ]; then echo "== demo OK"; else echo "== demo FAILED ($failures unexpected outcomes)"; fi
"$SANDBOX" stop "$W/ejabberd" >/dev/null
[ "$failures" = 0 ]
