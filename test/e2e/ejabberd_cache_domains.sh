#!/bin/bash
# End to end: a real ejabberd 23.01 (auth_method: external, pool of 2,
# auth_use_cache: false) runs cloudauth on an xcauth state database used in
# place, with several XMPP domains served by different clouds.
#
#   backend A (secret A): a.example (row in the db's `domains` table) and
#                         c.example (line in --per-domain-config, auth domain a.example)
#   backend B (secret B): b.example (row in the `domains` table)
#   backend G (secret G): the global -u/--secret-file; d.example has no own settings
#   e.example: its own cloudauth (ejabberd host_config) without global settings
#
# 1. Warm cache, cloud down: the `authcache` table (shared by the pool) admits a
#    known password while the cloud is unreachable, and nothing else.
# 2. The database is created beforehand with xcauth's schema and an xcauth-made
#    cache row (bcrypt hash made outside cloudauth): that user gets in while the
#    cloud is down; xcauth's own sqlite3 settings still read every row afterwards.
# 3. Each domain is checked against its own backend with its own secret, tokens
#    only with the domain's secret, the auth domain is what the cloud is sent,
#    a domain without settings falls back to the global ones (or is refused).
# 4. Editing the `domains` table while cloudauth runs takes effect at once.
#
# --cache-query-ttl 0: no ordinary cache hits, every password goes to the cloud
# (deterministic backend counts); the cache only answers while the cloud is down.
set -u
. "$(dirname "$0")/../lib/common.sh"

PY=/usr/bin/python3
TIMEOUT=2
SA="e2e-A-$$-$RANDOM"
SB="e2e-B-$$-$RANDOM"
SG="e2e-G-$$-$RANDOM"
W=$(workdir cachedom)
DB="$W/xcauth.sqlite3"
mkdir -p "$W/A" "$W/B" "$W/G" "$W/log" "$W/log-e"

start_backend "$W/A" "$SA" '{"users": [
  {"uid": "alice", "password": "alice-pw"},
  {"uid": "bob", "password": "bob-pw"},
  {"uid": "sam", "password": "sam-a"},
  {"uid": "dave@a.example", "password": "dave-pw"}
]}' || die_setup "backend A did not start"
URL_A=$BACKEND_URL CTRL_A=$BACKEND_CONTROL
start_backend "$W/B" "$SB" '{"users": [
  {"uid": "sam", "password": "sam-b"},
  {"uid": "bert", "password": "bert-pw"}
]}' || die_setup "backend B did not start"
URL_B=$BACKEND_URL CTRL_B=$BACKEND_CONTROL
start_backend "$W/G" "$SG" '{"users": [
  {"uid": "erin", "password": "erin-pw"}
]}' || die_setup "backend G did not start"
URL_G=$BACKEND_URL CTRL_G=$BACKEND_CONTROL
write_secret "$W/secret.g" "$SG"

# --- carol's password hash, made the way xcauth makes it (bcrypt $2b$), not by cloudauth
read -r CAROL_HASH HASHED_BY < <($PY - carol-pw <<'PY'
import sys, warnings
pw = sys.argv[1]
try:
    import bcrypt  # what xcauth itself uses (python3-bcrypt)
    print(bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=6, prefix=b"2b")).decode(), "python3-bcrypt")
    sys.exit(0)
except ImportError:
    pass
try:
    warnings.simplefilter("ignore")
    import crypt  # libxcrypt's bcrypt (Python <= 3.12)
    h = crypt.crypt(pw, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=64))
    if h and h.startswith("$2b$"):
        print(h, "libxcrypt-via-python-crypt")
        sys.exit(0)
except ImportError:
    pass
import os, subprocess
alpha = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
salt = "".join(alpha[b % 64] for b in os.urandom(21)) + "."
h = subprocess.run(["perl", "-e", "print crypt($ARGV[0], $ARGV[1])", pw, "$2b$06$" + salt],
                   capture_output=True, text=True).stdout
print(h, "libxcrypt-via-perl-crypt")
PY
)
case "$CAROL_HASH" in
    '$2b$'*) ok "carol's hash made outside cloudauth ($HASHED_BY)" ;;
    *) die_setup "could not make a bcrypt hash (python3-bcrypt, crypt, perl): '$CAROL_HASH'" ;;
esac

# --- the xcauth state database, before any cloudauth runs (schema as xcauth creates it)
$PY - "$DB" "$SA" "$URL_A" "$SB" "$URL_B" "$CAROL_HASH" <<'PY' || die_setup "cannot create the xcauth database"
import datetime, sqlite3, sys
db, sa, ua, sb, ub, carol_hash = sys.argv[1:]
c = sqlite3.connect(db, isolation_level=None)
c.execute('''CREATE TABLE domains
         (xmppdomain TEXT PRIMARY KEY,
          authsecret TEXT,
          authurl    TEXT,
          authdomain TEXT,
          regcontact TEXT,
          regfirst   TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
          reglatest  TIMESTAMP DEFAULT CURRENT_TIMESTAMP)''')
c.execute('''CREATE TABLE authcache
           (jid        TEXT PRIMARY KEY,
            pwhash     TEXT,
            firstauth  TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
            remoteauth TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
            anyauth    TIMESTAMP DEFAULT CURRENT_TIMESTAMP)''')
c.execute('''CREATE TABLE rosterinfo
              (jid          TEXT PRIMARY KEY,
               fullname     TEXT,
               grouplist    TEXT,
               responsehash TEXT,
               last_update  TIMESTAMP DEFAULT CURRENT_TIMESTAMP)''')
c.execute('CREATE TABLE rostergroups (groupname TEXT PRIMARY KEY, userlist TEXT)')
c.execute('INSERT INTO domains (xmppdomain, authsecret, authurl, authdomain, regcontact) VALUES (?, ?, ?, ?, ?)',
          ('a.example', sa, ua, 'a.example', 'admin@a.example'))
c.execute('INSERT INTO domains (xmppdomain, authsecret, authurl, authdomain, regcontact) VALUES (?, ?, ?, ?, ?)',
          ('b.example', sb, ub, None, 'admin@b.example'))
# xcauth writes datetime.utcnow() through Python's adapter: 'YYYY-MM-DD HH:MM:SS.ffffff'
now = datetime.datetime.utcnow()
ts = lambda d: d.isoformat(" ")
c.execute('INSERT INTO authcache (jid, pwhash, firstauth, remoteauth, anyauth) VALUES (?, ?, ?, ?, ?)',
          ('carol@a.example', carol_hash, ts(now - datetime.timedelta(days=30)),
           ts(now - datetime.timedelta(minutes=4, microseconds=123456)),
           ts(now - datetime.timedelta(minutes=3, microseconds=654321))))
c.close()
PY
db_row() { # db_row JID COLUMN -> the value in the authcache table
    $PY - "$DB" "$1" "$2" <<'PY'
import sqlite3, sys
db, jid, col = sys.argv[1:]
c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
r = c.execute("SELECT %s FROM authcache WHERE jid = ?" % col, (jid,)).fetchone()
print(r[0] if r and r[0] is not None else "")
PY
}

# c.example: from the file (auth domain a.example); a.example also has a line
# here, pointing at B, which the database row must override.
cat > "$W/domains.conf" <<EOF
# domain secret url [authdomain]
c.example $SA $URL_A a.example
a.example $SB $URL_B
EOF
chmod 600 "$W/domains.conf"

PORT=$(free_port)
CA="$BIN_DIR/cloudauth -c /dev/null -t ejabberd --timeout $TIMEOUT"
cat > "$W/extra.yml" <<YML
hosts:
  - "a.example"
  - "b.example"
  - "c.example"
  - "d.example"
  - "e.example"
auth_method: external
extauth_program: "$CA --db $DB --cache-storage db --cache-query-ttl 0 --cache-bcrypt-rounds 6,4 -p $W/domains.conf -u $URL_G --secret-file $W/secret.g -l $W/log"
extauth_pool_size: 2
extauth_pool_name: "cloud"
auth_use_cache: false
host_config:
  "e.example":
    extauth_pool_name: "noglobal"
    extauth_program: "$CA --db $DB --cache-storage none -l $W/log-e"
YML
start_ejabberd "$W/ejabberd" "$PORT" "$W/extra.yml" || die_setup "ejabberd did not start"

cnt() { BACKEND_CONTROL=$1 backend_count "${2:-auth}"; }
# try NAME JID PASSWORD RC ASKED: log in; ASKED = which backends got the auth request (A, B, G, AB.., none)
try() {
    local name=$1 jid=$2 pw=$3 want=$4 asked=$5 a b g rc got=""
    a=$(cnt "$CTRL_A"); b=$(cnt "$CTRL_B"); g=$(cnt "$CTRL_G")
    login "$jid" "$pw" "$PORT"
    rc=$?
    [ "$(cnt "$CTRL_A")" != "$a" ] && got+=A
    [ "$(cnt "$CTRL_B")" != "$b" ] && got+=B
    [ "$(cnt "$CTRL_G")" != "$g" ] && got+=G
    expect "$name" "rc=$want asked=$asked" "rc=$rc asked=${got:-none}"
}
T_ALICE=$(mint alice a.example "$SA" --ttl 1h)

echo "# 1. warm cache, cloud down"
try "alice@a.example by password, cloud up" alice@a.example alice-pw 0 A
h=$(db_row alice@a.example pwhash)
case "$h" in
    '$2b$'*|'$2y$'*) ok "authcache row of alice@a.example holds a bcrypt hash (${h:0:7}...)" ;;
    *) not_ok "authcache row of alice@a.example: expected a bcrypt hash, got '$h'" ;;
esac
case "$h" in *alice-pw*) not_ok "authcache holds alice's password" ;; esac
BACKEND_CONTROL=$CTRL_A fault down
try "cloud down: alice by password (cache)" alice@a.example alice-pw 0 none
try "cloud down: alice with a wrong password" alice@a.example wrong-pw 1 none
try "cloud down: bob (in the cloud, never cached)" bob@a.example bob-pw 1 none
try "cloud down: alice by token" alice@a.example "$T_ALICE" 0 none

echo "# 2. xcauth's own database and cache row"
try "cloud down: carol by password (xcauth cache row)" carol@a.example carol-pw 0 none
try "cloud down: carol with a wrong password" carol@a.example alice-pw 1 none
BACKEND_CONTROL=$CTRL_A fault ok
try "cloud back: bob by password" bob@a.example bob-pw 0 A
expect "carol's xcauth hash kept as it was" "$CAROL_HASH" "$(db_row carol@a.example pwhash)"
$PY - "$DB" <<'PY'
import sqlite3, sys
# xcauth opens the database with detect_types=PARSE_DECLTYPES: every TIMESTAMP
# column, including the ones cloudauth wrote, must convert to a datetime.
c = sqlite3.connect(sys.argv[1], detect_types=sqlite3.PARSE_DECLTYPES)
rows = c.execute("SELECT jid, firstauth, remoteauth, anyauth FROM authcache").fetchall()
bad = [r for r in rows if not all(hasattr(t, "year") for t in r[1:])]
if bad or len(rows) < 2:
    print("# authcache rows: %r" % rows)
    sys.exit(1)
PY
[ $? = 0 ] && ok "xcauth's sqlite3 settings read every authcache row back" || not_ok "authcache rows not readable the xcauth way"

echo "# 3. two domains, two clouds, two secrets"
try "sam@a.example with A's password (db row beats the file line)" sam@a.example sam-a 0 A
try "sam@b.example with B's password" sam@b.example sam-b 0 B
try "sam@a.example with B's password" sam@a.example sam-b 1 A
try "sam@b.example with A's password" sam@b.example sam-a 1 B
try "bert@b.example (only in B)" bert@b.example bert-pw 0 B
try "bert@a.example (only in B)" bert@a.example bert-pw 1 A
T_A_SAM_A=$(mint sam a.example "$SA" --ttl 1h)
T_A_SAM_B=$(mint sam b.example "$SA" --ttl 1h)
T_B_SAM_B=$(mint sam b.example "$SB" --ttl 1h)
try "token (secret A) for sam@a.example on a.example" sam@a.example "$T_A_SAM_A" 0 none
# A token of another secret is no token there: it goes to the cloud as a password
# (as in xcauth), so the domain's own cloud is asked, and refuses it.
try "same token on b.example (B asked, refused)" sam@b.example "$T_A_SAM_A" 1 B
try "token (secret A) for sam@b.example on b.example (B asked, refused)" sam@b.example "$T_A_SAM_B" 1 B
try "token (secret B) for sam@b.example on b.example" sam@b.example "$T_B_SAM_B" 0 none
try "dave@c.example: auth domain a.example sent to A" dave@c.example dave-pw 0 A
try "token (secret A) for dave@c.example" dave@c.example "$(mint dave c.example "$SA" --ttl 1h)" 0 none
try "erin@d.example: no own settings, global cloud G" erin@d.example erin-pw 0 G
try "token (global secret) for erin@d.example" erin@d.example "$(mint erin d.example "$SG" --ttl 1h)" 0 none
try "erin@e.example: no settings, no global ones" erin@e.example erin-pw 1 none

echo "# 4. editing the domains table while cloudauth runs"
t0=$(now_ms)
$PY - "$DB" "$SA" "$URL_A" <<'PY' || not_ok "cannot update the domains table"
import sqlite3, sys
db, sa, ua = sys.argv[1:]
c = sqlite3.connect(db, isolation_level=None, timeout=5)
c.execute("UPDATE domains SET authsecret = ?, authurl = ? WHERE xmppdomain = 'b.example'", (sa, ua))
c.close()
PY
rc=1
while [ $(( $(now_ms) - t0 )) -lt 8000 ]; do
    login sam@b.example "$T_A_SAM_B" "$PORT" && { rc=0; break; }
    sleep 0.2
done
took=$(( $(now_ms) - t0 ))
expect "b.example accepts secret A's token after the edit" 0 "$rc" "after ${took} ms"
# Each process re-checks at most once a second: after 1.1 s every one has seen the edit.
left=$(( 1100 - took ))
[ "$left" -gt 0 ] && sleep "$(( left / 1000 )).$(printf '%03d' $(( left % 1000 )))"
try "b.example now: secret B's token refused (A asked)" sam@b.example "$T_B_SAM_B" 1 A
try "b.example now: sam with A's password" sam@b.example sam-a 0 A
try "b.example now: sam with B's password" sam@b.example sam-b 1 A
try "b.example now: bert (only in B)" bert@b.example bert-pw 1 A
try "a.example unchanged" sam@a.example sam-a 0 A

for b in A B G; do
    c=CTRL_$b
    expect "backend $b saw no bad signature" 0 "$(cnt "${!c}" bad_signature)"
done

"$SANDBOX" status "$W/ejabberd" >/dev/null 2>&1; expect "ejabberd still running" 0 $?
"$SANDBOX" stop "$W/ejabberd" >/dev/null 2>&1   # flushes the logs
LOG="$W/log/cloudauth.log"
has() { grep -qF -- "$2" "$1" && ok "log: $2" || not_ok "log lacks: $2"; }
has "$LOG" "auth alice@a.example: yes via backend"
has "$LOG" "auth alice@a.example: yes via cache (cloud unreachable)"
has "$LOG" "auth carol@a.example: yes via cache (cloud unreachable)"
has "$LOG" "auth alice@a.example: yes via token"
has "$LOG" "auth dave@c.example: yes via backend"
has "$LOG" "per-domain settings reloaded"
has "$W/log-e/cloudauth.log" "auth erin@e.example: no via precheck (domain not served)"
leaked=""
for s in alice-pw bob-pw carol-pw sam-a sam-b bert-pw dave-pw erin-pw wrong-pw "$SA" "$SB" "$SG" \
    "$T_ALICE" "$T_A_SAM_A" "$T_A_SAM_B" "$T_B_SAM_B" "$CAROL_HASH"; do
    grep -qF -- "$s" "$LOG" "$W/log-e/cloudauth.log" && leaked="$leaked $s"
done
[ -z "$leaked" ] && ok "no password, token, secret or hash in the logs" || not_ok "logs leak:$leaked"
finish
