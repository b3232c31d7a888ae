#!/bin/bash
# End to end: ejabberd 23.01 with auth_method: cloud, the in-VM module
# (ejabberd_auth_cloud + its Rust NIF) installed by erlang/install.sh into
# the sandbox's ext_mod directory; slixmpp logs in by password and token.
# Also: the authzid attack, per-vhost settings (host_config), reload without
# restart, backend trouble, a slow cloud with 200 pending logins that must
# not slow token logins or other VM work, and a forced panic.
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
SECRET_B="e2e-secret-b-$$-$RANDOM"
TIMEOUT=3
W=$(workdir cloud)
# The standard accounts, and load0..load199 for the slow-cloud load.
USERS=$(printf '%s' "$STANDARD_USERS" | /usr/bin/python3 -c 'import json, sys
u = json.load(sys.stdin)
u["users"] += [{"uid": f"load{i}", "password": "load-pw"} for i in range(200)]
print(json.dumps(u, ensure_ascii=False))')
mkdir -p "$W/a" "$W/b"
start_backend "$W/b" "$SECRET_B" '{"users": [{"uid": "alice", "password": "alice-on-b"}]}' \
    || die_setup "backend B did not start"
URL_B=$BACKEND_URL CONTROL_B=$BACKEND_CONTROL
start_backend "$W/a" "$SECRET" "$USERS" || die_setup "backend A did not start"

write_secret "$W/secret" "$SECRET"
write_secret "$W/secret-b" "$SECRET_B"
E="$W/ejabberd"
"$ROOT/erlang/install.sh" "$E/ext" >/dev/null 2>"$W/install.log" \
    || { cat "$W/install.log"; die_setup "erlang/install.sh failed"; }
[ -f "$E/ext/ejabberd_auth_cloud/priv/ejabberd_auth_cloud_nif.so" ] \
    && ok "install.sh laid out the ext_mod directory" || not_ok "no NIF in the ext_mod directory"

PORT=$(free_port)
# A listener with a real server's accept backlog (ejabberd's default is 5:
# 200 simultaneous connects would mostly wait for SYN retransmits).
cat > "$W/extra.yml" <<YML
hosts:
  - localhost
  - b.localhost
listen:
  -
    port: $PORT
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    backlog: 1024
auth_method: cloud
auth_cloud_url: "$BACKEND_URL"
auth_cloud_secret_file: "$W/secret"
auth_cloud_timeout: $TIMEOUT
auth_cloud_connect_timeout: $TIMEOUT
host_config:
  b.localhost:
    auth_cloud_url: "$URL_B"
    auth_cloud_secret_file: "$W/secret-b"
YML
# Debug level: the module logs its decision paths (token/backend/cache) there.
EJABBERD_SANDBOX_LOGLEVEL=debug start_ejabberd "$E" "$PORT" "$W/extra.yml" || die_setup "ejabberd did not start"
ev() { "$SANDBOX" eval "$E" "$1"; }

D=localhost
# --- the login cases of every server path -------------------------------------
login_cases "$PORT" "$D" "$SECRET"

# --- authzid: alice's password must not make anybody bob ---------------------------
login "alice@$D" alice-pw "$PORT" --authzid "bob@$D"; expect "authzid attack (alice's password, authzid bob) -> refused" 1 $?
login "alice@$D" alice-pw "$PORT" --authzid "alice@$D"; expect "authzid = own JID -> session" 0 $?

# --- per-vhost settings through host_config ----------------------------------------
login "alice@b.localhost" alice-on-b "$PORT"; expect "b.localhost: its own cloud's password -> session" 0 $?
login "alice@b.localhost" alice-pw "$PORT"; expect "b.localhost: the other cloud's password -> refused" 1 $?
login "alice@b.localhost" "$(mint alice b.localhost "$SECRET_B" --ttl 1h)" "$PORT"
expect "b.localhost: token made with its own secret -> session" 0 $?
login "alice@b.localhost" "$(mint alice b.localhost "$SECRET" --ttl 1h)" "$PORT"
expect "b.localhost: token made with localhost's secret -> refused" 1 $?

# --- user_exists and backend trouble -------------------------------------------------
expect "user_exists: existing user" "{nocache,true}" "$(ev 'ejabberd_auth_cloud:user_exists(<<"bob">>, <<"localhost">>).')"
expect "user_exists: unknown user" "{nocache,false}" "$(ev 'ejabberd_auth_cloud:user_exists(<<"nobody">>, <<"localhost">>).')"
expect "set_password is not allowed" "{nocache,{error,not_allowed}}" \
    "$(ev 'ejabberd_auth_cloud:set_password(<<"bob">>, <<"localhost">>, <<"x">>).')"
outage_cases "$PORT" "$D" $(( (TIMEOUT + 3) * 1000 ))
expect "user_exists on backend trouble -> db_failure" "{nocache,{error,db_failure}}" \
    "$(ev 'ejabberd_auth_cloud:user_exists(<<"bob">>, <<"localhost">>).')"
slow_cloud_case "$PORT" "$D" $(( (TIMEOUT + 4) * 1000 ))
fault ok

# --- a slow cloud with 200 pending logins ----------------------------------------------
# Baselines first: token logins and a VM timer probe (max lateness of 200 1-ms sleeps).
PROBE='lists:max([begin T = erlang:monotonic_time(microsecond), timer:sleep(1), erlang:monotonic_time(microsecond) - T - 1000 end || _ <- lists:seq(1, 200)]).'
# token_ms: the slowest of 20 concurrent token logins, SASL exchange only
# (no client start-up in the figure); 999999 unless all 20 succeed.
token_ms() {
    local line
    line=$(/usr/bin/python3 "$E2E_LIB/xmpp_load.py" "$PORT" 20 "alice@$D" "$ALICE_TOKEN" --timeout 10)
    case "$line" in ok=20\ *) echo "${line##*max_ms=}" ;; *) echo 999999 ;; esac
}
base_token=$(token_ms)
base_probe=$(ev "$PROBE")
# 200 password logins (200 users, so no two share a cloud request) against a
# cloud answering after 5 s (timeout raised so that they succeed) that has
# the workers for all of them (so the concurrency limit lets 200 through).
sed -i "s/^auth_cloud_timeout: .*/auth_cloud_timeout: 8\nauth_cloud_concurrency: 200/" "$E/etc/ejabberd.yml"
"$SANDBOX" ctl "$E" reload_config >/dev/null 2>&1
fault delay 5000
auth_before=$(backend_count auth)
/usr/bin/python3 "$E2E_LIB/xmpp_load.py" "$PORT" 200 "load{i}@$D" load-pw --timeout 30 > "$W/load.out" 2>&1 &
LOAD=$!
on_exit "kill $LOAD"
PENDING='length([P || P <- erlang:processes(), erlang:process_info(P, current_function) == {current_function, {ejabberd_auth_cloud, await, 2}}]).'
pending=0
for _ in $(seq 40); do
    pending=$(ev "$PENDING")
    [ "${pending:-0}" -ge 200 ] 2>/dev/null && break
    sleep 0.1
done
expect "200 logins pending in the VM, waiting for the slow cloud" 200 "$pending"
load_token=$(token_ms)
load_probe=$(ev "$PROBE")
still=$(ev "$PENDING")
[ "$load_token" -le $(( base_token * 2 + 50 )) ] \
    && ok "token logins at unchanged latency with $pending logins pending (${base_token} ms idle, ${load_token} ms loaded)" \
    || not_ok "token logins slowed down: ${base_token} ms idle, ${load_token} ms under load"
[ "$load_probe" -le $(( base_probe + 20000 )) ] 2>/dev/null \
    && ok "VM timer probe unchanged under load (worst lateness ${base_probe} us idle, ${load_probe} us loaded)" \
    || not_ok "VM work delayed under load: ${base_probe} us idle, ${load_probe} us loaded"
expect "the slow logins were all still pending after the measurements" 200 "$still"
wait "$LOAD"
read -r load_result < "$W/load.out"
case "$load_result" in
    ok=200\ *) ok "all 200 slow logins succeeded once the cloud answered ($load_result)" ;;
    *) not_ok "slow logins: $load_result" ;;
esac
expect "each slow login was its own cloud request" 200 $(( $(backend_count auth) - auth_before ))
fault ok

# --- a hostile backend's error message cannot forge lines of ejabberd's log --------------
fault forge
login "alice@$D" alice-pw "$PORT"
[ $? != 0 ] && ok "a backend answering an error with a forged message -> no session" \
    || not_ok "a backend answering an error with a forged message gave a session"
fault ok

# --- reload: a changed option applies without a restart --------------------------------
sed -i "s|^auth_cloud_url: .*|auth_cloud_url: \"$URL_B\"|; s|^auth_cloud_secret_file: .*|auth_cloud_secret_file: \"$W/secret-b\"|" "$E/etc/ejabberd.yml"
"$SANDBOX" ctl "$E" reload_config >/dev/null 2>&1
login "alice@$D" alice-on-b "$PORT"; expect "after reload_config: localhost uses the new cloud" 0 $?
login "alice@$D" alice-pw "$PORT"; expect "after reload_config: the old cloud's password is refused" 1 $?

# --- panics never take the VM down ------------------------------------------------------
r=$(ev 'try ejabberd_auth_cloud_nif:selftest_panic() catch error:nif_panicked -> caught end.')
expect "a panic in a NIF call is an Erlang error" caught "$r"
r=$(ev 'R = make_ref(), ok = ejabberd_auth_cloud_nif:selftest_panic_async(R), receive {R, {error, <<"panic in the NIF", _/binary>>}} -> replied after 5000 -> none end.')
expect "a panic in a runtime task still replies" replied "$r"
"$SANDBOX" status "$E" >/dev/null 2>&1; expect "ejabberd still running after the panics" 0 $?
login "alice@$D" "$(mint alice $D "$SECRET_B" --ttl 1h)" "$PORT"; expect "logins work after the panics" 0 $?

# --- the log -------------------------------------------------------------------------------
LOG="$E/log/ejabberd.log"
grep -q "auth alice@localhost: yes via token" "$LOG" && ok "ejabberd's log has token decisions" || not_ok "no token decision in the log"
grep -q "backend trouble via backend" "$LOG" && ok "ejabberd's log names backend trouble" || not_ok "no backend trouble in the log"
# The message had a line break, U+2028 and U+202E: escaped like cloudauth's own log.
grep -qF 'yes\u{2028}[info] auth root: yes\u{202e}sey' "$LOG" && ok "ejabberd's log shows the backend's forged message escaped" \
    || not_ok "the forged message is not in ejabberd's log, escaped: $(grep -a 'Signature does not match' "$LOG" | tail -n 1 | cut -c1-200)"
if grep -qaE '^\[info\] auth (admin|root)' "$LOG" || grep -qaF -e "$(printf '\u2028')" -e "$(printf '\u202e')" "$LOG"; then
    not_ok "ejabberd's log has a forged line or a raw U+2028/U+202E"
else
    ok "no forged line and no raw U+2028/U+202E in ejabberd's log"
fi
leaked=""
for s in alice-pw bob-pw 'a: b c :d' 'pässwörd-ü' wrong-pw alice-on-b "$SECRET" "$SECRET_B" "$ALICE_TOKEN" "$BOB_TOKEN" "$EXPIRED" "$JUERGEN_TOKEN"; do
    grep -qF -- "$s" "$LOG" "$E/log/erl.out" 2>/dev/null && leaked="$leaked $s"
done
[ -z "$leaked" ] && ok "no password, token or secret in ejabberd's logs" || not_ok "logs leak:$leaked"
finish
