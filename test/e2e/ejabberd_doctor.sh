#!/bin/bash
# End to end: `ejabberdctl cloud_auth_doctor HOST` in a real ejabberd 23.01
# with auth_method: cloud (the module and its NIF installed by
# erlang/install.sh): a good host passes every check (exit 0); a host with
# the wrong secret, one whose secret file others can read, and one that does
# not use cloud authentication each get their own ✗ line (exit 1).
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
W=$(workdir doctor)
start_backend "$W" "$SECRET" "$STANDARD_USERS" || die_setup "test backend did not start"
write_secret "$W/secret" "$SECRET"
write_secret "$W/wrong-secret" "not-the-secret"
cp "$W/secret" "$W/open-secret" && chmod 644 "$W/open-secret"
E="$W/ejabberd"
"$ROOT/erlang/install.sh" "$E/ext" >/dev/null 2>"$W/install.log" \
    || { cat "$W/install.log"; die_setup "erlang/install.sh failed"; }

PORT=$(free_port)
cat > "$W/extra.yml" <<YML
hosts:
  - localhost
  - wrong.localhost
  - open.localhost
  - internal.localhost
auth_method: cloud
auth_cloud_url: "$BACKEND_URL"
auth_cloud_secret_file: "$W/secret"
auth_cloud_timeout: 3
host_config:
  wrong.localhost:
    auth_cloud_secret_file: "$W/wrong-secret"
  open.localhost:
    auth_cloud_secret_file: "$W/open-secret"
  internal.localhost:
    auth_method: internal
YML
start_ejabberd "$E" "$PORT" "$W/extra.yml" || die_setup "ejabberd did not start"

# doctor HOST -> sets OUT (the printed lines) and RC (ejabberdctl's exit status)
doctor() {
    OUT=$("$SANDBOX" ctl "$E" cloud_auth_doctor "$1" 2>&1)
    RC=$?
}
fails() { grep -c '^✗' <<<"$OUT"; }
has() { grep -qF -- "$1" <<<"$OUT"; }

doctor localhost
sed 's/^/#   /' <<<"$OUT"
expect "localhost: all checks pass -> exit 0" 0 "$RC" "$(fails) ✗"
for line in "✓ auth_method: cloud" "✓ NIF: loaded from" "✓ set-up:" "✓ options: backend jsxc, url $BACKEND_URL" \
            "✓ auth_cloud_secret_file: $W/secret" "✓ TCP:" "✓ JSXC API: answers at" "✓ signature: accepted" \
            "✓ clock: within" "✓ token jsxc:" "checks passed"; do
    has "$line" && ok "localhost: $line" || not_ok "localhost: no \"$line\" in: $OUT"
done
has "$SECRET" && not_ok "the secret in the output" || ok "no secret in the output"

doctor wrong.localhost
grep '^✗' <<<"$OUT" | sed 's/^/#   /'
expect "wrong.localhost: exit 1" 1 "$RC"
expect "wrong.localhost: one ✗ line" 1 "$(fails)"
has "✗ signature: wrong secret" && ok "wrong.localhost: the wrong secret named" || not_ok "wrong.localhost: $OUT"

doctor open.localhost
expect "open.localhost: exit 1" 1 "$RC"
expect "open.localhost: one ✗ line" 1 "$(fails)"
has "✗ auth_cloud_secret_file: $W/open-secret is readable by other users (mode 0644)" \
    && ok "open.localhost: the open secret file named" || not_ok "open.localhost: $OUT"

doctor internal.localhost
expect "internal.localhost: exit 1" 1 "$RC"
has "✗ auth_method:" && ok "internal.localhost: not using cloud authentication named" || not_ok "internal.localhost: $OUT"

"$SANDBOX" status "$E" >/dev/null 2>&1; expect "ejabberd still running" 0 $?
finish
