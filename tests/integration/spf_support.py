"""SPF test support: a small authoritative DNS server on 127.0.0.1 (UDP and TCP, one
free port) serving a zone given as a dict, built on dnspython (Debian
python3-dnspython), and helpers to ask `postern spf check` and python3-spf (the
oracle) the same question against it.

Zone form (the one of the openspf RFC 7208 test suite, rfc7208-tests.yml):
    {"example.com": [{"TXT": "v=spf1 -all"}, {"A": "192.0.2.1"}, {"MX": [10, "mx.example.com"]},
                     {"TXT": ["part one", "part two"]}, {"CNAME": "other.example."}, "TIMEOUT"]}
A name listed with "TIMEOUT" (or a record whose value is "TIMEOUT") is never answered
for that type (for every type with the bare "TIMEOUT"); a name absent from the zone is
NXDOMAIN, except names under "error." which time out (as the suite's driver does).
Every read has a timeout; the server thread stops on close()."""
import re
import socket
import struct
import subprocess
import threading
import time

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

TYPES = {"A", "AAAA", "MX", "TXT", "PTR", "CNAME", "SPF"}


def _txt_strings(v):
    parts = [v] if isinstance(v, str) else list(v)
    out = []
    for p in parts:
        b = p.encode("utf-8") if isinstance(p, str) else bytes(p)
        if not b:
            out.append(b"")
        while b:   # character-strings hold at most 255 octets
            out.append(b[:255])
            b = b[255:]
    return out


def _rdata(rtype, v):
    t = dns.rdatatype.from_text(rtype)
    if rtype in ("TXT", "SPF"):
        cls = dns.rdata.get_rdata_class(dns.rdataclass.IN, t)
        return cls(dns.rdataclass.IN, t, _txt_strings(v))
    if rtype == "MX":
        return dns.rdata.from_text(dns.rdataclass.IN, t, "%d %s" % (v[0], _absolute(v[1])))
    if rtype in ("PTR", "CNAME"):
        return dns.rdata.from_text(dns.rdataclass.IN, t, _absolute(v))
    return dns.rdata.from_text(dns.rdataclass.IN, t, v)


def _raw_name(text):
    return dns.name.Name([lab.encode("latin-1") for lab in text.rstrip(".").split(".")] + [b""])


def _absolute(name):
    return name if name.endswith(".") else name + "."


class Zone:
    def __init__(self, data):
        self.records = {}      # name -> list of (type, value)
        self.timeout_all = set()
        for name, rrs in data.items():
            key = name.lower().rstrip(".")
            lst = self.records.setdefault(key, [])
            txt_given = False
            for rr in rrs or []:
                if rr == "TIMEOUT":
                    self.timeout_all.add(key)
                    continue
                for t, v in rr.items():
                    txt_given = txt_given or t == "TXT"
                    if v == "NONE" or (t in ("TXT", "SPF") and not isinstance(v, str) and not v):
                        continue   # "NONE": no such record; a TXT without strings cannot be sent
                    lst.append((t, v))
            # The suite's convention: SPF records also appear as TXT when no TXT is given.
            if not txt_given:
                lst.extend([("TXT", v) for t, v in lst if t == "SPF"])

    def answer(self, qname, qtype):
        """(rcode, [(owner, type, value)]) or None to stay silent."""
        key = qname.lower().rstrip(".")
        chain, seen = [], set()
        for _ in range(10):
            if key not in self.records:
                if key.startswith("error.") or key == "error":
                    return None
                return (dns.rcode.NXDOMAIN if not chain else dns.rcode.NOERROR), chain
            lst = self.records[key]
            if any(t == qtype and v == "TIMEOUT" for t, v in lst):
                return None
            hits = [(key, t, v) for t, v in lst if t == qtype and v != "TIMEOUT"]
            if hits:
                return dns.rcode.NOERROR, chain + hits
            if key in self.timeout_all:   # the suite's TIMEOUT: when no record of the type
                return None
            cname = [v for t, v in lst if t == "CNAME"]
            if not cname or key in seen:
                return dns.rcode.NOERROR, chain
            seen.add(key)
            chain.append((key, "CNAME", cname[0]))
            key = cname[0].lower().rstrip(".")
        return dns.rcode.NOERROR, chain


class SpfDns:
    """The server.  start() returns self with .port; close() stops it."""

    def __init__(self, zone_data, address="127.0.0.1"):
        self.zone = Zone(zone_data)
        self.address = address
        self.port = None
        self.stopping = False
        self.threads = []
        self.queries = []

    def start(self):
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                udp.bind((self.address, 0))
                port = udp.getsockname()[1]
                tcp.bind((self.address, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            udp.settimeout(0.2)
            tcp.settimeout(0.2)
            self.udp, self.tcp, self.port = udp, tcp, port
            break
        else:
            raise RuntimeError("no free port for the test DNS server")
        for target in (self._serve_udp, self._serve_tcp):
            th = threading.Thread(target=target, daemon=True)
            th.start()
            self.threads.append(th)
        return self

    def close(self):
        self.stopping = True
        for th in self.threads:
            th.join(timeout=2)
        self.udp.close()
        self.tcp.close()

    def _respond(self, wire, limit):
        try:
            q = dns.message.from_wire(wire)
        except Exception:
            return None
        if not q.question:
            return None
        qn = q.question[0]
        qtype = dns.rdatatype.to_text(qn.rdtype)
        self.queries.append((qn.name.to_text(), qtype))
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        if qtype not in TYPES:
            ans = (dns.rcode.NOERROR, [])
        else:
            # the zone's names are raw text (a macro can put a space in a name)
            ans = self.zone.answer(".".join(lab.decode("latin-1") for lab in qn.name.labels if lab), qtype)
        if ans is None:
            return None
        rcode, rrs = ans
        r.set_rcode(rcode)
        for owner, t, v in rrs:
            rrset = r.find_rrset(r.answer, _raw_name(owner), dns.rdataclass.IN,
                                 dns.rdatatype.from_text(t), create=True)
            rrset.add(_rdata(t, v), ttl=60)
        out = r.to_wire()
        if len(out) > limit:   # UDP: truncate, the client asks again over TCP
            r2 = dns.message.make_response(q)
            r2.flags |= dns.flags.TC | dns.flags.AA
            out = r2.to_wire()
        return out

    def _serve_udp(self):
        while not self.stopping:
            try:
                wire, peer = self.udp.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            out = self._respond(wire, 1232)
            if out:
                self.udp.sendto(out, peer)

    def _serve_tcp(self):
        while not self.stopping:
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(conn,), daemon=True).start()

    def _tcp_conn(self, conn):
        conn.settimeout(2)
        try:
            for _ in range(100):
                hdr = _recv_exact(conn, 2)
                if not hdr:
                    return
                wire = _recv_exact(conn, struct.unpack("!H", hdr)[0])
                if not wire:
                    return
                out = self._respond(wire, 65535)
                if out:
                    conn.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            pass
        finally:
            conn.close()


def _recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


# -- the two checkers ---------------------------------------------------------------

RESULT_RE = re.compile(r"^result=(\S+) identity=(\S+) domain=(\S+) sender=(.*) ip=(\S+) mechanism=(.*)$", re.M)


def write_spf_config(path, dns_port, timeout="3s", hostname="receiver.example"):
    path.write_text(
        "[server]\nhostname = %s\ndata_dir = %s\nrun_as_root = yes\n\n"
        "[listener smtp]\naddress = 127.0.0.1\nport = 2525\nrole = mx\ntls = none\n\n"
        "[delivery]\nresolver = 127.0.0.1@%d\n\n[mailauth]\nspf_timeout = %s\n"
        % (hostname, path.parent / "var", dns_port, timeout))
    return path


def postern_spf(binary, conf, ip, sender, helo, timeout=60):
    """(result, fields dict, full output) of `postern spf check`."""
    p = subprocess.run([binary, "spf", "check", ip, sender if sender else "<>", helo, "-c", str(conf)],
                       capture_output=True, text=True, timeout=timeout)
    m = RESULT_RE.search(p.stdout)
    from helpers import SANITIZER_MARKERS
    bad = [mk for mk in SANITIZER_MARKERS if mk in p.stderr]
    if bad:
        raise AssertionError("sanitizer report (%s) from postern spf check:\n%s" % (bad[0], p.stderr))
    if p.returncode != 0 or not m:
        raise AssertionError("postern spf check %s %s %s: rc=%d\n%s%s" % (ip, sender, helo, p.returncode,
                                                                           p.stdout, p.stderr))
    fields = dict(zip(("result", "identity", "domain", "sender", "ip", "mechanism"), m.groups()))
    for line in p.stdout.splitlines():
        if line.startswith("words: "):
            fields["words"] = line[7:]
        elif line.startswith("explanation: "):
            fields["explanation"] = line[13:]
        elif line.startswith("helo: "):
            fields["helo"] = line[6:]
    return fields["result"], fields, p.stdout


def pyspf_check(dns_port, ip, sender, helo, receiver="receiver.example", querytime=3):
    """python3-spf's (result, explanation) for the same question, through the same server."""
    import dns.resolver
    import spf
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = ["127.0.0.1"]
    res.port = dns_port
    res.lifetime = querytime
    res.timeout = querytime
    saved = dns.resolver.default_resolver
    dns.resolver.default_resolver = res
    try:
        q = spf.query(i=ip, s=sender if sender else "", h=helo, receiver=receiver, timeout=querytime,
                      querytime=querytime)
        result, _code, expl = q.check()
        return result, expl
    finally:
        dns.resolver.default_resolver = saved
