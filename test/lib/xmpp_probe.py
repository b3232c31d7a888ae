#!/usr/bin/python3
"""Log in to an XMPP server (slixmpp, SASL PLAIN) and probe what the server does
with a message and/or a presence subscription request, or what a user receives.

usage: xmpp_probe.py JID PASSWORD PORT [--message TO] [--subscribe TO]
                     [--body TEXT] [--wait SECONDS] [--collect SECONDS]
                     [--timeout SECONDS]

Prints machine-readable lines on stdout, one per observation, in this order:
  login-ok                                  session established
  login-failed CONDITION                    SASL <failure/> (not-authorized,
                                            temporary-auth-failure, aborted, ...)
  message-error TYPE CONDITION              error reply to the message (--message)
  message-no-error                          no error within --wait seconds
  subscribe-error TYPE CONDITION            error reply to the subscription (--subscribe)
  subscribe-no-error                        no error within --wait seconds
  received-message FROM BODY                (--collect) a message that arrived, e.g.
                                            from mod_offline after the initial presence
  received-subscribe FROM                   (--collect) a subscription request that arrived
  received-none                             (--collect) nothing arrived

The message and the subscription are sent after the initial presence, as two
separate stanzas with distinct ids; errors are matched by id. --collect sends
the initial presence and reports what arrives within SECONDS (offline messages
and pending subscription requests are delivered then); subscriptions are not
answered.

Exit status: 0 the probe ran (a plain login attempt, i.e. no --message,
--subscribe or --collect, also exits 0 when refused: the refusal is the
observation); 2 connection trouble, timeout, or a refused login when an action
was asked for. Plain TCP on 127.0.0.1 with PLAIN allowed (throwaway test servers).
"""
import argparse
import asyncio
import logging
import sys
import uuid

import slixmpp

for name in ("asyncio", "slixmpp"):
    logging.getLogger(name).setLevel(logging.CRITICAL)


def one_word(s):
    return "-".join(str(s).split()) or "-"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("jid")
    p.add_argument("password")
    p.add_argument("port", type=int)
    p.add_argument("--message", metavar="TO")
    p.add_argument("--subscribe", metavar="TO")
    p.add_argument("--body", default="probe")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="send N messages to --message (errors are reported for the first)")
    p.add_argument("--wait", type=float, default=3.0,
                   help="seconds to wait for error replies (default 3)")
    p.add_argument("--collect", type=float, metavar="SECONDS")
    p.add_argument("--timeout", type=float, default=15.0,
                   help="seconds for connecting and logging in (default 15)")
    a = p.parse_args()
    acting = bool(a.message or a.subscribe or a.collect)

    c = slixmpp.ClientXMPP(a.jid, a.password)
    c["feature_mechanisms"].use_mech = "PLAIN"
    c["feature_mechanisms"].unencrypted_plain = True
    c.roster.auto_authorize = None      # never answer subscription requests
    c.roster.auto_subscribe = False
    out = []
    state = {"rc": 2, "login": None}
    msg_id = "m-" + uuid.uuid4().hex[:12]
    sub_id = "s-" + uuid.uuid4().hex[:12]
    errors = {}
    received = []
    got_error = asyncio.Event()

    def on_error(stanza):
        sid = stanza["id"]
        if sid in (msg_id, sub_id):
            errors[sid] = (stanza["error"]["type"] or "-", stanza["error"]["condition"] or "-")
            if all(i in errors for i in wanted()):
                got_error.set()

    def wanted():
        return [i for i, on in ((msg_id, a.message), (sub_id, a.subscribe)) if on]

    def on_message(msg):
        if msg["type"] != "error" and msg["body"]:
            received.append("received-message %s %s" % (msg["from"].bare, one_word(msg["body"])))

    def on_subscribe(pres):
        received.append("received-subscribe %s" % pres["from"].bare)

    async def session(_):
        state["login"] = "login-ok"
        out.append("login-ok")
        c.send_presence()
        if a.message:
            m = c.make_message(mto=a.message, mbody=a.body, mtype="chat")
            m["id"] = msg_id
            m.send()
            for i in range(1, a.repeat):
                c.make_message(mto=a.message, mbody="%s-%d" % (a.body, i), mtype="chat").send()
        if a.subscribe:
            pr = c.make_presence(pto=a.subscribe, ptype="subscribe")
            pr["id"] = sub_id
            pr.send()
        if wanted():
            try:
                await asyncio.wait_for(got_error.wait(), a.wait)
            except asyncio.TimeoutError:
                pass
            for sid, kind in ((msg_id, "message"), (sub_id, "subscribe")):
                if sid in wanted():
                    if sid in errors:
                        out.append("%s-error %s %s" % (kind, *errors[sid]))
                    else:
                        out.append("%s-no-error" % kind)
        if a.collect:
            await asyncio.sleep(a.collect)
            out.extend(received or ["received-none"])
        state["rc"] = 0
        c.disconnect()

    def failed_auth(stanza):
        if state["login"] is None:
            state["login"] = "login-failed %s" % (stanza["condition"] or "-")
            out.append(state["login"])
            state["rc"] = 2 if acting else 0
        c.disconnect()

    c.add_event_handler("session_start", session)
    c.add_event_handler("failed_auth", failed_auth)
    c.add_event_handler("connection_failed", lambda _: c.disconnect())
    c.add_event_handler("message_error", on_error)
    c.add_event_handler("presence_error", on_error)
    c.add_event_handler("message", on_message)
    c.add_event_handler("presence_subscribe", on_subscribe)
    c.connect(address=("127.0.0.1", a.port), disable_starttls=True)
    total = a.timeout + (a.wait if wanted() else 0) + (a.collect or 0)
    try:
        c.loop.run_until_complete(asyncio.wait_for(c.disconnected, total))
    except asyncio.TimeoutError:
        if state["login"] is None:
            out.append("login-timeout")
        state["rc"] = 2
    if state["login"] is None and "login-timeout" not in out:
        out.append("connection-failed")
        state["rc"] = 2
    print("\n".join(out), flush=True)
    return state["rc"]


if __name__ == "__main__":
    sys.exit(main())
