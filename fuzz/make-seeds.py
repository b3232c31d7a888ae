#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets into fuzz/seeds/<target>/ from
real inputs: the shared test vectors (../shared/vectors or $VECTORS), frames
and replies from the unit tests, the README's sample xcauth.conf.

Usage: fuzz/make-seeds.py [OUTDIR]   (default fuzz/seeds; the committed,
minimised corpora in fuzz/corpus/ started from these)."""

import hashlib
import json
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "seeds")
VECTORS = os.environ.get("VECTORS") or os.path.join(os.path.dirname(ROOT), "shared", "vectors")
SEP = b"\xff"


def put(target, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def u16(b):
    return struct.pack(">H", len(b)) + b


# ---- frames: selector byte (protocol in the low 2 bits) + stream
ejabberd = [b"auth:alice:example.org:secret", b"isuser:bob:localhost", b"auth:bob:localhost:a:b:c",
            "auth:jürgen:例え.jp:pä:ss".encode(), b"setpass:a:b:c", b"quit", b"exit",
            b"auth:Alice:A.EXAMPLE.:pw", b"auth:alice@x:example.org:pw", b"tryregister:a:b:c", b""]
lines = [b"isuser:a:b\nauth:a:b:c\r\n", b"auth:x:y:z", b"quit\n", b"\n", b"isuser:bob:localhost\nexit\n"]
postfix = [b"get alice@example.org\n", b"get j%C3%BCrgen%40xn--mnchen-3ya.de\n", b"put a@b x\n",
           b"get a%ZZ@b\n", b"get a%00@b\n", b"get mallory%0a2026 INFO auth admin%0d@localhost\n"]
sasl = [[b"alice", b"pw", b"smtp", b"example.org"], [b"bob", b"", b"imap", b""],
        [b"alice@example.org", b"p:w", b"imap", b""], [b"alice@a.org", b"pw", b"imap", b"b.org"]]
for sel in (0, 4, 0x40):
    put("frames", bytes([sel]) + b"".join(u16(p) for p in ejabberd))
    put("frames", bytes([sel]) + u16(b"auth:a:b:c")[:6])
    put("frames", bytes([sel]) + struct.pack(">H", 9000) + b"x" * 40 + u16(b"isuser:a:b"))
    for l in lines:
        put("frames", bytes([sel | 1]) + l)
    put("frames", bytes([sel | 2]) + b"".join(postfix))
    put("frames", bytes([sel | 3]) + b"".join(b"".join(u16(f) for f in r) for r in sasl))
    put("frames", bytes([sel | 3]) + u16(b"alice") + u16(b"pw"))
    # At the limits: 8 KiB lines with and without CR, a 1 KiB + 1 saslauthd field.
    put("frames", bytes([sel | 1]) + b"x" * 8192 + b"\r\n" + b"x" * 8193 + b"\nisuser:a:b")
    put("frames", bytes([sel | 2]) + b"get " + b"a" * 8186 + b"@b\r\n" + b"get " + b"a" * 8200)
    put("frames", bytes([sel]) + u16(b"auth:a:b:" + b"p" * 8183) + struct.pack(">H", 8193) + b"x" * 8193)
    put("frames", bytes([sel | 3]) + u16(b"a" * 1024) + struct.pack(">H", 1025) + b"p" * 1025 + u16(b"s") + u16(b"r"))

# ---- tokens: mode (bit 0: TOTP, bit 1: mint and mutate), now (u32), fields
with open(os.path.join(VECTORS, "jsxc-vectors.json")) as f:
    jv = json.load(f)
for t in jv["tokens"]:
    now = struct.pack(">I", t["now"])
    fields = [t["secret"], t["user"], t["domain"], t["password"]]
    put("tokens", b"\x00" + now + SEP.join(x.encode() for x in fields))
    put("tokens", b"\x02" + now + SEP.join(x.encode() for x in fields[:3] + [""]) + SEP + b"\x10\x00\x03\x01")
with open(os.path.join(VECTORS, "totp-vectors.json")) as f:
    tv = json.load(f)
for c in tv["cases"]:
    for chk in c["checks"][:2]:
        now = struct.pack(">I", chk["now"])
        fields = [c["otp_seed"], c["token_secret"], c["user"], c["domain"], c["token"]]
        put("tokens", b"\x01" + now + SEP.join(x.encode() for x in fields))
    for w in c["wrong"]:
        now = struct.pack(">I", c["minted_at"])
        fields = [c["otp_seed"], c["token_secret"], w["user"], w["domain"], w["token"]]
        put("tokens", b"\x01" + now + SEP.join(x.encode() for x in fields))
    now = struct.pack(">I", c["minted_at"])
    fields = [c["otp_seed"], c["token_secret"], c["user"], c["domain"], "12345678901234567890123456789012"]
    put("tokens", b"\x03" + now + SEP.join(x.encode() for x in fields) + SEP + b"\x00")

# ---- replies: operation, status selector (0: 200, 3: 401, 5: 404), body
def ocs(data, code=200):
    return json.dumps({"ocs": {"meta": {"status": "ok", "statuscode": code}, "data": data}}).encode()

replies = [
    (0, 0, b'{"result":"success","data":{"uid":"a"}}'), (0, 0, b'{"result":"noauth"}'),
    (0, 0, b'{"result":"error","data":{"msg":"Signature does not match"}}'), (0, 0, b"{}"),
    (0, 4, b'{"result":"error","data":{"msg":"Signature does not match"}}'),
    (0, 0, b"<!DOCTYPE html><html>operation=auth&username=alice&password=hunter2</html>"),
    (0, 7, b'Bad request: {"password": "hunter2"}'),
    (1, 0, b'{"result":"success","data":{"isUser":true}}'), (1, 0, b'{"result":"success","data":{"isUser":"yes"}}'),
    (2, 0, b'{"result":"success","data":{"sharedRoster":{"bob":{"name":"Bob","groups":["staff"]}}}}'),
    (2, 0, b'{"result":"success","data":{"sharedRoster":[]}}'),
    (3, 0, b'{"success":true}'), (3, 0, b'{"success":false,"message":"bad"}'), (3, 0, b'{"success":"yes"}'),
    (3, 3, b""),
    (4, 0, b"alice" + SEP + ocs({"id": "alice", "display-name": "Alice Liddell"})),
    (4, 0, b"alice" + SEP + ocs({"id": "Alice"})), (4, 0, b"alice" + SEP + ocs({"id": 7})),
    (4, 3, b"alice" + SEP + b'<?xml version="1.0"?><ocs><meta><status>failure</status></meta></ocs>'),
    (5, 0, ocs({"id": "bob"})), (5, 5, ocs([], 404)), (5, 5, ocs([], 998)),
    (5, 5, json.dumps({"ocs": {"meta": {"statuscode": "404"}, "data": []}}).encode()),
    (6, 0, ocs({"groups": ["staff", "chess"]})), (6, 0, ocs({"groups": []})),
    (7, 0, ocs({"users": {"alice": {"id": "alice", "displayname": "Alice"}, "bob": {"displayname": ""}}})),
    (7, 0, ocs({"users": [{"id": "0", "displayname": "Zero"}]})), (7, 0, ocs({"users": []})),
]
for op, st, body in replies:
    put("replies", bytes([op, st]) + body)

# ---- xcauth.conf: the README's sample, the syntaxes of the unit tests
readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
m = re.search(r"```ini\n(.*?)```", readme, re.S)
put("xcauth_conf", m.group(1).encode())
put("xcauth_conf", b"# comment\n; another\n[xcauth]\nurl=https://cloud/x?a=b\nsecret: s3:cr=t\n"
    b"type = ejabberd\ndebug\ncache_query_ttl = 1h\ntimeout=\"5,10\"\n\n")
put("xcauth_conf", b"timeout = 5,10   # connect, total\nsecret = \"pa #ss\"   # quoted keeps the ' #'\n"
    b"url=https://x/a#frag\nlog /var/log/xcauth ; space-separated\ndebug   # a flag with a comment\n"
    b"roster-groups-deny = [everyone, \"*-hidden\"]\n---\nempty =\n")
put("xcauth_conf", b"url=a\n%%% not valid\n")
put("xcauth_conf", b"backend = nextcloud\nurl = https://cloud.example.org/\nservice-user = xmpp\n"
    b"cache-storage = db\ncache-bcrypt-rounds = 12,4\ncloud-concurrency = 8\ntokens = jsxc, totp\n"
    b"listen = [ejabberd=127.0.0.1:23663, metrics=127.0.0.1:9100]\non-backend-trouble = fail\n")

# ---- per-domain file
put("domain_file", b"# c\nA.example s1 https://a/api\nb.example s2 https://b/api b.org\n"
    b"c.example backend=json url=https://c/\n\n")
put("domain_file", b"alone\n")
put("domain_file", b"a s u d extra\n")
put("domain_file", b"chat.example.org secret=s3cr3tvalue9 url=https://cloud.example.org/ tokens=jsxc,totp "
    b"backend=nextcloud service-user=xmpp cloud-concurrency=4 timeout=2,5\n")
print("seeds written to", OUT)
