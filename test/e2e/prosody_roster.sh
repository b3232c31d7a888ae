#!/bin/bash
# End to end: the shared roster from Nextcloud groups on a real Prosody
# (mod_auth_cloudauth.lua with cloudauth_roster = true) through socket-mode
# cloudauth and the JSXC test backend, logging in with slixmpp.
#
#   bash test/e2e/prosody_roster.sh                  both of these, one after the other:
#   bash test/e2e/prosody_roster.sh --host           Prosody 0.12 of the host (Debian 12)
#   bash test/e2e/prosody_roster.sh --root trixie    Prosody 13 in a cached Debian root
#                                                    (test/lib/debian-root.sh; also
#                                                    bookworm-backports, sid; needs root)
#
# alice, bob and 40 colleagues share "Staff Team" (also seen through the
# nextcloud backend with a service account): after alice's login she
# sees bob and bob (before any login of his) sees her; the module's periodic
# re-read answers "unchanged" in one line; bob leaves the group and the
# re-read takes him out of alice's roster (and her out of his) without bob
# logging in, sending only the changed bucket; with Nextcloud down the
# rosters stay as they were, and once it is back the re-read catches up.
set -u
. "$(dirname "$0")/../lib/common.sh"
. "$E2E_LIB/prosody-root.sh"

prosody_runs "$@"
SECRET="e2e-secret-$$-$RANDOM"
BASE=$(workdir prosody-roster)
users() { # users BOB_GROUPS [COLLEAGUES] -> the users file (u0..u39 unless fewer)
    /usr/bin/python3 -c 'import json, sys
users = [{"uid": "alice", "password": "alice-pw", "name": "Alice Liddell", "groups": ["Staff Team"]},
         {"uid": "bob", "password": "bob-pw", "name": "Bob Builder", "groups": json.loads(sys.argv[1])},
         {"uid": "carol", "password": "carol-pw", "name": "Carol", "groups": ["Elsewhere"]}]
users += [{"uid": f"u{i}", "password": "pw", "name": f"User {i}", "groups": ["Staff Team"]} for i in range(int(sys.argv[2]))]
users.append({"uid": "svc", "password": "svc-pw", "admin": True})
print(json.dumps({"users": users}))' "$1" "${2:-40}"
}
set_bob_groups() { users "$@" > "$BASE/users.json" && curl -sf -X POST "$BACKEND_CONTROL/reload" >/dev/null; }
start_backend "$BASE" "$SECRET" "$(users '["Staff Team"]')" || die_setup "test backend did not start"
write_secret "$BASE/secret" "$SECRET"
# nc.localhost: the same accounts through the nextcloud backend (OCS API, service account)
write_secret "$BASE/svc-pw" svc-pw
echo "nc.localhost backend=nextcloud url=$BACKEND_ORIGIN service-user=svc service-password-file=$BASE/svc-pw" > "$BASE/domains"
REFRESH=2

# roster_run host|ROOT_NAME: every check, against a fresh cloudauth and Prosody
roster_run() {
ROOT_NAME=${1#host} R=
W="$BASE/$1"
mkdir -p "$W/log"
set_bob_groups '["Staff Team"]' && fault ok || die_setup "backend reset"
CA_PORT=$(free_port)
"$BIN_DIR/cloudauth" -c /dev/null -u "$BACKEND_URL" --secret-file "$BASE/secret" -p "$BASE/domains" -l "$W/log" \
    --timeout 2 --listen "generic=127.0.0.1:$CA_PORT" 2>> "$W/cloudauth.stderr" &
CA_PID=$!
on_exit "kill $CA_PID"
wait_until 10 port_listens "$CA_PORT" || die_setup "cloudauth did not listen on 127.0.0.1:$CA_PORT"
CALOG="$W/log/cloudauth.log"

PORT=$(free_port)
prosody_config() { # prosody_config DIR MODULE_DIR
    prosody_globals "$1" "$PORT" "$2"
    prosody_vhost localhost "$CA_PORT"
    printf '    cloudauth_roster = true\n    cloudauth_roster_refresh = %s\n' "$REFRESH"
    prosody_vhost nc.localhost "$CA_PORT"
    echo '    cloudauth_roster = true'
}
# Prosody of a cached Debian root (the version matrix's) or the host's.
[ -z "$ROOT_NAME" ] || prosody_root "$ROOT_NAME" "$W"
prosody_prepare "$W"
prosody_launch "$W"
on_exit "kill $PROSODY_PID; wait $PROSODY_PID"
prosody_listening "$PORT" "$W"
LOG="$P/prosody.log"
D=localhost
echo "# Prosody $(prosody_version)${ROOT_NAME:+ in root $ROOT_NAME}"

# alice logs in and stays online.
A="$W/alice.roster"
/usr/bin/python3 "$E2E_LIB/xmpp_roster.py" "alice@$D" alice-pw "$PORT" "$A" --duration 120 &
AW=$!
on_exit "kill $AW"
wait_line "$A" '^ready' 20 || not_ok "alice's client did not start: $(tail -n 5 "$LOG")"
wait_line "$A" "^(roster|push) bob@$D both Bob Builder \| Staff Team$" 20 \
    && ok "after alice's login her roster shows bob under Staff Team with his Nextcloud name, subscription both" \
    || not_ok "bob not in alice's roster: $(tail -n 4 "$A" | tr '\n' ';')"
wait_line "$A" "^(roster|push) u39@$D both User 39 \| Staff Team$" 10
expect "alice's roster: all 41 colleagues" 41 "$(grep -oE "^(roster|push) [^ ]+" "$A" | sort -u -k2,2 | wc -l)"
grep -qE "(alice|carol)@$D" "$A" && not_ok "alice or carol (no shared group) in alice's roster: $(tail -n 4 "$A" | tr '\n' ';')" \
    || ok "neither alice herself nor carol (no shared group) in alice's roster"

# bob, never logged in yet, has alice already (her sync filled both sides).
B="$W/bob.roster"
/usr/bin/python3 "$E2E_LIB/xmpp_roster.py" "bob@$D" bob-pw "$PORT" "$B" --duration 90 &
BW=$!
on_exit "kill $BW"
wait_line "$B" '^ready' 20 || not_ok "bob's client did not start"
grep -qE "^roster alice@$D both Alice Liddell \| Staff Team$" "$B" \
    && ok "bob's first roster fetch already lists alice under Staff Team (from alice's sync)" \
    || not_ok "alice not in bob's first roster fetch: $(tail -n 4 "$B" | tr '\n' ';')"
touch "$B.stop"; wait "$BW" 2>/dev/null

# The nextcloud backend with a service account gives the same roster.
NC="$W/nc-alice.roster"
/usr/bin/python3 "$E2E_LIB/xmpp_roster.py" "alice@nc.localhost" alice-pw "$PORT" "$NC" --duration 60 &
NW=$!
on_exit "kill $NW"
wait_line "$NC" "^(roster|push) bob@nc.localhost both Bob Builder \| Staff Team$" 20 \
    && ok "nextcloud backend (service account): alice@nc.localhost sees bob under Staff Team" \
    || not_ok "nextcloud backend: bob not in alice's roster: $(tail -n 4 "$NC" | tr '\n' ';') $(grep "roster alice@nc" "$CALOG" | tail -n 2)"
touch "$NC.stop"; wait "$NW" 2>/dev/null

# Unchanged: the periodic re-read answers '=' and changes nothing.
wait_line "$CALOG" "roster alice@$D: unchanged \(41 contacts\)" $(( REFRESH * 5 )) \
    && ok "the periodic re-read runs; unchanged answer: one short line, nothing done" \
    || not_ok "no unchanged re-read seen: $(grep -c "roster alice" "$CALOG") roster lines in cloudauth's log"

# bob leaves Staff Team; nobody logs in.
set_bob_groups '[]' || not_ok "backend reload"
wait_line "$A" "^push bob@$D remove " $(( REFRESH * 5 )) \
    && ok "bob left Staff Team: the periodic re-read pushed him out of alice's online roster without bob's login" \
    || not_ok "no removal push for bob: $(tail -n 4 "$A" | tr '\n' ';')"
# (bob's own re-read may have taken him out first: alice's comes within a period)
wait_line "$CALOG" "roster alice@$D: 1 of 32 buckets changed" $(( REFRESH * 3 ))
sent=$(grep -oE "roster alice@$D: 1 of 32 buckets changed, [0-9]+ of 40 contacts sent" "$CALOG" | tail -n 1)
n=$(echo "$sent" | sed -E 's/.*changed, ([0-9]+) of.*/\1/')
[ -n "$sent" ] && [ "$n" -lt 40 ] \
    && ok "only bob's bucket went over the wire: '$sent'" \
    || not_ok "not a one-bucket change: $(grep "roster alice@$D: [0-9]* of" "$CALOG" | tail -n 2 | tr '\n' ';')"
B2="$W/bob2.roster"
/usr/bin/python3 "$E2E_LIB/xmpp_roster.py" "bob@$D" bob-pw "$PORT" "$B2" --duration 90 &
BW=$!
wait_line "$B2" '^ready' 20 || not_ok "bob's second client did not start"
grep -q "^roster alice@$D" "$B2" && not_ok "alice still in bob's roster after he left: $(tail -n 4 "$B2" | tr '\n' ';')" \
    || ok "alice gone from bob's roster too (other side taken out)"
touch "$B2.stop"; wait "$BW" 2>/dev/null

# bob back in the group, then Nextcloud down: the rosters stay as they were.
back=$(count "$A" "^push bob@$D both Bob Builder \| Staff Team$")
set_bob_groups '["Staff Team"]' || not_ok "backend reload"
wait_count "$A" "^push bob@$D both Bob Builder \| Staff Team$" $(( back + 1 )) $(( REFRESH * 5 )) \
    && ok "bob back in Staff Team: pushed into alice's roster by the re-read" \
    || not_ok "bob not pushed back: $(tail -n 4 "$A" | tr '\n' ';')"
fault down || not_ok "backend fault"
set_bob_groups '[]'
kept=$(count "$LOG" "roster alice@$D: cloudauth cannot tell now; roster kept")
pushes=$(count "$A" "^push ")
wait_count "$LOG" "roster alice@$D: cloudauth cannot tell now; roster kept" $(( kept + 2 )) $(( REFRESH * 6 )) \
    && ok "Nextcloud down: the module logs 'cannot tell now; roster kept' at each re-read" \
    || not_ok "no 'roster kept' line with Nextcloud down"
expect "Nextcloud down: no roster push to alice (bob stays)" "$pushes" "$(count "$A" "^push ")"
grep -q "bob@$D" "$P/data/localhost/roster/alice.dat" 2>/dev/null \
    && ok "Nextcloud down: bob still stored in alice's roster" \
    || not_ok "bob not in alice's stored roster: $(ls "$P/data/localhost/roster/" 2>&1)"
settled=$(count "$CALOG" "roster alice@$D: unchanged \(40 contacts\)")
fault ok
wait_count "$A" "^push bob@$D remove " 2 $(( REFRESH * 5 )) \
    && ok "Nextcloud back: the re-read takes bob out" \
    || not_ok "bob not taken out once Nextcloud is back: $(tail -n 3 "$A" | tr '\n' ';')"
# u39 deleted in Nextcloud: out of alice's roster, and her next re-read does
# not start from scratch because his own roster cannot be saved any more.
# (after alice's own re-read has taken bob out: bob's may have done it first)
wait_count "$CALOG" "roster alice@$D: unchanged \(40 contacts\)" $(( settled + 1 )) $(( REFRESH * 5 ))
resends=$(count "$CALOG" "roster alice@$D: [0-9]+ of 32 buckets changed")
set_bob_groups '[]' 39
wait_line "$A" "^push u39@$D remove " $(( REFRESH * 5 )) \
    && ok "u39 deleted in Nextcloud: the re-read takes him out of alice's roster" \
    || not_ok "u39 not taken out: $(tail -n 3 "$A" | tr '\n' ';')"
wait_line "$CALOG" "roster alice@$D: unchanged \(39 contacts\)" $(( REFRESH * 5 )) \
    || not_ok "alice's re-reads resend: $(grep "roster alice@$D" "$CALOG" | tail -n 2 | tr '\n' ';')"
expect "u39 deleted: one changed answer for alice, then 'unchanged' (the deleted contact is no failure): $(grep -oE "roster alice@$D: [0-9]+ of 32 buckets changed, [0-9]+ of [0-9]+" "$CALOG" | tail -n 1)" \
    $(( resends + 1 )) "$(count "$CALOG" "roster alice@$D: [0-9]+ of 32 buckets changed")"
touch "$A.stop"; wait "$AW" 2>/dev/null
kill -0 "$PROSODY_PID" 2>/dev/null; expect "Prosody still running" 0 $?
grep -E "roster sync failed|Traceback" "$LOG" | head -n 5 | sed 's/^/#   /'
kill "$PROSODY_PID" "$CA_PID" 2>/dev/null; wait "$PROSODY_PID" "$CA_PID" 2>/dev/null
}

for run in "${RUNS[@]}"; do roster_run "$run"; done
finish
