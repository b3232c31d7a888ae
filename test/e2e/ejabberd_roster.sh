#!/bin/bash
# End to end: shared roster groups from Nextcloud groups, in two real
# ejabberd 23.01 (mod_roster, mod_shared_roster, mod_vcard, mod_admin_extra):
#   vm:   auth_method: cloud with auth_cloud_roster_sync: true (in-VM, command API)
#   port: auth_method: external, cloudauth --ejabberdctl (one ejabberd_ctl
#         call per change; state in xcauth's rosterinfo/rostergroups tables)
# alice and bob share the Nextcloud group "Team": once alice logs in, her
# (online) client sees bob under "Team" with his Nextcloud name; bob leaves
# the group; alice's next login pushes him out of her roster.
# Then the order of issue 12: alice's login puts bob into "Team" (bob has
# never logged in), bob leaves the group, and bob's own login takes him out
# (checked with srg_get_members); and the same once more after bob's own
# login has stored a digest, which someone else's sync made stale.
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
W=$(workdir roster)
users() { # users BOB_GROUPS -> the users file
    cat <<JSON
{"users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice Liddell", "groups": ["Team", "Readers\u200b"]},
  {"uid": "bob", "password": "bob-pw", "name": "Bob Builder", "groups": $1},
  {"uid": "carol", "password": "carol-pw", "name": "Carol", "groups": ["Readers\u200b"]}
]}
JSON
}
start_backend "$W" "$SECRET" "$(users '["Team"]')" || die_setup "test backend did not start"
write_secret "$W/secret" "$SECRET"
D=localhost



# scenario NAME PORT LOG: the roster story against one ejabberd; LOG is the
# file that records syncs ("Shared roster of alice@localhost synced" lines).
scenario() {
    local name=$1 port=$2 log=$3 out="$W/$1.roster" synced
    rm -f "$out" "$out.stop"
    /usr/bin/python3 "$E2E_LIB/xmpp_roster.py" "alice@$D" alice-pw "$port" "$out" --duration 60 &
    local watcher=$!
    on_exit "kill $watcher"
    wait_line "$out" '^ready' 20 || { not_ok "$name: alice's client did not start"; return; }
    wait_line "$out" "^(roster|push) bob@$D both Bob Builder \| Team$" 20 \
        && ok "$name: after alice's login her roster shows bob under Team with his Nextcloud name" \
        || not_ok "$name: bob not in alice's roster: $(tr '\n' ';' < "$out")"
    grep -q "carol@$D" "$out" && not_ok "$name: carol shared only a U+200B group but showed up" \
        || ok "$name: the U+200B group was left out (carol not in the roster)"
    wait_count "$log" "roster of alice@$D synced" 1 20 || not_ok "$name: no sync logged for alice's login"
    synced=$(grep -c "roster of alice@$D synced" "$log")

    # bob leaves Team in Nextcloud; alice logs in again from another client.
    users '[]' > "$W/users.json"
    curl -sf -X POST "$BACKEND_CONTROL/reload" >/dev/null || not_ok "$name: backend reload"
    login "alice@$D" alice-pw "$port"; expect "$name: alice's second login" 0 $?
    wait_line "$out" "^push bob@$D remove " 20 \
        && ok "$name: bob pushed out of the online client's roster at alice's next login" \
        || not_ok "$name: no removal push for bob: $(tr '\n' ';' < "$out")"
    wait_count "$log" "roster of alice@$D synced" $(( synced + 1 )) 20
    local synced2; synced2=$(grep -c "roster of alice@$D synced" "$log")
    expect "$name: that login synced once more" $(( synced + 1 )) "$synced2"

    # Unchanged answer: a third login changes nothing.
    login "alice@$D" alice-pw "$port"; expect "$name: alice's third login" 0 $?
    sleep 2
    expect "$name: unchanged answer, no sync work" "$synced2" "$(grep -c "roster of alice@$D synced" "$log")"
    touch "$out.stop"
    wait "$watcher" 2>/dev/null
    users '["Team"]' > "$W/users.json"
    curl -sf -X POST "$BACKEND_CONTROL/reload" >/dev/null
}

# team_members DIR: the members of the group "Team" as ejabberd has them
# (srg_get_members), sorted, on one line.
TEAM_ID="team-$(printf Team | sha256sum | cut -c1-8)"
team_members() {
    "$SANDBOX" ctl "$1" srg_get_members "$TEAM_ID" "$D" | sort | tr '\n' ' ' | sed 's/ $//'
}

# set_bob_groups JSON_LIST: bob's Nextcloud groups, at once.
set_bob_groups() {
    users "$1" > "$W/users.json"
    curl -sf -X POST "$BACKEND_CONTROL/reload" >/dev/null
}

# own_login_leaves NAME PORT LOG DIR: bob leaves a group another member's
# sync put him in; his own next login must take him out (issue 12).
own_login_leaves() {
    local name=$1 port=$2 log=$3 dir=$4 a b
    set_bob_groups '["Team"]' || not_ok "$name: backend reload"
    a=$(grep -c "roster of alice@$D synced" "$log")
    b=$(grep -c "roster of bob@$D synced" "$log")
    login "alice@$D" alice-pw "$port"; expect "$name: alice logs in (bob back in Team)" 0 $?
    wait_count "$log" "roster of alice@$D synced" $(( a + 1 )) 20
    expect "$name: alice's sync put bob into Team" "alice@$D bob@$D" "$(team_members "$dir")"
    set_bob_groups '[]' || not_ok "$name: backend reload"
    login "bob@$D" bob-pw "$port"; expect "$name: bob logs in after leaving Team" 0 $?
    wait_count "$log" "roster of bob@$D synced" $(( b + 1 )) 20 \
        || not_ok "$name: no sync logged for bob's login"
    expect "$name: bob's own login took him out of Team" "alice@$D" "$(team_members "$dir")"

    # bob's digest is stored now; alice's next sync puts him back, and his
    # next login, with the same answer as the last one, must still see it.
    set_bob_groups '["Team"]' || not_ok "$name: backend reload"
    login "alice@$D" alice-pw "$port"; expect "$name: alice logs in again" 0 $?
    wait_count "$log" "roster of alice@$D synced" $(( a + 2 )) 20
    expect "$name: alice's sync put bob into Team again" "alice@$D bob@$D" "$(team_members "$dir")"
    set_bob_groups '[]' || not_ok "$name: backend reload"
    login "bob@$D" bob-pw "$port"; expect "$name: bob logs in again after leaving Team" 0 $?
    wait_count "$log" "roster of bob@$D synced" $(( b + 2 )) 10 \
        || not_ok "$name: bob's second login was taken for unchanged"
    expect "$name: bob's own login with his last answer took him out of Team" "alice@$D" "$(team_members "$dir")"
    set_bob_groups '["Team"]'
}

# --- in the VM ---------------------------------------------------------------------
VM="$W/vm"
"$ROOT/erlang/install.sh" "$VM/ext" >/dev/null 2>"$W/install.log" || { cat "$W/install.log"; die_setup "install.sh failed"; }
PORT_VM=$(free_port)
cat > "$W/vm.yml" <<YML
auth_method: cloud
auth_cloud_url: "$BACKEND_URL"
auth_cloud_secret_file: "$W/secret"
auth_cloud_roster_sync: true
YML
start_ejabberd "$VM" "$PORT_VM" "$W/vm.yml" || die_setup "ejabberd (vm) did not start"
scenario vm "$PORT_VM" "$VM/log/ejabberd.log"
TEAM=$("$SANDBOX" eval "$VM" '[G || G <- mod_shared_roster:list_groups(<<"localhost">>), proplists:get_value(label, mod_shared_roster:get_group_opts(<<"localhost">>, G)) == <<"Team">>].')
case "$TEAM" in
    '[<<"team-'*) ok "vm: the group id is lowercase and safe, the label is Team ($TEAM)" ;;
    *) not_ok "vm: unexpected groups labelled Team: $TEAM" ;;
esac
own_login_leaves vm "$PORT_VM" "$VM/log/ejabberd.log" "$VM"
# A sync runs as a temporary child of the module's supervisor (under
# ejabberd_sup), not as a bare process: seen while the cloud is slow to
# answer the roster question after the login.
syncs() { "$SANDBOX" eval "$VM" 'proplists:get_value(active, supervisor:count_children(ejabberd_auth_cloud_roster)).'; }
expect "vm: the sync supervisor runs under ejabberd_sup" true \
    "$("$SANDBOX" eval "$VM" 'lists:keymember(ejabberd_auth_cloud_roster, 1, supervisor:which_children(ejabberd_sup)).')"
fault delay 1500
login "alice@$D" alice-pw "$PORT_VM" >/dev/null
expect "vm: while the cloud answers the roster question, the sync is the supervisor's child" 1 "$(syncs)"
no_syncs() { [ "$(syncs)" = 0 ]; }
wait_until 10 no_syncs
fault ok
expect "vm: the finished sync left the supervisor" 0 "$(syncs)"
"$SANDBOX" status "$VM" >/dev/null 2>&1; expect "vm: ejabberd still running" 0 $?

# --- port mode: cloudauth runs ejabberdctl ------------------------------------------
PT="$W/port"
PORT_PT=$(free_port)
mkdir -p "$PT" "$W/log"
cat > "$W/ejabberdctl" <<SH
#!/bin/sh
# ejabberdctl for the throwaway ejabberd (one ejabberd_ctl call, like the real one)
exec "$SANDBOX" ctl "$PT" "\$@"
SH
chmod 755 "$W/ejabberdctl"
cat > "$W/port.yml" <<YML
auth_method: external
extauth_program: "$BIN_DIR/cloudauth -c /dev/null -t ejabberd -u $BACKEND_URL --secret-file $W/secret -l $W/log --db $W/xcauth.sqlite3 --ejabberdctl $W/ejabberdctl"
extauth_pool_size: 2
auth_use_cache: false
YML
start_ejabberd "$PT" "$PORT_PT" "$W/port.yml" || die_setup "ejabberd (port) did not start"
scenario port "$PORT_PT" "$W/log/cloudauth.log"
rows=$(/usr/bin/python3 - "$W/xcauth.sqlite3" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
info = dict(c.execute("SELECT jid, grouplist FROM rosterinfo WHERE jid = 'alice@localhost'").fetchall())
groups = c.execute("SELECT groupname, userlist FROM rostergroups").fetchall()
names = dict(c.execute("SELECT jid, fullname FROM rosterinfo").fetchall())
team = [u for g, u in groups if g.startswith("team-")]
print(info.get("alice@localhost", "").startswith("team-"), team == ["alice@localhost"], names.get("bob@localhost"))
PY
)
expect "port: xcauth's tables hold alice's groups, Team's members and bob's name" "True True Bob Builder" "$rows"
own_login_leaves port "$PORT_PT" "$W/log/cloudauth.log" "$PT"
team=$(/usr/bin/python3 - "$W/xcauth.sqlite3" "$TEAM_ID@$D" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(c.execute("SELECT userlist FROM rostergroups WHERE groupname = ?", (sys.argv[2],)).fetchone())
PY
)
expect "port: rostergroups lists Team without bob after his own login" "('alice@localhost',)" "$team"
"$SANDBOX" status "$PT" >/dev/null 2>&1; expect "port: ejabberd still running" 0 $?
grep -q "ejabberdctl .* failed" "$W/log/cloudauth.log" \
    && not_ok "port: an ejabberdctl call failed: $(grep 'ejabberdctl .* failed' "$W/log/cloudauth.log" | head -n1)" \
    || ok "port: every ejabberdctl call succeeded"
finish
