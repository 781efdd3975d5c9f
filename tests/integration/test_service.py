"""postern serve under systemd's protocols (issue 17), with systemd's own tools where
they exist: the notification socket (a Python listener on $NOTIFY_SOCKET: READY=1 with
STATUS=, RELOADING=1 and READY=1 around a SIGHUP, STOPPING=1), the reload (live TLS
certificates and log level without dropping a connection, the settings that need a
restart named, a bad file refused), and socket activation by systemd-socket-activate
(LISTEN_FDS/LISTEN_FDNAMES naming the listener)."""
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time
import uuid

import pytest

from conftest import postern_bin, sanitizer_report, write_config
from test_http import make_cert


class NotifyListener:
    """A datagram socket where postern's sd_notify messages arrive (abstract name)."""

    def __init__(self):
        self.name = "@postern-test-%s" % uuid.uuid4().hex
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.seen = []

    def wait_for(self, key, timeout=10.0):
        """The first datagram (after those already taken) with a KEY= line; fails at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            self.seen.append(msg)
            if any(line.startswith(key + "=") for line in msg.split("\n")):
                return dict(line.split("=", 1) for line in msg.split("\n") if "=" in line)
        pytest.fail("no %s= from postern within %.0fs; seen: %r" % (key, timeout, self.seen))

    def close(self):
        self.sock.close()


def wait_log(srv, pattern, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, srv.log())
        if m:
            return m
        time.sleep(0.05)
    pytest.fail("no %r in the log within %.0fs:\n%s" % (pattern, timeout, srv.log()[-3000:]))


def served_certificate(port):
    """The DER certificate the smtp listener shows after STARTTLS."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.starttls(context=ctx)
        return s.sock.getpeercert(binary_form=True)


def test_notify_and_reload(server_factory, tmp_path, monkeypatch):
    crt, key = make_cert(tmp_path, "one.example.test")
    extra = "\n[tls]\ncertificate = %s\nkey = %s\n" % (crt, key)
    srv = server_factory(extra="", start=False)
    base = srv.config.read_text().replace("role = mx\n", "role = mx\ntls = starttls\n")
    srv.config.write_text(base + extra)
    listener = NotifyListener()
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", listener.name)
        srv.start()
        monkeypatch.delenv("NOTIFY_SOCKET")
        ready = listener.wait_for("READY")
        assert ready["READY"] == "1" and re.match(r"queue \d+ messages?, \d+ deferrals? since start, \d+ connections?",
                                                   ready["STATUS"]), ready
        first = served_certificate(srv.port)
        # a client connected before the reload keeps its session through it
        kept = smtplib.SMTP("127.0.0.1", srv.port, timeout=10)
        kept.ehlo("before.example")
        # the certificate renewed at the same paths, the log level and a restart-only setting changed
        (tmp_path / "renewed").mkdir()
        crt2, key2 = make_cert(tmp_path / "renewed", "one.example.test")
        shutil.copy(crt2, crt)
        shutil.copy(key2, key)
        srv.config.write_text(base.replace("[server]\n", "[server]\nlog_level = debug\n") + extra +
                              "\n[limits]\nmessage_size = 1M\n")
        srv.proc.send_signal(signal.SIGHUP)
        reloading = listener.wait_for("RELOADING")
        assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0, reloading
        assert listener.wait_for("READY")["READY"] == "1"
        m = wait_log(srv, r"event=reload config=\S+ applied=\"([^\"]*)\"")
        assert "[server] log_level" in m.group(1), m.group(0)
        assert re.search(r"event=reload_needs_restart settings=\"\[limits\] message_size\"", srv.log()), srv.log()
        assert served_certificate(srv.port) != first, "the renewed certificate is not served after SIGHUP"
        assert kept.noop()[0] == 250, "the connection made before the reload was dropped"
        kept.quit()
        # a bad file is refused with its reasons; the server keeps serving with the old one
        srv.config.write_text(base + extra + "\n[limits]\nmessage_size = huge\nrecipients = 0\n")
        srv.proc.send_signal(signal.SIGHUP)
        listener.wait_for("RELOADING")
        refused = listener.wait_for("READY")
        assert refused["STATUS"].startswith("reload refused (2 errors"), refused
        log = wait_log(srv, r"event=reload_refused .*recipients").string
        assert re.search(r"event=reload_refused config=\S+ error=\".*postern.conf:\d+: \[limits\] message_size", log), log
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
            assert s.ehlo()[0] == 250
        srv.stop()
        assert listener.wait_for("STOPPING")["STOPPING"] == "1"
    finally:
        listener.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def activated(tmp_path, fdname, env_extra=None):
    """postern serve under systemd-socket-activate with one socket named fdname; the
    first connection makes it exec postern.  Returns (proc, port, log path)."""
    if not shutil.which("systemd-socket-activate"):
        pytest.fail("systemd-socket-activate is not installed (package systemd: scripts/install-deps)")
    port = free_port()
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var")
    conf.write_text(conf.read_text().replace("port = 0", "port = 1"))   # ignored: systemd's socket is used
    logp = tmp_path / "serve.log"
    cmd = ["systemd-socket-activate", "-l", "127.0.0.1:%d" % port, "--fdname=" + fdname]
    for k, v in (env_extra or {}).items():
        cmd += ["-E", "%s=%s" % (k, v)]
    cmd += [postern_bin(), "serve", "-c", str(conf)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(logp, "wb"), stderr=subprocess.STDOUT,
                            cwd=str(tmp_path))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "Listening on" not in logp.read_text(errors="replace"):
        time.sleep(0.05)
    return proc, port, logp


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            pytest.fail("postern did not stop within 10 s of SIGTERM")


def test_socket_activation_serves_the_named_listener(tmp_path):
    listener = NotifyListener()
    proc, port, logp = activated(tmp_path, "smtp", {"NOTIFY_SOCKET": listener.name})
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=15) as s:   # this connection starts postern
            code, banner = s.ehlo("activated.example")
            assert code == 250, banner
        assert listener.wait_for("READY")["READY"] == "1"
        log = logp.read_text(errors="replace")
        assert re.search(r"event=socket_activated listener=smtp fd=3", log), log
        assert re.search(r"event=listening listener=smtp address=127\.0\.0\.1 port=%d " % port, log), log
    finally:
        stop(proc)
        listener.close()
    log = logp.read_text(errors="replace")
    assert not sanitizer_report(log), log
    assert "event=stopped" in log, log


def test_socket_activation_refuses_a_socket_no_listener_takes(tmp_path):
    proc, port, logp = activated(tmp_path, "submission")
    try:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()   # execs postern
        except OSError:
            pass
        proc.wait(15)
    finally:
        stop(proc)
    log = logp.read_text(errors="replace")
    assert proc.returncode == 1, log
    assert re.search(r"event=startup_error error=\"socket activation: the socket on descriptor 3 is named "
                     r"\\?\"?submission", log), log
    assert "FileDescriptorName=" in log and "[listener submission]" in log, log
    assert not sanitizer_report(log), log
