"""Real content filters for the milter tests, each started by the test on a loopback
port in a private directory and stopped by its pid:

- Rspamd: Debian's rspamd 3.4, its proxy worker in milter mode scanning itself
  (self_scan), with a self-contained configuration: the package's rules from
  /etc/rspamd, every module that would use the network (DNS lists, SPF, DKIM
  verification, fuzzy, redis-backed ones, remote maps) disabled, DNS pointed at a
  port nobody answers, a five-line public-suffix list (the full one takes a minute to
  compile), its own pid, log and database directories.
- Opendkim: OpenDKIM in signing mode with a key made here (openssl).
- PyMilter: a pymilter (python3-milter) filter script the test writes, run with
  /usr/bin/python3 (Debian's, where python3-milter lives).
- RawFilter: a socket server that answers whatever bytes it is given (garbage)."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from delivery_support import free_port  # noqa: E402

RSPAMD_START_TIMEOUT = 90.0
SYSTEM_PYTHON = "/usr/bin/python3"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

# Modules that reach for the network (DNS, HTTP maps, redis) or need state the test
# does not have; disabled by local.d/<module>.conf.
RSPAMD_OFFLINE = (
    "rbl spf dkim dmarc asn fuzzy_check phishing emails dcc mx_check hfilter neural reputation ratelimit "
    "greylist replies elastic clickhouse metadata_exporter dynamic_conf external_services antivirus "
    "url_redirector history_redis dkim_signing arc whitelist maillist multimap once_received trie bimi "
    "known_senders p0f spamtrap rspamd_update"
).split()


def wait_listening(port, proc, timeout, what, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    pytest.fail("%s did not listen on 127.0.0.1:%d within %.0fs (exit %s)\n%s" % (what, port, timeout, proc.poll(), tail))


def stop_proc(proc, timeout=10.0):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Rspamd:
    def __init__(self, root):
        self.root = Path(root)
        self.port = free_port()
        self.proc = None
        self.log = self.root / "log" / "rspamd.log"

    def write_config(self):
        for d in ("local.d", "run", "db", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "rspamd.conf").write_text(
            '.include "$CONFDIR/common.conf"\n'
            'options {\n    pidfile = "$RUNDIR/rspamd.pid";\n    .include "$CONFDIR/options.inc"\n'
            '    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"\n}\n'
            'logging {\n    type = "file";\n    filename = "$LOGDIR/rspamd.log";\n    level = "info";\n}\n'
            'worker "rspamd_proxy" {\n    bind_socket = "127.0.0.1:%d";\n    milter = yes;\n    timeout = 120s;\n'
            '    count = 1;\n    upstream "local" { default = yes; self_scan = yes; }\n'
            '    reject_message = "Spam message rejected";\n}\n' % self.port)
        (self.root / "tld.dat").write_text("com\nnet\norg\ntest\nexample\n")
        (self.root / "local.d" / "options.inc").write_text(
            'dns { nameserver = ["127.0.0.1:9"]; timeout = 0.2s; retransmits = 1; }\n'
            'control_socket = "$DBDIR/rspamd.sock mode=0600";\n'
            'url_tld = "%s";\nlocal_addrs = [];\n' % (self.root / "tld.dat"))
        for m in RSPAMD_OFFLINE:
            (self.root / "local.d" / ("%s.conf" % m)).write_text("enabled = false;\n")
        # The headers a clean message gets (and the user rspamd saw, for outbound).
        (self.root / "local.d" / "milter_headers.conf").write_text(
            'use = ["x-spamd-result", "x-rspamd-server", "x-rspamd-queue-id", "x-spamd-bar"];\n'
            'extended_spam_headers = true;\nskip_local = false;\nskip_authenticated = false;\n')

    def start(self):
        self.write_config()
        out = open(self.root / "stdout.log", "wb")
        # -i: the suite runs as root and the private directory is root's only.
        self.proc = subprocess.Popen(
            ["rspamd", "-f", "-i", "-c", str(self.root / "rspamd.conf"),
             "--var", "LOCAL_CONFDIR=%s" % self.root, "--var", "RUNDIR=%s" % (self.root / "run"),
             "--var", "DBDIR=%s" % (self.root / "db"), "--var", "LOGDIR=%s" % (self.root / "log")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        wait_listening(self.port, self.proc, RSPAMD_START_TIMEOUT, "rspamd", self.log)
        return self

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self):
        stop_proc(self.proc, 15.0)


class Opendkim:
    def __init__(self, root, domain="example.test", selector="mt"):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.domain, self.selector = domain, selector
        self.proc = None

    def start(self):
        key = self.root / "key.pem"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        pub = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                             capture_output=True).stdout
        import base64
        self.txt = b"v=DKIM1; k=rsa; p=" + base64.b64encode(pub)
        conf = self.root / "opendkim.conf"
        conf.write_text(
            "Syslog no\nBackground no\nMode s\nSocket inet:%d@127.0.0.1\nDomain %s\nSelector %s\nKeyFile %s\n"
            "Canonicalization relaxed/simple\nPidFile %s\nInternalHosts 127.0.0.1\nSignatureAlgorithm rsa-sha256\n"
            "RequireSafeKeys no\nLogWhy yes\n"
            % (self.port, self.domain, self.selector, key, self.root / "opendkim.pid"))
        out = open(self.root / "opendkim.log", "wb")
        self.proc = subprocess.Popen(["opendkim", "-f", "-x", str(conf)], stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=out, start_new_session=True)
        wait_listening(self.port, self.proc, 20.0, "opendkim", self.root / "opendkim.log")
        return self

    def dnsfunc(self, name, timeout=5):
        want = ("%s._domainkey.%s." % (self.selector, self.domain)).encode()
        return self.txt if name in (want, want.rstrip(b".")) else None

    def stop(self):
        stop_proc(self.proc)


class PyMilter:
    """A pymilter filter: `script` is the body of a Milter.Base subclass's module, run
    as /usr/bin/python3 SCRIPT PORT."""

    def __init__(self, root, script, name="filter"):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.path = self.root / ("%s.py" % name)
        self.path.write_text(script)
        self.log = self.root / ("%s.log" % name)
        self.proc = None

    def start(self):
        out = open(self.log, "wb")
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(self.path), str(self.port)], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=out, start_new_session=True)
        wait_listening(self.port, self.proc, 20.0, "pymilter filter", self.log)
        return self

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self):
        stop_proc(self.proc, 2.0)


class RawFilter:
    """Answers every connection with `answer` (bytes) after the first read, then keeps
    the connection open until the peer closes it (bounded)."""

    def __init__(self, answer):
        self.answer = answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.connections = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self.talk, args=(c,), daemon=True).start()

    def talk(self, c):
        c.settimeout(5.0)
        try:
            if c.recv(65536):
                c.sendall(self.answer)
            for _ in range(50):
                if not c.recv(65536):
                    break
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


def milter_sections(filters):
    """[milter NAME] sections: filters is [(name, socket, {key: value})]."""
    text = ""
    for name, sock, opts in filters:
        text += "\n[milter %s]\nsocket = %s\n" % (name, sock)
        text += "".join("%s = %s\n" % kv for kv in (opts or {}).items())
    return text


def queue_files(srv):
    """Every file under the queue directory (to prove nothing was left or doubled), but
    the empty ones in incoming/: the spool files the server makes ahead (queue_reserve_start)."""
    q = srv.data_dir / "queue"
    if not q.exists():
        return []
    return sorted(p for p in q.rglob("*") if p.is_file() and not (p.parent.name == "incoming" and _empty(p)))


def _empty(p):
    try:
        return p.stat().st_size == 0
    except FileNotFoundError:
        return True   # taken and committed meanwhile
