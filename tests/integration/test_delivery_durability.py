"""Delivery and crashes, delivery and shutdown, against a slow relay (aiosmtpd that holds
its end-of-data reply back).

* A message to a local and a remote recipient: the local copy's Maildir name is its
  record (no state file is written for it before the remote transaction starts), so a
  kill -9 during that transaction does not deliver the local copy again after the
  restart: the retry finds it by name (event=already_delivered).
* A second delivery of the same queued copy is recognised by its Maildir name even when
  the saved state is lost (the copy was moved to cur/ by a mail program meanwhile).
* SIGTERM during a slow DATA: the server exits within [server] shutdown_timeout, the
  message stays queued with its remote recipient untouched, and is delivered after the
  restart."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import write_config  # noqa: E402
from delivery_support import (  # noqa: E402
    AioReceiver, SENDER, delivery_config_text, free_port, make_server, queue_entry, submit,
    wait_event, wait_queue,
)

RELAY_ADDR = "127.0.0.7"
LOCAL = "bob@example.test"
REMOTE = "x@far-away.example"


def _server(server_factory, port, shutdown_timeout=None):
    relay = {"host": RELAY_ADDR, "port": str(port), "tls": "none"}
    delivery = {"command_timeout": "2m"}
    srv = make_server(server_factory, relay=relay, delivery=delivery, start=False)
    server = {"trusted_networks": "127.0.0.0/8"}
    if shutdown_timeout:
        server["shutdown_timeout"] = shutdown_timeout
    write_config(srv.config, srv.data_dir, queue=srv.queue_opts, server=server,
                 extra=delivery_config_text(None, None, delivery, relay))
    return srv.start()


def _wait(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        time.sleep(step)
    return pred()


def _rcpt(entry, address):
    return next(r for r in entry["recipients"] if r["address"] == address)


def test_kill9_during_slow_relay_does_not_repeat_local_copy(server_factory):
    port = free_port((RELAY_ADDR,))
    with AioReceiver([RELAY_ADDR], port, data_delay=120) as rx:
        srv = _server(server_factory, port)
        qid = submit(srv, [LOCAL, REMOTE])
        assert srv.wait_delivered(LOCAL, 1, timeout=15), srv.log()
        assert _wait(lambda: rx.data_count >= 1, 15), "the relay never got the DATA: %s" % srv.log()
        # the relay now holds its reply back; the local copy is in place, and no state
        # file was written for it (one write and two fsyncs less per such message)
        e = queue_entry(srv, qid)
        assert e, "message not in the queue during the remote transaction"
        assert _rcpt(e, REMOTE)["state"] == "pending", e
        assert not (srv.data_dir / "queue" / "state" / qid).exists(), e
        srv.kill9()
        rx.data_delay = 0
        srv.start()
        assert rx.wait_messages(1, timeout=20), srv.log()
        assert _wait(lambda: queue_entry(srv, qid) is None, 15), srv.log()
        assert len(srv.maildir_messages(LOCAL)) == 1, [p.name for p in srv.maildir_messages(LOCAL)]
        assert wait_event(srv, "already_delivered", qid=qid), srv.log()
        assert wait_event(srv, "removed", qid=qid), srv.log()


def test_repeat_delivery_found_in_cur_after_state_loss(server_factory):
    """The worst case for item 2: the state file is gone (as after a crash right after
    the delivery) and the mail program already moved the copy to cur/ and flagged it."""
    port = free_port((RELAY_ADDR,))
    with AioReceiver([RELAY_ADDR], port, data_delay=120) as rx:
        srv = _server(server_factory, port)
        qid = submit(srv, [LOCAL, REMOTE])
        assert srv.wait_delivered(LOCAL, 1, timeout=15), srv.log()
        assert _wait(lambda: rx.data_count >= 1, 15), srv.log()
        srv.kill9()
        state = srv.data_dir / "queue" / "state" / qid
        if state.exists():
            state.unlink()            # the outcome was never saved
        md = srv.maildir(LOCAL)
        (f,) = list((md / "new").iterdir())
        os.rename(f, md / "cur" / (f.name + ":2,S"))
        rx.data_delay = 0
        srv.start()
        assert rx.wait_messages(1, timeout=20), srv.log()
        assert _wait(lambda: queue_entry(srv, qid) is None, 15), srv.log()
        files = srv.maildir_messages(LOCAL)
        assert len(files) == 1, [p.name for p in files]
        ev = wait_event(srv, "already_delivered", qid=qid)
        assert ev and ev[0]["file"].startswith("cur/"), srv.log()


def test_sigterm_during_slow_relay_is_bounded_and_keeps_message(server_factory):
    port = free_port((RELAY_ADDR,))
    with AioReceiver([RELAY_ADDR], port, data_delay=120) as rx:
        srv = _server(server_factory, port, shutdown_timeout="2s")
        qid = submit(srv, [REMOTE])
        assert _wait(lambda: rx.data_count >= 1, 15), "the relay never got the DATA: %s" % srv.log()
        t0 = time.monotonic()
        srv.expected_exit = True
        srv.proc.send_signal(signal.SIGTERM)
        try:
            rc = srv.proc.wait(30)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
            srv.proc.wait(5)
            raise AssertionError("SIGTERM during a slow DATA: still running after 30 s (command_timeout 2m)")
        took = time.monotonic() - t0
        srv.logf.close()
        assert rc == 0, srv.log()
        # 2 s of grace, then the transaction is cut off; far below the relay's 120 s
        assert took < 20, "stop took %.1fs" % took
        assert "event=delivery_cut_off" in srv.log(), srv.log()
        assert (srv.data_dir / "queue" / "active" / qid).exists(), "the message left the queue"
        e = queue_entry(srv, qid)
        r = _rcpt(e, REMOTE)
        assert r["state"] == "pending" and r["attempts"] == 0, e   # untouched: no attempt counted
        assert rx.messages == []
        rx.data_delay = 0
        srv.start()
        got = rx.wait_messages(1, timeout=20)
        assert got and got[0]["rcpt_tos"] == [REMOTE], srv.log()
        assert _wait(lambda: queue_entry(srv, qid) is None, 15), srv.log()


def test_state_file_only_while_needed(server_factory):
    """A message delivered to every recipient in its first attempt never gets a state
    file; one deferred has a state file (with its local copy recorded, the copy's
    directory synced first) until its last recipient is delivered, and then the state
    file goes too (queue_done's batch, flushed when the delivery threads go idle)."""
    port = free_port((RELAY_ADDR,))
    refusing = [True]
    rcpt_reply = lambda address, options, n: "451 4.3.0 not yet" if refusing[0] else None  # noqa: E731
    with AioReceiver([RELAY_ADDR], port, rcpt_reply=rcpt_reply) as rx:
        srv = _server(server_factory, port)
        state_dir = srv.data_dir / "queue" / "state"
        qid = submit(srv, [LOCAL, REMOTE])
        assert _wait(lambda: (state_dir / qid).exists(), 15), srv.log()
        e = queue_entry(srv, qid)
        assert _rcpt(e, LOCAL)["state"] == "delivered" and _rcpt(e, REMOTE)["state"] == "deferred", e
        refusing[0] = False
        assert rx.wait_messages(1, timeout=20), srv.log()           # the next retry (1-2 s)
        assert wait_event(srv, "removed", qid=qid, timeout=15), srv.log()
        assert _wait(lambda: not (state_dir / qid).exists(), 10), list(state_dir.iterdir())
        assert not (srv.data_dir / "queue" / "active" / qid).exists()
        # all at once: no state file at any moment, nothing left behind
        qid2 = submit(srv, [LOCAL, REMOTE])
        assert rx.wait_messages(2, timeout=20), srv.log()
        assert wait_event(srv, "removed", qid=qid2, timeout=15), srv.log()
        assert not any(wait_event(srv, "deferred", qid=qid2, timeout=0.1)), srv.log()
        assert list(state_dir.iterdir()) == [], list(state_dir.iterdir())
        assert len(srv.maildir_messages(LOCAL)) == 2
