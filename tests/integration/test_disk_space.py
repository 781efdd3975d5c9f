"""The server's own storage (issue 9, RFC 3463 X.3.1 "mail system full").

* MAIL is refused with 452 4.3.1 when the queue's filesystem has no more than
  [queue] min_free left, and MAIL ... SIZE= when the declared size does not fit the
  space above it (statvfs, at most once a second).
* A write that fails for lack of space (ENOSPC) is answered 452 4.3.1 "ran out of
  space", not 451 4.3.0 "could not be stored".
* The condition is logged with the free space once (then at most once a minute), not
  per message, and once when it clears.

A full disk is simulated without endangering the machine: a min_free larger than the
real free space, or a small tmpfs mounted by the test over the server's queue/ (unmounted
at teardown).  Replies are read through smtplib."""
import os
import re
import smtplib
import subprocess
import time

import pytest

from pop3_support import ALICE, make_pop3_server, wait_log


@pytest.fixture
def tmpfs():
    """mount(path, size): a private tmpfs of `size` over path, lazily unmounted at teardown."""
    mounted = []

    def mount(path, size):
        path.mkdir(parents=True, exist_ok=True)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", str(path)],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, "cannot mount a tmpfs (the tests run as root): %s" % p.stderr
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def _server(server_factory, tmpfs=None, size=None, min_free="64M"):
    srv = server_factory(start=False, queue={"min_free": min_free})
    if tmpfs:
        tmpfs(srv.data_dir / "queue", size)
    srv.start()
    srv.ports = {"smtp": srv.port}
    return srv


def _smtp(srv):
    s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=60)
    s.ehlo("client.example")
    return s


def _message(nbytes, subject="test"):
    line = "y" * 98 + "\r\n"
    return ("From: <sender@elsewhere.example>\r\nTo: <%s>\r\nSubject: %s\r\n\r\n" % (ALICE, subject) +
            line * max(1, nbytes // len(line))).encode()


def _count(srv, event):
    return len(re.findall(r"event=%s\b" % event, srv.log()))


def test_min_free_above_the_free_space_refuses_mail(server_factory):
    free = os.statvfs("/tmp").f_bavail * os.statvfs("/tmp").f_frsize
    assert free < (1 << 40)
    srv = _server(server_factory, min_free="1024G")     # more than this machine has free
    for i in range(5):
        s = _smtp(srv)
        try:
            code, text = s.mail("sender@elsewhere.example", ["SIZE=1000"] if i % 2 else [])
            text = text.decode()
            assert code == 452 and text.startswith("4.3.1"), (code, text)
            assert "Insufficient system storage" in text and "(ref " in text, text
            if i % 2:
                assert "1000" in text or "1.0 KB" in text, text
            else:
                assert "out of space for new mail" in text, text
            s.quit()
        finally:
            s.close()
    # logged once with the free space, not once per refusal
    m = wait_log(srv, r"event=queue_space_low\b[^\n]*")
    assert m, srv.log()[-3000:]
    assert "free_bytes=" in m.group(0) and "min_free=\"1024.0 GB\"" in m.group(0), m.group(0)
    assert _count(srv, "queue_space_low") == 1, srv.log()[-3000:]
    assert _count(srv, "refused") == 5


def test_declared_size_that_does_not_fit_the_queue(server_factory, tmpfs):
    srv = _server(server_factory, tmpfs, "4m", min_free="1M")   # about 3 MB of room
    s = _smtp(srv)
    try:
        code, text = s.mail("sender@elsewhere.example", ["SIZE=3500000"])
        text = text.decode()
        assert code == 452 and text.startswith("4.3.1"), (code, text)
        assert "3.3 MB, declared with SIZE" in text and "does not fit" in text, text
        s.rset()
        code, _ = s.mail("sender@elsewhere.example", ["SIZE=100000"])
        assert code == 250
        assert s.rcpt(ALICE)[0] == 250
        code, text = s.data(_message(100000))
        assert code == 250, (code, text)
        s.quit()
    finally:
        s.close()
    assert len(srv.wait_delivered(ALICE, 1)) == 1


def test_write_failure_for_lack_of_space(server_factory, tmpfs):
    """A 2 MB tmpfs under queue/, no reserve: a 3 MB message without SIZE fills it."""
    srv = _server(server_factory, tmpfs, "2m", min_free="0")
    for attempt in range(3):
        s = _smtp(srv)
        try:
            code, _ = s.mail("sender@elsewhere.example")
            assert code == 250
            assert s.rcpt(ALICE)[0] == 250
            code, text = s.data(_message(3 * 1024 * 1024))
            text = text.decode()
            assert code == 452 and text.startswith("4.3.1"), (attempt, code, text)
            assert "ran out of space while storing the message" in text, text
            assert "Nothing was accepted" in text and "(ref " in text, text
            s.quit()
        finally:
            s.close()
    assert _count(srv, "queue_space_low") == 1, srv.log()[-3000:]
    assert "no space left" in wait_log(srv, r"event=queue_space_low\b[^\n]*").group(0)
    assert _count(srv, "spool_error") == 0, srv.log()[-3000:]
    assert _count(srv, "queued") == 0
    # nothing was left behind: a message that fits is accepted and delivered
    s = _smtp(srv)
    try:
        s.sendmail("sender@elsewhere.example", [ALICE], _message(10000, "small"))
        s.quit()
    finally:
        s.close()
    assert len(srv.wait_delivered(ALICE, 1)) == 1


def test_undeclared_size_does_not_eat_the_reserve(server_factory, tmpfs):
    """Without SIZE=, a message that outgrows the space above min_free is refused at the
    end of data (452 4.3.1) before it can fill the filesystem."""
    srv = _server(server_factory, tmpfs, "4m", min_free="1M")   # about 3 MB above the reserve
    s = _smtp(srv)
    try:
        assert s.mail("sender@elsewhere.example")[0] == 250
        assert s.rcpt(ALICE)[0] == 250
        code, text = s.data(_message(3 * 1024 * 1024 + 512 * 1024))
        text = text.decode()
        assert code == 452 and text.startswith("4.3.1"), (code, text)
        assert "ran out of space while storing the message" in text, text
        s.quit()
    finally:
        s.close()
    st = os.statvfs(str(srv.data_dir / "queue"))
    assert st.f_bavail * st.f_frsize > 3 * 1024 * 1024      # the partial file is gone
    assert _count(srv, "queued") == 0 and _count(srv, "spool_error") == 0


def test_condition_clears_and_is_logged_once(server_factory, tmpfs):
    srv = _server(server_factory, tmpfs, "4m", min_free="1M")
    filler = srv.data_dir / "queue" / "filler"
    filler.write_bytes(b"z" * (3 * 1024 * 1024 + 512 * 1024))   # 0.5 MB left: below min_free
    s = _smtp(srv)
    try:
        code, text = s.mail("sender@elsewhere.example")
        assert code == 452 and text.decode().startswith("4.3.1"), (code, text)
        filler.unlink()
        time.sleep(1.2)                                           # the statvfs cache is one second
        code, text = s.mail("sender@elsewhere.example")
        assert code == 250, (code, text)
        s.quit()
    finally:
        s.close()
    assert _count(srv, "queue_space_low") == 1
    m = wait_log(srv, r"event=queue_space_ok\b[^\n]*")
    assert m and "free_bytes=" in m.group(0), srv.log()[-3000:]
