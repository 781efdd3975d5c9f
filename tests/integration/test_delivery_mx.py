"""Outbound delivery by MX: preference order, fallback to the next MX, implicit MX,
null MX, NXDOMAIN, 4xx then success, 5xx bounces and their content, no bounce for <>,
SIZE and 8BITMIME, PIPELINING / BDAT / DSN parameters, connection reuse.

Real peers on loopback: dnsmasq, aiosmtpd, smtp-sink and a raw SMTP receiver
(delivery_support.py)."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from delivery_support import (  # noqa: E402,F401
    dns, AioReceiver, RawReceiver, SmtpSink, REMOTE_ADDRS, SENDER, SENDER2, free_port, make_server, submit,
    msg, events, wait_event, reports, wait_reports, queue_json, queue_cli,
)


# -- 1. MX preference and fallback -------------------------------------------------------

def test_mx_preference_lowest_first(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2", "127.0.0.3"], port) as rx:
        srv = make_server(server_factory, dns, port)
        qid = submit(srv, "bob@remote.test")
        ev = wait_event(srv, "delivered", qid=qid, to="bob@remote.test")
        assert ev, srv.log()
        assert ev[0]["remote"].startswith("127.0.0.2 said: 250"), ev
        got = rx.wait_messages(1)
        assert [m["addr"] for m in got] == ["127.0.0.2"], got
        assert got[0]["rcpt_tos"] == ["bob@remote.test"]
        assert got[0]["mail_from"] == SENDER
        assert rx.sessions_by_addr.get("127.0.0.3", 0) == 0
        assert not events(srv, "remote_try_next")
        conn = events(srv, "remote_connect", host="mx1.remote.test")
        assert conn and conn[0]["address"] == "127.0.0.2" and conn[0]["port"] == str(port), conn
        # the message is gone from the queue
        assert wait_event(srv, "removed", qid=qid)
        assert queue_json(srv) == []


def test_mx_fallback_to_second_when_first_down(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.3"], port) as rx:      # nothing listens on 127.0.0.2
        srv = make_server(server_factory, dns, port)
        qid = submit(srv, "bob@remote.test")
        ev = wait_event(srv, "delivered", qid=qid)
        assert ev, srv.log()
        assert ev[0]["remote"].startswith("127.0.0.3 said: 250"), ev
        tn = events(srv, "remote_try_next", qid=qid)
        assert tn and "mx1.remote.test[127.0.0.2]" in tn[0]["host"], srv.log()
        assert [m["addr"] for m in rx.wait_messages(1)] == ["127.0.0.3"]
        assert not events(srv, "deferred")
