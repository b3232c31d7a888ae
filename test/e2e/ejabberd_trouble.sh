#!/bin/bash
# End to end: what ejabberd 23.01 (auth_method: external, mod_offline) does when
# cloudauth reports backend trouble, side by side for `--on-backend-trouble
# tempfail` and `--on-backend-trouble fail`, with ejabberd's auth cache off and on.
#
# Four throwaway ejabberds share one JSXC test backend, so all see the same cloud:
# per policy one with `auth_use_cache: false` ("tempfail", "fail") and one with
# `auth_use_cache: true`, `auth_cache_life_time: 600` ("tempfail-cache",
# "fail-cache"; ejabberd's default is on, 3600 s). Three phases: cloud up, cloud
# down, cloud up again.
#
# Cache off, in each phase, per policy: a sender logged in by JSXC token (needs
# no cloud) sends a chat message and a presence subscription to bob (exists in
# the cloud, offline) and to nobody (does not exist); then bob logs in by token
# (no cloud needed) and reports what was stored for him (offline messages,
# pending subscriptions); then bob tries a password login. Each phase uses its
# own sender (alice, carol, dave) so the stored items of one phase cannot be
# mistaken for another's.
#
# Cache on: nothing is sent to bob while the cloud is up. Cloud down: erin
# (token) sends bob a message and a subscription: bounced / dropped under both
# policies. Cloud back: frank (token) does the same. With `fail` ejabberd
# answers from its auth cache (isuser "no" during the outage was cached as
# not_found) and bounces again without asking cloudauth; with `tempfail`
# nothing was cached, ejabberd asks again and mod_offline stores the message.
# Then bob logs in (token) and collects; his successful login replaces the
# cached not_found, so a later message from frank is stored under both.
# Meanwhile grace tries a password login, down (refused) and back up (ok under
# both: ejabberd re-asks a refused password).
#
# Observed (see docs/backend-trouble.md): while the cloud is down both policies
# look the same to clients (login not-authorized; a message to an offline
# existing user bounces with cancel/service-unavailable exactly as for a user
# that does not exist; the subscription is dropped silently). With the cache
# off nothing is cached by ejabberd, and the difference is in ejabberd's log
# only: tempfail makes ejabberd log two [error] lines per failed request, fail
# makes it log none. With the cache on, `fail` goes on bouncing after the cloud
# is back; `tempfail` does not.
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
D=localhost
WAIT=2        # seconds the sender waits for error replies (local errors take ms)
COLLECT=1.5   # seconds bob waits for stored items after his initial presence
POLICIES="tempfail fail"                # auth_use_cache: false
CACHED="tempfail-cache fail-cache"      # auth_use_cache: true
W=$(workdir trouble)
start_backend "$W" "$SECRET" '{"users": [
  {"uid": "alice", "password": "alice-pw"},
  {"uid": "bob", "password": "bob-pw"},
  {"uid": "carol", "password": "carol-pw"},
  {"uid": "dave", "password": "dave-pw"},
  {"uid": "erin", "password": "erin-pw"},
  {"uid": "frank", "password": "frank-pw"},
  {"uid": "grace", "password": "grace-pw"}
]}' || die_setup "test backend did not start"
write_secret "$W/secret" "$SECRET"

declare -A PORT EJ PID_OF
pids=""
for srv in $POLICIES $CACHED; do
    pol=${srv%-cache}
    if [ "$srv" = "$pol" ]; then
        cache="auth_use_cache: false"
    else
        cache=$'auth_use_cache: true\nauth_cache_life_time: 600'
    fi
    mkdir -p "$W/$srv/log"
    PORT[$srv]=$(free_port)
    EJ[$srv]=$W/$srv/ejabberd
    cat > "$W/$srv/extra.yml" <<YML
auth_method: external
extauth_program: "$BIN_DIR/cloudauth -c /dev/null -t ejabberd -u $BACKEND_URL --secret-file $W/secret -l $W/$srv/log --timeout 3 --on-backend-trouble $pol"
extauth_pool_size: 2
$cache
modules:
  mod_admin_extra: {}
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_offline: {}
  mod_vcard: {}
YML
    on_exit "'$SANDBOX' stop '${EJ[$srv]}'"
    "$SANDBOX" start "${EJ[$srv]}" "${PORT[$srv]}" "$W/$srv/extra.yml" > "$W/$srv/start.out" 2>&1 &
    pids="$pids $!"
    PID_OF[$!]=$srv
done
# Four VMs picking random free ports at the same moment can, rarely, pick the
# same one: a start that failed is shown and tried once more, alone, on new ports.
for p in $pids; do
    wait "$p" && continue
    srv=${PID_OF[$p]}
    sed "s/^/# first start of $srv failed: /" "$W/$srv/start.out"
    "$SANDBOX" stop "${EJ[$srv]}" >/dev/null 2>&1
    rm -rf "${EJ[$srv]}"
    PORT[$srv]=$(free_port)
    "$SANDBOX" start "${EJ[$srv]}" "${PORT[$srv]}" "$W/$srv/extra.yml" > "$W/$srv/start.out" 2>&1 \
        || die_setup "ejabberd $srv did not start: $(cat "$W/$srv/start.out")"
done

declare -A TOKEN
for u in alice bob carol dave erin frank; do TOKEN[$u]=$(mint $u $D "$SECRET" --ttl 1h); done


# run_phase PHASE SENDER: both policies in parallel; results in $W/out/POLICY.PHASE.*
mkdir -p "$W/out"
run_one() {
    local pol=$1 ph=$2 snd=$3 port=${PORT[$1]} o=$W/out/$1.$2 a b
    probe "$snd@$D" "${TOKEN[$snd]}" "$port" --message "bob@$D" --subscribe "bob@$D" \
        --body "$ph-$pol" --wait $WAIT > "$o.bob" 2>&1 &
    a=$!
    probe "$snd@$D" "${TOKEN[$snd]}" "$port" --message "nobody@$D" --subscribe "nobody@$D" \
        --body "$ph-$pol" --wait $WAIT > "$o.nobody" 2>&1 &
    b=$!
    wait $a $b
    probe "bob@$D" "${TOKEN[bob]}" "$port" --collect $COLLECT > "$o.collect" 2>&1
    probe "bob@$D" bob-pw "$port" > "$o.login" 2>&1
    probe "bob@$D" wrong-pw "$port" > "$o.wrong" 2>&1
}
run_phase() {
    local ps="" pol
    for pol in $POLICIES; do run_one "$pol" "$1" "$2" & ps="$ps $!"; done
    wait $ps
}
has() { grep -qxF -- "$2" "$1"; }   # has FILE LINE

# check_phase PHASE SENDER UP(1|0)
check_phase() {
    local ph=$1 snd=$2 up=$3 pol o err
    for pol in $POLICIES; do
        o=$W/out/$pol.$ph
        if [ "$up" = 1 ]; then
            expect "$ph/$pol (a) bob password login" "login-ok" "$(joined "$o.login")"
            expect "$ph/$pol (b)(c) message+subscribe to offline bob: no error" \
                "login-ok|message-no-error|subscribe-no-error" "$(joined "$o.bob")"
            has "$o.collect" "received-message $snd@$D $ph-$pol" && has "$o.collect" "received-subscribe $snd@$D" \
                && ok "$ph/$pol (b)(c) bob got the message from mod_offline and the pending subscription" \
                || not_ok "$ph/$pol bob did not get $snd's message and subscription: $(joined "$o.collect")"
        else
            expect "$ph/$pol (a) bob password login refused" "login-failed not-authorized" "$(joined "$o.login")"
            expect "$ph/$pol (b) message to offline bob bounced like a non-user; (c) subscription: no error" \
                "login-ok|message-error cancel service-unavailable|subscribe-no-error" "$(joined "$o.bob")"
            if grep -q " $snd@$D" "$o.collect"; then
                not_ok "$ph/$pol something from $snd was stored for bob: $(joined "$o.collect")"
            else
                ok "$ph/$pol (b)(c) nothing stored for bob: message not in mod_offline, subscription dropped"
            fi
            has "$o.collect" "received-subscribe alice@$D" \
                && ok "$ph/$pol bob (token login while the cloud is down) still gets the subscription pending since up1" \
                || not_ok "$ph/$pol no pending subscription from alice: $(joined "$o.collect")"
        fi
        expect "$ph/$pol wrong password refused" "login-failed not-authorized" "$(joined "$o.wrong")"
        expect "$ph/$pol (b)(c) to a non-existent user: message bounced, subscription dropped silently" \
            "login-ok|message-error cancel service-unavailable|subscribe-no-error" "$(joined "$o.nobody")"
    done
}

# --- the cached pair (auth_use_cache: true) ---------------------------------------
# cache_send STEP SENDER [login]: SENDER sends bob a message and a subscription
# on both cached servers, in parallel -> $W/out/SERVER.STEP.bob; with "login",
# grace (never used otherwise) tries a password login meanwhile -> SERVER.STEP.login
cache_send() {
    local srv ps=""
    for srv in $CACHED; do
        probe "$2@$D" "${TOKEN[$2]}" "${PORT[$srv]}" --message "bob@$D" --subscribe "bob@$D" \
            --body "$1-$srv" --wait $WAIT > "$W/out/$srv.$1.bob" 2>&1 & ps="$ps $!"
        [ "${3:-}" = login ] || continue
        probe "grace@$D" grace-pw "${PORT[$srv]}" > "$W/out/$srv.$1.login" 2>&1 & ps="$ps $!"
    done
    wait $ps
}
# cache_collect STEP: bob (token) collects on both cached servers -> $W/out/SERVER.STEP.collect
cache_collect() {
    local srv ps=""
    for srv in $CACHED; do
        probe "bob@$D" "${TOKEN[bob]}" "${PORT[$srv]}" --collect $COLLECT > "$W/out/$srv.$1.collect" 2>&1 & ps="$ps $!"
    done
    wait $ps
}
# isuser requests for bob that a server's cloudauth answered so far (one log line each)
isuser_bob() { grep -c "isuser bob@$D: " "$W/$1/log/cloudauth.log"; }
declare -A N0 N1 N2 N3

# phase up1: cloud up (baseline). The cached servers get nothing: ejabberd has
# no cache entry for bob when the cloud goes down.
run_phase up1 alice
check_phase up1 alice 1
for srv in $CACHED; do
    expect "up1/$srv nothing asked about bob yet" 0 "$(isuser_bob "$srv")"
done

# phase down: cloud down (connection refused)
fault down || die_setup "fault down"
run_phase down carol & bg=$!
cache_send cdown erin login
wait $bg
check_phase down carol 0
for srv in $CACHED; do
    expect "down/$srv message to offline bob bounced, subscription: no error" \
        "login-ok|message-error cancel service-unavailable|subscribe-no-error" "$(joined "$W/out/$srv.cdown.bob")"
    expect "down/$srv grace password login refused" "login-failed not-authorized" "$(joined "$W/out/$srv.cdown.login")"
    N0[$srv]=$(isuser_bob "$srv")
done
# fail: "no" is cached as not_found by the first isuser, the subscription is
# answered from the cache; tempfail: nothing cached, ejabberd asks for both
expect "down/fail-cache ejabberd asked cloudauth once (the answer 'no' is cached)" 1 "${N0[fail-cache]}"
expect "down/tempfail-cache ejabberd asked cloudauth twice (nothing cached)" 2 "${N0[tempfail-cache]}"

# phase up2: cloud back
fault ok || die_setup "fault ok"
# cached pair first, alone (backend counter only counts their requests)
B0=$(backend_count isuser)
cache_send cup frank login
B1=$(backend_count isuser)
for srv in $CACHED; do N1[$srv]=$(isuser_bob "$srv"); done
expect "up2/fail-cache message to bob STILL bounced (ejabberd's cached not_found), subscription: no error" \
    "login-ok|message-error cancel service-unavailable|subscribe-no-error" "$(joined "$W/out/fail-cache.cup.bob")"
expect "up2/fail-cache ejabberd did not ask cloudauth about bob" 0 $(( ${N1[fail-cache]} - ${N0[fail-cache]} ))
expect "up2/tempfail-cache message+subscribe to offline bob: no error" \
    "login-ok|message-no-error|subscribe-no-error" "$(joined "$W/out/tempfail-cache.cup.bob")"
expect "up2/tempfail-cache ejabberd asked cloudauth once (the answer 'yes' is cached)" 1 \
    $(( ${N1[tempfail-cache]} - ${N0[tempfail-cache]} ))
expect "up2 backend: 1 isuser request from the two cached servers (tempfail's only)" 1 $(( B1 - B0 ))
for srv in $CACHED; do
    expect "up2/$srv grace password login (the refusal during the outage was not reused)" \
        "login-ok" "$(joined "$W/out/$srv.cup.login")"
done

# then, in parallel: the uncached pair's phase up2, and on the cached pair bob
# collects (token), frank sends again, bob collects again
(
    cache_collect cup
    for srv in $CACHED; do N2[$srv]=$(isuser_bob "$srv"); done
    cache_send cafter frank
    for srv in $CACHED; do N3[$srv]=$(isuser_bob "$srv"); done
    cache_collect cafter
    for srv in $CACHED; do echo "$srv ${N2[$srv]} ${N3[$srv]}"; done > "$W/out/cache.counts"
) & bg=$!
run_phase up2 dave
wait $bg
check_phase up2 dave 1
for pol in $POLICIES; do
    grep -q " carol@$D" "$W/out/$pol.up2.collect" \
        && not_ok "up2/$pol items from the down phase turned up: $(joined "$W/out/$pol.up2.collect")" \
        || ok "up2/$pol nothing from the down phase was stored late"
done
expect "up2/fail-cache bob's next login: nothing stored (neither erin's nor frank's message or subscription)" \
    "login-ok|received-none" "$(joined "$W/out/fail-cache.cup.collect")"
o=$W/out/tempfail-cache.cup.collect
has "$o" "received-message frank@$D cup-tempfail-cache" && has "$o" "received-subscribe frank@$D" \
    && ok "up2/tempfail-cache bob's next login: frank's message from mod_offline and his pending subscription" \
    || not_ok "up2/tempfail-cache bob did not get frank's message and subscription: $(joined "$o")"
grep -q " erin@$D" "$o" && not_ok "up2/tempfail-cache items from the down phase turned up: $(joined "$o")" \
    || ok "up2/tempfail-cache nothing from the down phase was stored late"
while read -r srv n2 n3; do
    expect "after/$srv message+subscribe to offline bob after his login: no error" \
        "login-ok|message-no-error|subscribe-no-error" "$(joined "$W/out/$srv.cafter.bob")"
    expect "after/$srv ejabberd did not ask cloudauth (bob's login replaced the cache entry)" "0" "$(( n3 - n2 ))"
    has "$W/out/$srv.cafter.collect" "received-message frank@$D cafter-$srv" \
        && has "$W/out/$srv.cafter.collect" "received-subscribe frank@$D" \
        && ok "after/$srv bob got frank's new message from mod_offline and the pending subscription" \
        || not_ok "after/$srv bob did not get frank's new message and subscription: $(joined "$W/out/$srv.cafter.collect")"
done < "$W/out/cache.counts"

# ejabberd alive, no extauth worker restarted, and what the logs say
for srv in $POLICIES $CACHED; do
    "$SANDBOX" status "${EJ[$srv]}" >/dev/null 2>&1; expect "$srv: ejabberd still running" 0 $?
    grep -q "terminated unexpectedly" "${EJ[$srv]}/log/ejabberd.log" && not_ok "$srv: an extauth worker died" \
        || ok "$srv: no extauth worker died"
    expect "$srv: the 2 cloudauth processes were never restarted" 2 \
        "$(grep -c "serving Ejabberd protocol on stdin/stdout" "$W/$srv/log/cloudauth.log")"
done
for pol in $POLICIES; do
    ELOG=${EJ[$pol]}/log/ejabberd.log
    CLOG=$W/$pol/log/cloudauth.log
    grep -q "isuser bob@$D: backend trouble" "$CLOG" && grep -q "auth bob@$D: backend trouble" "$CLOG" \
        && ok "$pol: cloudauth logged backend trouble for auth and isuser" \
        || not_ok "$pol: no backend trouble lines in $CLOG"
    grep -qF "Failed c2s PLAIN authentication for bob@$D from 127.0.0.1: Invalid username or password" "$ELOG" \
        && ok "$pol: ejabberd logs the refused login as 'Invalid username or password'" \
        || not_ok "$pol: no c2s failure line in $ELOG"
    n_unexp=$(grep -c "Received unexpected response from external authentication program" "$ELOG")
    n_auth=$(grep -cF "External authentication program failed when calling 'check_password' for bob@$D: unexpected_response" "$ELOG")
    n_isuser=$(grep -cF "External authentication program failed when calling 'user_exists' for bob@$D: unexpected_response" "$ELOG")
    if [ "$pol" = tempfail ]; then
        [ "$n_unexp" -ge 1 ] && [ "$n_auth" -ge 1 ] && [ "$n_isuser" -ge 1 ] \
            && ok "tempfail: ejabberd logs [error] unexpected response + failed when calling check_password/user_exists" \
            || not_ok "tempfail: expected error lines in $ELOG (unexpected=$n_unexp auth=$n_auth isuser=$n_isuser)"
        grep -qF "Received unexpected response from external authentication program '$BIN_DIR/cloudauth -c /dev/null -t ejabberd -u $BACKEND_URL --secret-file $W/secret" "$ELOG" \
            && ok "tempfail: that [error] line quotes the whole extauth_program command line (a --secret there would be logged)" \
            || not_ok "tempfail: the unexpected-response line does not quote the command line"
    else
        expect "fail: ejabberd logs no extauth error lines" "0 0 0" "$n_unexp $n_auth $n_isuser"
    fi
done
for srv in $CACHED; do
    ELOG=${EJ[$srv]}/log/ejabberd.log
    CLOG=$W/$srv/log/cloudauth.log
    grep -q "isuser bob@$D: backend trouble" "$CLOG" && grep -q "auth grace@$D: backend trouble" "$CLOG" \
        && ok "$srv: cloudauth logged backend trouble for auth and isuser" \
        || not_ok "$srv: no backend trouble lines in $CLOG"
    n_unexp=$(grep -c "Received unexpected response from external authentication program" "$ELOG")
    n_auth=$(grep -cF "External authentication program failed when calling 'check_password' for grace@$D: unexpected_response" "$ELOG")
    n_isuser=$(grep -cF "External authentication program failed when calling 'user_exists' for bob@$D: unexpected_response" "$ELOG")
    if [ "$srv" = tempfail-cache ]; then
        expect "$srv: ejabberd logs [error] unexpected response 3 times, failed when calling check_password once, user_exists twice" \
            "3 1 2" "$n_unexp $n_auth $n_isuser"
    else
        expect "$srv: ejabberd logs no extauth error lines" "0 0 0" "$n_unexp $n_auth $n_isuser"
    fi
done
finish
