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
    # The thread made new ones in their place.
    assert _wait(lambda: len(_incoming(server)) >= 32), _incoming(server)
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
    """A delivered message's queue file becomes incoming/free.<qid> and then the file of
    a later message: no inode is allocated for it, and the later (shorter) message is
    stored exactly, without the old one's tail."""
    assert _wait(lambda: len(_incoming(server)) >= 32)
    long_body = "".join("long line %03d %s\r\n" % (i, "x" * 60) for i in range(200))
    old = [_send(server, "long %d" % i, long_body) for i in range(4)]
    assert len(server.wait_delivered("alice@example.test", 4)) == 4
    # Each old file is now free.<qid>, or already a file made ahead that still holds
    # the old message (the later takes refilled the reserve from the free ones).
    def recycled():
        files = _incoming(server)
        return sum(1 for q in old if "free." + q in files) + \
            sum(1 for n, size in files.items() if not n.startswith("free.") and size > 10000)
    assert _wait(lambda: recycled() == 4), "delivered files not kept for reuse: %r" % _incoming(server)
    # 40 short messages take the 32 files made ahead and then the recycled ones.
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
    assert _wait(lambda: recycled() == 0), "the recycled files were never reused: %r" % _incoming(server)
    assert server.stop() == 0
    assert _incoming(server) == {}, "files left after a clean stop: %r" % _incoming(server)
