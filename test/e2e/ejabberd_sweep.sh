#!/bin/bash
# End to end: the account sweep with ejabberd 23.01 (Debian 12's), against
# the test backend as Nextcloud (OCS, service account svc).
#
#   extauth: `cloudauth -t ejabberd --backend nextcloud --cache-storage db`,
#     a pool of 2 sharing --db, --ejabberdctl, --account-sweep 3s;
#   in the VM: auth_method: cloud, auth_cloud_account_sweep: 3, cache
#     storage memory, then mnesia (the known users in Mnesia, lent to the
#     NIF before each sweep).
#
# alice, bob and carol share the Nextcloud group "Team", bob alone is in
# "Solo" (shared roster sync on: --ejabberdctl, auth_cloud_roster_sync).
# alice and bob log in by password (now known users) and stay online, carol
# logs in once. Then bob is disabled in the cloud (deleted in the VM with
# mnesia) and carol leaves Team.
# Within a sweep, without anyone logging in: bob's session is closed; bob
# and carol are out of Team and alice stays in it (the present users'
# groups re-read); bob is out of Solo, which no other known user's sync
# touches, so only his departure can take him out (group members before
# and after, mod_shared_roster). Then bob's password is refused and his
# cached row is gone (with the cloud down he cannot log in, alice can),
# and alice stays online.
set -u
. "$(dirname "$0")/../lib/common.sh"

D=localhost
W=$(workdir sweep)
users() { # users BOB CAROL_GROUPS: BOB is enabled, disabled or deleted
    local bob=''
    case $1 in
        enabled | disabled) bob=$(printf '{"uid": "bob", "password": "bob-pw", "groups": ["Team", "Solo"], "disabled": %s}, ' "$([ "$1" = disabled ] && echo true || echo false)") ;;
    esac
    printf '{"users": [{"uid": "alice", "password": "alice-pw", "groups": ["Team"]}, %s{"uid": "carol", "password": "carol-pw", "groups": %s}, {"uid": "svc", "password": "svc-pw", "admin": true}]}\n' "$bob" "$2"
}
start_backend "$W" "unused-$$" "$(users enabled '["Team"]')" || die_setup "test backend did not start"
printf 'svc-pw' > "$W/service-password"; chmod 600 "$W/service-password"
"$ROOT/erlang/install.sh" "$W/ext" >/dev/null 2>"$W/install.log" \
    || { cat "$W/install.log"; die_setup "erlang/install.sh failed"; }

online() { # online DIR USER: sessions of USER
    "$SANDBOX" eval "$1" "length(ejabberd_sm:get_user_resources(<<\"$2\">>, <<\"$D\">>))."
}

# team DIR [LABEL]: the members of the shared roster group labelled LABEL
# (Team), as ejabberd has them (mod_shared_roster), sorted, on one line.
team() {
    "$SANDBOX" eval "$1" "lists:sort([<<U/binary, \"@\", S/binary>> || G <- mod_shared_roster:list_groups(<<\"$D\">>), proplists:get_value(label, mod_shared_roster:get_group_opts(<<\"$D\">>, G)) == <<\"${2:-Team}\">>, {U, S} <- mod_shared_roster:get_group_explicit_users(<<\"$D\">>, G)])." |
        tr -d '[]<>"\n' | tr ',' ' '
}
team_is() { [ "$(team "$1" "${3:-Team}")" = "$2" ]; } # team_is DIR "MEMBERS" [LABEL]

case_sweep() { # case_sweep WHAT DIR PORT LOG HOW (disabled or deleted)
    local what=$1 E=$2 port=$3 log=$4 how=$5
    users enabled '["Team"]' > "$W/users.json"; curl -sf -X POST "$BACKEND_CONTROL/reload" > /dev/null || die_setup "reload"
    # Online for longer than the case's waits add up to even when they all
    # time out (each check is an eval of a second or so); killed at its end.
    probe "alice@$D" alice-pw "$port" --collect 90 > "$W/$what-alice.out" 2>&1 & local a=$!
    probe "bob@$D" bob-pw "$port" --collect 90 > "$W/$what-bob.out" 2>&1 & local b=$!
    wait_until 10 sh -c "[ \"\$('$SANDBOX' eval '$E' 'length(ejabberd_sm:get_user_resources(<<\"bob\">>, <<\"$D\">>)).')\" = 1 ]" &&
        wait_until 5 sh -c "[ \"\$('$SANDBOX' eval '$E' 'length(ejabberd_sm:get_user_resources(<<\"alice\">>, <<\"$D\">>)).')\" = 1 ]" ||
        not_ok "$what: alice and bob did not come online"
    login "carol@$D" carol-pw "$port"; expect "$what: carol logs in once (a known user)" 0 $?
    local all="alice@$D bob@$D carol@$D"
    wait_until 10 team_is "$E" "$all"
    expect "$what: before: the logins' syncs put alice, bob and carol into Team" "$all" "$(team "$E")"
    wait_until 5 team_is "$E" "bob@$D" Solo
    expect "$what: before: bob's login put him into Solo" "bob@$D" "$(team "$E" Solo)"
    local t0; t0=$(now_ms)
    users "$how" '[]' > "$W/users.json"; curl -sf -X POST "$BACKEND_CONTROL/reload" > /dev/null || die_setup "reload"
    if wait_until 12 sh -c "[ \"\$('$SANDBOX' eval '$E' 'length(ejabberd_sm:get_user_resources(<<\"bob\">>, <<\"$D\">>)).')\" = 0 ]"; then
        ok "$what: bob, $how in the cloud, is kicked within a sweep ($(( $(now_ms) - t0 )) ms, --account-sweep 3 s)"
    else
        not_ok "$what: bob still online 12 s after he was $how"
    fi
    # Nobody has logged in since the change: only the sweep can do this.
    if wait_until 8 team_is "$E" "alice@$D"; then
        ok "$what: after: bob ($how) and carol (left the group) are out of Team, alice stays, without a login ($(( $(now_ms) - t0 )) ms)"
    else
        local now; now=$(team "$E")
        case " $now " in *" bob@$D "*) not_ok "$what: bob, departed, still in Team: $now" ;; esac
        case " $now " in *" carol@$D "*) not_ok "$what: carol left Team in the cloud but is still in it: $now" ;; esac
        case " $now " in *" alice@$D "*) ;; *) not_ok "$what: alice lost from Team: $now" ;; esac
    fi
    wait_until 5 team_is "$E" "" Solo
    expect "$what: after: bob, departed, is out of Solo, which only his departure touches" "" "$(team "$E" Solo)"
    expect "$what: alice stays online" 1 "$(online "$E" alice)"
    login "bob@$D" bob-pw "$port"; expect "$what: bob's password is refused afterwards" 1 $?
    login "alice@$D" alice-pw "$port"; expect "$what: alice still logs in" 0 $?
    # The cached rows: alice's stands in for the cloud, bob's was dropped.
    fault down || die_setup "fault down"
    login "bob@$D" bob-pw "$port"; [ $? -ne 0 ] && ok "$what: cloud down: bob's cached password is gone" ||
        not_ok "$what: cloud down: bob still logs in from the cache"
    login "alice@$D" alice-pw "$port"; expect "$what: cloud down: alice logs in from the cache" 0 $?
    fault ok || die_setup "fault ok"
    wait_line "$log" "bob@$D: the backend no longer knows this user" 5 &&
        ok "$what: the log says bob was dropped" || not_ok "$what: no log line for bob's departure"
    kill "$a" "$b" 2>/dev/null; wait "$a" "$b" 2>/dev/null
}

# --- extauth: cloudauth runs ejabberdctl ----------------------------------------
PT="$W/port"
cat > "$W/ejabberdctl" <<SH
#!/bin/sh
exec "$SANDBOX" ctl "$PT" "\$@"
SH
chmod 755 "$W/ejabberdctl"
mkdir -p "$W/log"
PORT=$(free_port)
cat > "$W/port.yml" <<YML
auth_method: external
extauth_program: "$BIN_DIR/cloudauth -c /dev/null -t ejabberd --backend nextcloud -u $BACKEND_ORIGIN --service-user svc --service-password-file $W/service-password --cache-storage db --db $W/state.db -l $W/log --timeout 3 --account-sweep 3s --ejabberdctl $W/ejabberdctl"
extauth_pool_size: 2
auth_use_cache: false
YML
start_ejabberd "$PT" "$PORT" "$W/port.yml" || die_setup "ejabberd (extauth) did not start"
case_sweep extauth "$PT" "$PORT" "$W/log/cloudauth.log" disabled
wait_line "$W/log/cloudauth.log" "bob@$D: account gone from the backend; sessions closed" 5 &&
    ok "extauth: the log says ejabberdctl kick_user closed bob's sessions" || not_ok "extauth: no kick_user line in the log"
grep -q "ejabberdctl .* failed" "$W/log/cloudauth.log" &&
    not_ok "extauth: an ejabberdctl call failed: $(grep 'ejabberdctl .* failed' "$W/log/cloudauth.log" | head -n1)" ||
    ok "extauth: every ejabberdctl call succeeded"
"$SANDBOX" stop "$PT"

# --- in the VM (memory, then mnesia: the cluster's known users lent first) --------
vm_case() { # vm_case STORAGE
    local VM="$W/vm-$1" port
    mkdir -p "$VM" && cp -r "$W/ext" "$VM/ext"
    port=$(free_port)
    cat > "$W/vm-$1.yml" <<YML
auth_method: cloud
auth_use_cache: false
auth_cloud_backend: nextcloud
auth_cloud_url: "$BACKEND_ORIGIN"
auth_cloud_service_user: svc
auth_cloud_service_password_file: "$W/service-password"
auth_cloud_timeout: 3
auth_cloud_cache_storage: $1
auth_cloud_account_sweep: 3
auth_cloud_roster_sync: true
YML
    EJABBERD_SANDBOX_LOGLEVEL=info start_ejabberd "$VM" "$port" "$W/vm-$1.yml" || die_setup "ejabberd (VM, $1) did not start"
    expect "vm $1: the sweep worker runs under ejabberd_sup" true \
        "$("$SANDBOX" eval "$VM" 'lists:keymember(ejabberd_auth_cloud_sweep, 1, supervisor:which_children(ejabberd_sup)).')"
    if [ "$1" = mnesia ]; then
        # A known user this node never saw (another node's, or from before a
        # restart): only in Mnesia, and gone from the cloud.
        "$SANDBOX" eval "$VM" "mnesia:dirty_write({ejabberd_auth_cloud_known, <<\"ghost@$D\">>, erlang:system_time(second)})." > /dev/null
    fi
    # memory: bob disabled; mnesia: bob deleted (gone from the users file).
    case_sweep "vm $1" "$VM" "$port" "$VM/log/ejabberd.log" "$([ "$1" = memory ] && echo disabled || echo deleted)"
    wait_line "$VM/log/ejabberd.log" "bob@$D: account gone from the backend; 1 session\(s\) closed" 5 &&
        ok "vm $1: the log says ejabberd_sm closed bob's session" || not_ok "vm $1: no session-closed line in the log"
    if [ "$1" = mnesia ]; then
        expect "vm mnesia: ghost, known only in Mnesia, is swept (lent to the NIF) and his row deleted" "[]" \
            "$("$SANDBOX" eval "$VM" 'mnesia:dirty_read(ejabberd_auth_cloud_known, <<"ghost@localhost">>).')"
        expect "vm mnesia: bob's known-user row is gone from Mnesia, alice's stays" "[] 1" \
            "$("$SANDBOX" eval "$VM" 'mnesia:dirty_read(ejabberd_auth_cloud_known, <<"bob@localhost">>).') $("$SANDBOX" eval "$VM" 'length(mnesia:dirty_read(ejabberd_auth_cloud_known, <<"alice@localhost">>)).')"
    fi
    LOGS="$LOGS $VM/log/ejabberd.log"
    "$SANDBOX" stop "$VM"
}
LOGS="$W/log/cloudauth.log"
vm_case memory
vm_case mnesia

grep -qF -- "svc-pw" $LOGS && not_ok "a log holds the service password" ||
    ok "no service password in the logs"
finish
