#!/bin/bash
# End to end: Prosody 0.12 with authentication = "cyrus" (mod_auth_cyrus from
# prosody-modules, lua-cyrussasl) -> Cyrus SASL (pwcheck_method: saslauthd,
# saslauthd_path) -> cloudauth's saslauthd unix socket -> the JSXC test backend.
# Cyrus reads its config from a work-dir SASL_CONF_PATH; nothing under /etc.
# Skipped (0 passed, 0 failed) when prosody, prosody-modules or lua-cyrussasl
# is missing.
set -u
. "$(dirname "$0")/../lib/common.sh"

CYRUS_MOD=/usr/lib/prosody/modules/mod_auth_cyrus
if ! command -v prosody >/dev/null 2>&1 || [ ! -f "$CYRUS_MOD/mod_auth_cyrus.lua" ] \
    || ! lua5.4 -e 'require "cyrussasl"' >/dev/null 2>&1; then
    echo "# skip: needs prosody, prosody-modules (mod_auth_cyrus) and lua-cyrussasl"
    finish
fi

SECRET="e2e-secret-$$-$RANDOM"
TIMEOUT=2
D=localhost
W=$(workdir cyrus)
start_backend "$W" "$SECRET" "$STANDARD_USERS" || die_setup "test backend did not start"

write_secret "$W/secret" "$SECRET"
mkdir -p "$W/log" "$W/sasl" "$W/prosody/data" "$W/prosody/certs"
MUX="$W/mux"
"$BIN_DIR/cloudauth" -c /dev/null -u "$BACKEND_URL" --secret-file "$W/secret" -l "$W/log" \
    --timeout "$TIMEOUT" --listen "saslauthd=$MUX" > "$W/cloudauth.out" 2>&1 &
CA_PID=$!
on_exit "kill $CA_PID"

# Cyrus SASL application config "prosody" (cyrus_application_name).
cat > "$W/sasl/prosody.conf" <<EOF
pwcheck_method: saslauthd
saslauthd_path: $MUX
mech_list: PLAIN
EOF
PORT=$(free_port)
cat > "$W/prosody/prosody.cfg.lua" <<EOF
pidfile = "$W/prosody/prosody.pid"
data_path = "$W/prosody/data"
certificates = "$W/prosody/certs"
run_as_root = true
interfaces = { "127.0.0.1" }
c2s_ports = { $PORT }
c2s_interfaces = { "127.0.0.1" }
s2s_ports = { }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
modules_enabled = { "roster", "saslauth", "disco", "ping" }
modules_disabled = { "s2s", "tls" }
authentication = "cyrus"
cyrus_service_name = "xmpp"
cyrus_application_name = "prosody"
log = { debug = "$W/prosody/prosody.log" }
VirtualHost "$D"
EOF

wait_port() { # wait_port PORT|PATH
    /usr/bin/python3 - "$1" <<'PY'
import socket, sys, time
where = sys.argv[1]
deadline = time.time() + 10
while time.time() < deadline:
    try:
        if where.startswith("/"):
            s = socket.socket(socket.AF_UNIX); s.connect(where)
        else:
            s = socket.create_connection(("127.0.0.1", int(where)))
        s.close(); sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}
wait_port "$MUX" || die_setup "cloudauth did not listen on $MUX"

SASL_CONF_PATH="$W/sasl" prosody --config "$W/prosody/prosody.cfg.lua" > "$W/prosody/out" 2>&1 &
PROSODY_PID=$!
on_exit "kill $PROSODY_PID"
wait_port "$PORT" || {
    tail -n 20 "$W/prosody/out" "$W/prosody/prosody.log" 2>/dev/null | sed 's/^/#   /'
    die_setup "prosody did not listen on 127.0.0.1:$PORT"
}
grep -q "Available Cyrus SASL mechanisms: PLAIN" "$W/prosody/prosody.log" \
    && ok "prosody loaded mod_auth_cyrus with PLAIN from Cyrus SASL" \
    || not_ok "mod_auth_cyrus did not report PLAIN"

# Through Prosody, Cyrus SASL and saslauthd to cloudauth.
login_cases "$PORT" "$D" "$SECRET"
outage_cases "$PORT" "$D" $(( TIMEOUT * 1000 + 3000 ))
fault ok
login "bob@$D" bob-pw "$PORT"; expect "backend back: password login works again" 0 $?

kill -0 "$PROSODY_PID" 2>/dev/null && ok "prosody still running" || not_ok "prosody died"
kill "$CA_PID" 2>/dev/null
for _ in $(seq 50); do kill -0 "$CA_PID" 2>/dev/null || break; sleep 0.1; done
LOG="$W/log/cloudauth.log"
grep -q "auth alice@$D: yes via backend" "$LOG" && ok "cloudauth saw login alice, realm $D" \
    || not_ok "no backend decision for alice@$D in the log"
leaked=""
for s in alice-pw bob-pw 'a: b c :d' 'pässwörd-ü' wrong-pw "$SECRET" "$ALICE_TOKEN" "$JUERGEN_TOKEN"; do
    grep -qF -- "$s" "$LOG" "$W/cloudauth.out" && leaked="$leaked $s"
done
[ -z "$leaked" ] && ok "no password, token or secret in the cloudauth log" || not_ok "log leaks:$leaked"
finish
