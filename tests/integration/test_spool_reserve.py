"""The spool files made ahead (queue/reserve.c): while the server runs, queue/incoming/
holds empty files created by the queue's own thread; a message takes one (its queue id
is that file's name, so the event loop never created it), the thread makes the next,
and a clean stop removes the files not taken."""
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
