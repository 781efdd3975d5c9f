"""Support for the outbound transport-security tests (test_delivery_dane.py,
test_delivery_mta_sts.py): real peers on loopback, nothing here speaks the protocols
under test on Postern's behalf.

* `TestCA`: a certificate authority made with openssl(1): leaf certificates with the
  subjectAltNames a test asks for; its certificate is Postern's `[delivery] tls_ca_file`.
* `Nsd`: NSD (Debian nsd) on 127.0.0.1 and a free port, serving zones written by the
  test; a zone can be DNSSEC-signed with ldns-keygen/ldns-signzone (ldnsutils), and its
  DS record is the trust anchor given to Postern (`[delivery] dnssec_trust_anchor`).
  `tamper` edits a signed zone after signing, so that a record's signature no longer
  verifies (a DNSSEC-bogus answer).
* `PolicyServer`: Python's http.server behind ssl on 127.x.y.z:443 (the tests run as
  root, and any 127/8 address is loopback), answering /.well-known/mta-sts.txt with the
  policy registered for the request's Host.

Everything is bounded: every wait has a deadline, every process is stopped by pid."""
import http.server
import random
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from delivery_support import dns_query, free_port

NSD = "/usr/sbin/nsd"
LDNS_KEYGEN = "/usr/bin/ldns-keygen"
LDNS_SIGNZONE = "/usr/bin/ldns-signzone"


def run(cmd, cwd=None, timeout=60):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=timeout)
    assert p.returncode == 0, "%s: %s %s" % (cmd, p.stdout, p.stderr)
    return p.stdout.decode()


# -- certificates ----------------------------------------------------------------------------

class TestCA:
    __test__ = False     # not a pytest class

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.key = self.root / "ca.key"
        self.cert = self.root / "ca.crt"
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-days", "3", "-subj", "/CN=Postern Test CA", "-keyout", str(self.key), "-out", str(self.cert),
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def leaf(self, name, sans):
        """(cert, key) paths for a server certificate naming `sans` (DNS names)."""
        key, csr, cert = (self.root / ("%s.%s" % (name, x)) for x in ("key", "csr", "crt"))
        ext = self.root / ("%s.ext" % name)
        ext.write_text("subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                       % ",".join("DNS:" + s for s in sans))
        run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-subj", "/CN=%s" % sans[0], "-keyout", str(key), "-out", str(csr)])
        run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert)])
        return cert, key

    def server_context(self, cert, key):
        """The server presents its certificate and the CA's (RFC 7671 §5.2.2: a DANE-TA
        digest names a certificate the server must send)."""
        chain = Path(str(cert) + ".chain")
        chain.write_bytes(Path(cert).read_bytes() + self.cert.read_bytes())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(chain), str(key))
        return ctx


def spki_sha256(cert):
    """The TLSA 3 1 1 / 2 1 1 data of a certificate: SHA-256 of its SubjectPublicKeyInfo."""
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-pubkey"], capture_output=True,
                         timeout=30, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, capture_output=True,
                         timeout=30, check=True).stdout
    import hashlib
    return hashlib.sha256(der).hexdigest()


def cert_sha256(cert):
    """TLSA x 0 1 data: SHA-256 of the whole certificate (DER)."""
    der = subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"], capture_output=True,
                         timeout=30, check=True).stdout
    import hashlib
    return hashlib.sha256(der).hexdigest()


# -- DNS: NSD with signed zones ------------------------------------------------------------------

class Nsd:
    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.zones = {}          # name -> zone file name served
        self.port = None
        self.proc = None
        self.anchors = []        # DS lines of the signed zones

    def add_zone(self, origin, records, sign=False, tamper=()):
        """records: zone-file lines (relative names allowed).  With sign, the zone is
        signed and its DS added to the trust anchors; tamper: (substring, replace)
        pairs applied to the signed file (breaking those records' signatures)."""
        text = ("$ORIGIN %s.\n$TTL 300\n@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n"
                "@ IN NS ns.%s.\nns IN A 127.0.0.1\n" % (origin, origin, origin, origin))
        text += "".join(r + "\n" for r in records)
        zf = self.root / ("%s.zone" % origin)
        zf.write_text(text)
        served = zf.name
        if sign:
            base = run([LDNS_KEYGEN, "-a", "ECDSAP256SHA256", "-k", origin], cwd=self.root).strip()
            run([LDNS_SIGNZONE, "-o", origin, zf.name, base], cwd=self.root)
            signed = self.root / (zf.name + ".signed")
            body = signed.read_text()
            for old, new in tamper:
                # ldns writes "owner<TAB>ttl<TAB>IN<TAB>TYPE<TAB>rdata"; match on words
                lines = body.split("\n")
                hits = [i for i, ln in enumerate(lines) if " ".join(ln.split()).lower().find(old.lower()) >= 0]
                assert len(hits) == 1, "tamper: %r matches %d lines of the signed zone" % (old, len(hits))
                lines[hits[0]] = " ".join(lines[hits[0]].split()).lower().replace(old.lower(), new)
                body = "\n".join(lines)
            signed.write_text(body)
            self.anchors.append((self.root / (base + ".ds")).read_text().strip())
            served = signed.name
        self.zones[origin] = served

    def trust_anchor_file(self):
        p = self.root / "trust-anchors"
        p.write_text("".join(a + "\n" for a in self.anchors))
        return p

    def _config(self):
        conf = ("server:\n  ip-address: 127.0.0.1@%d\n  port: %d\n  username: \"\"\n  chroot: \"\"\n"
                "  zonesdir: \"%s\"\n  pidfile: \"%s/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"%s/xfrd.state\"\n"
                "  zonelistfile: \"%s/zone.list\"\n  logfile: \"%s/nsd.log\"\n  verbosity: 1\n  do-ip6: no\n"
                "  server-count: 1\n  tcp-count: 16\nremote-control:\n  control-enable: no\n"
                % (self.port, self.port, self.root, self.root, self.root, self.root, self.root))
        for name, f in self.zones.items():
            conf += "zone:\n  name: %s\n  zonefile: %s\n" % (name, f)
        path = self.root / "nsd.conf"
        path.write_text(conf)
        return path

    def start(self):
        probe = next(iter(self.zones))
        for _attempt in range(5):
            self.port = free_port(("127.0.0.1",), udp=True)
            conf = self._config()
            self.logf = open(self.root / "nsd.out", "ab")
            self.proc = subprocess.Popen([NSD, "-d", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                         stdout=self.logf, stderr=self.logf)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                if dns_query(self.port, probe, 6, timeout=0.2):
                    return self
                time.sleep(0.05)
            self.stop()
        log = (self.root / "nsd.log").read_text(errors="replace") if (self.root / "nsd.log").exists() else ""
        pytest.fail("nsd did not start: %s %s" % ((self.root / "nsd.out").read_text(errors="replace"), log))

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


# -- HTTPS: the MTA-STS policy server ---------------------------------------------------------------

class _PolicyHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):   # noqa: N802 - http.server's name
        srv = self.server.owner
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        with srv.lock:
            srv.requests.append((host, self.path))
            entry = srv.policies.get(host)
        if self.path != "/.well-known/mta-sts.txt" or entry is None:
            self.send_error(404)
            return
        status, body, ctype = entry
        data = body.encode()
        self.send_response(status)
        if status in (301, 302):
            self.send_header("Location", "https://elsewhere.test/.well-known/mta-sts.txt")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class PolicyServer:
    """HTTPS on addr:443 with a certificate for `names` from the test CA."""

    def __init__(self, ca, names, addr=None):
        self.addr = addr or "127.%d.%d.%d" % (random.randint(100, 250), random.randint(1, 250), random.randint(2, 250))
        self.cert, self.key = ca.leaf("mta-sts", names)
        self.ctx = ca.server_context(self.cert, self.key)
        self.policies = {}
        self.requests = []
        self.lock = threading.Lock()
        self.httpd = None

    def set_policy(self, host, body, status=200, ctype="text/plain"):
        with self.lock:
            self.policies[host.lower()] = (status, body, ctype)

    def fetches(self, host):
        with self.lock:
            return [r for r in self.requests if r[0] == host.lower()]

    def start(self):
        for _attempt in range(5):
            try:
                self.httpd = http.server.ThreadingHTTPServer((self.addr, 443), _PolicyHandler)
                break
            except OSError:
                self.addr = "127.%d.%d.%d" % (random.randint(100, 250), random.randint(1, 250), random.randint(2, 250))
        assert self.httpd, "no free 127.x.y.z:443"
        self.httpd.owner = self
        self.httpd.socket = self.ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.timeout = 5
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.addr, 443), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        pytest.fail("policy server did not start")

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(5)
            self.httpd = None


# -- the whole environment ------------------------------------------------------------------------

TLS_ADDR, PLAIN_ADDR = "127.0.0.2", "127.0.0.3"
STS_ID = "20261201a"


def policy(mode, *mx, max_age=86400):
    return "version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n" % (mode, "".join("mx: %s\r\n" % m for m in mx), max_age)


class TransportEnv:
    """The CA, receivers (TLS on 127.0.0.2, plaintext on 127.0.0.3, one port), NSD with
    the signed zone sec.test and the unsigned open.test, and the MTA-STS policy server."""

    def __init__(self, root):
        from delivery_support import AioReceiver
        self.root = Path(root)
        self.port = free_port((TLS_ADDR, PLAIN_ADDR))
        self.ca = TestCA(self.root / "ca")
        mx_names = ["mx-ok.sec.test", "mx-bad.sec.test", "mx-bogus.sec.test", "mx-ta.sec.test",
                    "mx-unusable.sec.test", "mx-u.open.test", "mx-tls.open.test"]
        self.mx_cert, self.mx_key = self.ca.leaf("mx", mx_names)
        self.tls_rx = AioReceiver([TLS_ADDR], self.port, tls_context=self.ca.server_context(self.mx_cert, self.mx_key))
        self.plain_rx = AioReceiver([PLAIN_ADDR], self.port)
        sts_domains = ("enf", "nost", "tst", "other", "redir")
        self.https = PolicyServer(self.ca, ["mta-sts.%s.open.test" % d for d in sts_domains])
        self.nsd = Nsd(self.root / "nsd")
        self.spki = spki_sha256(self.mx_cert)
        certhash = cert_sha256(self.mx_cert)
        p = self.port
        sec = [
            "ok MX 10 mx-ok", "mx-ok A %s" % TLS_ADDR, "_%d._tcp.mx-ok TLSA 3 1 1 %s" % (p, self.spki),
            "bad MX 10 mx-bad", "mx-bad A %s" % TLS_ADDR, "_%d._tcp.mx-bad TLSA 3 1 1 %s" % (p, "ab" * 32),
            "bogus MX 10 mx-bogus", "mx-bogus A %s" % TLS_ADDR, "_%d._tcp.mx-bogus TLSA 3 0 1 %s" % (p, certhash),
            "bogusmx MX 33 mx-ok",
            "ta MX 10 mx-ta", "mx-ta A %s" % TLS_ADDR, "_%d._tcp.mx-ta TLSA 2 0 1 %s" % (p, cert_sha256(self.ca.cert)),
            "notls MX 10 mx-notls", "mx-notls A %s" % PLAIN_ADDR, "_%d._tcp.mx-notls TLSA 3 1 1 %s" % (p, self.spki),
            "unusable MX 10 mx-unusable", "mx-unusable A %s" % TLS_ADDR,
            "_%d._tcp.mx-unusable TLSA 1 1 1 %s" % (p, self.spki),
        ]
        self.nsd.add_zone("sec.test", sec, sign=True, tamper=[
            ("3 0 1 %s" % certhash, "3 1 1 %s" % self.spki),      # TLSA of mx-bogus: signature broken
            ("mx 33 mx-ok", "mx 44 mx-ok"),                        # MX of bogusmx: signature broken
        ])
        opn = ["u MX 10 mx-u", "mx-u A %s" % TLS_ADDR, "_%d._tcp.mx-u TLSA 3 1 1 %s" % (p, "cd" * 32),
               "mx-tls A %s" % TLS_ADDR, "mx-plain A %s" % PLAIN_ADDR]
        for d, mx in (("enf", "mx-tls"), ("nost", "mx-plain"), ("tst", "mx-plain"), ("other", "mx-tls"),
                      ("redir", "mx-tls")):
            opn += ["%s MX 10 %s" % (d, mx), '_mta-sts.%s TXT "v=STSv1; id=%s;"' % (d, STS_ID),
                    "mta-sts.%s A %s" % (d, self.https.addr)]
        self.nsd.add_zone("open.test", opn)
        self.https.set_policy("mta-sts.enf.open.test", policy("enforce", "mx-tls.open.test"))
        self.https.set_policy("mta-sts.nost.open.test", policy("enforce", "mx-plain.open.test"))
        self.https.set_policy("mta-sts.tst.open.test", policy("testing", "mx-plain.open.test"))
        self.https.set_policy("mta-sts.other.open.test", policy("enforce", "mx.elsewhere.test", "*.other.test"))
        self.https.set_policy("mta-sts.redir.open.test", policy("enforce", "mx-tls.open.test"), status=302)

    def start(self):
        self.tls_rx.start()
        self.plain_rx.start()
        self.https.start()
        self.nsd.start()
        self.anchor = self.nsd.trust_anchor_file()
        return self

    def stop(self):
        for x in (self.nsd, self.https, self.plain_rx, self.tls_rx):
            try:
                x.stop()
            except Exception:   # noqa: BLE001 - stop everything whatever one does
                pass

    def server(self, server_factory, **delivery):
        from delivery_support import make_server
        d = {"resolver": "127.0.0.1@%d" % self.nsd.port, "dnssec_trust_anchor": str(self.anchor),
             "tls_ca_file": str(self.ca.cert)}
        d.update(delivery)
        return make_server(server_factory, None, self.port, delivery=d)
