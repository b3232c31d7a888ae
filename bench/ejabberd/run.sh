#!/bin/bash
# In-VM benchmark: calls per second of ejabberd_auth:check_password inside a
# running ejabberd 23.01, from many processes at once, for JSXC tokens and
# for cloud passwords, on two vhosts of the same VM:
#   cloud.localhost  auth_method: cloud (ejabberd_auth_cloud + NIF)
#   ext.localhost    auth_method: external, cloudauth -t ejabberd, pool 2
# and the floors measured in the same run: a no-op NIF call and a no-op
# asynchronous NIF round trip (call, runtime task, message back).
# The bench module is loaded into the VM and started from a hidden node.
#
# usage: bench/ejabberd/run.sh [--procs N] [--seconds S] [--rounds R]
# Needs the release build (cargo build --release) and rebar3; run as root
# on a fresh machine to let test/lib/install-deps.sh install ejabberd.
set -u
cd "$(dirname "$0")/../.." || exit 2
PROCS=64 SECONDS_EACH=2 ROUNDS=3
while [ $# -gt 0 ]; do
    case $1 in
        --procs) PROCS=$2; shift 2 ;;
        --seconds) SECONDS_EACH=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        *) echo "usage: $0 [--procs N] [--seconds S] [--rounds R]" >&2; exit 2 ;;
    esac
done
test/lib/install-deps.sh || exit 2
. test/lib/common.sh
for b in cloudauth jsxc-test-backend; do
    [ -x "$BIN_DIR/$b" ] || { echo "missing $BIN_DIR/$b: cargo build --release" >&2; exit 2; }
done

SECRET="bench-secret-$RANDOM$RANDOM"
W=$(workdir bench-vm)
USERS=$(/usr/bin/python3 -c 'import json; print(json.dumps({"users": [{"uid": f"user{i}", "password": f"pw-{i}"} for i in range(100)]}))')
start_backend "$W" "$SECRET" "$USERS" || { echo "test backend did not start" >&2; exit 2; }
write_secret "$W/secret" "$SECRET"
E="$W/ejabberd"
erlang/install.sh "$E/ext" >/dev/null 2>"$W/install.log" || { cat "$W/install.log" >&2; exit 2; }
mkdir -p "$E/ebin"
erlc -o "$E/ebin" bench/ejabberd/cloudauth_bench.erl || exit 2

# Credentials: {User, Token, Password} per vhost (tokens name the domain).
{
    echo "#{"
    sep=""
    for h in cloud.localhost ext.localhost; do
        printf '%s<<"%s">> => [' "$sep" "$h"
        for i in $(seq 0 99); do
            t=$("$BIN_DIR/cloudauth" -c /dev/null -s "$SECRET" token "user$i" "$h" --ttl 1h)
            [ "$i" = 0 ] || printf ','
            printf '{<<"user%s">>, <<"%s">>, <<"pw-%s">>}' "$i" "$t" "$i"
        done
        printf ']'
        sep=", "
    done
    echo "}."
} > "$W/creds.eterm"

PORT=$(free_port)
cat > "$W/extra.yml" <<YML
hosts:
  - cloud.localhost
  - ext.localhost
loglevel: warning
auth_method: cloud
auth_cloud_url: "$BACKEND_URL"
auth_cloud_secret_file: "$W/secret"
host_config:
  ext.localhost:
    auth_method: external
    extauth_program: "$BIN_DIR/cloudauth -c /dev/null -t ejabberd -u $BACKEND_URL --secret-file $W/secret -l $W/log"
    extauth_pool_size: 2
    auth_use_cache: false
YML
start_ejabberd "$E" "$PORT" "$W/extra.yml" >/dev/null || { echo "ejabberd did not start" >&2; exit 2; }

SCENARIOS="[noop_nif, noop_nif_async, module_token, cloud_token, ext_token, cloud_password, ext_password]"
echo "in-VM check_password benchmark: $PROCS processes, ${SECONDS_EACH} s per scenario, median of $ROUNDS rounds"
echo "ejabberd $(dpkg-query -W -f '${Version}' ejabberd 2>/dev/null), $(nproc) cores; scenarios interleaved in each round"
out=$("$SANDBOX" eval "$E" "{ok, [Creds]} = file:consult(\"$W/creds.eterm\"), maps:to_list(cloudauth_bench:run(#{cloud_host => <<\"cloud.localhost\">>, ext_host => <<\"ext.localhost\">>, creds => Creds, procs => $PROCS, seconds => $SECONDS_EACH, rounds => $ROUNDS, scenarios => $SCENARIOS}))." 2>&1) \
    || { echo "benchmark failed: $out" >&2; exit 1; }
rate() { echo "$out" | tr -d ' \n' | grep -o "{$1,[0-9.e+]*}" | sed 's/.*,\(.*\)}/\1/' | awk '{ printf "%.0f", $1 }'; }
declare -A R
for s in noop_nif noop_nif_async module_token cloud_token ext_token cloud_password ext_password; do
    R[$s]=$(rate "$s")
    [ -n "${R[$s]}" ] || { echo "no result for $s in: $out" >&2; exit 1; }
    printf '  %-16s %12s calls/s\n' "$s" "${R[$s]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
r_async=$(ratio "${R[cloud_token]}" "${R[noop_nif_async]}")
r_sync=$(ratio "${R[cloud_token]}" "${R[noop_nif]}")
r_module=$(ratio "${R[module_token]}" "${R[noop_nif]}")
r_wrapper=$(ratio "${R[cloud_token]}" "${R[module_token]}")
r_ext=$(ratio "${R[cloud_token]}" "${R[ext_token]}")
r_pw=$(ratio "${R[cloud_password]}" "${R[ext_password]}")
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t ? "met" : "MISSED") }'; }
echo "cloud token / no-op async NIF round trip: $r_async (target >= 0.5: $(verdict "$r_async" 0.5))"
echo "cloud token / no-op NIF call:             $r_sync"
echo "  the module's callback alone / no-op NIF call: $r_module; ejabberd_auth:check_password / the callback alone: $r_wrapper"
echo "cloud token / extauth token:              $r_ext (target >= 5: $(verdict "$r_ext" 5))"
echo "cloud password / extauth password:        $r_pw"
echo "RESULT {\"procs\":$PROCS,\"noop_nif\":${R[noop_nif]},\"noop_nif_async\":${R[noop_nif_async]},\"module_token\":${R[module_token]},\"cloud_token\":${R[cloud_token]},\"ext_token\":${R[ext_token]},\"cloud_password\":${R[cloud_password]},\"ext_password\":${R[ext_password]},\"token_vs_async_floor\":$r_async,\"token_vs_extauth\":$r_ext,\"password_vs_extauth\":$r_pw}"
