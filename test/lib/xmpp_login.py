#!/usr/bin/python3
"""Log in to an XMPP server with SASL PLAIN (slixmpp) and report the outcome.

usage: xmpp_login.py JID PASSWORD PORT [--timeout SECONDS] [--authzid JID] [--bound]
--bound prints the bare JID the session was bound to.
exit status: 0 session established, 1 authentication refused, 2 anything else
(connection failure, timeout). Plain TCP on 127.0.0.1 unless TLS=1 (STARTTLS,
certificate not checked: throwaway test servers only).
"""
import argparse
import asyncio
import logging
import os
import ssl
import sys

import slixmpp

for name in ("asyncio", "slixmpp"):
    logging.getLogger(name).setLevel(logging.CRITICAL)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("jid")
    p.add_argument("password")
    p.add_argument("port", type=int)
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--authzid", default=None)
    p.add_argument("--bound", action="store_true")
    a = p.parse_args()
    tls = os.environ.get("TLS") == "1"
    c = slixmpp.ClientXMPP(a.jid, a.password)
    c["feature_mechanisms"].use_mech = "PLAIN"
    c["feature_mechanisms"].unencrypted_plain = not tls
    if a.authzid:
        c.credentials["authzid"] = a.authzid
    if tls:
        c.ssl_context.check_hostname = False
        c.ssl_context.verify_mode = ssl.CERT_NONE
    rc = [2]

    def done(code):
        rc[0] = code
        c.disconnect()

    def started(_):
        if a.bound:
            print(c.boundjid.bare, flush=True)
        done(0)

    c.add_event_handler("session_start", started)
    c.add_event_handler("failed_auth", lambda _: done(1))
    c.add_event_handler("connection_failed", lambda _: done(2))
    c.connect(address=("127.0.0.1", a.port), disable_starttls=not tls, force_starttls=tls)
    try:
        c.loop.run_until_complete(asyncio.wait_for(c.disconnected, a.timeout))
    except asyncio.TimeoutError:
        pass
    return rc[0]


if __name__ == "__main__":
    sys.exit(main())
