#!/bin/bash
# End to end: the shared roster from Nextcloud groups on a real Prosody 0.12
# (mod_auth_cloudauth.lua with cloudauth_roster = true) through socket-mode
# cloudauth and the JSXC test backend. alice and bob share "Staff Team":
# after alice's login both see each other; bob leaves the group and the
# module's periodic re-read takes him out of alice's roster (and her out of
# his) without bob logging in; with Nextcloud down the rosters stay.
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
W=$(workdir prosody-roster)
users() { # users BOB_GROUPS -> the users file
    cat <<JSON
{"users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice Liddell", "groups": ["Staff Team"]},
  {"uid": "bob", "password": "bob-pw", "name": "Bob Builder", "groups": $1},
  {"uid": "carol", "password": "carol-pw", "name": "Carol", "groups": ["Elsewhere"]}
]}
JSON
}
set_bob_groups() { users "$1" > "$W/users.json" && curl -sf -X POST "$BACKEND_CONTROL/reload" >/dev/null; }
start_backend "$W" "$SECRET" "$(users '["Staff Team"]')" || die_setup "test backend did not start"
write_secret "$W/secret" "$SECRET"
mkdir -p "$W/log"
SOCK="$W/cloudauth.sock"
"$BIN_DIR/cloudauth" -c /dev/null -u "$BACKEND_URL" --secret-file "$W/secret" -l "$W/log" \
    --timeout 2 --listen "generic=$SOCK" 2>> "$W/cloudauth.stderr" &
CA_PID=$!
on_exit "kill $CA_PID"
wait_until 10 test -S "$SOCK" || die_setup "cloudauth did not listen on $SOCK"

command -v prosody >/dev/null || die_setup "prosody is not installed (Debian package prosody)"
P="$W/prosody"
mkdir -p "$P/data"
PORT=$(free_port)
REFRESH=2
{
    prosody_globals "$P" "$PORT" "$ROOT/prosody"
    cat <<LUA

VirtualHost "localhost"
    authentication = "cloudauth"
    cloudauth_socket = "$SOCK"
    cloudauth_roster = true
    cloudauth_roster_refresh = $REFRESH
LUA
} > "$P/prosody.cfg.lua"
prosody -F --config "$P/prosody.cfg.lua" > "$P/stdout" 2>&1 &
PROSODY_PID=$!
on_exit "kill $PROSODY_PID; wait $PROSODY_PID"
wait_until 10 bash -c "exec 3<> /dev/tcp/127.0.0.1/$PORT" 2>/dev/null || {
    tail -n 30 "$P/stdout" "$P/prosody.log" 2>/dev/null | sed 's/^/#   /'
    die_setup "prosody did not listen on 127.0.0.1:$PORT"
}
D=localhost
LOG="$P/prosody.log"

# alice logs in and stays online.
A="$W/alice.roster"
/usr/bin/python3 "$E2E_LIB/xmpp_roster.py" "alice@$D" alice-pw "$PORT" "$A" --duration 90 &
AW=$!
on_exit "kill $AW"
wait_line "$A" '^ready' 20 || not_ok "alice's client did not start: $(tail -n 5 "$LOG")"
wait_line "$A" "^(roster|push) bob@$D both Bob Builder \| Staff Team$" 20 \
    && ok "after alice's login her roster shows bob under Staff Team with his Nextcloud name, subscription both" \
    || not_ok "bob not in alice's roster: $(tr '\n' ';' < "$A")"
grep -qE "(alice|carol)@$D" "$A" && not_ok "alice or carol (no shared group) in alice's roster: $(tr '\n' ';' < "$A")" \
    || ok "neither alice herself nor carol (no shared group) in alice's roster"

# bob, never logged in yet, has alice already (her sync filled both sides).
B="$W/bob.roster"
/usr/bin/python3 "$E2E_LIB/xmpp_roster.py" "bob@$D" bob-pw "$PORT" "$B" --duration 90 &
BW=$!
on_exit "kill $BW"
wait_line "$B" '^ready' 20 || not_ok "bob's client did not start"
grep -qE "^roster alice@$D both Alice Liddell \| Staff Team$" "$B" \
    && ok "bob's first roster fetch already lists alice under Staff Team (from alice's sync)" \
    || not_ok "alice not in bob's first roster fetch: $(tr '\n' ';' < "$B")"
touch "$B.stop"; wait "$BW" 2>/dev/null

# Unchanged: the periodic re-read answers '=' and changes nothing.
wait_line "$W/log/cloudauth.log" "roster alice@$D: unchanged" $(( REFRESH * 4 )) \
    && ok "re-read with an unchanged answer: one short line, nothing done" \
    || not_ok "no unchanged re-read seen"

# bob leaves Staff Team; nobody logs in.
set_bob_groups '[]' || not_ok "backend reload"
wait_line "$A" "^push bob@$D remove " $(( REFRESH * 5 )) \
    && ok "bob left Staff Team: the periodic re-read pushed him out of alice's online roster without bob's login" \
    || not_ok "no removal push for bob: $(tr '\n' ';' < "$A")"
B2="$W/bob2.roster"
/usr/bin/python3 "$E2E_LIB/xmpp_roster.py" "bob@$D" bob-pw "$PORT" "$B2" --duration 90 &
BW=$!
wait_line "$B2" '^ready' 20 || not_ok "bob's second client did not start"
grep -q "^roster alice@$D" "$B2" && not_ok "alice still in bob's roster after he left: $(tr '\n' ';' < "$B2")" \
    || ok "alice gone from bob's roster too (other side taken out)"
touch "$B2.stop"; wait "$BW" 2>/dev/null

# bob back in the group, then Nextcloud down: the rosters stay as they were.
set_bob_groups '["Staff Team"]' || not_ok "backend reload"
wait_count "$A" "^push bob@$D both Bob Builder \| Staff Team$" 1 $(( REFRESH * 5 )) \
    && ok "bob back in Staff Team: pushed into alice's roster by the re-read" \
    || not_ok "bob not pushed back: $(tr '\n' ';' < "$A")"
pushes=$(count "$A" "^push ")
fault down || not_ok "backend fault"
set_bob_groups '[]'
wait_line "$LOG" "roster alice@$D: cloudauth cannot tell now; roster kept" $(( REFRESH * 5 )) \
    && ok "Nextcloud down: the module logs 'cannot tell now; roster kept'" \
    || not_ok "no 'roster kept' line with Nextcloud down"
sleep $(( REFRESH * 2 ))
expect "Nextcloud down: no roster push to alice (bob stays)" "$pushes" "$(count "$A" "^push ")"
fault ok
touch "$A.stop"; wait "$AW" 2>/dev/null
finish
