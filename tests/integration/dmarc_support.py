"""DMARC test support: real peers for the inbound checks.

* `OpenDkim`: OpenDKIM (Debian opendkim) as a signing milter on a free loopback port,
  with a key made by opendkim-genkey in the test's directory; `sign()` hands it a
  message over the milter protocol (a minimal client here: option negotiation, connect,
  HELO, MAIL, RCPT, headers, body, end of body) and returns the message with the
  DKIM-Signature field OpenDKIM added.  (opendkim-testmsg signs only with rsa-sha1,
  which RFC 8301 forbids, so the milter itself is used.)
* `py_sign()`: python3-dkim signing (rsa-sha256, relaxed/relaxed) with a key made here.
* `txt_args()`: dnsmasq --txt-record arguments for a dict of names and TXT values
  (long values split into 255-octet character-strings; no commas).
* `parse_authres()`: python3-authres, the oracle, on the Authentication-Results field.

Every read has a timeout; every process is stopped by its pid."""
import re
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

OPENDKIM = "/usr/sbin/opendkim"
OPENDKIM_GENKEY = "/usr/sbin/opendkim-genkey"


def txt_args(records):
    """On dnsmasq's command line a comma separates character-strings and quotes are
    kept literally: values are given bare, and must hold no comma."""
    out = []
    for name, value in records.items():
        assert "," not in value, value
        parts = [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
        out.append("--txt-record=%s,%s" % (name, ",".join(parts)))
    return out


def _zone_txt(path):
    """The TXT value of an opendkim-genkey .txt file (its quoted strings joined)."""
    return "".join(re.findall(r'"([^"]*)"', Path(path).read_text()))


def _free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class OpenDkim:
    def __init__(self, root, domain, selector):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.domain, self.selector = domain, selector
        p = subprocess.run([OPENDKIM_GENKEY, "-b", "2048", "-d", domain, "-s", selector, "-D", str(self.root)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        self.key = self.root / (selector + ".private")
        self.key.chmod(0o600)
        self.record = _zone_txt(self.root / (selector + ".txt"))
        self.proc = None
        self.port = None

    def start(self):
        for _attempt in range(5):
            self.port = _free_tcp_port()
            conf = self.root / "opendkim.conf"
            conf.write_text("Mode s\nDomain %s\nSelector %s\nKeyFile %s\nSignatureAlgorithm rsa-sha256\n"
                            "Canonicalization relaxed/relaxed\nSocket inet:%d@127.0.0.1\nBackground no\n"
                            "PidFile %s\nSyslog no\nRequireSafeKeys false\nInternalHosts 127.0.0.1\n"
                            % (self.domain, self.selector, self.key, self.port, self.root / "opendkim.pid"))
            self.logf = open(self.root / "opendkim.log", "ab")
            self.proc = subprocess.Popen([OPENDKIM, "-x", str(conf), "-f"], stdin=subprocess.DEVNULL,
                                         stdout=self.logf, stderr=self.logf)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        pytest.fail("opendkim did not start; log:\n%s" % (self.root / "opendkim.log").read_text(errors="replace"))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.logf.close()
            self.proc = None

    def sign(self, message, sender, rcpt):
        added, final = milter_sign(self.port, message, sender, rcpt)
        sigs = [(n, v) for n, v in added if n.lower() == b"dkim-signature"]
        assert sigs, "OpenDKIM added no signature (reply %r); log:\n%s" % (
            final, (self.root / "opendkim.log").read_text(errors="replace"))
        return b"".join(n + b": " + v.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n"
                        for n, v in sigs) + message


# -- a minimal milter client (the milter protocol, version 6) -----------------------------

def _pkt(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


def _recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError("the milter closed the connection")
        data += chunk
    return data


def _read(s):
    n = struct.unpack(">I", _recv_exact(s, 4))[0]
    assert 0 < n < 1 << 20
    data = _recv_exact(s, n)
    return data[:1], data[1:]


def milter_sign(port, message, sender, rcpt, timeout=10):
    """Header fields the milter adds ([(name, value)]) and its final reply code."""
    head, _, body = message.partition(b"\r\n\r\n")
    fields = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1] += b"\r\n" + line
        else:
            n, _, v = line.partition(b":")
            fields.append([n, v.lstrip(b" ")])
    steps = [(b"C", b"localhost\0" + b"4" + struct.pack(">H", 12345) + b"127.0.0.1\0"),
             (b"H", b"client.example\0"), (b"M", b"<" + sender.encode() + b">\0"),
             (b"R", b"<" + rcpt.encode() + b">\0")]
    steps += [(b"L", n + b"\0" + v + b"\0") for n, v in fields]
    steps += [(b"N", b""), (b"B", body), (b"E", b"")]
    added, final = [], None
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(_pkt(b"O", struct.pack(">III", 6, 0x1FF, 0)))
        _read(s)
        for cmd, data in steps:
            if cmd == b"M":
                s.sendall(_pkt(b"D", b"M" + b"i\0QID1\0"))   # the queue id macro, for its logs
            s.sendall(_pkt(cmd, data))
            for _ in range(100):
                r, d = _read(s)
                if r not in (b"h", b"i"):
                    final = r
                    break
                if r == b"i":
                    d = d[4:]   # insert header: the index first
                n, v = d.split(b"\0")[:2]
                added.append((n, v))
        s.sendall(_pkt(b"Q"))
    finally:
        s.close()
    return added, final


# -- python3-dkim --------------------------------------------------------------------------

def py_key(root):
    """A 2048-bit RSA key (PEM bytes) and its DKIM key record."""
    import base64
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                          serialization.NoEncryption())
    pub = k.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(pub).decode()


def py_sign(message, domain, selector, pem):
    import dkim
    sig = dkim.sign(message, selector.encode(), domain.encode(), pem,
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + message


# -- python3-authres -----------------------------------------------------------------------

def parse_authres(value):
    import authres
    return authres.AuthenticationResultsHeader.parse("Authentication-Results: " + value)
