"""TLS: STARTTLS (RFC 3207) and implicit TLS (RFC 8314) — what EHLO offers, the
STARTTLS buffer-injection defence, port/protocol mismatches, old protocol versions."""
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

from submission_support import (
    auth_plain, connect, connect_implicit, connect_tls, ehlo_auth_line, ehlo_keywords,
    make_sub_server, starttls, tls_context, wait_log,
)
from helpers import SMTPConn


@pytest.fixture
def srv(server_factory):
    return make_sub_server(server_factory)


def test_selfsigned_certificate_generated(srv):
    assert wait_log(srv, r"event=tls_selfsigned_generated\b"), srv.log()[-3000:]


@pytest.mark.parametrize("listener", ["smtp", "submission"])
def test_ehlo_before_and_after_starttls(srv, listener):
    with connect(srv, listener) as c:
        r = c.ehlo()
        kw = ehlo_keywords(r)
        assert "STARTTLS" in kw, r
        assert ehlo_auth_line(r) is None, r
        starttls(c, ehlo=False)
        r = c.ehlo()
        kw = ehlo_keywords(r)
        assert "STARTTLS" not in kw, r
        auth = ehlo_auth_line(r)
        if listener == "smtp":
            assert auth is None, r   # never on mx, even inside TLS (test_wrong_port.py)
        else:
            assert auth is not None and "PLAIN" in auth and "LOGIN" in auth, r
        # STARTTLS again inside TLS is refused
        r = c.cmd("STARTTLS")
        assert r.is_(503, "5.5.1"), r


def test_implicit_port_offers_auth_not_starttls(srv):
    with connect_implicit(srv) as c:
        assert c.greeting.code == 220, c.greeting
        r = c.ehlo()
        assert "STARTTLS" not in ehlo_keywords(r), r
        auth = ehlo_auth_line(r)
        assert auth is not None and "PLAIN" in auth and "LOGIN" in auth, r
        r = c.cmd("STARTTLS")
        assert r.code in (502, 503) and r.enh == "5.5.1", r
    assert wait_log(srv, r"event=tls\b[^\n]*TLSv1\.[23]"), srv.log()[-3000:]


def test_openssl_s_client_starttls(srv):
    p = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                        "127.0.0.1:%d" % srv.ports["submission"], "-quiet", "-crlf"],
                       input=b"EHLO client.example\nQUIT\n", capture_output=True, timeout=30)
    out = p.stdout.decode("utf-8", "replace")
    assert "250-AUTH PLAIN LOGIN" in out or "250 AUTH PLAIN LOGIN" in out, (out, p.stderr)
    assert "STARTTLS" not in out, out
    assert re.search(r"^221 2\.0\.0", out, re.M), (out, p.stderr)


def test_openssl_s_client_implicit(srv):
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.ports["submissions"],
                        "-quiet", "-crlf"],
                       input=b"EHLO client.example\nQUIT\n", capture_output=True, timeout=30)
    out = p.stdout.decode("utf-8", "replace")
    assert out.startswith("220 "), (out, p.stderr)
    assert "AUTH PLAIN LOGIN" in out and re.search(r"^221 2\.0\.0", out, re.M), (out, p.stderr)


def test_starttls_injection_discarded(srv):
    c = connect(srv, "smtp")
    try:
        c.ehlo()
        c.send(b"STARTTLS\r\nNOOP\r\n")          # one write: NOOP sits in the plaintext buffer
        r = c.reply()
        assert r.is_(220, "2.0.0"), r
        assert c.buf == b"", "plaintext after the 220: %r" % c.buf
        # nothing more may come in plaintext (an answer to the injected NOOP would)
        c.sock.settimeout(0.5)
        try:
            early = c.sock.recv(4096, socket.MSG_PEEK)
        except socket.timeout:
            early = b""
        assert early == b"", "server answered in plaintext after 220 to STARTTLS: %r" % early
        c.sock = tls_context().wrap_socket(c.sock)
        c.send(b"EHLO client.example\r\n")
        r = c.reply()
        assert r.code == 250 and r.lines[0].startswith("mx.example.test"), \
            "first reply inside TLS is not the EHLO reply (injected NOOP answered?): %r" % (r,)
        assert not any("2.0.0 Ok" in l for l in r.lines), r
        r = c.cmd("NOOP")
        assert r.code == 250, r
        assert c.buf == b""
    finally:
        c.close()
    m = wait_log(srv, r"event=starttls_discarded\b[^\n]*bytes=(\d+)")
    assert m, srv.log()[-3000:]
    assert int(m.group(1)) == len(b"NOOP\r\n"), m.group(0)


def test_starttls_forgets_helo(srv):
    with connect(srv, "submission") as c:
        starttls(c)
        r = c.cmd("MAIL FROM:<alice@example.test>")
        assert r.is_(503, "5.5.1"), r
        assert "EHLO" in r.text, r
        # AUTH before the new EHLO is refused too (the session is reset; RFC 3207 §4.2)
        r = auth_plain(c)
        assert r.code == 503 and r.enh == "5.5.1", r
        c.ehlo()
        assert auth_plain(c).is_(235, "2.7.0")


def test_starttls_with_argument_refused(srv):
    with connect(srv, "submission") as c:
        c.ehlo()
        r = c.cmd("STARTTLS now")
        assert r.is_(501, "5.5.4"), r
        # the session is still plaintext and usable
        assert c.cmd("NOOP").code == 250


def test_plaintext_to_implicit_port(srv):
    sock = socket.create_connection(("127.0.0.1", srv.ports["submissions"]), timeout=10)
    try:
        t0 = time.monotonic()
        c = SMTPConn.__new__(SMTPConn)
        c.sock, c.buf, c.timeout = sock, b"", 10.0
        r = c.reply(timeout=10)
        elapsed = time.monotonic() - t0
        assert r.is_(554, "5.7.0"), r
        assert "TLS" in r.text, r
        assert elapsed < 7.0, "554 came after %.1fs" % elapsed
        assert c.wait_closed(5.0), "server kept the connection open after 554"
    finally:
        sock.close()
    assert wait_log(srv, r"event=tls_mismatch\b"), srv.log()[-3000:]


def test_plaintext_command_to_implicit_port(srv):
    # a client that speaks first (EHLO in clear) gets the same answer without waiting
    sock = socket.create_connection(("127.0.0.1", srv.ports["submissions"]), timeout=10)
    try:
        sock.sendall(b"EHLO client.example\r\n")
        t0 = time.monotonic()
        c = SMTPConn.__new__(SMTPConn)
        c.sock, c.buf, c.timeout = sock, b"", 10.0
        r = c.reply(timeout=10)
        assert r.is_(554, "5.7.0") and "TLS" in r.text, r
        assert time.monotonic() - t0 < 7.0
    finally:
        sock.close()


def test_tls_client_hello_to_starttls_port(srv):
    sock = socket.create_connection(("127.0.0.1", srv.ports["submission"]), timeout=10)
    try:
        with pytest.raises((ssl.SSLError, OSError)):
            tls_context().wrap_socket(sock)
    finally:
        sock.close()
    m = wait_log(srv, r"event=tls_mismatch\b[^\n]*")
    assert m, srv.log()[-3000:]


def _tls11_possible_locally(cert, key):
    """True if this Python/OpenSSL can complete a TLS 1.1 handshake with itself."""
    try:
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        sctx.minimum_version = ssl.TLSVersion.TLSv1_1
        sctx.maximum_version = ssl.TLSVersion.TLSv1_1
        sctx.load_cert_chain(cert, key)
        cctx = _tls11_client()
    except (ValueError, ssl.SSLError, AttributeError):
        return False
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(5)
    result = {}

    def serve():
        try:
            s, _ = ls.accept()
            s.settimeout(5)
            with sctx.wrap_socket(s, server_side=True) as t:
                result["server"] = t.version()
        except (OSError, ssl.SSLError) as e:
            result["server_err"] = e

    th = threading.Thread(target=serve)
    th.start()
    ok = False
    try:
        with socket.create_connection(ls.getsockname(), timeout=5) as s:
            with cctx.wrap_socket(s) as t:
                ok = t.version() == "TLSv1.1"
    except (OSError, ssl.SSLError):
        ok = False
    th.join(10)
    ls.close()
    return ok


def _tls11_client():
    ctx = tls_context()
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls11_refused(srv):
    assert wait_log(srv, r"event=tls_selfsigned_generated\b"), srv.log()[-3000:]   # the files exist
    tlsdir = srv.data_dir / "tls"
    if not _tls11_possible_locally(str(tlsdir / "selfsigned.crt"), str(tlsdir / "selfsigned.key")):
        pytest.skip("the local OpenSSL cannot do TLS 1.1 even with itself")
    # RFC 8446 §6.2 / RFC 8996: the server answers an old ClientHello with the
    # protocol_version alert (70), so the client can say why; a bare hang-up (EOF)
    # looks like a network fault.  Implicit TLS port:
    sock = socket.create_connection(("127.0.0.1", srv.ports["submissions"]), timeout=10)
    try:
        with pytest.raises(ssl.SSLError) as e:
            _tls11_client().wrap_socket(sock)
        assert "PROTOCOL_VERSION" in str(e.value).upper() and "EOF" not in str(e.value).upper(), e.value
    finally:
        sock.close()
    # ... and the same after STARTTLS (POP3's STLS: test_pop3.py)
    with connect(srv, "submission") as c:
        c.ehlo()
        assert c.cmd("STARTTLS").is_(220, "2.0.0")
        with pytest.raises(ssl.SSLError) as e:
            _tls11_client().wrap_socket(c.sock)
        assert "PROTOCOL_VERSION" in str(e.value).upper() and "EOF" not in str(e.value).upper(), e.value
    assert wait_log(srv, r"event=tls_handshake_failed\b[^\n]*listener=submission\b"), srv.log()[-3000:]
    # the server is still fine afterwards
    with connect_implicit(srv) as c:
        c.ehlo()


def test_tls12_works(srv):
    ctx = tls_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    sock = socket.create_connection(("127.0.0.1", srv.ports["submissions"]), timeout=10)
    with ctx.wrap_socket(sock) as t:
        assert t.version() == "TLSv1.2"
        c = SMTPConn.__new__(SMTPConn)
        c.sock, c.buf, c.timeout = t, b"", 10.0
        assert c.reply().code == 220
        c.ehlo()
        assert auth_plain(c).is_(235, "2.7.0")


def test_starttls_forgets_plaintext_login(server_factory):
    # RFC 3207 §4.2: after TLS starts the server MUST discard any knowledge obtained from the
    # client (the login included).  A login made in the clear (allow_plaintext_auth) must not
    # carry over into the TLS session, where a man in the middle could have injected it.
    srv = make_sub_server(server_factory, submission_extra="allow_plaintext_auth = yes\n")
    with connect(srv, "submission") as c:
        r = c.ehlo()
        assert "STARTTLS" in ehlo_keywords(r) and ehlo_auth_line(r), r
        assert auth_plain(c).is_(235, "2.7.0")
        starttls(c, ehlo=False)
        r = c.ehlo()
        assert ehlo_auth_line(r) is not None, "AUTH not offered after STARTTLS: %r" % (r,)
        r = c.cmd("MAIL FROM:<alice@example.test>")
        assert r.is_(530, "5.7.0"), "login survived STARTTLS: %r" % (r,)
        r = auth_plain(c)
        assert r.is_(235, "2.7.0"), r


def test_auth_line_too_long(srv):
    with connect_tls(srv) as c:
        r = c.cmd("AUTH PLAIN " + "A" * 20000)
        assert r.code == 500 and r.enh == "5.5.6", r
        assert c.cmd("NOOP").code == 250
        assert c.cmd("AUTH LOGIN").code == 334
        r = c.cmd("A" * 20000)
        assert r.code in (500, 501) and r.enh in ("5.5.6", "5.5.2"), r
        assert auth_plain(c).is_(235, "2.7.0")
