"""Queue faults found by fault injection (issue 9): hostile files in queue/active/
(FIFOs, symbolic links), damaged state files, the order of removal, leftovers,
messages in queue/failed/ (listed, requeued, told to the postmaster) and what
`postern queue list` says while a delivery is in flight."""
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from delivery_support import (  # noqa: E402,F401
    dns, SENDER, SENDER2, REMOTE_ADDRS, free_port, make_server, submit, events, wait_event,
    queue_cli, queue_json,
)

QUEUE_ID_CHARS = "0123456789ABCDEF"


def queue_file(qid, rcpts, sender=SENDER, body=b"Subject: hand made\r\n\r\nhello\r\n", protocol="ESMTP"):
    """A complete queue file in Postern's format (see src/queue/queue.h)."""
    head = "POSTERN-QUEUE 1\nqid %s\narrival %d\nclient-addr 127.0.0.1\nhelo x\nprotocol %s\nsender %s\n" % (
        qid, int(time.time()), protocol, sender)
    head += "".join("rcpt %s\n" % r for r in rcpts) + "\n"
    return head.encode() + body + b"\nEND %020d POSTERN\n" % len(body)


def qdir(srv, sub):
    d = srv.data_dir / "queue" / sub
    d.mkdir(parents=True, exist_ok=True)
    return d


def started(srv):
    """Start (if needed) and wait for event=started: SIGTERM before it kills the process
    with the default action (the handlers are installed last)."""
    if not srv.alive():
        srv.start()
    assert wait_event(srv, "started", timeout=20, all_runs=False), srv.log()
    return srv


def stopped_server(server_factory, **kw):
    """A configured server not started yet (its queue directories made here)."""
    srv = make_server(server_factory, start=False, **kw)
    for sub in ("incoming", "active", "state", "failed"):
        qdir(srv, sub)
    return srv


def new_qid(i):
    return ("%016X" % (0xF1F0000000000000 + i))


def postmaster_notices(srv):
    box = srv.data_dir / "mail" / "example.test" / "postmaster"
    out = []
    for sub in ("new", "cur"):
        d = box / sub
        if d.is_dir():
            out += sorted(p.read_text(errors="replace") for p in d.iterdir())
    return out


def wait_for(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    return pred()


# -- 1. FIFOs and symbolic links in active/ --------------------------------------------------

def test_fifo_and_symlink_in_active_online(server_factory, tmp_path):
    srv = started(make_server(server_factory, queue={"delivery_threads": "2"}))
    active = qdir(srv, "active")
    fifos = [new_qid(i) for i in range(3)]          # more FIFOs than delivery threads
    for q in fifos:
        os.mkfifo(active / q)
    # a link to a complete queue file outside the queue: it must not be delivered
    outside = tmp_path / "outside-queue-file"
    link_id = new_qid(9)
    outside.write_bytes(queue_file(link_id, [SENDER2], body=b"Subject: via a link\r\n\r\nstolen\r\n"))
    os.symlink(outside, active / link_id)
    # `queue list` must not hang on them (it did, in open())
    p = queue_cli(srv, "list")
    assert p.returncode == 0 and fifos[0] in p.stdout, p.stdout
    # hand them to the runner now (it also finds them at its next look over active/)
    for q in fifos + [link_id]:
        assert queue_cli(srv, "retry", q).returncode == 0
    qid = submit(srv, SENDER, subject="after the fifos")
    assert srv.wait_delivered(SENDER, 1, timeout=20), srv.log()
    for q in fifos + [link_id]:
        assert wait_event(srv, "queue_corrupt", qid=q, timeout=20), srv.log()
        assert (qdir(srv, "failed") / q).exists() or (qdir(srv, "failed") / q).is_symlink()
        assert not (active / q).exists() and not (active / q).is_symlink()
    corrupt = {e["qid"]: e["error"] for e in events(srv, "queue_corrupt")}
    assert "FIFO" in corrupt[fifos[0]], corrupt
    assert "symbolic link" in corrupt[link_id], corrupt
    assert wait_event(srv, "removed", qid=qid, timeout=10)
    assert srv.maildir_messages(SENDER2) == [], "the link's target was delivered"
    assert outside.exists()
    # queue list (online) does not hang and lists the failed ones
    p = queue_cli(srv, "list")
    assert p.returncode == 0, p.stderr
    p = queue_cli(srv, "list", "--failed")
    assert p.returncode == 0 and all(q in p.stdout for q in fifos + [link_id]), p.stdout
    assert "FIFO" in p.stdout and "symbolic link" in p.stdout, p.stdout
    failed = queue_json(srv, "--failed")
    assert {m["id"] for m in failed} == set(fifos + [link_id]) and all(not m["readable"] for m in failed), failed
    # one notice to the postmaster naming all of them, and what to do
    notices = wait_for(lambda: postmaster_notices(srv), 30)
    assert len(notices) == 1, (notices, srv.log())
    n = notices[0]
    assert all(q in n for q in fifos + [link_id]), n
    assert "postern queue list --failed" in n and "postern queue delete" in n, n
    assert len(events(srv, "failed_notice_sent")) == 1
    # a FIFO cannot be requeued; it can be deleted
    p = queue_cli(srv, "requeue", fifos[0])
    assert p.returncode == 1 and "not a readable queue file" in p.stderr, (p.stdout, p.stderr)
    p = queue_cli(srv, "delete", fifos[0])
    assert p.returncode == 0, p.stderr
    assert not (qdir(srv, "failed") / fifos[0]).exists()
    # the server still delivers, and SIGTERM finishes
    submit(srv, SENDER, subject="still delivering")
    assert len(srv.wait_delivered(SENDER, 2, timeout=20)) == 2, srv.log()
    assert srv.stop() == 0
    assert not srv.problems, srv.problems


def test_fifo_and_symlink_in_active_offline(server_factory, tmp_path):
    srv = stopped_server(server_factory, queue={"delivery_threads": "1"})
    active = qdir(srv, "active")
    fifo, link_id = new_qid(1), new_qid(2)
    os.mkfifo(active / fifo)
    outside = tmp_path / "outside"
    outside.write_bytes(queue_file(link_id, [SENDER2]))
    os.symlink(outside, active / link_id)
    t0 = time.monotonic()
    p = queue_cli(srv, "list")
    assert p.returncode == 0, p.stderr
    assert fifo in p.stdout and "FIFO" in p.stdout and link_id in p.stdout and "symbolic link" in p.stdout, p.stdout
    assert "damaged" in p.stdout
    js = queue_json(srv)
    assert {m["id"]: m["state"] for m in js} == {fifo: "damaged", link_id: "damaged"}, js
    p = queue_cli(srv, "show", fifo)
    assert p.returncode == 1 and "FIFO" in p.stderr, p.stderr
    assert time.monotonic() - t0 < 25
    # at start the server moves them aside and delivers the rest
    started(srv)
    qid = submit(srv, SENDER)
    assert srv.wait_delivered(SENDER, 1, timeout=20)
    assert wait_event(srv, "queue_corrupt", qid=fifo, timeout=20) and wait_event(srv, "queue_corrupt", qid=link_id)
    assert srv.maildir_messages(SENDER2) == []
    ids = [m["id"] for m in queue_json(srv)]   # read once: the delivered message may go meanwhile
    assert ids in ([], [qid]), ids
    assert srv.stop() == 0


# -- 2. a damaged state file --------------------------------------------------------------------

def _place(srv, qid, rcpts, state=None, where="active", **kw):
    (qdir(srv, where) / qid).write_bytes(queue_file(qid, rcpts, **kw))
    if state is not None:
        (qdir(srv, "state") / qid).write_bytes(state)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "fifo"])
def test_damaged_state_salvaged(server_factory, damage):
    srv = stopped_server(server_factory)
    qid = new_qid(0x20)
    rcpts = [SENDER, SENDER2]
    # alice is recorded delivered, bob's record is cut (truncated) or nothing is readable
    good = b"POSTERN-STATE 2\nheld 0\ndelay-notified 0\nr 0 1 0 0 -\nr 1 0 1 0 451%204.3.0%20later\n"
    state = {"truncated": good[:good.index(b"r 1 ") + 3], "garbage": b"\x00\xff junk \x01\n" * 20,
             "empty": b"", "fifo": None}[damage]
    _place(srv, qid, rcpts, state)
    if damage == "fifo":
        os.mkfifo(qdir(srv, "state") / qid)
    # offline: listed, shown, marked damaged (it was invisible before)
    js = queue_json(srv)
    assert [m["id"] for m in js] == [qid], js
    assert js[0].get("state_damaged") is True, js
    p = queue_cli(srv, "show", qid)
    assert p.returncode == 0 and "damaged" in p.stdout, (p.stdout, p.stderr)
    started(srv)
    assert wait_event(srv, "state_corrupt", qid=qid, timeout=20), srv.log()
    assert wait_event(srv, "removed", qid=qid, timeout=20), srv.log()
    bob = srv.wait_delivered(SENDER2, 1, timeout=10)
    assert len(bob) == 1
    alice = srv.maildir_messages(SENDER)
    if damage == "truncated":
        assert alice == [], "alice was recorded delivered; the salvaged state must keep that"
        assert events(srv, "state_corrupt", qid=qid)[0]["recovered"] == "1"
    else:
        assert len(alice) == 1, "nothing readable: every recipient is delivered (a duplicate, not a loss)"
    assert not events(srv, "state_error", qid=qid)
    assert queue_json(srv) == []
    assert srv.stop() == 0


# -- 4. leftovers -------------------------------------------------------------------------------

def _old(path, hours):
    t = time.time() - hours * 3600
    os.utime(path, (t, t), follow_symlinks=False)


def test_leftovers_cleaned_at_start(server_factory):
    srv = started(make_server(server_factory))
    submit(srv, SENDER)                                 # makes alice's Maildir
    assert srv.wait_delivered(SENDER, 1, timeout=20)
    assert srv.stop() == 0
    tmp = srv.maildir(SENDER) / "tmp"
    old_tmp, new_tmp, day_tmp = tmp / "1.M1P1Q1.crashed", tmp / "2.M2P2Q2.writing", tmp / "3.M3P3Q3.day"
    for p in (old_tmp, new_tmp, day_tmp):
        p.write_bytes(b"partial")
    _old(old_tmp, 40)
    _old(day_tmp, 30)                                  # younger than 36 hours: kept
    folder_tmp = srv.maildir(SENDER) / ".Sent" / "tmp"
    folder_tmp.mkdir(parents=True)
    (folder_tmp / "4.old").write_bytes(b"x")
    _old(folder_tmp / "4.old", 48)
    st_tmp = qdir(srv, "state") / (new_qid(0x30) + ".tmp")
    orphan = qdir(srv, "state") / new_qid(0x31)
    junk = qdir(srv, "active") / "core.1234"
    fresh_orphan = qdir(srv, "state") / new_qid(0x32)
    for p in (st_tmp, orphan, junk, fresh_orphan):
        p.write_bytes(b"x")
        if p != fresh_orphan:
            _old(p, 2)
    started(srv)
    ev = wait_event(srv, "cleanup", timeout=20, all_runs=False)
    assert ev, srv.log()
    e = ev[0]
    assert (e["maildir_tmp"], e["state_tmp"], e["orphan_state"], e["active_junk"]) == ("2", "1", "1", "1"), e
    assert not old_tmp.exists() and not (folder_tmp / "4.old").exists()
    assert new_tmp.exists() and day_tmp.exists() and fresh_orphan.exists()
    assert not st_tmp.exists() and not orphan.exists() and not junk.exists()
    assert srv.stop() == 0


def test_leftovers_cleaned_periodically_and_active_rescanned(server_factory):
    srv = started(make_server(server_factory, queue={"cleanup_interval": "1s"}))
    submit(srv, SENDER)
    assert srv.wait_delivered(SENDER, 1, timeout=20)
    assert wait_event(srv, "cleanup", timeout=20, all_runs=False)
    later = srv.maildir(SENDER) / "tmp" / "5.M5P5Q5.later"
    later.write_bytes(b"x")
    _old(later, 37)
    assert wait_for(lambda: not later.exists(), 20), srv.log()
    assert wait_event(srv, "cleanup", n=2, timeout=10, all_runs=False)
    # a FIFO and a real message put into active/ by hand are found by the next pass
    fifo, real = new_qid(0x50), new_qid(0x51)
    os.mkfifo(qdir(srv, "active") / fifo)
    (qdir(srv, "active") / real).write_bytes(queue_file(real, [SENDER2]))
    assert wait_event(srv, "queue_corrupt", qid=fifo, timeout=20), srv.log()
    assert len(srv.wait_delivered(SENDER2, 1, timeout=20)) == 1, srv.log()
    assert wait_event(srv, "queue_rescan", timeout=5)
    assert srv.stop() == 0


# -- 5. failed messages: listed, shown, requeued, told to the postmaster ------------------------

def test_failed_messages_listed_requeued_and_notified(server_factory):
    srv = stopped_server(server_factory)
    # a report (null sender) to a user who does not exist: undeliverable, kept in failed/
    report = new_qid(0x40)
    _place(srv, report, ["nobody@example.test"], sender="")
    # a readable message an admin (or an old run) left in failed/
    kept = new_qid(0x41)
    _place(srv, kept, [SENDER2], where="failed", body=b"Subject: requeue me\r\n\r\nagain\r\n")
    started(srv)
    assert wait_event(srv, "kept", qid=report, timeout=20), srv.log()
    js = queue_json(srv, "--failed")
    by = {m["id"]: m for m in js}
    assert set(by) == {report, kept}, js
    assert by[report]["readable"] and "nobody@example.test" in (by[report]["reason"] or ""), by[report]
    p = queue_cli(srv, "list", "--failed")
    assert p.returncode == 0 and report in p.stdout and "requeue" in p.stdout, p.stdout
    p = queue_cli(srv, "show", kept)
    assert p.returncode == 0 and "failed" in p.stdout and SENDER2 in p.stdout and "requeue" in p.stdout, p.stdout
    notices = wait_for(lambda: postmaster_notices(srv), 30)
    assert len(notices) == 1 and report in notices[0] and "nobody@example.test" in notices[0], notices
    # requeue (online): delivered
    p = queue_cli(srv, "requeue", kept)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert len(srv.wait_delivered(SENDER2, 1, timeout=20)) == 1, srv.log()
    assert not (qdir(srv, "failed") / kept).exists()
    assert queue_cli(srv, "requeue", kept).returncode == 1
    # offline requeue puts it back for the next start
    assert srv.stop() == 0
    _place(srv, kept, [SENDER2], where="failed")
    p = queue_cli(srv, "requeue", kept)
    assert p.returncode == 0 and (qdir(srv, "active") / kept).exists(), (p.stdout, p.stderr)
    started(srv)
    assert len(srv.wait_delivered(SENDER2, 2, timeout=20)) == 2
    time.sleep(1)
    assert len(postmaster_notices(srv)) == 1, "one notice per batch"
    assert srv.stop() == 0


# -- 6. in flight --------------------------------------------------------------------------------

class SilentPeer:
    """Accepts on addr:port and never greets: a delivery stays in flight until closed."""

    def __init__(self, addr, port):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind((addr, port))
        self.s.listen(8)
        self.s.settimeout(0.2)
        self.conns = []
        self.stopping = False
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        for _ in range(100000):
            if self.stopping:
                return
            try:
                c, _ = self.s.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self.stopping = True
        self.t.join(5)
        for c in self.conns:
            c.close()
        self.s.close()


@pytest.mark.parametrize("via", ["mx", "relay"])
def test_list_says_being_delivered_now(server_factory, dns, via):
    port = free_port(REMOTE_ADDRS)
    peer = SilentPeer("127.0.0.2", port)
    try:
        relay = {"host": "127.0.0.2", "port": str(port), "tls": "none"} if via == "relay" else None
        srv = started(make_server(server_factory, dns, port, delivery={"command_timeout": "60s"}, relay=relay,
                                  queue={"retry_min": "60s", "retry_max": "120s"}))
        qid = submit(srv, "slow@d2.test")
        assert wait_for(lambda: peer.conns, 20), srv.log()

        def entry():
            for m in queue_json(srv):
                if m["id"] == qid and m.get("delivering_to"):
                    return m
            return None
        m = wait_for(entry, 20)
        assert m, queue_json(srv)
        # the server it is talking to
        host = ("mx2.test[127.0.0.2]:%d" if via == "mx" else "relay 127.0.0.2:%d") % port
        assert m["delivering_to"] == host and m["state"] == "sending", m
        p = queue_cli(srv, "list")
        assert "being delivered now (%s)" % host in p.stdout, p.stdout
        assert "not tried yet" not in p.stdout, p.stdout
        p = queue_cli(srv, "show", qid)
        assert "being delivered (%s)" % host in p.stdout, p.stdout
    finally:
        peer.close()
    assert wait_event(srv, "deferred", qid=qid, timeout=30), srv.log()
    # the thread logs the deferral, then saves the state, then lets go of the message
    settled = wait_for(lambda: [e for e in queue_json(srv) if e["id"] == qid and e["delivering_to"] is None], 10)
    m = settled[0] if settled else [e for e in queue_json(srv) if e["id"] == qid][0]
    assert m["delivering_to"] is None and m["state"] == "deferred", m
    assert srv.stop() == 0
