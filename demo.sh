#!/bin/bash
# cloudauth demo, end to end, on 127.0.0.1 only:
#  1. builds the binaries and the ejabberd module (cargo, rebar3);
#  2. starts the project's JSXC test backend (stands in for Nextcloud);
#  3. ejabberd with auth_method: external running `cloudauth -t ejabberd`;
#  4. ejabberd with auth_method: cloud (the in-VM module and its NIF),
#     shared roster groups provisioned from the Nextcloud groups;
#  5. ejabberd with the nextcloud backend (Nextcloud's own OCS API, the one
#     for current Nextcloud) and a service account;
# and logs in with a real XMPP client (slixmpp) by password and by JSXC
# token, printing what happened. Installs the Debian packages it needs
# (ejabberd, Erlang headers, rebar3, slixmpp, ...) when run as root.
set -u
cd "$(dirname "$0")" || exit 1
test/lib/install-deps.sh || exit 1
echo "== building (cargo build --release, rebar3 compile)"
cargo build --release --locked -p cloudauth -p jsxc-test-backend || exit 1
rebar3 compile >/dev/null || exit 1
. test/lib/common.sh

SECRET="demo-secret-$RANDOM$RANDOM"
W=$(workdir demo)
echo "== starting the test backend (stands in for Nextcloud: the JSXC app's API and the OCS API)"
start_backend "$W" "$SECRET" '{"users": [
  {"uid": "alice", "password": "correct horse", "name": "Alice Liddell", "groups": ["Wonderland"]},
  {"uid": "bob", "password": "battery staple", "name": "Bob Builder", "groups": ["Wonderland"]},
  {"uid": "xmpp-svc", "password": "svc app password", "admin": true}
]}' || { echo "backend did not start"; exit 1; }
echo "   JSXC API at $BACKEND_URL, Nextcloud at $BACKEND_ORIGIN"
write_secret "$W/secret" "$SECRET"
write_secret "$W/svc-pw" "svc app password"
TOKEN=$(mint alice localhost "$SECRET" --ttl 10m)
failures=0
try() { # try PORT DESCRIPTION EXPECTED JID PASSWORD
    login "$4" "$5" "$1"
    local rc=$? word
    case $rc in 0) word="logged in";; 1) word="refused";; *) word="error";; esac
    if [ "$rc" = "$3" ]; then printf '   %-48s %s\n' "$2" "$word"; else printf '   %-48s %s  (UNEXPECTED)\n' "$2" "$word"; failures=$((failures + 1)); fi
}
logins() { # logins PORT
    try "$1" "alice, Nextcloud password:" 0 alice@localhost "correct horse"
    try "$1" "alice, JSXC token (cloudauth token ...):" 0 alice@localhost "$TOKEN"
    try "$1" "bob, Nextcloud password:" 0 bob@localhost "battery staple"
    try "$1" "alice, wrong password:" 1 alice@localhost "wrong"
    try "$1" "bob, alice's token:" 1 bob@localhost "$TOKEN"
}

extauth_yml() { # extauth_yml FILE PROGRAM: ejabberd.yml lines for extauth with PROGRAM
    printf 'auth_method: external\nextauth_program: "%s"\nextauth_pool_size: 2\nauth_use_cache: false\n' "$2" > "$1"
}

PORT=$(free_port)
extauth_yml "$W/extauth.yml" "$BIN_DIR/cloudauth -c /dev/null -t ejabberd -u $BACKEND_URL --secret-file $W/secret -l $W"
echo "== ejabberd on 127.0.0.1:$PORT, auth_method: external with extauth_program cloudauth"
start_ejabberd "$W/extauth" "$PORT" "$W/extauth.yml" >/dev/null || { echo "ejabberd did not start"; exit 1; }
logins "$PORT"
echo "   cloudauth's log ($W/cloudauth.log):"
sleep 0.3
sed 's/^/     /' "$W/cloudauth.log"
"$SANDBOX" stop "$W/extauth" >/dev/null

PORT=$(free_port)
erlang/install.sh "$W/cloud/ext" >/dev/null 2>&1 || { echo "erlang/install.sh failed"; exit 1; }
cat > "$W/cloud.yml" <<YML
auth_method: cloud
auth_cloud_url: "$BACKEND_URL"
auth_cloud_secret_file: "$W/secret"
auth_cloud_roster_sync: true
YML
echo "== ejabberd on 127.0.0.1:$PORT, auth_method: cloud (in-VM module, installed by erlang/install.sh)"
start_ejabberd "$W/cloud" "$PORT" "$W/cloud.yml" >/dev/null || { echo "ejabberd did not start"; exit 1; }
logins "$PORT"
echo "   alice's roster after her login (shared roster from the Nextcloud group Wonderland):"
/usr/bin/python3 "$E2E_LIB/xmpp_roster.py" alice@localhost "correct horse" "$PORT" "$W/roster" --duration 3 >/dev/null
if grep -q "bob@localhost both Bob Builder | Wonderland" "$W/roster"; then
    grep "bob@localhost" "$W/roster" | head -n1 | sed 's/^[a-z]* /     /'
else
    echo "     (bob missing: UNEXPECTED)"; failures=$((failures + 1))
fi
"$SANDBOX" stop "$W/cloud" >/dev/null

PORT=$(free_port)
NEXTCLOUD="--backend nextcloud -u $BACKEND_ORIGIN --service-user xmpp-svc --service-password-file $W/svc-pw"
extauth_yml "$W/nextcloud.yml" "$BIN_DIR/cloudauth -c /dev/null -t ejabberd $NEXTCLOUD -l $W/nextcloud"
mkdir -p "$W/nextcloud"
echo "== ejabberd on 127.0.0.1:$PORT, extauth with the nextcloud backend (OCS API, service account xmpp-svc)"
start_ejabberd "$W/nc" "$PORT" "$W/nextcloud.yml" >/dev/null || { echo "ejabberd did not start"; exit 1; }
try "$PORT" "alice, Nextcloud password:" 0 alice@localhost "correct horse"
try "$PORT" "alice, wrong password:" 1 alice@localhost "wrong"
"$BIN_DIR/cloudauth" -c /dev/null $NEXTCLOUD -I bob localhost >/dev/null 2>&1
case $? in 0) printf '   %-48s %s\n' "does bob exist (cloudauth -I)?" "yes";;
    *) printf '   %-48s %s\n' "does bob exist (cloudauth -I)?" "no  (UNEXPECTED)"; failures=$((failures + 1));; esac
"$SANDBOX" stop "$W/nc" >/dev/null
if [ "$failures" = 0 ]; then echo "== demo OK"; else echo "== demo FAILED ($failures unexpected outcomes)"; fi
[ "$failures" = 0 ]
