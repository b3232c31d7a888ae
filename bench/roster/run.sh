#!/bin/bash
# Shared roster benchmark: reconcile a group of N members (default 500)
# from scratch, after one change (a member leaves) and unchanged, in the VM
# (ejabberd_auth_cloud_roster, command API) and through ejabberdctl
# (cloudauth -R with --ejabberdctl, one ejabberd_ctl call per change, as
# xcauth does), against the same throwaway ejabberd 23.01 and test backend.
# Reports time and number of ejabberd calls for each.
#
# usage: bench/roster/run.sh [--members N] [--skip-ejabberdctl]
# The ejabberdctl path costs ~0.45 s per call: 500 members take minutes.
set -u
cd "$(dirname "$0")/../.." || exit 2
N=500 CTL=1
while [ $# -gt 0 ]; do
    case $1 in
        --members) N=$2; shift 2 ;;
        --skip-ejabberdctl) CTL=0; shift ;;
        *) echo "usage: $0 [--members N] [--skip-ejabberdctl]" >&2; exit 2 ;;
    esac
done
test/lib/install-deps.sh || exit 2
. test/lib/common.sh
SECRET="bench-secret-$RANDOM$RANDOM"
W=$(workdir bench-roster)
users() { # users COUNT GROUP -> users file: u0..u(N-1); the first COUNT in GROUP
    /usr/bin/python3 -c 'import json, sys
n, count, group = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
print(json.dumps({"users": [{"uid": f"u{i}", "password": "pw", "name": f"User {i}",
                             "groups": [group] if i < count else []} for i in range(n)]}))' "$N" "$1" "$2"
}
start_backend "$W" "$SECRET" "$(users "$N" Big)" || { echo "backend did not start" >&2; exit 2; }
write_secret "$W/secret" "$SECRET"
leave_one() { users $(( N - 1 )) Big > "$W/users.json"; curl -sf -X POST "$BACKEND_CONTROL/reload" >/dev/null; }
restore() { users "$N" Big > "$W/users.json"; curl -sf -X POST "$BACKEND_CONTROL/reload" >/dev/null; }

# --- in the VM -------------------------------------------------------------------
VM="$W/vm"
erlang/install.sh "$VM/ext" >/dev/null 2>&1 || { echo "install.sh failed" >&2; exit 2; }
cat > "$W/vm.yml" <<YML
loglevel: warning
auth_method: cloud
auth_cloud_url: "$BACKEND_URL"
auth_cloud_secret_file: "$W/secret"
auth_cloud_roster_sync: true
YML
start_ejabberd "$VM" "$(free_port)" "$W/vm.yml" >/dev/null || { echo "ejabberd did not start" >&2; exit 2; }
vm_sync() {
    "$SANDBOX" eval "$VM" '{ok, S} = ejabberd_auth_cloud_roster:sync(persistent_term:get({ejabberd_auth_cloud, <<"localhost">>}), <<"u0">>, <<"localhost">>), {maps:get(actions, S), maps:get(calls, S), maps:get(micros, S)}.' \
        | tr -d '{} ' | awk -F, '{ printf "%d changes, %d ejabberd calls, %.1f ms\n", $1, $2, $3 / 1000 }'
}
echo "shared roster of u0@localhost, group Big with $N members (ejabberd $(dpkg-query -W -f '${Version}' ejabberd), $(nproc) cores)"
echo "in the VM (command API):"
echo "  from scratch:  $(vm_sync)"
leave_one
echo "  one left:      $(vm_sync)"
echo "  unchanged:     $(vm_sync)"
restore
"$SANDBOX" stop "$VM" >/dev/null

# --- ejabberdctl -------------------------------------------------------------------
[ "$CTL" = 1 ] || exit 0
PT="$W/port"
printf 'loglevel: warning\n' > "$W/port.yml"
start_ejabberd "$PT" "$(free_port)" "$W/port.yml" >/dev/null || { echo "ejabberd did not start" >&2; exit 2; }
cat > "$W/ejabberdctl" <<SH
#!/bin/sh
echo x >> "$W/ctl.calls"
exec "$SANDBOX" ctl "$PT" "\$@"
SH
chmod 755 "$W/ejabberdctl"
ctl_sync() {
    local before after line
    touch "$W/ctl.calls"
    before=$(wc -l < "$W/ctl.calls")
    line=$("$BIN_DIR/cloudauth" -c /dev/null -u "$BACKEND_URL" --secret-file "$W/secret" --db "$W/xcauth.sqlite3" \
        --ejabberdctl "$W/ejabberdctl" -R u0 localhost 2>/dev/null | grep '^sync')
    after=$(wc -l < "$W/ctl.calls")
    echo "${line#sync: } ($(( after - before )) ejabberdctl calls)"
}
echo "through ejabberdctl (one process per change):"
echo "  from scratch:  $(ctl_sync)"
leave_one
echo "  one left:      $(ctl_sync)"
echo "  unchanged:     $(ctl_sync)"
