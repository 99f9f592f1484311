#!/usr/bin/env python3
"""A python-socketio client of the gateway, driven by test/e2e/python.test.ts.

It connects through the balancer (polling first, then websocket, unless --transports says
otherwise; requests.Session keeps HAProxy's sticky cookie), joins a room, sends room messages and
a direct message (each acknowledged by the server), and reports everything it sees as JSON lines
on stdout:
  {"event": "connected", "sid": ..., "transport": ...}
  {"event": "joined", "ack": {...}}
  {"event": "ack", "kind": "message" | "direct-message", "n": i, "ack": {...}}
  {"event": "message", "id": ..., "userId": ..., "text": ..., "room": ...}
  {"event": "direct-message", "id": ..., "from": ..., "text": ...}
  {"event": "done", "received": n, "direct": n}       (or {"event": "error", "message": ...})
It sends its messages once it has read a line "go" on stdin, and exits once it has received
--expect room messages from --peer and --expect-direct direct messages (or after --timeout).

Broadcasts carry one extra trailing argument when connection state recovery is on (the stream
offset), so every handler accepts *args.
"""
import argparse
import json
import sys
import threading
import time

import socketio


_out_lock = threading.Lock()


def out(**kw):
    # handlers run on python-socketio's threads: one whole line per write, never interleaved
    line = json.dumps(kw) + "\n"
    with _out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--room", required=True)
    ap.add_argument("--peer", required=True, help="user id of the JS client")
    ap.add_argument("--send", type=int, default=5)
    ap.add_argument("--expect", type=int, default=5)
    ap.add_argument("--expect-direct", type=int, default=1)
    ap.add_argument("--transports", default="polling,websocket")
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()

    sio = socketio.Client(reconnection=False)
    got = {"room": set(), "direct": set()}
    done = threading.Event()

    def check():
        if len(got["room"]) >= a.expect and len(got["direct"]) >= a.expect_direct:
            done.set()

    @sio.on("message")
    def on_message(m, *offset):
        out(event="message", id=m.get("id"), userId=m.get("userId"), text=m.get("text"), room=m.get("room"), offset=bool(offset))
        if m.get("userId") == a.peer:
            got["room"].add(m.get("id"))
        check()

    @sio.on("direct-message")
    def on_direct(m, *offset):
        out(event="direct-message", id=m.get("id"), text=m.get("text"), **{"from": m.get("from")})
        if m.get("from") == a.peer:
            got["direct"].add(m.get("id"))
        check()

    @sio.on("*")
    def any_event(event, *args):
        pass  # joined, session, presence, queued-messages, ...: not needed here

    deadline = time.time() + a.timeout
    try:
        sio.connect(a.url, auth={"token": a.token}, transports=a.transports.split(","), wait_timeout=10)
        out(event="connected", sid=sio.get_sid(), transport=sio.transport())
        joined = sio.call("join-room", a.room, timeout=10)
        out(event="joined", ack=joined)
        if not joined.get("ok"):
            raise RuntimeError("join-room refused: %r" % (joined,))
        # wait for the go-ahead from the test (the JS client has joined too)
        line = sys.stdin.readline()
        if line.strip() != "go":
            raise RuntimeError("expected 'go' on stdin, got %r" % line)
        for i in range(a.send):
            ack = sio.call("message", {"roomId": a.room, "text": "from python %d" % i, "data": {"n": i}}, timeout=10)
            out(event="ack", kind="message", n=i, ack=ack)
        ack = sio.call("direct-message", {"toUserId": a.peer, "text": "direct from python"}, timeout=10)
        out(event="ack", kind="direct-message", n=0, ack=ack)
        done.wait(max(0.0, deadline - time.time()))
        out(event="done" if done.is_set() else "error", received=len(got["room"]), direct=len(got["direct"]), transport=sio.transport(),
            message=None if done.is_set() else "timeout waiting for the peer's messages")
    except Exception as e:  # reported, not raised: the test reads stdout
        out(event="error", message="%s: %s" % (type(e).__name__, e))
    finally:
        try:
            sio.disconnect()
        except Exception:
            pass
    return 0 if done.is_set() else 1


if __name__ == "__main__":
    sys.exit(main())
