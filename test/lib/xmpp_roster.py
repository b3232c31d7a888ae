#!/usr/bin/python3
"""Log in (slixmpp), keep the session open and record the roster.

usage: xmpp_roster.py JID PASSWORD PORT OUTFILE [--duration SECONDS]
Appends one line per roster item: at session start after fetching the roster
(`roster JID SUBSCRIPTION NAME | GROUP,GROUP`), then for every roster push
(`push ...`, subscription `remove` for removals), and `ready` once the first
fetch is done. Runs for --duration seconds (default 60) or until OUTFILE.stop
exists. Exit 0 when the session started, 1 when login failed, 2 otherwise.
Plain TCP on 127.0.0.1 (throwaway test servers only).
"""
import argparse
import asyncio
import logging
import os
import sys

import slixmpp

for name in ("asyncio", "slixmpp"):
    logging.getLogger(name).setLevel(logging.CRITICAL)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("jid")
    p.add_argument("password")
    p.add_argument("port", type=int)
    p.add_argument("outfile")
    p.add_argument("--duration", type=float, default=60.0)
    a = p.parse_args()
    c = slixmpp.ClientXMPP(a.jid, a.password)
    c["feature_mechanisms"].use_mech = "PLAIN"
    c["feature_mechanisms"].unencrypted_plain = True
    rc = [2]

    def write(line):
        with open(a.outfile, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def item_line(kind, jid, item):
        groups = ",".join(sorted(item.get("groups", [])))
        return f"{kind} {jid} {item.get('subscription', '')} {item.get('name', '')} | {groups}"

    def on_push(iq):
        for jid, item in iq["roster"]["items"].items():
            write(item_line("push", jid, item))

    async def on_start(_):
        rc[0] = 0
        roster = await c.get_roster()
        for jid, item in roster["roster"]["items"].items():
            write(item_line("roster", jid, item))
        write("ready")

    def on_failed(_):
        rc[0] = 1
        c.disconnect()

    c.add_event_handler("session_start", on_start)
    c.add_event_handler("roster_update", on_push)
    c.add_event_handler("failed_auth", on_failed)
    c.connect(address=("127.0.0.1", a.port), disable_starttls=True)

    async def watch():
        loop = asyncio.get_event_loop()
        end = loop.time() + a.duration
        while loop.time() < end and not os.path.exists(a.outfile + ".stop") and rc[0] != 1:
            await asyncio.sleep(0.1)
        c.disconnect()

    c.loop.run_until_complete(watch())
    return rc[0]


if __name__ == "__main__":
    sys.exit(main())
