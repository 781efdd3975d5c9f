"""Running the server: shutdown, retries after a temporary delivery failure, startup
errors."""
import shutil
import signal
import socket
import time

from conftest import run_cli, write_config
from helpers import message


def test_sigterm_tells_open_sessions_and_exits_0(server):
    c = server.connect()
    c.ehlo()
    server.proc.send_signal(signal.SIGTERM)
    r = c.reply(timeout=10)
    assert r.is_(421, "4.3.2"), r
    assert c.wait_closed(5)
    c.close()
    server.proc.wait(10)
    assert server.proc.returncode == 0, server.proc.returncode
    server.expected_exit = True


def test_temporary_delivery_failure_is_retried(server_factory):
    s = server_factory(queue={"retry_min": "1s", "retry_max": "2s"})
    # make alice's Maildir impossible to create: a plain file where the directory goes
    md = s.maildir("alice@example.test")
    if md.exists():
        shutil.rmtree(md)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text("not a directory\n")
    with s.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@example.test>")
        r = c.data(message("retried"))
        assert r.is_(250, "2.0.0"), r
        qid = r.qid
    end = time.monotonic() + 10
    while "event=deferred" not in s.log() and time.monotonic() < end:
        time.sleep(0.1)
    assert any("event=deferred" in l and qid in l for l in s.log().splitlines()), s.log()
    md.unlink()
    msgs = s.wait_delivered("alice@example.test", 1, timeout=15)
    assert len(msgs) == 1, s.log()
    assert b"Subject: retried" in msgs[0].read_bytes()


def test_port_in_use_is_a_clear_startup_error(tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        conf = write_config(tmp_path / "postern.conf", tmp_path / "var")
        conf.write_text(conf.read_text().replace("port = 0", "port = %d" % port))
        p = run_cli(["serve"], conf=conf, timeout=15)
        assert p.returncode != 0
        assert str(port) in p.stderr, p.stderr
    finally:
        blocker.close()


def test_config_without_listener_is_refused(tmp_path):
    conf = tmp_path / "postern.conf"
    conf.write_text("[server]\nhostname = mx.example.test\ndata_dir = %s\n" % (tmp_path / "var"))
    p = run_cli(["check-config"], conf=conf)
    assert p.returncode != 0
    assert "listener" in p.stderr.lower(), p.stderr


def test_listener_without_port_is_refused(tmp_path):
    conf = tmp_path / "postern.conf"
    conf.write_text("[server]\ndata_dir = %s\n\n[listener smtp]\naddress = 127.0.0.1\n" % (tmp_path / "var"))
    p = run_cli(["check-config"], conf=conf)
    assert p.returncode != 0
    assert "port" in p.stderr, p.stderr


def test_missing_config_file(tmp_path):
    p = run_cli(["check-config"], conf=tmp_path / "nope.conf")
    assert p.returncode != 0
    assert "nope.conf" in p.stderr, p.stderr
