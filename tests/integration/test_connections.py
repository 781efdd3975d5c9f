"""Connection-level guards: refusals before any session (connection limits, plaintext on
an implicit-TLS port) are said in the listener's own protocol — POP3 `-ERR [SYS/TEMP]` /
`[SYS/PERM]` (RFC 2449 §8, RFC 3206), SMTP 421/554 with enhanced codes (RFC 3463).
Every loop is bounded in count and time; only loopback is used."""
import socket
import time

from pop3_support import RawPOP3, make_pop3_server, raw_tls, wait_log


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
        for listener in ("pop3", "pop3s"):
            line = _first_line(srv.ports[listener])
            assert line.startswith("-ERR [SYS/TEMP] "), (listener, line)
            assert "Too many connections from your address (limit 2)" in line, line
            assert "close other mail programs" in line, line       # the hint
            assert "4.7.0" not in line and not line.startswith("421"), line
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


def test_plaintext_to_implicit_tls_pop3_port_refused_in_pop3_words(server_factory):
    srv = make_pop3_server(server_factory)
    t0 = time.monotonic()
    line = _first_line(srv.ports["pop3s"], send=b"CAPA\r\n")
    assert line.startswith("-ERR [SYS/PERM] "), line
    assert "expects TLS from the first byte" in line and "SSL/TLS" in line, line
    assert "5.7.0" not in line, line
    assert time.monotonic() - t0 < 7.0
    assert wait_log(srv, r"event=tls_mismatch\b[^\n]*listener=pop3s"), srv.log()[-3000:]
