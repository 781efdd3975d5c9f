"""The spool files made ahead (queue/reserve.c): while the server runs, queue/incoming/
holds empty files created by the queue's own thread; a message takes one (its queue id
is that file's name, so the event loop never created it), the thread makes the next,
and a clean stop removes the files not taken.  A delivered message's file is kept for reuse
(incoming/free.<qid>) and becomes a later message's file, cut to that message's length."""
import re
import time

from helpers import message


def _incoming(srv):
    d = srv.data_dir / "queue" / "incoming"
    return {p.name: p.stat().st_size for p in d.iterdir()} if d.is_dir() else {}


def _wait(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def test_messages_take_files_made_ahead_and_stop_removes_the_rest(server):
    ahead = _wait(lambda: (lambda f: f if len(f) >= 32 else None)(_incoming(server)))
    assert ahead and len(ahead) == 32, "expected 32 empty spool files made ahead, found %r" % _incoming(server)
    assert set(ahead.values()) == {0}, ahead
    qids = []
    with server.connect() as c:
        c.ehlo()
        for i in range(3):
            assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
            assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
            r = c.data(message("ahead %d" % i))
            assert r.is_(250, "2.0.0"), r
            qids.append(re.search(r"queued as ([0-9A-F]{16})", str(r)).group(1))
    # Each message was named after a file that existed before it began, the oldest first.
    assert qids == sorted(ahead)[:3], (qids, sorted(ahead)[:5])
    assert len(server.wait_delivered("alice@example.test", 3)) == 3
    # Their files came back for reuse (free.<qid>); the thread refills a quarter at a time.
    assert _wait(lambda: len(_incoming(server)) >= 32), _incoming(server)
    assert {"free." + q for q in qids} <= set(_incoming(server)), _incoming(server)
    assert server.stop() == 0
    assert _incoming(server) == {}, "files made ahead left after a clean stop: %r" % _incoming(server)


def _send(srv, subject, body):
    with srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        r = c.data(message(subject, body=body))
        assert r.is_(250, "2.0.0"), r
        return re.search(r"queued as ([0-9A-F]{16})", str(r)).group(1)


def test_delivered_files_are_recycled_and_carry_nothing_of_the_old_message(server):
    """A delivered message's queue file becomes incoming/free.<qid>, emptied, and then
    the file of a later message (the same inode: none allocated for it); the later,
    shorter messages are stored exactly, without a byte of the old ones."""
    incoming = server.data_dir / "queue" / "incoming"
    assert _wait(lambda: len(_incoming(server)) >= 32)
    long_body = "".join("long line %03d %s\r\n" % (i, "x" * 60) for i in range(200))
    old = [_send(server, "long %d" % i, long_body) for i in range(4)]
    assert len(server.wait_delivered("alice@example.test", 4)) == 4
    # Four taken of 32: the thread refills only at a quarter, so all four wait in the pool.
    freed = ["free." + q for q in old]
    assert _wait(lambda: set(freed) <= set(_incoming(server))), "delivered files not kept: %r" % _incoming(server)
    assert all(_incoming(server)[n] == 0 for n in freed), "recycled files not emptied: %r" % _incoming(server)
    inodes = {(incoming / n).stat().st_ino for n in freed}
    # 40 short messages take the files made ahead and then the recycled ones.
    for i in range(40):
        _send(server, "short %d" % i, "short body %d\r\n" % i)
    msgs = server.wait_delivered("alice@example.test", 44)
    assert len(msgs) == 44
    shorts = 0
    for p in msgs:
        data = p.read_bytes()
        m = re.search(rb"^Subject: short (\d+)$", data, re.M)
        if m:
            shorts += 1
            assert data.endswith(b"\n\nshort body %s\n" % m.group(1)), data[-300:]
            assert b"long line" not in data, data[-300:]
    assert shorts == 40
    active = server.data_dir / "queue" / "active"
    assert _wait(lambda: not any(active.iterdir())), list(active.iterdir())
    files = _incoming(server)
    assert not set(freed) & set(files), "the recycled files were never reused: %r" % files
    # The same inodes are still in incoming/: as later messages' files, recycled again.
    assert inodes <= {(incoming / n).stat().st_ino for n in files}, files
    assert set(files.values()) == {0}, "incoming/ holds content after delivery: %r" % files
    assert server.stop() == 0
    assert _incoming(server) == {}, "files left after a clean stop: %r" % _incoming(server)
