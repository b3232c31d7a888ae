#!/bin/bash
# End to end: port mode for more than one ejabberd node. Each node (here two
# real ejabberd 23.01 on one machine) runs `cloudauth-connect` as its
# extauth program (pool of 2) towards the socket-mode cloudauth of its own
# host; the two cloudauth processes share one state database (--db):
#   - a password confirmed through node 1 admits the user through node 2
#     while the cloud is down (the db cache is shared);
#   - a TOTP token used through node 1 is refused through node 2;
#   - restarting one cloudauth loses nothing committed.
# Sharing a SQLite file needs one machine (or one cloudauth for all nodes,
# reached over TCP): see docs/admin/cluster.md.
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
D=localhost
W=$(workdir cluster-port)
start_backend "$W" "$SECRET" "$STANDARD_USERS" || die_setup "test backend did not start"
write_secret "$W/secret" "$SECRET"
write_totp_files "$W"
mkdir -p "$W/log-a" "$W/log-b"
DB=$W/xcauth.sqlite3
TOKENS=(--tokens totp,jsxc --totp-seed-file "$W/totp-seed" --totp-secret-file "$W/totp-secret")


declare -A CA_PID=()
# start_cloudauth NAME: the host's socket-mode cloudauth on $W/NAME.sock
start_cloudauth() {
    local name=$1 sock=$W/$1.sock i
    rm -f "$sock"
    "$BIN_DIR/cloudauth" -c /dev/null -u "$BACKEND_URL" --secret-file "$W/secret" "${TOKENS[@]}" \
        --db "$DB" --cache-storage db --cache-bcrypt-rounds 4 -l "$W/log-$name" --timeout 3 \
        --listen "ejabberd=$sock" 2>> "$W/$name.stderr" &
    CA_PID[$name]=$!
    on_exit "kill ${CA_PID[$name]} 2>/dev/null"
    for ((i = 0; i < 100; i++)); do
        [ -S "$sock" ] && return 0
        sleep 0.1
    done
    return 1
}
stop_cloudauth() {
    kill -TERM "${CA_PID[$1]}" 2>/dev/null
    wait "${CA_PID[$1]}" 2>/dev/null
}
start_cloudauth a || die_setup "cloudauth a did not listen"
start_cloudauth b || die_setup "cloudauth b did not listen"

# node_yml NAME -> the node's extauth settings
node_yml() {
    cat > "$W/$1.yml" <<YML
auth_method: external
extauth_program: "$BIN_DIR/cloudauth-connect $W/$1.sock"
extauth_pool_size: 2
auth_use_cache: false
YML
}
node_yml a
node_yml b
PORT1=$(free_port)
start_ejabberd "$W/node1" "$PORT1" "$W/a.yml" || die_setup "ejabberd node 1 did not start"
PORT2=$(free_port)
start_ejabberd "$W/node2" "$PORT2" "$W/b.yml" || die_setup "ejabberd node 2 did not start"

login "alice@$D" alice-pw "$PORT1"; expect "node 1: alice by password (cloud up)" 0 $?
login "alice@$D" wrong-pw "$PORT2"; expect "node 2: alice with a wrong password" 1 $?

fault down || die_setup "fault down"
login "alice@$D" alice-pw "$PORT2"
expect "cloud down: node 2 admits alice, confirmed through node 1 (shared db cache)" 0 $?
login "alice@$D" wrong-pw "$PORT2"; expect "cloud down: node 2 refuses alice's wrong password" 1 $?
login "bob@$D" bob-pw "$PORT2"; expect "cloud down: node 2 refuses bob (never confirmed)" 1 $?
t=$(totp_token "$W" alice "$D")
login "alice@$D" "$t" "$PORT1"; expect "cloud down: node 1 admits alice's TOTP token" 0 $?
login "alice@$D" "$t" "$PORT2"; expect "node 2 refuses the same TOTP token (shared replay state)" 1 $?
login "alice@$D" "$t" "$PORT1"; expect "node 1 refuses it again too" 1 $?

# Restart host b's cloudauth: what it learnt is in the database.
stop_cloudauth b
start_cloudauth b || die_setup "cloudauth b did not listen again"
login "alice@$D" alice-pw "$PORT2"; expect "after restarting cloudauth b: cloud down, alice by password" 0 $?
login "alice@$D" "$t" "$PORT2"; expect "after restarting cloudauth b: the used TOTP token is still refused" 1 $?
fault ok || die_setup "fault ok"
login "bob@$D" bob-pw "$PORT2"; expect "cloud back: node 2 admits bob" 0 $?
fault down || die_setup "fault down"
login "bob@$D" bob-pw "$PORT1"; expect "cloud down again: node 1 admits bob, confirmed through node 2" 0 $?
fault ok

grep -q "yes via" "$W/log-a/cloudauth.log" && grep -q "yes via" "$W/log-b/cloudauth.log" \
    && ok "each host's cloudauth logged its own decisions" \
    || not_ok "decisions missing from a host's log"
leaked=""
for s in alice-pw bob-pw wrong-pw "$SECRET" "$t"; do
    grep -rqF -- "$s" "$W/log-a" "$W/log-b" && leaked=yes
done
[ -z "$leaked" ] && ok "no password, token or secret in either log" \
    || not_ok "a password, token or secret is in a log"
finish
