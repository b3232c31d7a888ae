#!/bin/bash
# End to end: known users in the VM (ejabberd 23.01, auth_method: cloud,
# auth_cloud_cache_storage: memory, mod_offline). bob logs in by password
# (now known); with the cloud down alice (token) sends him a message and a
# subscription request: stored and delivered at his next login; 20 messages
# to him with the cloud up cost at most one isuser request;
# `ejabberdctl cloud_auth_forget bob localhost` closes his session and the
# next message to him asks the cloud again. With auth_cloud_cache_revalidate
# 2 s a password changed in the cloud stops working, the new one works at once.
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
D=localhost
W=$(workdir cloud-known)
start_backend "$W" "$SECRET" "$STANDARD_USERS" || die_setup "test backend did not start"
write_secret "$W/secret" "$SECRET"
E="$W/ejabberd"
"$ROOT/erlang/install.sh" "$E/ext" >/dev/null 2>"$W/install.log" \
    || { cat "$W/install.log"; die_setup "erlang/install.sh failed"; }
PORT=$(free_port)
cat > "$W/extra.yml" <<YML
auth_method: cloud
auth_cloud_url: "$BACKEND_URL"
auth_cloud_secret_file: "$W/secret"
auth_cloud_timeout: 3
auth_cloud_cache_storage: memory
auth_cloud_cache_revalidate: 2
auth_use_cache: false
modules:
  mod_disco: {}
  mod_roster: {}
  mod_offline: {}
YML
start_ejabberd "$E" "$PORT" "$W/extra.yml" || die_setup "ejabberd did not start"
ev() { "$SANDBOX" eval "$E" "$1"; }
ALICE=$(mint alice $D "$SECRET" --ttl 1h)
BOB=$(mint bob $D "$SECRET" --ttl 1h)

login "bob@$D" bob-pw "$PORT"; expect "bob logs in by password (now a known user)" 0 $?
fault down || die_setup "fault down"
expect "cloud down: user_exists of the known bob" "{nocache,true}" \
    "$(ev 'ejabberd_auth_cloud:user_exists(<<"bob">>, <<"localhost">>).')"
known_offline_cases "$PORT"

# forget: bob online (a token session held for 8 s), then forgotten.
probe "bob@$D" "$BOB" "$PORT" --collect 8 > "$W/online.out" 2>&1 & held=$!
wait_until 5 sh -c "'$SANDBOX' eval '$E' 'length(ejabberd_sm:get_user_resources(<<\"bob\">>, <<\"localhost\">>)).' | grep -qx 1" ||
    not_ok "bob's session did not come up"
"$SANDBOX" ctl "$E" cloud_auth_forget bob $D > "$W/forget.out" 2>&1
expect "ejabberdctl cloud_auth_forget exits 0" 0 $?
grep -q "bob@$D: cached password, known-user entry and roster digest dropped; 1 session(s) closed" "$W/forget.out" &&
    ok "cloud_auth_forget says it closed bob's session" || not_ok "cloud_auth_forget said: $(cat "$W/forget.out")"
expect "bob has no session left" 0 "$(ev 'length(ejabberd_sm:get_user_resources(<<"bob">>, <<"localhost">>)).')"
wait $held
fault down
expect "forgotten and the cloud down: user_exists cannot tell" "{nocache,{error,db_failure}}" \
    "$(ev 'ejabberd_auth_cloud:user_exists(<<"bob">>, <<"localhost">>).')"
fault ok
before=$(backend_count isuser)
expect "after forget, user_exists asks the cloud" "{nocache,true}" \
    "$(ev 'ejabberd_auth_cloud:user_exists(<<"bob">>, <<"localhost">>).')"
expect "... one isuser request" $((before + 1)) "$(backend_count isuser)"
login "bob@$D" bob-pw "$PORT"; expect "bob's password cached again" 0 $?
sed -i 's/"bob-pw"/"bob-new"/' "$W/users.json"
curl -sf -X POST "$BACKEND_CONTROL/reload" > /dev/null || die_setup "reload"
sleep 3
login "bob@$D" bob-pw "$PORT"; expect "changed in the cloud: the old password still answers from the cache at once" 0 $?
wait_until 10 sh -c "! /usr/bin/python3 '$E2E_LIB/xmpp_login.py' 'bob@$D' bob-pw $PORT" &&
    ok "the old password stops working after auth_cloud_cache_revalidate" ||
    not_ok "the old password still works 10 s after auth_cloud_cache_revalidate"
login "bob@$D" bob-new "$PORT"; expect "the new password works at once" 0 $?
"$SANDBOX" status "$E" >/dev/null 2>&1; expect "ejabberd still running" 0 $?
finish
