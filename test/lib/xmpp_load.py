#!/usr/bin/python3
"""Many concurrent SASL PLAIN logins from one process, to load a server.

A minimal client on asyncio streams (stream header, features, <auth/>,
<success/> or <failure/>): a real c2s session and SASL exchange on the
server's side at a fraction of a full client library's cost, so hundreds of
logins are pending within a second. Logins whose outcome a test asserts use
xmpp_login.py (slixmpp).

usage: xmpp_load.py PORT COUNT JID_TEMPLATE PASSWORD [--timeout SECONDS]
JID_TEMPLATE may contain {i} (0..COUNT-1). Prints one line
  ok=N refused=N error=N max_ms=N
when every login has ended or timed out; exit 0 when it ran.
Plain TCP on 127.0.0.1 (throwaway test servers only).
"""
import argparse
import asyncio
import base64
import sys
import time


async def read_until(reader, needles, limit=65536):
    data = b""
    while not any(n in data for n in needles):
        chunk = await reader.read(4096)
        if not chunk or len(data) > limit:
            raise ConnectionError("stream ended")
        data += chunk
    return data


async def one(jid, password, port, timeout):
    user, domain = jid.split("@", 1)
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        try:
            writer.write(
                f"<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' "
                "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>".encode()
            )
            await asyncio.wait_for(read_until(reader, [b"</stream:features>"]), timeout)
            creds = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
            writer.write(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                f"{creds}</auth>".encode()
            )
            reply = await asyncio.wait_for(read_until(reader, [b"<success", b"<failure"]), timeout)
            outcome = "ok" if b"<success" in reply else "refused"
        finally:
            writer.close()
    except (OSError, asyncio.TimeoutError, ConnectionError):
        outcome = "error"
    return outcome, (time.monotonic() - started) * 1000


async def main_async(a):
    results = await asyncio.gather(
        *(one(a.jid.format(i=i), a.password, a.port, a.timeout) for i in range(a.count))
    )
    count = {w: sum(1 for r, _ in results if r == w) for w in ("ok", "refused", "error")}
    worst = max((ms for _, ms in results), default=0)
    print(f"ok={count['ok']} refused={count['refused']} error={count['error']} max_ms={worst:.0f}")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("count", type=int)
    p.add_argument("jid")
    p.add_argument("password")
    p.add_argument("--timeout", type=float, default=30.0)
    asyncio.run(main_async(p.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
