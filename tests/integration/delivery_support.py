"""Support for the outbound delivery integration tests (test_delivery*.py).

Real peers on loopback:

* `Dns`: dnsmasq (Debian dnsmasq-base) on 127.0.0.1 and a free port, with MX/A records
  for the test domains (`--local=/test/`: unknown names under .test are NXDOMAIN);
* `AioReceiver`: aiosmtpd Controllers on 127.0.0.N, all on one port (Postern's
  `[delivery] remote_port`), recording every transaction and counting sessions, with
  scriptable replies (451 then 250, 550 5.1.1 ...), optional STARTTLS and AUTH;
* `RawReceiver`: a small threaded SMTP server written here, for what aiosmtpd cannot do:
  advertise DSN / CHUNKING / PIPELINING, record the raw command lines (DSN parameters as
  sent), accept BDAT, and note which commands arrived together in one read (pipelining);
* `SmtpSink`: Postfix's smtp-sink(1) with its counters (-c).

The shared `server_factory` fixture (conftest.py) cannot set `[server]` keys, so, as
submission_support.py does, the configuration is rewritten (same data_dir) before start.
Mail is handed to Postern on its `mx` listener from 127.0.0.1, which is in
`trusted_networks`, with a local user as the envelope sender so that bounces and delay
notices land in that user's Maildir.

Everything is bounded: every read has a timeout and every loop a maximum count."""
import asyncio
import email
import email.policy
import json
import os
import random
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import write_config, run_cli  # noqa: E402
from helpers import SMTPConn, dot_stuff  # noqa: E402

DNSMASQ = "/usr/sbin/dnsmasq"
SMTP_SINK = "/usr/sbin/smtp-sink"
SENDER = "alice@example.test"
SENDER2 = "bob@example.test"
USERS = (SENDER, SENDER2)

# Test domains.  dN.test has one MX, mxN.test, at 127.0.0.N.
MX_DOMAINS = {n: "d%d.test" % n for n in range(2, 10)}
DNS_ARGS = [
    "--mx-host=remote.test,mx1.remote.test,10",
    "--mx-host=remote.test,mx2.remote.test,20",
    "--host-record=mx1.remote.test,127.0.0.2",
    "--host-record=mx2.remote.test,127.0.0.3",
    "--host-record=plain.test,127.0.0.2",          # no MX: implicit MX
    "--mx-host=nullmx.test,.,0",                    # RFC 7505 null MX
    "--local=/test/",                               # everything else under .test: NXDOMAIN
]
for _n, _d in MX_DOMAINS.items():
    DNS_ARGS += ["--mx-host=%s,mx%d.test,10" % (_d, _n), "--host-record=mx%d.test,127.0.0.%d" % (_n, _n)]

EVENT_RE_TMPL = r"event=%s\b"


# -- ports ---------------------------------------------------------------------------

def free_port(addrs=("127.0.0.1",), udp=False):
    """A port number free for TCP (and UDP if asked) on every address in addrs."""
    for _ in range(200):
        port = random.randint(20000, 60000)
        socks = []
        try:
            for a in addrs:
                for kind in ((socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind((a, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port found")


REMOTE_ADDRS = tuple("127.0.0.%d" % n for n in range(2, 10))


# -- DNS -------------------------------------------------------------------------------

def dns_query(port, name, qtype=15, timeout=1.0):
    """One UDP query to 127.0.0.1:port; returns (rcode, answer count) or None on timeout."""
    qid = random.randint(0, 65535)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, ("127.0.0.1", port))
        data, _ = s.recvfrom(4096)
    except OSError:
        return None
    finally:
        s.close()
    if len(data) < 12 or struct.unpack(">H", data[:2])[0] != qid:
        return None
    flags, _qd, an = struct.unpack(">HHH", data[2:8])
    return flags & 0xF, an


class Dns:
    def __init__(self, root, extra_args=()):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = None
        self.proc = None
        self.extra_args = list(extra_args)

    def start(self):
        for _attempt in range(5):
            self.port = free_port(("127.0.0.1",), udp=True)
            self.logf = open(self.root / "dnsmasq.log", "ab")
            self.proc = subprocess.Popen(
                [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                 "--pid-file=", "--user=root", "--port=%d" % self.port, "--listen-address=127.0.0.1",
                 "--bind-interfaces", "--log-facility=-", "--log-queries"] + DNS_ARGS + self.extra_args,
                stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.proc.poll() is None:
                if dns_query(self.port, "mx2.test", 1, timeout=0.2):
                    return self
                time.sleep(0.05)
            self.stop()
        pytest.fail("dnsmasq did not start; log:\n%s" % (self.root / "dnsmasq.log").read_text(errors="replace"))

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


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    d = Dns(tmp_path_factory.mktemp("dns")).start()
    yield d
    d.stop()


# -- aiosmtpd receivers ---------------------------------------------------------------

class Recorder:
    """An aiosmtpd handler: records envelopes, counts sessions, answers as scripted.

    rcpt_reply(address, options, n) / data_reply(envelope, n) / mail_reply(address, options, n)
    may return a reply string, or None for the default; n counts that command so far
    (1 for the first).  `accept` False: every RCPT gets 451 (switchable at run time)."""

    def __init__(self, addr, owner):
        self.addr = addr
        self.owner = owner

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.owner._note_session(session, self.addr)
        return responses

    async def handle_MAIL(self, server, session, envelope, address, options):
        o = self.owner
        with o.lock:
            o.mail_count += 1
            n = o.mail_count
        r = o.mail_reply(address, options, n) if o.mail_reply else None
        if r:
            return r
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        o = self.owner
        with o.lock:
            o.rcpt_count += 1
            n = o.rcpt_count
        if not o.accept:
            return "451 4.3.0 not now, try again later"
        r = o.rcpt_reply(address, options, n) if o.rcpt_reply else None
        if r:
            return r
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        o = self.owner
        with o.lock:
            o.data_count += 1
            n = o.data_count
        if o.data_delay:
            # a slow relay: the whole message is in, the reply takes this long
            await asyncio.sleep(o.data_delay)
        r = o.data_reply(envelope, n) if o.data_reply else None
        if r:
            return r
        with o.lock:
            o.messages.append({
                "addr": self.addr, "mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                "mail_options": list(envelope.mail_options), "rcpt_options": list(envelope.rcpt_options),
                "content": envelope.original_content or envelope.content, "session": id(session),
                "tls": session.ssl is not None, "auth": getattr(session, "auth_data", None) is not None
                or getattr(session, "authenticated", False),
            })
        return "250 2.0.0 Ok: queued as X%d" % len(o.messages)


class AioReceiver:
    """aiosmtpd on each of `addrs`, port `port`.  Use as a context manager or stop()."""

    def __init__(self, addrs, port, rcpt_reply=None, data_reply=None, mail_reply=None, accept=True,
                 data_delay=0, **smtp_kwargs):
        from aiosmtpd.controller import Controller  # noqa: F401 (fail early if missing)
        self.addrs = list(addrs)
        self.port = port
        self.rcpt_reply, self.data_reply, self.mail_reply = rcpt_reply, data_reply, mail_reply
        self.accept = accept
        self.data_delay = data_delay     # seconds the end-of-data reply is held back (settable)
        self.smtp_kwargs = smtp_kwargs
        self.lock = threading.Lock()
        self.messages = []
        self.sessions = 0
        self.sessions_by_addr = {}
        self.mail_count = self.rcpt_count = self.data_count = 0
        self.controllers = []

    def _note_session(self, session, addr):
        with self.lock:
            if not getattr(session, "_counted", False):
                session._counted = True
                self.sessions += 1
                self.sessions_by_addr[addr] = self.sessions_by_addr.get(addr, 0) + 1

    def start(self):
        from aiosmtpd.controller import Controller
        for a in self.addrs:
            c = Controller(Recorder(a, self), hostname=a, port=self.port, ready_timeout=5,
                           server_hostname="mx-%s.test" % a, **self.smtp_kwargs)
            c.start()
            self.controllers.append(c)
        return self

    def stop(self):
        for c in self.controllers:
            try:
                c.stop()
            except Exception:   # noqa: BLE001 - already stopped
                pass
        self.controllers = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_messages(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    break
            time.sleep(0.05)
        with self.lock:
            return list(self.messages)

    def recipients(self):
        with self.lock:
            return [r for m in self.messages for r in m["rcpt_tos"]]


# -- a raw SMTP receiver (DSN, CHUNKING, PIPELINING observation) -------------------------

class RawReceiver:
    """A threaded SMTP server on `addrs`:`port` advertising `ext` (EHLO keywords).

    `script(verb, line, n)` may return a reply line for a command (n: how many times
    this verb was seen, 1-based), or None for the default.  Records per transaction the
    raw MAIL and RCPT lines, how the body came (DATA or BDAT chunks), the body, and the
    batches: the list of commands that arrived in one read from the socket."""

    def __init__(self, addrs, port, ext=("PIPELINING", "SIZE 10000000", "8BITMIME", "DSN", "ENHANCEDSTATUSCODES"),
                 script=None):
        self.addrs = list(addrs)
        self.port = port
        self.ext = list(ext)
        self.script = script
        self.lock = threading.Lock()
        self.transactions = []
        self.batches = []
        self.commands = []
        self.sessions = 0
        self.counts = {}
        self.listeners = []
        self.threads = []
        self.stopping = False
        self.conns = []
        self.wire = {}        # every byte received, per session (what Postern put on the wire)

    def start(self):
        for a in self.addrs:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((a, self.port))
            s.listen(16)
            s.settimeout(0.2)
            self.listeners.append(s)
            t = threading.Thread(target=self._accept_loop, args=(s,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(5)
        for s in self.listeners:
            s.close()
        for c in list(self.conns):
            try:
                c.close()
            except OSError:
                pass
        self.listeners = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept_loop(self, ls):
        while not self.stopping:
            try:
                c, _ = ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.sessions += 1
            self.conns.append(c)
            threading.Thread(target=self._session, args=(c,), daemon=True).start()

    def _reply(self, verb, line, default):
        with self.lock:
            self.counts[verb] = self.counts.get(verb, 0) + 1
            n = self.counts[verb]
        r = self.script(verb, line, n) if self.script else None
        return r or default

    def _session(self, c):
        c.settimeout(10)
        buf = b""
        tx = None
        rcpt_ok = 0

        def send(text):
            c.sendall(text.encode() + b"\r\n")

        def read_more():
            nonlocal buf
            chunk = c.recv(65536)
            if not chunk:
                raise EOFError
            with self.lock:
                self.wire.setdefault(id(c), bytearray()).extend(chunk)
            buf += chunk

        try:
            send("220 raw.test ESMTP")
            for _ in range(10000):
                while b"\r\n" not in buf:
                    read_more()
                # every complete line now in the buffer arrived together
                lines_now = buf.count(b"\r\n")
                first = True
                batch = []
                for _k in range(lines_now):
                    i = buf.find(b"\r\n")
                    line = buf[:i].decode("latin-1")
                    verb = line.split(" ", 1)[0].upper()
                    if verb == "BDAT" or (tx is not None and tx.get("in_data")):
                        break
                    buf = buf[i + 2:]
                    batch.append(line)
                    with self.lock:
                        self.commands.append(line)
                    if verb in ("EHLO", "LHLO"):
                        send("\r\n".join("250-" + x for x in ["raw.test"] + self.ext[:-1]) +
                             ("\r\n250 " + self.ext[-1] if self.ext else ""))
                    elif verb == "HELO":
                        send("250 raw.test")
                    elif verb == "MAIL":
                        r = self._reply("MAIL", line, "250 2.1.0 OK")
                        if r.startswith("2"):
                            tx = {"mail": line, "rcpts": [], "body": b"", "via": None, "session": id(c)}
                            rcpt_ok = 0
                        send(r)
                    elif verb == "RCPT":
                        if tx is None:
                            send("503 5.5.1 need MAIL")
                            continue
                        r = self._reply("RCPT", line, "250 2.1.5 OK")
                        if r.startswith("2"):
                            tx["rcpts"].append(line)
                            rcpt_ok += 1
                        send(r)
                    elif verb == "DATA":
                        if tx is None or not rcpt_ok:
                            send(self._reply("DATA", line, "503 5.5.1 valid RCPT command must precede DATA"))
                            continue
                        r = self._reply("DATA", line, "354 go ahead")
                        send(r)
                        if r.startswith("354"):
                            tx["in_data"] = True
                            tx["via"] = "DATA"
                            break
                    elif verb == "RSET":
                        tx = None
                        send("250 2.0.0 OK")
                    elif verb == "NOOP":
                        send("250 2.0.0 OK")
                    elif verb == "QUIT":
                        send("221 2.0.0 bye")
                        return
                    else:
                        send("502 5.5.2 unknown command")
                    first = False
                if batch:
                    with self.lock:
                        self.batches.append(batch)
                if tx is not None and tx.get("in_data"):
                    # read to CRLF.CRLF
                    for _j in range(100000):
                        end = buf.find(b"\r\n.\r\n")
                        if end >= 0 or buf.startswith(b".\r\n"):
                            break
                        read_more()
                    if buf.startswith(b".\r\n"):
                        body, buf = b"", buf[3:]
                    else:
                        body, buf = buf[:end + 2], buf[end + 5:]
                    body = re.sub(rb"(?m)^\.\.", b".", body)   # un-stuff
                    tx["body"] = body
                    del tx["in_data"]
                    r = self._reply("EOD", "", "250 2.0.0 Ok: queued as R%d" % (len(self.transactions) + 1))
                    if r.startswith("2"):
                        with self.lock:
                            self.transactions.append(tx)
                    send(r)
                    tx = None
                    continue
                if buf.upper().startswith(b"BDAT"):
                    while b"\r\n" not in buf:
                        read_more()
                    i = buf.find(b"\r\n")
                    line = buf[:i].decode("latin-1")
                    buf = buf[i + 2:]
                    with self.lock:
                        self.commands.append(line)
                    parts = line.split()
                    size = int(parts[1])
                    last = len(parts) > 2 and parts[2].upper() == "LAST"
                    for _j in range(100000):
                        if len(buf) >= size:
                            break
                        read_more()
                    chunk, buf = buf[:size], buf[size:]
                    if tx is None or not rcpt_ok:
                        send("503 5.5.1 valid RCPT command must precede BDAT")
                        continue
                    tx["body"] += chunk
                    tx["via"] = "BDAT"
                    tx.setdefault("chunks", []).append(size)
                    if last:
                        r = self._reply("EOD", "", "250 2.0.0 Ok: queued as R%d" % (len(self.transactions) + 1))
                        if r.startswith("2"):
                            with self.lock:
                                self.transactions.append(tx)
                        send(r)
                        tx = None
                    else:
                        send("250 2.0.0 %d octets received" % size)
        except (EOFError, OSError, ValueError, IndexError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def wait_transactions(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.transactions) >= n:
                    break
            time.sleep(0.05)
        with self.lock:
            return list(self.transactions)


# -- smtp-sink ---------------------------------------------------------------------------

class SmtpSink:
    """Postfix smtp-sink(1) with running counters (-c) on addr:port."""

    COUNTER_RE = re.compile(r"sess=(\d+) quit=(\d+) mesg=(\d+)")

    def __init__(self, root, addr, port, args=()):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.addr, self.port, self.args = addr, port, list(args)
        self.proc = None

    def start(self):
        self.out = self.root / ("smtp-sink-%s.out" % self.addr)
        self.outf = open(self.out, "wb")
        cmd = [SMTP_SINK, "-u", "nobody", "-c"] + self.args + ["%s:%d" % (self.addr, self.port), "256"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.outf, stderr=self.outf)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.addr, self.port), timeout=0.5).close()
                # that probe is itself a session: remember it
                self.baseline_sessions = 1
                return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        pytest.fail("smtp-sink did not start: %s" % self.out.read_text(errors="replace"))

    def counters(self):
        """(sessions, quits, messages) from the last counter line."""
        text = self.out.read_bytes().decode("latin-1")
        ms = self.COUNTER_RE.findall(text)
        return tuple(int(x) for x in ms[-1]) if ms else (0, 0, 0)

    def wait_messages(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        c = self.counters()
        while c[2] < n and time.monotonic() < deadline:
            time.sleep(0.05)
            c = self.counters()
        return c

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.outf.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# -- the Postern under test ---------------------------------------------------------------

def delivery_config_text(dns_port=None, remote_port=None, delivery=None, relay=None):
    text = ""
    d = {}
    if dns_port is not None:
        d["resolver"] = "127.0.0.1@%d" % dns_port
    if remote_port is not None:
        d["remote_port"] = str(remote_port)
    d.setdefault("connect_timeout", "2s")
    d.setdefault("command_timeout", "10s")
    # dnsmasq's zones are unsigned and it serves no DNSSEC: with the default trust
    # anchor (the root key) every answer would be bogus, so Postern's start-up probe
    # turns validation off for the run (event=dnssec status=unavailable).
    # transport_support.py gives its signed zone's own anchor.
    d.update(delivery or {})
    text += "\n[delivery]\n" + "".join("%s = %s\n" % kv for kv in d.items())
    if relay:
        text += "\n[relay]\n" + "".join("%s = %s\n" % kv for kv in relay.items())
    return text


def make_server(server_factory, dns=None, remote_port=None, delivery=None, relay=None, queue=None,
                users=USERS, start=True):
    """A Postern with [delivery] pointed at the test DNS and receivers' port, trusted
    127.0.0.0/8 on its mx listener, fast retries (1s..2s)."""
    extra = delivery_config_text(dns.port if dns else None, remote_port, delivery, relay)
    q = {"retry_min": "1s", "retry_max": "2s"}
    q.update(queue or {})
    srv = server_factory(users=users, extra=extra, queue=q, start=False)
    write_config(srv.config, srv.data_dir, queue=q, server={"trusted_networks": "127.0.0.0/8"}, extra=extra)
    srv.extra = extra
    srv.queue_opts = q
    if start:
        srv.start()
    return srv


def rewrite_config(srv, dns=None, remote_port=None, delivery=None, relay=None, queue=None):
    extra = delivery_config_text(dns.port if dns else None, remote_port, delivery, relay)
    q = {"retry_min": "1s", "retry_max": "2s"}
    q.update(queue or {})
    write_config(srv.config, srv.data_dir, queue=q, server={"trusted_networks": "127.0.0.0/8"}, extra=extra)


def msg(subject="test", sender=SENDER, to="someone@d2.test", body="hello there\r\n", extra_headers=""):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%d.%d@client.example>\r\n%s\r\n%s"
            % (sender, to, subject, time.monotonic_ns(), random.randint(0, 1 << 30), extra_headers, body)).encode("utf-8")


def submit(srv, rcpts, sender=SENDER, body=None, mail_params="", rcpt_params=None, subject="test"):
    """Hand one message to Postern on its mx listener (127.0.0.1 is trusted); returns the qid."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    if body is None:
        body = msg(subject=subject, sender=sender, to=rcpts[0])
    with SMTPConn("127.0.0.1", srv.port, timeout=15) as c:
        c.ehlo("client.example")
        r = c.cmd("MAIL FROM:<%s>%s" % (sender, mail_params))
        assert r.code == 250, r
        for i, rc in enumerate(rcpts):
            p = (rcpt_params[i] if isinstance(rcpt_params, (list, tuple)) else rcpt_params) if rcpt_params else ""
            r = c.cmd("RCPT TO:<%s>%s" % (rc, p))
            assert r.code == 250, "RCPT %s: %r" % (rc, r)
        r = c.data(dot_stuff(body))
        assert r.code == 250, r
        assert r.qid, r
        c.cmd("QUIT")
        return r.qid


# -- logs ------------------------------------------------------------------------------------

KV_RE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_line(line):
    out = {}
    for k, v in KV_RE.findall(line):
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = v[1:-1]
        out[k] = v
    return out


def events(srv, event, all_runs=True, **match):
    """Parsed log lines with event=EVENT whose fields contain the given substrings."""
    text = srv.all_logs() if all_runs else srv.log()
    out = []
    for line in text.splitlines():
        if not re.search(EVENT_RE_TMPL % re.escape(event), line):
            continue
        f = parse_line(line)
        if f.get("event") != event:
            continue
        if all(v in f.get(k, "") for k, v in match.items()):
            out.append(f)
    return out


def wait_event(srv, event, n=1, timeout=10.0, all_runs=True, **match):
    """Bounded wait until at least n matching events are logged; returns them."""
    deadline = time.monotonic() + timeout
    ev = events(srv, event, all_runs, **match)
    while len(ev) < n and time.monotonic() < deadline:
        time.sleep(0.05)
        ev = events(srv, event, all_runs, **match)
    return ev


# -- queue commands -----------------------------------------------------------------------------

def queue_cli(srv, *args):
    return run_cli(("queue",) + args, conf=srv.config)


def queue_json(srv, *extra):
    p = queue_cli(srv, "list", "--json", *extra)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def queue_entry(srv, qid):
    for m in queue_json(srv):
        if m["id"] == qid:
            return m
    return None


def wait_queue(srv, pred, timeout=10.0):
    """Poll `queue list --json` until pred(list) is true (bounded); returns the last list."""
    deadline = time.monotonic() + timeout
    q = queue_json(srv)
    while not pred(q) and time.monotonic() < deadline:
        time.sleep(0.1)
        q = queue_json(srv)
    return q


# -- reports (RFC 3464) -------------------------------------------------------------------------

class Report:
    """A multipart/report from Postern, parsed."""

    def __init__(self, path):
        self.path = path
        self.raw = Path(path).read_bytes()
        self.msg = email.message_from_bytes(self.raw, policy=email.policy.compat32)
        self.subject = self.msg.get("Subject", "")
        self.from_ = self.msg.get("From", "")
        self.content_type = self.msg.get_content_type()
        self.report_type = self.msg.get_param("report-type")
        parts = self.msg.get_payload() if self.msg.is_multipart() else []
        self.parts = parts
        self.types = [p.get_content_type() for p in parts]
        self.text = ""
        self.status_fields = []      # [per-message dict, per-recipient dict ...]
        self.returned = None
        for p in parts:
            t = p.get_content_type()
            if t == "text/plain" and not self.text:
                self.text = p.get_payload(decode=True).decode("utf-8", "replace")
            elif t == "message/delivery-status":
                self.status_fields = [dict((k, str(v)) for k, v in blk.items()) for blk in p.get_payload()]
            elif t in ("message/rfc822", "text/rfc822-headers"):
                pl = p.get_payload()
                if isinstance(pl, list):
                    self.returned = pl[0].as_bytes() if pl else b""
                else:
                    self.returned = pl.encode("latin-1") if isinstance(pl, str) else pl

    @property
    def per_message(self):
        return self.status_fields[0] if self.status_fields else {}

    @property
    def recipients(self):
        return self.status_fields[1:]

    @property
    def is_delay(self):
        return self.subject.startswith("Delayed Mail")

    @property
    def is_failure(self):
        return self.subject.startswith("Undelivered Mail")

    def __repr__(self):
        return "Report(%s, %r)" % (self.subject, self.raw[:3000])


def reports(srv, address=SENDER):
    return [Report(p) for p in srv.maildir_messages(address)]


def wait_reports(srv, n, address=SENDER, timeout=10.0, kind=None):
    """Bounded wait for at least n reports (kind: 'delay' / 'failure' / None) in address's Maildir."""
    deadline = time.monotonic() + timeout
    for _ in range(100000):
        rs = reports(srv, address)
        if kind == "delay":
            rs = [r for r in rs if r.is_delay]
        elif kind == "failure":
            rs = [r for r in rs if r.is_failure]
        if len(rs) >= n or time.monotonic() > deadline:
            return rs
        time.sleep(0.05)
    return rs


# -- certificates --------------------------------------------------------------------------------

def make_cert(root, cn="relay.test"):
    root = Path(root)
    cert, key = root / "relay.crt", root / "relay.key"
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "2", "-subj", "/CN=%s" % cn, "-keyout", str(key), "-out", str(cert)],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx, cert, key


def write_credentials(path, text, mode=0o600):
    path = Path(path)
    path.write_text(text)
    os.chmod(path, mode)
    return path


__all__ = [n for n in dir() if not n.startswith("_")]
