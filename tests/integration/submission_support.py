"""Support for the submission/TLS/AUTH/relay integration tests.

The shared `server_factory` fixture (conftest.py) writes one `[listener smtp]` (role = mx,
no tls line) and appends `extra` right after it, but it cannot set `[server]` keys such as
`trusted_networks`, and `Server.port` is only the first listener's port.  So here we:

* append `tls = starttls` to `[listener smtp]` through `extra` and add the submission
  listeners (`submission` STARTTLS, `submissions` implicit, optionally `plain` tls = none);
* rewrite the configuration (same data_dir) with `[server]` overrides before starting;
* read every listener's port from the `event=listening listener=NAME ... port=N` lines.

Everything is bounded: every read has a timeout, every loop a maximum count."""
import base64
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import write_config, run_cli  # noqa: E402
from helpers import SMTPConn, SMTPError  # noqa: E402

LISTENING_RE = re.compile(r"event=listening\b.*?\blistener=(\S+)\b.*?\bport=(\d+)")
APP_PASSWORD_RE = re.compile(r"^\s*([A-Za-z0-9]{4}(?:-[A-Za-z0-9]{4})+)\s*$", re.M)
USERS = ("alice@example.test", "bob@example.test")
PASSWORD = "secret"


def tls_context():
    """A client context that does not verify (the server's certificate is self-signed)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def listener_sections(plain=False, plain_auth=None, submission_extra=""):
    """Text appended right after the fixture's [listener smtp] section."""
    text = "tls = starttls\n"
    text += "\n[listener submission]\naddress = 127.0.0.1\nport = 0\nrole = submission\ntls = starttls\n"
    text += submission_extra
    text += "\n[listener submissions]\naddress = 127.0.0.1\nport = 0\nrole = submission\ntls = implicit\n"
    if plain:
        text += "\n[listener plain]\naddress = 127.0.0.1\nport = 0\nrole = submission\ntls = none\n"
        if plain_auth is not None:
            text += "allow_plaintext_auth = %s\n" % plain_auth
    return text


def wait_ports(srv, names, timeout=10.0):
    """{listener name: port} once every name has logged event=listening (bounded)."""
    deadline = time.monotonic() + timeout
    ports = {}
    for _ in range(1000):
        ports = {m.group(1): int(m.group(2)) for m in LISTENING_RE.finditer(srv.log())}
        if all(n in ports for n in names) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    missing = [n for n in names if n not in ports]
    if missing:
        pytest.fail("listeners %s never logged event=listening; log:\n%s" % (missing, srv.log()[-4000:]))
    return ports


def make_sub_server(server_factory, plain=False, plain_auth=None, auth=None, server=None, users=USERS,
                    submission_extra=""):
    """Start a server with the mx (STARTTLS), submission (STARTTLS), submissions (implicit)
    and optionally plain (tls = none) listeners.  Returns the Server with `.ports`."""
    extra = listener_sections(plain, plain_auth, submission_extra)
    if auth:
        extra += "\n[auth]\n" + "".join("%s = %s\n" % kv for kv in auth.items())
    srv = server_factory(users=users, extra=extra, start=False)
    if server:
        write_config(srv.config, srv.data_dir, server=server, extra=extra)
    srv.start()
    names = ["smtp", "submission", "submissions"] + (["plain"] if plain else [])
    srv.ports = wait_ports(srv, names)
    return srv


def wait_log(srv, pattern, timeout=10.0):
    """The first match of regex `pattern` in the current log (bounded wait), or None."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    for _ in range(1000):
        m = rx.search(srv.log())
        if m or time.monotonic() > deadline:
            return m
        time.sleep(0.05)
    return None


# -- raw connections -----------------------------------------------------------

def connect(srv, listener, source=None, timeout=10.0):
    """Plain SMTPConn to a listener (greeting read).  For `submissions` use connect_implicit."""
    port = srv.ports[listener]
    if source is None:
        return SMTPConn("127.0.0.1", port, timeout=timeout)
    conn = SMTPConn.__new__(SMTPConn)
    conn.timeout = timeout
    conn.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    conn.buf = b""
    conn.greeting = conn.reply()
    return conn


def starttls(conn, ehlo=True):
    """EHLO (optional), STARTTLS, handshake; conn.sock becomes the TLS socket."""
    if ehlo:
        conn.ehlo()
    r = conn.cmd("STARTTLS")
    assert r.is_(220, "2.0.0"), r
    assert conn.buf == b"", "server sent bytes after the 220 to STARTTLS: %r" % conn.buf
    conn.sock = tls_context().wrap_socket(conn.sock)
    return conn


def connect_tls(srv, listener="submission", source=None, ehlo=True):
    """Connected, STARTTLS done, and (if ehlo) EHLO sent again inside TLS."""
    conn = connect(srv, listener, source=source)
    starttls(conn)
    if ehlo:
        conn.ehlo()
    return conn


def connect_implicit(srv, listener="submissions", timeout=10.0):
    conn = SMTPConn("127.0.0.1", srv.ports[listener], timeout=timeout, read_greeting=False)
    conn.sock = tls_context().wrap_socket(conn.sock)
    conn.greeting = conn.reply()
    return conn


def b64(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return base64.b64encode(s).decode("ascii")


def plain_token(user, password, authzid=""):
    return b64("%s\0%s\0%s" % (authzid, user, password))


def auth_plain(conn, user="alice@example.test", password=PASSWORD):
    return conn.cmd("AUTH PLAIN " + plain_token(user, password))


def ehlo_keywords(reply):
    """Set of upper-case EHLO keywords (first word of each line after the greeting line)."""
    return {l.split(" ", 1)[0].upper() for l in reply.lines[1:] if l}


def ehlo_auth_line(reply):
    for l in reply.lines[1:]:
        if l.upper().startswith("AUTH"):
            return l.upper().split()
    return None


def app_password_from(text):
    m = APP_PASSWORD_RE.search(text)
    return m.group(1) if m else None


def run(cmd, timeout=30, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)


def smtplib_login(srv, user="alice@example.test", password=PASSWORD, source=None, listener="submission"):
    """smtplib over STARTTLS; returns the logged-in SMTP object (caller quits)."""
    s = smtplib.SMTP("127.0.0.1", srv.ports[listener], timeout=10,
                     source_address=(source, 0) if source else None)
    s.ehlo("client.example")
    s.starttls(context=tls_context())
    s.ehlo("client.example")
    s.login(user, password)
    return s


def simple_msg(sender="alice@example.test", to="alice@example.test", subject="test", from_header=None):
    fh = from_header if from_header is not None else "<%s>" % sender
    return ("From: %s\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%d@client.example>\r\n\r\nhello\r\n"
            % (fh, to, subject, time.monotonic_ns())).encode("utf-8")


__all__ = [n for n in dir() if not n.startswith("_")] + ["SMTPError", "run_cli"]
