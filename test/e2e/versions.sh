#!/bin/bash
# End to end, the version matrix: the servers our users run besides Debian
# 12's ejabberd 23.01 and Prosody 0.12 (the other tests), each from Debian's
# own packages in a Debian root made by mmdebstrap (cached in
# test/.work/roots/ under the hash of its recipe, see test/lib/debian-root.sh)
# and entered with chroot, so the network is the host's loopback:
#
#   bookworm-backports: ejabberd 24.12 on Erlang/OTP 25, Prosody 13.0.1
#                       (Debian 12 + apt -t bookworm-backports)
#   trixie:             ejabberd 24.12 on Erlang/OTP 27, Prosody 13 (Debian 13)
#   sid:                ejabberd 26.07 on Erlang/OTP 29, Prosody 13.0.7
#
# In each root, against the JSXC test backend on the host, with slixmpp on
# the host logging in:
#  - ejabberd, auth_method: external with the host-built cloudauth run in
#    the root (it must run there: glibc, no other libraries), shared roster
#    through --ejabberdctl;
#  - ejabberd, auth_method: cloud with the module built in the root by
#    erlang/install.sh (that root's erlc, that ejabberd's headers) and the
#    NIF from our host build; the host-built beams (Erlang/OTP 25) are also
#    tried there and what happens is printed ("# finding:");
#  - Prosody 13 with prosody/mod_auth_cloudauth.lua, cloudauth in socket mode
#    on the host (TCP).
# The cases, for every server: password, wrong password, unknown user, ':'
# in a password, a non-ASCII user by password and by token, a valid, an
# expired and another user's token, authzid other than the user, the
# backend down (refused at once, tokens still work), a slow backend (a
# token login stays fast while password logins wait on it, and those then
# succeed; with extauth the token's time is printed, not checked: see the
# docs/dev/testing.md's "Tested versions"); on ejabberd the shared roster: alice's login puts bob into
# Team, bob leaves Team in Nextcloud and alice's next login takes him out.
# Prints the versions, each server's result and each phase's time.
# Needs root (chroot, mount, mmdebstrap) and the network for a root's first build.
set -u
. "$(dirname "$0")/../lib/common.sh"
. "$E2E_LIB/debian-root.sh"

T0=$(date +%s)
[ "$(id -u)" = 0 ] || die_setup "needs root (chroot, mount, mmdebstrap)"
command -v mmdebstrap >/dev/null || die_setup "mmdebstrap not found (test/lib/install-deps.sh installs it)"
for b in cloudauth jsxc-test-backend; do
    [ -x "$BIN_DIR/$b" ] || die_setup "$BIN_DIR/$b not built (cargo build --release --workspace)"
done
W=$(workdir versions)
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml")
SECRET="versions-secret-$$-$RANDOM"
TIMEOUT=5          # cloudauth --timeout, auth_cloud_timeout
SLOW_MS=3000       # the slow backend's delay (below TIMEOUT: the slow logins succeed)
D=localhost

# --- reporting per server and per phase ----------------------------------------------
RESULTS=()
SECTION_T=0 SECTION_P=0 SECTION_F=0 SECTION=""
begin() { SECTION=$1 SECTION_T=$(date +%s) SECTION_P=$PASS SECTION_F=$FAIL; echo "# ---- $1"; }
end() {
    local line
    line="$SECTION: $(( PASS - SECTION_P )) passed, $(( FAIL - SECTION_F )) failed, $(( $(date +%s) - SECTION_T )) s"
    RESULTS+=("$line")
    echo "# result: $line"
}
FINDINGS=()
finding() { FINDINGS+=("$*"); echo "# finding: $*"; }

# --- the backend: the standard users, alice and bob share the group Team -----------
users() { # users BOB_GROUPS
    printf '%s' "$STANDARD_USERS" | /usr/bin/python3 -c 'import json, sys
u = json.load(sys.stdin)
for x in u["users"]:
    x["groups"] = {"alice": ["Team"], "bob": json.loads(sys.argv[1])}.get(x["uid"], [])
print(json.dumps(u, ensure_ascii=False))' "$1"
}
start_backend "$W" "$SECRET" "$(users '["Team"]')" || die_setup "test backend did not start"
write_secret "$W/secret" "$SECRET"
set_bob_groups() { # set_bob_groups JSON_LIST: change Nextcloud's answer for bob
    users "$1" > "$W/users.json" && curl -sf -X POST "$BACKEND_CONTROL/reload" >/dev/null
}

# --- the cases ---------------------------------------------------------------------------
# slow_isolation_case PORT: slow_isolation, checked where each request is
# served on its own (the VM, Prosody's connection pool); with extauth the
# token's time is ejabberd's pick of a worker, so it is printed as a finding.
slow_isolation_case() {
    case "$SERVER" in
    extauth)
        # ejabberd gives each request to the next of its extauth workers
        # (p1_rand:round_robin), each serving one request at a time.
        slow_isolation "$1" "$D" "$ALICE_TOKEN" "$SLOW_MS" report
        finding "$SECTION: a token login took ${ISOLATION_MS} ms while 2 password logins waited ${SLOW_MS} ms on the backend (4 extauth workers, one request each at a time)" ;;
    *) slow_isolation "$1" "$D" "$ALICE_TOKEN" "$SLOW_MS" check ;;
    esac
}

# authzid_cases PORT: alice's password with authzid bob never gives a
# session as bob; ejabberd refuses it (the module through 26.04, ejabberd
# itself from 26.07), Prosody binds the session to alice.
authzid_cases() {
    local bound rc
    bound=$(login "alice@$D" alice-pw "$1" --authzid "bob@$D" --bound); rc=$?
    case "$SERVER:$rc:$bound" in
        ejabberd:1:|extauth:1:) ok "authzid bob with alice's password -> refused" ;;
        prosody:1:|prosody:0:alice@$D) ok "authzid bob with alice's password -> never bob ($([ $rc = 0 ] && echo "session bound to $bound" || echo refused))" ;;
        *) not_ok "authzid bob with alice's password: exit $rc, bound to '$bound'" ;;
    esac
    bound=$(login "alice@$D" alice-pw "$1" --authzid "alice@$D" --bound)
    expect "authzid = own JID -> session as alice" "alice@$D" "$bound"
}

# the login cases every server passes
server_cases() { # server_cases PORT
    login_cases "$1" "$D" "$SECRET"
    authzid_cases "$1"
    outage_cases "$1" "$D" $(( (TIMEOUT + 2) * 1000 ))
    fault ok
    slow_isolation_case "$1"
}

# --- one root ------------------------------------------------------------------------------
in_root() { chroot "$R" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 ${EJABBERD_SANDBOX_LOGLEVEL:+EJABBERD_SANDBOX_LOGLEVEL=$EJABBERD_SANDBOX_LOGLEVEL} "$@"; }
# ejabberd-sandbox in the root (as root), in /tmp/NAME of the root
sbx() { in_root /usr/local/bin/ejabberd-sandbox "$@"; }
start_in_root() { # start_in_root NAME PORT YAML_IN_ROOT
    on_exit "chroot '$R' /usr/local/bin/ejabberd-sandbox stop /tmp/$1"
    sbx start "/tmp/$1" "$2" "$3" > "$W/$RNAME-$1.start" 2>&1 || {
        sed 's/^/#   /' "$W/$RNAME-$1.start"
        echo "# ejabberd log tail:"; tail -n 30 "$R/tmp/$1/log/ejabberd.log" 2>/dev/null | sed 's/^/#   /'
        echo "# erl.out tail:"; tail -n 30 "$R/tmp/$1/log/erl.out" 2>/dev/null | sed 's/^/#   /'
        return 1
    }
}

# team_members NAME: the sorted members of the shared roster group labelled Team
team_members() {
    sbx eval "/tmp/$1" 'H = <<"localhost">>, lists:sort([U || G <- mod_shared_roster:list_groups(H), proplists:get_value(label, mod_shared_roster:get_group_opts(H, G)) == <<"Team">>, {U, _} <- mod_shared_roster:get_group_explicit_users(H, G)]).' 2>&1
}
members_are() { [ "$(team_members "$1")" = "$2" ]; }
roster_cases() { # roster_cases NAME PORT
    wait_until 10 members_are "$1" '[<<"alice">>,<<"bob">>]' \
        && ok "shared roster: alice's logins made Team = alice, bob" \
        || not_ok "shared roster: Team is $(team_members "$1"), expected alice and bob"
    set_bob_groups '[]'
    login "alice@$D" alice-pw "$2"; expect "shared roster: alice logs in after bob left Team" 0 $?
    wait_until 10 members_are "$1" '[<<"alice">>]' \
        && ok "shared roster: alice's login took bob out of Team" \
        || not_ok "shared roster: Team is $(team_members "$1") after bob left, expected alice only"
    set_bob_groups '["Team"]'
}

ejabberd_extauth() {
    begin "ejabberd $EJ_V (OTP $OTP) extauth"
    SERVER=extauth
    local port name=ejd-ext
    port=$(free_port)
    mkdir -p "$R/tmp/calog"
    printf '#!/bin/sh\n# one ejabberd_ctl call, like the real ejabberdctl\nexec /usr/local/bin/ejabberd-sandbox ctl /tmp/%s "$@"\n' "$name" \
        > "$R/usr/local/bin/ejabberdctl-test"
    chmod 755 "$R/usr/local/bin/ejabberdctl-test"
    cat > "$R/tmp/$name.yml" <<YML
auth_method: external
extauth_program: "/usr/local/bin/cloudauth -c /dev/null -t ejabberd -u $BACKEND_URL --secret-file /etc/cloudauth-secret -l /tmp/calog --timeout $TIMEOUT --db /tmp/xcauth.sqlite3 --ejabberdctl /usr/local/bin/ejabberdctl-test"
extauth_pool_size: 4
auth_use_cache: false
YML
    if start_in_root "$name" "$port" "/tmp/$name.yml"; then
        ok "ejabberd $EJ_V started with auth_method: external"
        server_cases "$port"
        roster_cases "$name" "$port"
        sbx status "/tmp/$name" >/dev/null 2>&1; expect "ejabberd $EJ_V still running" 0 $?
        grep -q "auth alice@$D: yes via token" "$R/tmp/calog/cloudauth.log" 2>/dev/null \
            && ok "cloudauth in the root logged its decisions" || not_ok "no token decision in the root's cloudauth log"
        sbx stop "/tmp/$name" >/dev/null 2>&1
    else
        not_ok "ejabberd $EJ_V did not start with auth_method: external"
    fi
    end
}

ejabberd_cloud() {
    begin "ejabberd $EJ_V (OTP $OTP) in-VM"
    SERVER=ejabberd
    local port name=ejd-cloud out
    port=$(free_port)
    # the module as docs/admin/ejabberd-vm.md says: erlang/install.sh with the root's erlc,
    # the NIF of our host build
    rm -rf "$R/tmp/src" && mkdir -p "$R/tmp/src" && cp -r "$ROOT/erlang" "$ROOT/prosody" "$R/tmp/src/"
    cp "$HOST_MOD/priv/ejabberd_auth_cloud_nif.so" "$R/tmp/src/host-nif.so"
    out=$(in_root env NIF=/tmp/src/host-nif.so sh /tmp/src/erlang/install.sh "/tmp/$name/ext" 2>&1)
    expect "erlang/install.sh in the root (its erlc)" 0 $? "$(echo "$out" | tail -n1)"
    echo "$out" | grep -i warning | sed 's/^/#   /'
    cat > "$R/tmp/$name.yml" <<YML
auth_method: cloud
auth_cloud_url: "$BACKEND_URL"
auth_cloud_secret_file: "/etc/cloudauth-secret"
auth_cloud_timeout: $TIMEOUT
auth_cloud_roster_sync: true
YML
    # debug: the decisions' log lines
    if EJABBERD_SANDBOX_LOGLEVEL=debug start_in_root "$name" "$port" "/tmp/$name.yml"; then
        ok "ejabberd $EJ_V started with auth_method: cloud"
        expect "the module came from the ext_mod directory" \
            "\"/tmp/$name/ext/ejabberd_auth_cloud/ebin/ejabberd_auth_cloud.beam\"" \
            "$(sbx eval "/tmp/$name" 'code:which(ejabberd_auth_cloud).' 2>&1)"
        expect "the host-built NIF is loaded (OTP $OTP)" ok "$(sbx eval "/tmp/$name" 'ejabberd_auth_cloud_nif:noop().' 2>&1)"
        server_cases "$port"
        roster_cases "$name" "$port"
        expect "ejabberdctl cloud_auth_stats answers" 0 \
            "$(sbx ctl "/tmp/$name" cloud_auth_stats localhost > "$W/stats" 2>&1; echo $?)" "$(grep -c '^cloudauth_' "$W/stats") metric lines"
        sbx status "/tmp/$name" >/dev/null 2>&1; expect "ejabberd $EJ_V still running" 0 $?
        grep -q "auth alice@$D: yes via token" "$R/tmp/$name/log/ejabberd.log" \
            && ! grep -q "stay unlogged" "$R/tmp/$name/log/ejabberd.log" \
            && ok "the core's log events reach ejabberd's log" || not_ok "the module's log sink is not set"
        sbx stop "/tmp/$name" >/dev/null 2>&1
    else
        not_ok "ejabberd $EJ_V did not start with auth_method: cloud"
    fi
    end
    # What the beams of the host's Erlang/OTP do there (the package built on Debian 12).
    local hn=ejd-hostbeams rc
    port=$(free_port)
    mkdir -p "$R/tmp/$hn/ext" && cp -r "$HOST_MOD" "$R/tmp/$hn/ext/"
    sed 's/^auth_cloud_roster_sync: .*//' "$R/tmp/$name.yml" > "$R/tmp/$hn.yml"
    if start_in_root "$hn" "$port" "/tmp/$hn.yml" > /dev/null 2>&1; then
        login "alice@$D" alice-pw "$port"; rc=$?
        login "alice@$D" "$ALICE_TOKEN" "$port"; rc="$rc $?"
        login "alice@$D" wrong-pw "$port"; rc="$rc $?"
        [ "$rc" = "0 0 1" ] && finding "ejabberd $EJ_V on OTP $OTP: beams built on the host (OTP $HOST_OTP) load and work (password, token, wrong password)" \
            || finding "ejabberd $EJ_V on OTP $OTP: beams built on the host (OTP $HOST_OTP) load, but logins gave $rc (expected 0 0 1)"
        sbx stop "/tmp/$hn" >/dev/null 2>&1
    else
        finding "ejabberd $EJ_V on OTP $OTP: with beams built on the host (OTP $HOST_OTP) ejabberd does not start: $(grep -m1 -E 'critical|unsupported' "$R/tmp/$hn/log/ejabberd.log" 2>/dev/null)"
    fi
}

prosody_run() {
    begin "Prosody $PROSODY_V"
    SERVER=prosody
    local port pid
    port=$(free_port)
    in_root install -d -o prosody -g prosody /tmp/prosody /tmp/prosody/data
    {
        prosody_globals /tmp/prosody "$port" /tmp/src/prosody
        cat <<LUA

VirtualHost "localhost"
    authentication = "cloudauth"
    cloudauth_host = "127.0.0.1"
    cloudauth_port = $CA_PORT
    cloudauth_timeout = $(( TIMEOUT + 2 ))
LUA
    } > "$R/tmp/prosody/prosody.cfg.lua"
    in_root chown -R prosody:prosody /tmp/prosody
    chroot --userspec=prosody:prosody "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp/prosody \
        prosody -F --config /tmp/prosody/prosody.cfg.lua > "$W/$RNAME-prosody.out" 2>&1 &
    pid=$!
    on_exit "kill $pid"
    wait_until 10 port_listens "$port"
    if port_listens "$port"; then
        ok "Prosody $PROSODY_V listens with authentication = \"cloudauth\""
        server_cases "$port"
        kill -0 "$pid" 2>/dev/null; expect "Prosody $PROSODY_V still running" 0 $?
        grep -q "Using cloudauth at 127.0.0.1:$CA_PORT" "$R/tmp/prosody/prosody.log" \
            && ok "Prosody $PROSODY_V loaded mod_auth_cloudauth" || not_ok "no 'Using cloudauth' line in Prosody's log"
    else
        not_ok "Prosody $PROSODY_V did not listen on 127.0.0.1:$port"
        tail -n 20 "$W/$RNAME-prosody.out" "$R/tmp/prosody/prosody.log" 2>/dev/null | sed 's/^/#   /'
    fi
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    end
}
port_listens() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# run_root NAME SUITE INCLUDE [--OPTION...] SOURCE...: build or reuse, unpack, test
run_root() {
    RNAME=$1
    local t
    t=$(date +%s)
    root_tar "$1" "$2" "$3" "$W/$RNAME-mmdebstrap.log" "${@:4}" || { not_ok "root $RNAME: mmdebstrap failed"; return; }
    [ "$ROOT_BUILT_S" -gt 0 ] && echo "# timing: root $RNAME built in $ROOT_BUILT_S s ($(du -m "$ROOT_TAR" | cut -f1) MB, cached as $ROOT_TAR)" \
        || echo "# timing: root $RNAME from the cache ($ROOT_TAR)"
    R=$W/$RNAME
    root_unpack "$ROOT_TAR" "$R" || { not_ok "root $RNAME: cannot unpack $ROOT_TAR"; return; }
    echo "# timing: root $RNAME unpacked in $(( $(date +%s) - t )) s"
    EJ_V=$(in_root dpkg-query -W -f '${Version}' ejabberd)
    EJ_V=${EJ_V%%-*}
    PROSODY_V=$(in_root dpkg-query -W -f '${Version}' prosody)
    PROSODY_V=${PROSODY_V%%-*}
    OTP=$(in_root erl -noshell -noinput -eval 'io:put_chars(erlang:system_info(otp_release)), halt().')
    echo "# root $RNAME: ejabberd $EJ_V, Erlang/OTP $OTP ($(in_root dpkg-query -W -f '${Version}' erlang-base)), Prosody $PROSODY_V"
    install -m 0755 "$SANDBOX" "$R/usr/local/bin/ejabberd-sandbox"
    install -m 0755 "$BIN_DIR/cloudauth" "$R/usr/local/bin/cloudauth"
    install -m 0600 "$W/secret" "$R/etc/cloudauth-secret"
    expect "root $RNAME: the host-built cloudauth runs there" "cloudauth $VERSION" "$(in_root cloudauth --version 2>&1)"
    ejabberd_extauth
    ejabberd_cloud
    prosody_run
}

# --- the host's module (beams of the host's Erlang/OTP, our NIF) -----------------------------
HOST_MOD=$W/host-module/ejabberd_auth_cloud
"$ROOT/erlang/install.sh" "$W/host-module" > "$W/host-install.log" 2>&1 \
    || { sed 's/^/#   /' "$W/host-install.log"; die_setup "erlang/install.sh on the host failed"; }
HOST_OTP=$(erl -noshell -noinput -eval 'io:put_chars(erlang:system_info(otp_release)), halt().')

# cloudauth in socket mode on the host, for every Prosody
CA_PORT=$(free_port)
mkdir -p "$W/calog"
"$BIN_DIR/cloudauth" -c /dev/null -u "$BACKEND_URL" --secret-file "$W/secret" -l "$W/calog" \
    --timeout "$TIMEOUT" --listen "generic=127.0.0.1:$CA_PORT" 2>> "$W/cloudauth.stderr" &
on_exit "kill $!"
wait_until 10 port_listens "$CA_PORT" || die_setup "cloudauth did not listen on 127.0.0.1:$CA_PORT"
echo "# timing: set-up $(( $(date +%s) - T0 )) s"

for name in bookworm-backports trixie sid; do
    mapfile -t recipe < <(root_recipe "$name")
    run_root "$name" "${recipe[@]}"
done

echo "# ==== results"
for r in "${RESULTS[@]}"; do echo "#   $r"; done
for f in "${FINDINGS[@]}"; do echo "#   finding: $f"; done
echo "# timing: total $(( $(date +%s) - T0 )) s"
finish
