"""Small SMTP helpers for the Postern integration tests.

Everything here is bounded: every read has a timeout and every loop a maximum count."""
import re
import socket
import time

ENH_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")
QID_RE = re.compile(r"queued as ([0-9A-Fa-f]{16})\b")
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
)


class SMTPError(Exception):
    pass


class Reply:
    """One (possibly multi-line) SMTP reply."""

    def __init__(self, raw_lines):
        self.raw_lines = raw_lines          # list of bytes, CRLF stripped
        first = raw_lines[0].decode("latin-1")
        self.code = int(first[:3])
        self.lines = [l.decode("latin-1")[4:] for l in raw_lines]
        tok = self.lines[0].split(" ", 1)[0] if self.lines[0] else ""
        self.enh = tok if ENH_RE.match(tok) else None

    @property
    def text(self):
        """All lines joined with newlines (without code and separators)."""
        return "\n".join(self.lines)

    @property
    def qid(self):
        m = QID_RE.search(self.text)
        return m.group(1) if m else None

    def __repr__(self):
        return "Reply(%r)" % b"\r\n".join(self.raw_lines).decode("latin-1")

    def is_(self, code, enh=None):
        return self.code == code and (enh is None or self.enh == enh)


class SMTPConn:
    """A raw SMTP connection over a socket: send bytes, read complete replies."""

    def __init__(self, host, port, timeout=10.0, read_greeting=True):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.greeting = self.reply() if read_greeting else None

    # -- low level ---------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SMTPError("timeout waiting for the server; buffered %r" % self.buf)
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise SMTPError("timeout waiting for the server; buffered %r" % self.buf)
        if not chunk:
            raise EOFError("connection closed by the server; buffered %r" % self.buf)
        self.buf += chunk

    def readline(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        for _ in range(100000):
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > 100000:
                raise SMTPError("reply line too long")
            self._fill(deadline)
        raise SMTPError("too many reads")

    def reply(self, timeout=None):
        lines = []
        for _ in range(1000):
            line = self.readline(timeout)
            if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3:4] not in b" -"):
                raise SMTPError("malformed reply line %r" % line)
            if lines and line[:3] != lines[0][:3]:
                raise SMTPError("reply code changed inside a multi-line reply: %r after %r" % (line, lines))
            lines.append(line)
            if len(line) == 3 or line[3:4] == b" ":
                return Reply(lines)
        raise SMTPError("reply with too many lines")

    def cmd(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def wait_closed(self, timeout=5.0):
        """True if the server closes the connection within timeout (data read meanwhile is kept)."""
        deadline = time.monotonic() + timeout
        for _ in range(10000):
            try:
                self._fill(deadline)
            except EOFError:
                return True
            except (SMTPError, OSError) as e:
                if isinstance(e, ConnectionResetError):
                    return True
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

    # -- conveniences --------------------------------------------------------
    def ehlo(self, name="client.example"):
        r = self.cmd("EHLO " + name)
        assert r.code == 250, r
        return r

    def start_mail(self, sender="a@b.example", rcpts=("alice@example.test",), params=""):
        """EHLO + MAIL + RCPTs; returns the list of RCPT replies."""
        self.ehlo()
        r = self.cmd("MAIL FROM:<%s>%s" % (sender, params))
        assert r.is_(250, "2.1.0"), r
        return [self.cmd("RCPT TO:<%s>" % rc) for rc in rcpts]

    def data(self, body):
        """DATA + body (bytes, CRLF line ends, dot-stuffing done by caller) + end; returns final reply."""
        r = self.cmd("DATA")
        assert r.code == 354, r
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.send(body + b".\r\n")
        return self.reply(timeout=30)


def dot_stuff(body: bytes) -> bytes:
    lines = body.split(b"\r\n")
    return b"\r\n".join((b"." + l) if l.startswith(b".") else l for l in lines)


def message(subject="test", body="hello\r\n", sender="a@b.example", to="alice@example.test", extra=""):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@client.example>\r\n%s\r\n%s"
            % (sender, to, subject, re.sub(r"[^A-Za-z0-9.-]", "-", subject) + "." + str(time.monotonic_ns()),
               extra, body)).encode("utf-8")


def split_message(data: bytes):
    """(header block, body) of a stored LF message."""
    i = data.find(b"\n\n")
    if i < 0:
        return data, b""
    return data[:i + 1], data[i + 2:]


def unfolded_headers(data: bytes):
    """List of (name, value) from a stored LF message, folded lines joined."""
    head, _ = split_message(data)
    out = []
    for line in head.decode("latin-1").split("\n"):
        if not line:
            continue
        if line[0] in " \t" and out:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
        elif ":" in line:
            n, v = line.split(":", 1)
            out.append((n, v.strip()))
    return out
