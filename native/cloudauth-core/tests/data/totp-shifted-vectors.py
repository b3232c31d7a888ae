#!/usr/bin/env python3
"""Writes totp-shifted-vectors.json: tokens in mod_auth_token's signing scheme
(HMAC-SHA256(token_secret, OTP + NONCE + user@domain)) that are correctly
signed but not in the reference form (8-digit OTP, 32-digit nonce), so that a
verifier accepting them would let one user's token log in as another.

Independent of the Rust code: the TOTP is computed here from RFC 6238 with
the standard library (what pyotp does), the signature as the module's README
generates it. Run: python3 totp-shifted-vectors.py > totp-shifted-vectors.json
"""
import base64, hashlib, hmac, json, struct

SEED = "PUL3GGUVO4KFVN4R"
SECRET = "OHCMULRVFWI2SR5W2S22C2JMA63OC5SV"
AT = 1765000005  # inside a step, far from its edges


def totp(seed, now):
    key = base64.b32decode(seed.upper() + "=" * (-len(seed) % 8))
    h = hmac.new(key, struct.pack(">Q", now // 30), hashlib.sha1).digest()
    o = h[-1] & 0x0F
    code = (struct.unpack(">I", h[o:o + 4])[0] & 0x7FFFFFFF) % 10 ** 8
    return "%08d" % code


def sign(word, jid):
    mac = hmac.new(SECRET.encode(), (word + jid).encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def token(word, jid):
    return word + " " + sign(word, jid)


otp = totp(SEED, AT)
nonce = "50613774903276115827349012847365"  # 32 digits, as the reference draws them
cases = []


def case(why, minted_for, presented_as, word, valid):
    cases.append({
        "why": why,
        "minted_for": minted_for,
        "user": presented_as.split("@")[0],
        "domain": presented_as.split("@")[1],
        "token": token(word, minted_for if valid else presented_as),
        "valid": valid,
    })


# The genuine tokens the shifted ones come from: valid for their own JIDs.
case("reference token", "malice@example.org", "malice@example.org", otp + nonce, True)
case("reference token", "bob@example.org", "bob@example.org", otp + nonce, True)
# A letter of the user name moved into the nonce: the bytes signed are those
# of malice's token, presented as alice's.
for minted, shown, moved in [("malice", "alice", "m"), ("xyzadmin", "admin", "xyz"),
                             ("sysadmin", "admin", "sys"), ("maryann", "ann", "mary")]:
    word = otp + nonce + moved
    assert word + shown == otp + nonce + minted
    case("letters of the user name moved into the nonce", minted + "@example.org",
         shown + "@example.org", word, False)
# Digits of the nonce moved into the user name: bob's token as 506bob's.
for k in (1, 3, 31):
    word = otp + nonce[:-k]
    case("nonce digits moved into the user name", "bob@example.org",
         nonce[-k:] + "bob@example.org", word, False)
# Correctly signed for the presenting user, but the nonce is not 32 digits.
case("nonce of 31 digits", "alice@example.org", "alice@example.org", otp + nonce[:31], False)
case("nonce of 33 digits", "alice@example.org", "alice@example.org", otp + nonce + "7", False)
case("nonce of 1 digit", "alice@example.org", "alice@example.org", otp + "7", False)
case("nonce of 64 digits", "alice@example.org", "alice@example.org", otp + nonce + nonce, False)
case("nonce with letters", "alice@example.org", "alice@example.org",
     otp + nonce[:30] + "ab", False)

print(json.dumps({
    "format": "mod_auth_token TOTP tokens, shifted or odd-length nonces",
    "otp_seed": SEED, "token_secret": SECRET, "now": AT, "cases": cases,
}, indent=1))
