"""Support for the POP3, quota and POP-before-SMTP integration tests.

A server from the shared `server_factory` fixture (conftest.py) gets, next to its
`[listener smtp]` (role = mx, plaintext):

* `pop3`       role = pop3, tls = starttls (110 style, offers STLS)
* `pop3s`      role = pop3, tls = implicit (995 style)
* `pop3plain`  role = pop3, tls = none, allow_plaintext_auth = yes (optional)
* `submission` role = submission, tls = starttls (optional, for SMTP AUTH)

plus optional `[quota]` / `[auth]` sections and `[server]` overrides (written with
conftest.write_config, as submission_support does).  Every listener's port is read
from its `event=listening` line.

Also: a raw POP3 client (plain or TLS) for what poplib cannot do (AUTH, pipelining,
dropping the connection), Maildir file helpers, and SMTP delivery helpers.
Everything is bounded: every read has a timeout, every loop a maximum count."""
import os
import socket
import ssl
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import write_config  # noqa: E402
from helpers import SMTPConn, message  # noqa: E402
from submission_support import tls_context, wait_ports, wait_log, b64  # noqa: E402,F401

ALICE = "alice@example.test"
BOB = "bob@example.test"
USERS = (ALICE, BOB)
PASSWORD = "secret"


def pop3_sections(plain=False, submission=False):
    """Text appended right after the fixture's [listener smtp] section."""
    text = "\n[listener pop3]\naddress = 127.0.0.1\nport = 0\nrole = pop3\ntls = starttls\n"
    text += "\n[listener pop3s]\naddress = 127.0.0.1\nport = 0\nrole = pop3\ntls = implicit\n"
    if plain:
        text += ("\n[listener pop3plain]\naddress = 127.0.0.1\nport = 0\nrole = pop3\ntls = none\n"
                 "allow_plaintext_auth = yes\n")
    if submission:
        text += "\n[listener submission]\naddress = 127.0.0.1\nport = 0\nrole = submission\ntls = starttls\n"
    return text


def make_pop3_server(server_factory, plain=False, submission=False, server=None, quota=None, auth=None,
                     users=USERS, limits=None, mailauth=None):
    """Start a server with the POP3 listeners; returns the Server with `.ports`
    ({listener name: port}, including "smtp")."""
    extra = pop3_sections(plain, submission)
    if quota:
        extra += "\n[quota]\n" + "".join("%s = %s\n" % kv for kv in quota.items())
    if auth:
        extra += "\n[auth]\n" + "".join("%s = %s\n" % kv for kv in auth.items())
    if mailauth:
        extra += "\n[mailauth]\n" + "".join("%s = %s\n" % kv for kv in mailauth.items())
    srv = server_factory(users=users, extra=extra, start=False, limits=limits)
    srv.extra = extra
    srv.server_overrides = server
    if server:
        write_config(srv.config, srv.data_dir, server=server, extra=extra, limits=limits,
                     queue={"retry_min": "1s"})
    srv.start()
    srv.pop3_names = ["smtp", "pop3", "pop3s"] + (["pop3plain"] if plain else []) + \
        (["submission"] if submission else [])
    srv.ports = wait_ports(srv, srv.pop3_names)
    return srv


def restart(srv):
    """Restart the server and read the (new) ports."""
    srv.restart()
    srv.ports = wait_ports(srv, srv.pop3_names)
    return srv


# -- poplib --------------------------------------------------------------------

def poplib_stls(srv, user=ALICE, password=PASSWORD, listener="pop3"):
    import poplib
    p = poplib.POP3("127.0.0.1", srv.ports[listener], timeout=10)
    p.stls(context=tls_context())
    if user is not None:
        p.user(user)
        p.pass_(password)
    return p


def poplib_ssl(srv, user=ALICE, password=PASSWORD, listener="pop3s"):
    import poplib
    p = poplib.POP3_SSL("127.0.0.1", srv.ports[listener], timeout=10, context=tls_context())
    if user is not None:
        p.user(user)
        p.pass_(password)
    return p


def uidl_map(p):
    """{msg number: uid} from poplib's uidl()."""
    resp, lines, _ = p.uidl()
    assert resp.startswith(b"+OK"), resp
    out = {}
    for l in lines:
        n, u = l.decode("ascii").split(" ", 1)
        out[int(n)] = u
    return out


def list_map(p):
    resp, lines, _ = p.list()
    assert resp.startswith(b"+OK"), resp
    out = {}
    for l in lines:
        n, s = l.decode("ascii").split(" ", 1)
        out[int(n)] = int(s)
    return out


# -- a raw POP3 client ---------------------------------------------------------

class POP3Error(Exception):
    pass


class RawPOP3:
    """A POP3 connection over a socket: send lines, read status lines and multi-line
    responses (dot-unstuffed, lines as bytes without CRLF)."""

    def __init__(self, port, tls=False, timeout=10.0, source=None):
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        if tls:
            self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""
        self.greeting = self.status()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise POP3Error("timeout waiting for the server; buffered %r" % self.buf[-500:])
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise POP3Error("timeout waiting for the server; buffered %r" % self.buf[-500:])
        if not chunk:
            raise EOFError("connection closed by the server; buffered %r" % self.buf[-500:])
        self.buf += chunk

    def readline(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        for _ in range(1000000):
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > 200000:
                raise POP3Error("line too long")
            self._fill(deadline)
        raise POP3Error("too many reads")

    def status(self, timeout=None):
        line = self.readline(timeout).decode("latin-1")
        if not (line.startswith("+OK") or line.startswith("-ERR") or line.startswith("+")):
            raise POP3Error("not a status line: %r" % line)
        return line

    def multiline(self, timeout=None, max_lines=1000000):
        """The lines of a multi-line response up to '.', unstuffed."""
        out = []
        for _ in range(max_lines):
            l = self.readline(timeout)
            if l == b".":
                return out
            if l.startswith(b"."):
                l = l[1:]
            out.append(l)
        raise POP3Error("multi-line response too long")

    def cmd(self, line, timeout=None):
        self.send((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\r\n")
        return self.status(timeout)

    def cmd_multi(self, line, timeout=None):
        st = self.cmd(line, timeout)
        if not st.startswith("+OK"):
            return st, None
        return st, self.multiline(timeout)

    def stls(self):
        st = self.cmd("STLS")
        assert st.startswith("+OK"), st
        assert self.buf == b"", "bytes after +OK to STLS: %r" % self.buf
        self.sock = tls_context().wrap_socket(self.sock)
        return st

    def login(self, user=ALICE, password=PASSWORD):
        st = self.cmd("USER " + user)
        assert st.startswith("+OK"), st
        return self.cmd("PASS " + password)

    def wait_closed(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        for _ in range(10000):
            try:
                self._fill(deadline)
            except (EOFError, ConnectionResetError):
                return True
            except (POP3Error, OSError):
                return False
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def raw_tls(srv, user=ALICE, password=PASSWORD, listener="pop3s", source=None):
    """Logged-in raw session over implicit TLS (asserts +OK)."""
    c = RawPOP3(srv.ports[listener], tls=True, source=source)
    if user is not None:
        st = c.login(user, password)
        assert st.startswith("+OK"), st
    return c


# -- Maildir -------------------------------------------------------------------

_seq = [0]


def maildir_name(data, t=None, host="client"):
    """A Dovecot-style Maildir name for stored (LF) bytes: base,S=<size>,W=<crlf size>."""
    _seq[0] += 1
    t = int(t if t is not None else time.time())
    base = "%d.M%dP%dQ%d.%s" % (t, _seq[0] * 7 % 1000000, os.getpid(), _seq[0], host)
    w = len(data) + data.count(b"\n") - data.count(b"\r\n")
    return base, "%s,S=%d,W=%d" % (base, len(data), w)


def put_message(srv, address, data, sub="new", t=None, with_sizes=True):
    """Write a message straight into address's Maildir (tmp/ then rename); returns the base name."""
    md = srv.maildir(address)
    for d in ("cur", "new", "tmp"):
        (md / d).mkdir(parents=True, exist_ok=True)
    base, full = maildir_name(data, t)
    name = full if with_sizes else base
    if sub == "cur":
        name += ":2,"
    tmp = md / "tmp" / name
    tmp.write_bytes(data)
    os.rename(tmp, md / sub / name)
    return base


def lf_message(subject, body_lines=("hello",), extra_headers=()):
    head = ["From: <a@b.example>", "To: <%s>" % ALICE, "Subject: %s" % subject,
            "Message-ID: <%s.%d@client.example>" % (subject.replace(" ", "-"), time.monotonic_ns())]
    head += list(extra_headers)
    return ("\n".join(head) + "\n\n" + "\n".join(body_lines) + "\n").encode("utf-8")


def crlf(data):
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# -- SMTP ---------------------------------------------------------------------

def smtp_send(srv, rcpt=ALICE, subject="test", body="hello\r\n", sender="a@b.example", expect=250):
    """One message over the mx listener; returns the final reply (asserts `expect` at RCPT
    when it is not 250)."""
    with SMTPConn("127.0.0.1", srv.ports["smtp"]) as c:
        rr = c.start_mail(sender=sender, rcpts=(rcpt,))
        if rr[0].code != 250:
            assert rr[0].code == expect, rr[0]
            c.cmd("QUIT")
            return rr[0]
        r = c.data(message(subject=subject, body=body, sender=sender, to=rcpt))
        c.cmd("QUIT")
        return r


__all__ = [n for n in dir() if not n.startswith("_")]
