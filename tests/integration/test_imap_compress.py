"""IMAP COMPRESS=DEFLATE (RFC 4978) against Python's imaplib with zlib's deflate
wrapped around its socket (the IMAP framing is imaplib's, the compression zlib's;
interimap, a client nobody here wrote, uses COMPRESS in test_imap_messages.py), over
implicit TLS and over STARTTLS; the refusals (a second COMPRESS, before login, an
unknown method); hostile compressed input: garbage and an inflate bomb end the
session with a BYE that says why, and the server's memory stays bounded.  One server
for the module; every read is bounded."""
import imaplib
import re
import socket
import sys
import time
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Server  # noqa: E402
from submission_support import tls_context, wait_ports  # noqa: E402

ALICE = "alice@example.test"
PASSWORD = "secret"
EXTRA = ("\n[listener imap]\naddress = 127.0.0.1\nport = 0\nrole = imap\ntls = starttls\n"
         "\n[listener imaps]\naddress = 127.0.0.1\nport = 0\nrole = imap\ntls = implicit\n")
# imaplib knows no COMPRESS: allowed in every state here so the refusal before login is the server's
imaplib.Commands.setdefault("COMPRESS", ("NONAUTH", "AUTH", "SELECTED"))


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("imapz"), users=(ALICE,), extra=EXTRA)
    s.start()
    s.ports = wait_ports(s, ["imap", "imaps"])
    yield s
    s.stop()
    problems = s.check_after()
    assert not problems, "\n".join(problems)


class Deflating:
    """imaplib's send/read/readline through a raw deflate stream once compress() said OK."""

    def compress(self):
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        assert typ == "OK", data
        self.z_out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.z_in = zlib.decompressobj(-15)
        self.z_buf = b""
        self.wire_in = 0

    def send(self, data):
        if not hasattr(self, "z_out"):
            return super().send(data)
        self.sock.sendall(self.z_out.compress(data) + self.z_out.flush(zlib.Z_SYNC_FLUSH))

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise imaplib.IMAP4.abort("socket closed")
        self.wire_in += len(chunk)
        self.z_buf += self.z_in.decompress(chunk)

    def read(self, size):
        if not hasattr(self, "z_in"):
            return super().read(size)
        while len(self.z_buf) < size:
            self._fill()
        out, self.z_buf = self.z_buf[:size], self.z_buf[size:]
        return out

    def readline(self):
        if not hasattr(self, "z_in"):
            return super().readline()
        while b"\n" not in self.z_buf:
            self._fill()
        i = self.z_buf.index(b"\n") + 1
        out, self.z_buf = self.z_buf[:i], self.z_buf[i:]
        return out


class DeflatingSSL(Deflating, imaplib.IMAP4_SSL):
    pass


class DeflatingPlain(Deflating, imaplib.IMAP4):
    pass


def message(subject, body):
    return ("From: a@example.test\r\nTo: alice@example.test\r\nSubject: %s\r\n\r\n%s\r\n" % (subject, body)).encode()


def test_compress_over_tls_with_imaplib(srv):
    m = DeflatingSSL("127.0.0.1", srv.ports["imaps"], ssl_context=tls_context(), timeout=10)
    assert "COMPRESS=DEFLATE" not in m.capabilities   # offered once logged in (RFC 4978 §3)
    typ, data = m.login(ALICE, PASSWORD)
    assert typ == "OK" and b"COMPRESS=DEFLATE" in data[0], data
    m.compress()
    assert "COMPRESS=DEFLATE" not in m.capability()[1][-1].decode().split()   # once per connection
    body = "the same line again and again, which compresses well\r\n" * 2000
    assert m.append("INBOX", None, None, message("squeezed", body))[0] == "OK"
    assert m.select("INBOX")[0] == "OK"
    before = m.wire_in
    typ, data = m.fetch("1", "(BODY.PEEK[TEXT])")
    assert typ == "OK" and data[0][1].replace(b"\r\n", b"") == body.replace("\r\n", "").encode()
    assert m.wire_in - before < len(body) // 10, (m.wire_in - before, len(body))   # it really is compressed
    typ, data = m._simple_command("COMPRESS", "DEFLATE")   # RFC 4978 §3: already active
    assert typ == "NO" and data[0].startswith(b"[COMPRESSIONACTIVE]"), data
    assert m.noop()[0] == "OK"
    assert m.logout()[0] == "BYE"
    assert re.search(r"event=compress conn=\d+ client=127\.0\.0\.1 method=deflate memory=\d+", srv.log())


def test_compress_after_starttls_and_refusals(srv):
    m = DeflatingPlain("127.0.0.1", srv.ports["imap"], timeout=10)
    with pytest.raises(imaplib.IMAP4.error) as e:   # not before a login (imaplib raises on BAD)
        m._simple_command("COMPRESS", "DEFLATE")
    assert "COMPRESS needs a login first" in str(e.value), e.value
    m.starttls(ssl_context=tls_context())
    assert m.login(ALICE, PASSWORD)[0] == "OK"
    with pytest.raises(imaplib.IMAP4.error) as e:   # unknown method: BAD (RFC 4978 §3)
        m._simple_command("COMPRESS", "LZMA")
    assert "COMPRESS LZMA: unknown compression method" in str(e.value), e.value
    m.compress()   # the same connection, still plaintext IMAP after the refusals
    assert m.list()[0] == "OK"
    assert m.status("INBOX", "(MESSAGES)")[0] == "OK"
    assert m.logout()[0] == "BYE"


def raw_compressed(srv):
    """A TLS socket logged in, COMPRESS answered: (socket, inflater)."""
    sock = tls_context().wrap_socket(socket.create_connection(("127.0.0.1", srv.ports["imaps"]), timeout=10))
    buf = b""
    sock.sendall(("a LOGIN %s %s\r\nb COMPRESS DEFLATE\r\n" % (ALICE, PASSWORD)).encode())
    deadline = time.monotonic() + 10
    while b"\r\nb OK" not in buf or not buf.endswith(b"\r\n"):
        assert time.monotonic() < deadline, buf
        chunk = sock.recv(65536)
        assert chunk, buf
        buf += chunk
    return sock, zlib.decompressobj(-15)


def read_until_closed(sock, z):
    out = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, OSError):
            break
        if not chunk:
            break
        out += z.decompress(chunk)
    return out.decode("utf-8", "replace")


def server_rss_kib(srv):
    for line in Path("/proc/%d/status" % srv.proc.pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_garbage_compressed_input_gets_a_bye(srv):
    sock, z = raw_compressed(srv)
    sock.sendall(b"\xff" * 64)   # BFINAL=1 BTYPE=11: an invalid block (RFC 1951 §3.2.3)
    text = read_until_closed(sock, z)
    assert text.startswith("* BYE Closing the connection: what the mail program sent cannot be decompressed"), text
    assert "event=compress_broken" in srv.log()
    assert srv.alive()


def test_inflate_bomb_is_bounded(srv):
    sock, z = raw_compressed(srv)
    rss = server_rss_kib(srv)
    zo = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = zo.compress(b"c NOOP ") + b"".join(zo.compress(b"A" * (1 << 20)) for _ in range(64))
    bomb += zo.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 200_000   # 64 MiB of line, without a line end
    try:
        sock.sendall(bomb)
    except (ConnectionResetError, BrokenPipeError):
        pass
    text = read_until_closed(sock, z)
    assert "c BAD [LIMIT] Command line too long: over 1048576 octets without a line end" in text, text
    assert "* BYE" in text
    assert srv.alive()
    grown = server_rss_kib(srv) - rss
    assert grown < 16 * 1024, "the server grew by %d KiB" % grown
