"""Awkward clients: byte-by-byte input, disconnects mid-message, limits on recipients and
connections, idle clients in the middle of DATA, parameters, command case."""
import socket
import time

import pytest

from helpers import SMTPConn, message


def test_session_sent_one_byte_at_a_time(server):
    script = (b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    body = b"Subject: trickle\r\n\r\n..dotted\r\nline\r\n.\r\n"
    with server.connect() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(script)):
            c.send(script[i:i + 1])
            time.sleep(0.001)
        assert c.reply().code == 250
        assert c.reply().is_(250, "2.1.0")
        assert c.reply().is_(250, "2.1.5")
        assert c.reply().code == 354
        for i in range(len(body)):
            c.send(body[i:i + 1])
            time.sleep(0.002)
        r = c.reply()
        assert r.is_(250, "2.0.0") and r.qid, r
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    assert msgs[0].read_bytes().endswith(b"\nSubject: trickle\n\n.dotted\nline\n")


def test_end_of_data_split_across_writes(server):
    with server.connect() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@example.test>")
        assert c.cmd("DATA").code == 354
        for part in (b"Subject: split\r\n\r\nbody\r", b"\n", b".", b"\r", b"\n"):
            c.send(part)
            time.sleep(0.05)
        r = c.reply()
        assert r.is_(250, "2.0.0"), r
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1 and msgs[0].read_bytes().endswith(b"\n\nbody\n")


def test_first_body_line_dot_stuffed_and_empty_body(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@example.test>")
        assert c.cmd("DATA").code == 354
        c.send(b"..first\r\n.\r\n")           # no header at all, first line dot-stuffed
        assert c.reply().is_(250, "2.0.0")
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    assert msgs[0].read_bytes().endswith(b"\n.first\n"), msgs[0].read_bytes()


def test_client_disconnects_mid_data(server):
    c = server.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@b.example>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: cut\r\n\r\nhalf a message\r\n")
    c.close()
    time.sleep(0.3)
    assert server.alive()
    # the server is fine and the cut message is never delivered
    with server.connect() as c2:
        c2.ehlo()
        c2.cmd("MAIL FROM:<a@b.example>")
        c2.cmd("RCPT TO:<alice@example.test>")
        assert c2.data(message("whole")).is_(250, "2.0.0")
    msgs = server.wait_delivered("alice@example.test", 1, settle=0.5)
    assert len(msgs) == 1 and b"Subject: whole" in msgs[0].read_bytes()
    incoming = server.data_dir / "queue" / "incoming"
    # Empty files there are the spool files the server makes ahead (queue_reserve_start).
    left = [p for p in incoming.iterdir() if p.stat().st_size > 0] if incoming.is_dir() else []
    assert left == [], left


def test_commands_are_case_insensitive(server):
    with server.connect() as c:
        assert c.cmd("ehlo client.example").code == 250
        assert c.cmd("mail from:<a@b.example>").is_(250, "2.1.0")
        assert c.cmd("rcpt to:<alice@example.test>").is_(250, "2.1.5")
        assert c.cmd("data").code == 354
        c.send(b"Subject: lower\r\n\r\nx\r\n.\r\n")
        assert c.reply().is_(250, "2.0.0")
        assert c.cmd("quit").is_(221, "2.0.0")
    assert len(server.wait_delivered("alice@example.test", 1)) == 1


def test_argument_errors(server):
    with server.connect() as c:
        r = c.cmd("EHLO")
        assert r.code == 501 and r.enh and r.enh.startswith("5."), r
        r = c.cmd("HELO")
        assert r.code == 501, r
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@b.example> SIZE=abc")
        assert r.is_(501, "5.5.4"), r
        r = c.cmd("MAIL FROM:<a@b.example> BODY=9BITMIME")
        assert r.code in (501, 555) and r.enh == "5.5.4", r
        assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        r = c.cmd("DATA now")
        assert r.is_(501, "5.5.4"), r
        r = c.cmd("BDAT ten")
        assert r.is_(501, "5.5.4"), r


def test_too_many_recipients(server_factory):
    s = server_factory(limits={"recipients": "2"}, users=("alice@example.test", "bob@example.test"))
    with s.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        assert c.cmd("RCPT TO:<bob@example.test>").is_(250, "2.1.5")
        r = c.cmd("RCPT TO:<postmaster@example.test>")
        assert r.is_(452, "4.5.3"), r
        assert c.data(message("two only")).is_(250, "2.0.0")
    assert len(s.wait_delivered("alice@example.test", 1)) == 1
    assert len(s.wait_delivered("bob@example.test", 1)) == 1
    assert s.wait_delivered("postmaster@example.test", 1, timeout=0.5) == []


def test_default_connections_per_ip_is_20(server):
    conns = []
    try:
        for _ in range(20):
            conns.append(server.connect())
        assert all(c.greeting.code == 220 for c in conns)
        extra = server.connect()
        conns.append(extra)
        assert extra.greeting.is_(421, "4.7.0"), extra.greeting
        assert extra.wait_closed(5)
    finally:
        for c in conns:
            c.close()


def test_connections_per_ip_limit(server_factory):
    s = server_factory(limits={"connections_per_ip": "2"})
    a, b = s.connect(), s.connect()
    try:
        third = socket.create_connection((s.host, s.port), timeout=5)
        third.settimeout(5)
        data = b""
        for _ in range(20):
            chunk = third.recv(4096)
            if not chunk:
                break
            data += chunk
        third.close()
        assert data.startswith(b"421 4.7.0 "), data
        # the first two still work
        assert a.cmd("NOOP").code == 250 and b.cmd("NOOP").code == 250
    finally:
        a.close()
        b.close()
    # after they left, a new connection is welcome again (bounded retry: closes are async)
    end = time.monotonic() + 5
    while True:
        c = s.connect()
        if c.greeting.code == 220 or time.monotonic() > end:
            break
        c.close()
        time.sleep(0.1)
    assert c.greeting.code == 220, c.greeting
    c.close()


def test_idle_timeout_mid_data(server_factory):
    s = server_factory(limits={"idle_timeout": "10s"})
    with s.connect(timeout=20) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@example.test>")
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: stalled\r\n\r\npart\r\n")
        t0 = time.monotonic()
        r = c.reply(timeout=20)
        elapsed = time.monotonic() - t0
        assert r.is_(421, "4.4.2"), (r, elapsed)
        assert 8.5 <= elapsed <= 18, "idle timeout in DATA after %.1fs, expected ~10s" % elapsed
        assert c.wait_closed(5)
    assert s.wait_delivered("alice@example.test", 1, timeout=1) == []


def test_many_concurrent_sessions(server_factory):
    server = server_factory(limits={"connections_per_ip": "40"})
    conns = [server.connect() for _ in range(30)]
    try:
        assert all(c.greeting.code == 220 for c in conns), [c.greeting for c in conns]
        for c in conns:
            c.send(b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
        for c in conns:
            assert [c.reply().code for _ in range(4)] == [250, 250, 250, 354]
        for i, c in enumerate(conns):
            c.send(message("concurrent %d" % i) + b".\r\n")
        for c in conns:
            assert c.reply(timeout=20).is_(250, "2.0.0")
    finally:
        for c in conns:
            c.close()
    assert len(server.wait_delivered("alice@example.test", 30, timeout=15)) == 30


def test_bdat_zero_last_and_oversize(server_factory):
    s = server_factory(limits={"message_size": "1K"})
    with s.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@example.test>")
        c.send(b"BDAT 20\r\nSubject: zero last\r\n")
        assert c.reply().is_(250, "2.0.0")
        c.send(b"BDAT 0 LAST\r\n")
        r = c.reply()
        assert r.is_(250, "2.0.0") and r.qid, r
        # now a chunk larger than the limit: refused, its bytes consumed, session goes on
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@example.test>")
        big = (b"NOOP\r\n" * 400)[:2000]
        c.send(b"BDAT %d LAST\r\n" % len(big) + big + b"RSET\r\n")
        r = c.reply(timeout=10)
        assert r.is_(552, "5.3.4"), r
        r = c.reply()
        assert r.is_(250, "2.0.0") and "reset" in r.text.lower(), "BDAT bytes run as commands? %r" % r
    msgs = s.wait_delivered("alice@example.test", 1, settle=0.5)
    assert len(msgs) == 1 and b"Subject: zero last" in msgs[0].read_bytes()
