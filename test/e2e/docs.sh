#!/bin/bash
# The documentation, checked:
#  - README.md stays an overview (at most 200 lines) and every section the
#    README had before the split (2026-12) is a heading of a page in docs/;
#  - every relative link in README.md, docs/, prosody/ and fuzz/ names a file
#    that exists and, with #anchor, a heading in it (GitHub's anchors);
#  - a newcomer's path: the Quick start's first command (./demo.sh) ends
#    with "demo OK", then the ejabberd.yml and the command line printed in
#    docs/admin/nextcloud.md, with only the URL and the file paths replaced,
#    run in a real ejabberd 23.01 (in the VM, then extauth) against the test
#    backend's Nextcloud OCS API, log alice in and find bob through the
#    service account.
set -u
. "$(dirname "$0")/../lib/common.sh"
W=$(workdir docs)

# --- pages and links --------------------------------------------------------------------
lines=$(wc -l < "$ROOT/README.md")
[ "$lines" -le 200 ] && ok "README.md is an overview: $lines lines (at most 200)" \
    || not_ok "README.md has $lines lines (at most 200)"
/usr/bin/python3 - "$ROOT" > "$W/links.out" 2>&1 <<'PY'
import os, re, sys
root = sys.argv[1]
def anchor(t):
    return re.sub(r'[^\w\- ]', '', t.strip().lower()).replace(' ', '-')
def headings(path):
    out, fence = set(), False
    for line in open(path, encoding='utf-8'):
        if line.startswith('```'):
            fence = not fence
        m = None if fence else re.match(r'^#{1,6} (.*)$', line.rstrip('\n'))
        if m:
            out.add(anchor(m.group(1)))
    return out
pages = [os.path.join(root, 'README.md')]
for d in ('docs', 'prosody', 'fuzz'):
    for dirpath, _, files in os.walk(os.path.join(root, d)):
        pages += [os.path.join(dirpath, f) for f in files if f.endswith('.md')]
bad = []
for page in pages:
    text = open(page, encoding='utf-8').read()
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    for url in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'^[a-z]+:', url):
            continue
        path, _, frag = url.partition('#')
        target = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        rel = os.path.relpath(page, root)
        if not os.path.exists(target):
            bad.append(f'{rel}: {url}: no such file')
        elif frag and (os.path.isdir(target) or frag not in headings(target)):
            bad.append(f'{rel}: {url}: no such heading')
print(f'{len(pages)} pages')
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
rc=$?
expect "every relative link in README.md, docs/, prosody/, fuzz/ resolves ($(head -n1 "$W/links.out"))" 0 "$rc" \
    "$(tail -n +2 "$W/links.out" | head -n 5 | tr '\n' ';')"
missing=""
while IFS= read -r h; do
    grep -rqxF -- "$h" "$ROOT/docs" || missing="$missing [$h]"
done <<'SECTIONS'
## Install from packages (Debian 12 and 13)
## Build from source
# Choose your backend
# ejabberd in the VM (`auth_method: cloud`)
# Running a cluster
# ejabberd with `extauth_program`
# Prosody
# Socket mode and systemd
# Command line
## Diagnose: `cloudauth doctor`
# Password cache and per-domain settings
# Shared roster from Nextcloud groups
# Migrating from xcauth
# Security notes
# Tests and benchmarks
## Tested versions
## Measured (2026-11-23, 2-core VM, ejabberd 23.01, release build)
# Login storms
## What is in the box
SECTIONS
expect "every section the README had is a page or a section in docs/" "" "$missing"

# --- a newcomer's path: docs/admin/nextcloud.md as printed --------------------------------
(cd "$ROOT" && ./demo.sh) > "$W/demo.out" 2>&1
rc=$?
grep -q "^== demo OK$" "$W/demo.out" && [ "$rc" = 0 ] && ok "the Quick start's ./demo.sh: demo OK (password, token, shared roster, the nextcloud backend)" \
    || not_ok "the Quick start's ./demo.sh (exit $rc): $(grep -E 'UNEXPECTED|FAILED|did not' "$W/demo.out" | head -n 3 | tr '\n' ';')"
PAGE="$ROOT/docs/admin/nextcloud.md"
USERS='{"users": [
  {"uid": "alice", "password": "alice-pw", "name": "Alice Liddell", "groups": ["staff"]},
  {"uid": "bob", "password": "bob-pw", "groups": ["staff"]},
  {"uid": "xmpp-svc", "password": "svc-app-pw", "admin": true}
]}'
start_backend "$W" "unused-$RANDOM" "$USERS" || die_setup "test backend did not start"
write_secret "$W/svc-pw" svc-app-pw
# block LANG: the first ```LANG block of the page, with the example URL and
# secret files replaced by the test's.
block() {
    awk -v lang="$1" '$0 == "```" lang { on = 1; next } on && $0 == "```" { exit } on' "$PAGE" \
        | sed -e "s#https://cloud.example.org#$BACKEND_ORIGIN#g" \
              -e "s#/etc/ejabberd/nextcloud-svc#$W/svc-pw#g" \
              -e "s#/etc/cloudauth/svc-app-password#$W/svc-pw#g"
}
yaml=$(block yaml)
cmd=$(block sh | sed -e ':a' -e '/\\$/N; s/\\\n *//; ta')
[ -n "$yaml" ] && [ -n "$cmd" ] || die_setup "docs/admin/nextcloud.md has no yaml or sh block"
"$ROOT/erlang/install.sh" "$W/vm/ext" >/dev/null 2>"$W/install.log" || { cat "$W/install.log"; die_setup "install.sh failed"; }
PORT=$(free_port)
printf 'hosts:\n  - example.org\n%s\n' "$yaml" > "$W/vm.yml"
start_ejabberd "$W/vm" "$PORT" "$W/vm.yml" || die_setup "ejabberd (vm, the page's ejabberd.yml) did not start"
login alice@example.org alice-pw "$PORT"; expect "vm, the page's ejabberd.yml: alice's Nextcloud password -> session" 0 $?
login alice@example.org wrong-pw "$PORT"; expect "vm, the page's ejabberd.yml: a wrong password -> refused" 1 $?
expect "vm, the page's ejabberd.yml: bob exists (the service account)" "{nocache,true}" \
    "$("$SANDBOX" eval "$W/vm" 'ejabberd_auth_cloud:user_exists(<<"bob">>, <<"example.org">>).' 2>&1)"
"$SANDBOX" stop "$W/vm" >/dev/null 2>&1
PORT=$(free_port)
mkdir -p "$W/log"
cat > "$W/extauth.yml" <<YML
hosts:
  - example.org
auth_method: external
extauth_program: "$BIN_DIR/cloudauth -c /dev/null -l $W/log ${cmd#cloudauth }"
auth_use_cache: false
YML
case "$cmd" in cloudauth\ -t\ ejabberd\ *) ok "the page's command line is a cloudauth -t ejabberd command" ;;
    *) not_ok "the page's command line: $cmd" ;; esac
start_ejabberd "$W/xa" "$PORT" "$W/extauth.yml" || die_setup "ejabberd (extauth, the page's command line) did not start"
login alice@example.org alice-pw "$PORT"; expect "extauth, the page's command line: alice's Nextcloud password -> session" 0 $?
"$BIN_DIR/cloudauth" -c /dev/null ${cmd#cloudauth -t ejabberd } -I bob example.org >/dev/null 2>&1
expect "the page's command line with -I: bob exists (the service account)" 0 $?
finish
