"""Connection-level guards: refusals before any session (connection limits, plaintext on
an implicit-TLS port) are said in the listener's own protocol — POP3 `-ERR [SYS/TEMP]` /
`[SYS/PERM]` (RFC 2449 §8, RFC 3206), SMTP 421/554 with enhanced codes (RFC 3463).
Every loop is bounded in count and time; only loopback is used."""
import poplib
import smtplib
import socket
import time

import pytest

from pop3_support import ALICE, RawPOP3, lf_message, make_pop3_server, put_message, raw_tls, tls_context, wait_log
from submission_support import make_sub_server


def _first_line(port, send=None, timeout=10.0, source=None):
    """Connect, optionally send bytes first, return the first line the server sends."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0) if source else None)
    try:
        if send:
            sock.sendall(send)
        data = b""
        end = time.monotonic() + timeout
        while b"\r\n" not in data and time.monotonic() < end:
            sock.settimeout(max(0.1, end - time.monotonic()))
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0].decode("latin-1")
    finally:
        sock.close()


def _wait_welcome(port, ok_prefix, timeout=5.0):
    """After connections close (asynchronously), a new one is greeted again."""
    end = time.monotonic() + timeout
    line = ""
    while time.monotonic() < end:
        line = _first_line(port)
        if line.startswith(ok_prefix):
            return line
        time.sleep(0.1)
    return line


def test_pop3_per_address_limit_refused_in_pop3_words(server_factory):
    srv = make_pop3_server(server_factory, limits={"connections_per_ip": "2"})
    a = RawPOP3(srv.ports["pop3"])
    b = raw_tls(srv, user=None)
    try:
        assert a.greeting.startswith("+OK") and b.greeting.startswith("+OK")
        line = _first_line(srv.ports["pop3"])
        assert line.startswith("-ERR [SYS/TEMP] "), line
        assert "Too many connections from your address (limit 2)" in line, line
        assert "close other mail programs" in line, line       # the hint
        assert "4.7.0" not in line and not line.startswith("421"), line
        # on the implicit-TLS port the refusal comes over TLS, where a real client reads it
        t0 = time.monotonic()
        with pytest.raises(poplib.error_proto) as e:
            poplib.POP3_SSL("127.0.0.1", srv.ports["pop3s"], timeout=10, context=tls_context())
        said = e.value.args[0].decode("latin-1")
        assert said.startswith("-ERR [SYS/TEMP] ") and "limit 2" in said, said
        assert time.monotonic() - t0 < 4.0
        # SMTP on the same server keeps its own words
        line = _first_line(srv.ports["smtp"])
        assert line.startswith("421 4.7.0 ") and "limit 2" in line, line
        # the two sessions still work
        assert a.cmd("NOOP").startswith("+OK") and b.cmd("NOOP").startswith("+OK")
    finally:
        a.close()
        b.close()
    assert _wait_welcome(srv.ports["pop3"], "+OK").startswith("+OK")
    assert wait_log(srv, r"event=refused_connection\b[^\n]*per-address limit"), srv.log()[-3000:]


def test_pop3_total_limit_refused_in_pop3_words(server_factory):
    srv = make_pop3_server(server_factory, limits={"connections": "2"})
    a, b = RawPOP3(srv.ports["pop3"]), RawPOP3(srv.ports["pop3"])
    try:
        line = _first_line(srv.ports["pop3"])
        assert line.startswith("-ERR [SYS/TEMP] ") and "Too many connections" in line, line
        line = _first_line(srv.ports["smtp"])
        assert line.startswith("421 4.7.0 ") and "Too many connections" in line, line
    finally:
        a.close()
        b.close()


def test_smtp_total_limit_on_the_implicit_tls_port_is_said_over_tls(server_factory):
    srv = make_sub_server(server_factory)
    held = []
    try:
        # fill the per-address limit (default 20) from one address
        for _ in range(20):
            c = Raw(srv.ports["smtp"])
            assert c.line().startswith("220 ")
            held.append(c)
        with pytest.raises(smtplib.SMTPConnectError) as e:
            smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], timeout=10, context=tls_context())
        assert e.value.smtp_code == 421 and b"4.7.0" in e.value.smtp_error, e.value
        assert b"Too many connections from your address" in e.value.smtp_error, e.value
        # a client that does not speak TLS there gets the same refusal in plaintext
        line = _first_line(srv.ports["submissions"], send=b"EHLO x\r\n")
        assert line.startswith("421 4.7.0 "), line
    finally:
        for c in held:
            c.close()


def test_plaintext_to_implicit_tls_pop3_port_refused_in_pop3_words(server_factory):
    srv = make_pop3_server(server_factory)
    t0 = time.monotonic()
    line = _first_line(srv.ports["pop3s"], send=b"CAPA\r\n")
    assert line.startswith("-ERR [SYS/PERM] "), line
    assert "expects TLS from the first byte" in line and "SSL/TLS" in line, line
    assert "5.7.0" not in line, line
    assert time.monotonic() - t0 < 7.0
    assert wait_log(srv, r"event=tls_mismatch\b[^\n]*listener=pop3s"), srv.log()[-3000:]


# -- deadlines: trickling bytes do not hold a connection ---------------------------------
#
# Small configured deadlines (2-3 s) keep these quick; every loop is bounded by
# TRICKLE_MAX seconds, and the idle timeout (restarted by each byte) never fires.

TRICKLE_MAX = 15.0
DEADLINES = {"line_timeout": "2s", "tls_handshake_timeout": "2s", "login_timeout": "3s",
             "data_min_rate": "100", "data_rate_grace": "2s"}


class Raw:
    """A socket that reads CRLF lines with a bounded wait."""

    def __init__(self, port, source=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                             source_address=(source, 0) if source else None)
        self.buf = b""

    def line(self, timeout=10.0):
        end = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                return None
            if not chunk:
                return None
            self.buf += chunk
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l.decode("latin-1")

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()

    def trickle(self, byte=b"N", interval=0.3, max_time=TRICKLE_MAX):
        """Send one byte per interval until the server says something or closes.
        Returns (what it said or b"" for a close, seconds taken); (None, t) if nothing
        happened within max_time."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < max_time:
            try:
                self.sock.sendall(byte)
            except OSError:
                return b"", time.monotonic() - t0
            self.sock.settimeout(interval)
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return b"", time.monotonic() - t0
            return chunk, time.monotonic() - t0
        return None, time.monotonic() - t0

    def close(self):
        self.sock.close()


def _noop_until_refused(c):
    """NOOP every 0.5 s (bounded by TRICKLE_MAX); the first answer that is not 250."""
    t0 = time.monotonic()
    said = None
    while time.monotonic() - t0 < TRICKLE_MAX:
        said = c.cmd("NOOP")
        if said is None or not said.startswith("250 "):
            break
        time.sleep(0.5)
    return said


def _deadline_server(server_factory, **more):
    limits = dict(DEADLINES)
    limits.update(more)
    return make_pop3_server(server_factory, submission=True, limits=limits)


def test_command_line_trickled_a_byte_at_a_time_is_cut_off(server_factory):
    srv = _deadline_server(server_factory)
    c = Raw(srv.ports["smtp"])
    try:
        assert c.line().startswith("220 ")
        said, took = c.trickle()
        assert said is not None, "still open after %.0fs of one byte per 0.3s" % took
        assert said.startswith(b"421-4.4.2 ") and b"command line took more than 2 seconds" in said, said
        assert took < 12, took
    finally:
        c.close()
    c = Raw(srv.ports["pop3"])
    try:
        assert c.line().startswith("+OK")
        said, took = c.trickle()
        assert said is not None, "POP3 still open after %.0fs" % took
        assert said.startswith(b"-ERR Disconnected: a command line took more than 2 seconds"), said
    finally:
        c.close()
    assert wait_log(srv, r"event=deadline\b[^\n]*listener=smtp kind=line limit=2"), srv.log()[-3000:]
    assert wait_log(srv, r"event=deadline\b[^\n]*listener=pop3 kind=line"), srv.log()[-3000:]


def test_tls_handshake_that_never_completes_is_cut_off(server_factory):
    srv = _deadline_server(server_factory)
    # implicit TLS: a handshake record header announcing 512 octets, then a trickle
    c = Raw(srv.ports["pop3s"])
    try:
        c.sock.sendall(b"\x16\x03\x01\x02\x00\x01")
        said, took = c.trickle(byte=b"\x00")
        assert said is not None, "handshake still open after %.0fs" % took
        assert took < 12, took
    finally:
        c.close()
    # after STLS
    c = Raw(srv.ports["pop3"])
    try:
        assert c.line().startswith("+OK")
        assert c.cmd("STLS").startswith("+OK")
        c.sock.sendall(b"\x16\x03\x01\x02\x00\x01")
        said, took = c.trickle(byte=b"\x00")
        assert said is not None, "handshake after STLS still open after %.0fs" % took
    finally:
        c.close()
    assert wait_log(srv, r"event=deadline\b[^\n]*listener=pop3s kind=tls_handshake limit=2"), srv.log()[-3000:]
    assert wait_log(srv, r"event=deadline\b[^\n]*listener=pop3 kind=tls_handshake"), srv.log()[-3000:]


def test_message_trickled_below_the_minimum_rate_is_cut_off(server_factory):
    srv = _deadline_server(server_factory)
    c = Raw(srv.ports["smtp"])
    try:
        assert c.line().startswith("220 ")
        c.sock.sendall(b"HELO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
        assert [c.line()[:3] for _ in range(4)] == ["250", "250", "250", "354"]
        c.sock.sendall(b"Subject: slow\r\n\r\n")
        said, took = c.trickle(byte=b"x")
        assert said is not None, "DATA still open after %.0fs" % took
        assert said.startswith(b"421-4.4.2 ") and b"slower than 100 octets per second" in said, said
    finally:
        c.close()
    assert wait_log(srv, r"event=deadline\b[^\n]*kind=data_rate limit=100 unit=octets_per_second"), srv.log()[-3000:]
    assert srv.wait_delivered("alice@example.test", 1, timeout=1) == []


def test_no_login_on_submission_or_pop3_within_the_login_deadline(server_factory):
    srv = _deadline_server(server_factory)
    c = Raw(srv.ports["submission"])
    try:
        assert c.line().startswith("220 ")
        said = _noop_until_refused(c)            # whole commands, each answered
        assert said and said.startswith("421-4.4.2 ") and "no login within 3 seconds" in said, said
    finally:
        c.close()
    c = Raw(srv.ports["pop3"])
    try:
        assert c.line().startswith("+OK")
        lines = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < TRICKLE_MAX:
            c.sock.sendall(b"CAPA\r\n")
            l = c.line(timeout=2)
            while l is not None and not l.startswith("-ERR") and l != ".":
                l = c.line(timeout=2)
            if l is None or l.startswith("-ERR"):
                lines.append(l)
                break
            time.sleep(0.5)
        assert lines and lines[0] and lines[0].startswith("-ERR Disconnected: no login within 3 seconds"), lines
    finally:
        c.close()
    # a client that logged in is not held to it
    p = raw_tls(srv)
    try:
        time.sleep(3.5)
        assert p.cmd("NOOP").startswith("+OK")
    finally:
        p.close()
    assert wait_log(srv, r"event=deadline\b[^\n]*listener=submission kind=login limit=3"), srv.log()[-3000:]
    # the SMTP port for incoming mail (role mx) has no login deadline
    c = Raw(srv.ports["smtp"])
    try:
        assert c.line().startswith("220 ")
        time.sleep(3.5)
        assert c.cmd("NOOP").startswith("250 ")
    finally:
        c.close()


def test_session_deadline(server_factory):
    srv = _deadline_server(server_factory, session_timeout="3s")
    c = Raw(srv.ports["smtp"])
    try:
        assert c.line().startswith("220 ")
        said = _noop_until_refused(c)
        assert said and said.startswith("421-4.4.2 ") and "Session longer than 3 seconds" in said, said
    finally:
        c.close()


def test_session_deadline_also_bounds_a_client_that_does_not_read(server_factory):
    """RETR of a 20 MB message to a client that never reads: the session deadline
    still ends it (nothing can be said mid-message: the connection just closes,
    without the final "." so the client cannot take the cut message for whole)."""
    srv = make_pop3_server(server_factory, plain=True, limits={"session_timeout": "3s"})
    # larger than what the kernel's socket buffers on loopback can hold
    put_message(srv, ALICE, lf_message("big", ["x" * 1000] * 20000))
    c = RawPOP3(srv.ports["pop3plain"])
    try:
        assert c.login().startswith("+OK")
        c.send("RETR 1\r\n")
        time.sleep(4)
        got, closed = b"", False
        end = time.monotonic() + 30
        while time.monotonic() < end:
            c.sock.settimeout(max(0.1, end - time.monotonic()))
            try:
                chunk = c.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            got += chunk
        assert closed, "still open after %d octets" % len(got)
        assert not got.endswith(b"\r\n.\r\n"), "the whole message arrived"
    finally:
        c.close()
    assert wait_log(srv, r"event=deadline\b[^\n]*listener=pop3plain kind=session limit=3"), srv.log()[-3000:]


def test_trickling_clients_leave_room_for_a_new_address(server_factory):
    """30 slots, 20% kept for addresses with no connection open: three addresses
    trickling from 30 connections get 24 slots, and a fourth address is still greeted."""
    srv = make_pop3_server(server_factory, limits={
        "connections": "30", "connections_per_ip": "30", "connections_reserved": "20"})
    held, refused = [], []
    try:
        for i in range(30):
            c = Raw(srv.ports["smtp"], source="127.0.0.%d" % (1 + i % 3))
            line = c.line()
            (held if line and line.startswith("220 ") else refused).append((c, line))
        assert len(held) == 24, [l for _, l in refused]
        for _, line in refused:
            assert line and line.startswith("421 4.7.0 ") and "nearly full" in line, line
        for _ in range(2):                   # they trickle, one byte each per round
            for c, _ in held:
                c.sock.sendall(b"N")
            time.sleep(0.2)
        new = Raw(srv.ports["smtp"], source="127.0.0.9")
        try:
            line = new.line()
            assert line and line.startswith("220 "), line
            assert new.cmd("QUIT").startswith("221 ")
        finally:
            new.close()
        # POP3 says the same in its own words
        p = Raw(srv.ports["pop3"], source="127.0.0.1")
        try:
            line = p.line()
            assert line and line.startswith("-ERR [SYS/TEMP] ") and "nearly full" in line, line
        finally:
            p.close()
    finally:
        for c, _ in held + refused:
            c.close()
    assert wait_log(srv, r"event=refused_connection\b[^\n]*reserved for new addresses"), srv.log()[-3000:]
