"""The queue: delay notices and the lifetime limit, a restart in the middle of a queue
run, and the admin commands (postern queue list/show/hold/release/flush/retry/delete),
online and with the server stopped."""
import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from delivery_support import (  # noqa: E402,F401
    dns, AioReceiver, REMOTE_ADDRS, SENDER, SENDER2, free_port, make_server, submit, msg, events,
    wait_event, reports, wait_reports, queue_json, queue_cli, queue_entry, wait_queue,
)


# -- 6. delay notice, then the failure report when the lifetime is over -----------------------

def test_delay_notice_once_then_gave_up(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2"], port, accept=False) as rx:    # always 451
        srv = make_server(server_factory, dns, port, delivery={"delay_notice": "2s", "max_lifetime": "6s"})
        t0 = time.monotonic()
        q1 = submit(srv, "slow@d2.test", sender=SENDER, subject="waiting for ever")
        q2 = submit(srv, "slow2@d2.test", sender=SENDER2, rcpt_params=" NOTIFY=FAILURE")
        fail1 = wait_reports(srv, 1, SENDER, timeout=20, kind="failure")
        fail2 = wait_reports(srv, 1, SENDER2, timeout=5, kind="failure")
        elapsed = time.monotonic() - t0
        assert fail1 and fail2, srv.log()
        assert elapsed >= 5, "failure report after %.1fs, before max_lifetime (6s)" % elapsed
        time.sleep(1.5)
        rs1, rs2 = reports(srv, SENDER), reports(srv, SENDER2)
        delays1 = [r for r in rs1 if r.is_delay]
        assert len(delays1) == 1, "exactly one delay notice expected, got %d: %r" % (len(delays1), rs1)
        assert len([r for r in rs1 if r.is_failure]) == 1, rs1
        assert [r for r in rs2 if r.is_delay] == [], "NOTIFY=FAILURE: no delay notice"
        assert len(rs2) == 1 and rs2[0].is_failure, rs2

        d = delays1[0]
        assert d.subject == "Delayed Mail (still being retried)", d.subject
        assert d.content_type == "multipart/report" and d.report_type == "delivery-status"
        assert "MAILER-DAEMON" in d.from_
        rc = d.recipients[0]
        assert rc["Action"] == "delayed" and rc["Status"].startswith("4."), rc
        assert "slow@d2.test" in rc["Final-Recipient"]
        assert "451 4.3.0 not now" in d.text, d.text
        assert "do not need to send it again" in d.text
        assert "text/rfc822-headers" in d.types or "message/rfc822" in d.types, d.types

        f = fail1[0]
        assert "gave up" in f.text, f.text
        assert "451 4.3.0 not now" in f.text, f.text
        rcf = f.recipients[0]
        assert rcf["Action"] == "failed" and rcf["Status"].startswith("5."), rcf
        assert "message/rfc822" in f.types and b"Subject: waiting for ever" in f.returned

        ds = events(srv, "delay_notice_sent")
        assert len(ds) == 1 and ds[0]["qid"] == q1, ds
        log = srv.log()
        assert log.index("event=delay_notice_sent") < log.index("event=bounce_sent")
        assert len(events(srv, "deferred", qid=q1)) >= 3, "retried with retry_min=1s/retry_max=2s"
        assert wait_event(srv, "removed", qid=q1) and wait_event(srv, "removed", qid=q2)
        assert rx.messages == []
        assert queue_json(srv) == []


# -- 9. restart in the middle -------------------------------------------------------------------

@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_restart_midway_no_duplicate(server_factory, dns, how):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2"], port) as ok_rx, AioReceiver(["127.0.0.3"], port, accept=False) as slow_rx:
        srv = make_server(server_factory, dns, port)
        qid = submit(srv, ["done@d2.test", "later@d3.test"])
        assert wait_event(srv, "delivered", qid=qid, to="done@d2.test"), srv.log()
        assert wait_event(srv, "deferred", qid=qid, to="later@d3.test"), srv.log()

        def done_recorded(q):
            e = [m for m in q if m["id"] == qid]
            return e and {r["address"]: r["state"] for r in e[0]["recipients"]}.get("done@d2.test") == "delivered"

        q = wait_queue(srv, done_recorded)
        assert done_recorded(q), q
        if how == "sigterm":
            assert srv.stop() == 0
        else:
            srv.kill9()
        assert len(ok_rx.messages) == 1
        slow_rx.accept = True
        srv.start()
        ev = wait_event(srv, "delivered", qid=qid, to="later@d3.test", all_runs=False, timeout=15)
        assert ev, srv.log()
        assert [m["rcpt_tos"] for m in slow_rx.wait_messages(1)] == [["later@d3.test"]]
        time.sleep(1.0)
        assert len(ok_rx.messages) == 1, "done@d2.test delivered again after the restart: %r" % ok_rx.messages
        assert not events(srv, "delivered", all_runs=False, to="done@d2.test")
        assert wait_event(srv, "removed", qid=qid, all_runs=False)
        assert queue_json(srv) == []


# -- 10. queue administration ---------------------------------------------------------------------

def _wait_deferred(srv, qid, timeout=10):
    q = wait_queue(srv, lambda q: any(m["id"] == qid and m["state"] == "deferred" for m in q), timeout)
    e = [m for m in q if m["id"] == qid]
    assert e and e[0]["state"] == "deferred", (q, srv.log())
    return e[0]


def test_queue_admin_online(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    # long back-off, so that only flush/retry/release make things happen quickly
    srv = make_server(server_factory, dns, port, queue={"retry_min": "60s", "retry_max": "120s"})
    m1 = submit(srv, "q1@d8.test", sender=SENDER, subject="admin one")
    m2 = submit(srv, "q2@d8.test", sender=SENDER2, subject="admin two")
    e1 = _wait_deferred(srv, m1)
    _wait_deferred(srv, m2)

    # list --json
    assert e1["sender"] == SENDER and e1["state"] == "deferred"
    r = e1["recipients"][0]
    assert r["address"] == "q1@d8.test" and r["state"] == "deferred" and r["attempts"] == 1, r
    assert r["next_try"] > time.time() + 30, r
    assert "could be reached" in (r["last_reply"] or ""), r
    for k in ("id", "sender", "state", "recipients", "size", "age_seconds"):
        assert k in e1, e1

    # the table
    p = queue_cli(srv, "list")
    assert p.returncode == 0, p.stderr
    assert m1 in p.stdout and m2 in p.stdout and "deferred" in p.stdout, p.stdout
    assert "<%s>" % SENDER in p.stdout and "q1@d8.test" in p.stdout and "next try in" in p.stdout, p.stdout
    assert "2 message(s)" in p.stdout, p.stdout

    # --sender
    only = queue_json(srv, "--sender", SENDER2)
    assert [m["id"] for m in only] == [m2], only
    p = queue_cli(srv, "list", "--sender", SENDER2)
    assert m2 in p.stdout and m1 not in p.stdout, p.stdout

    # show
    p = queue_cli(srv, "show", m1)
    assert p.returncode == 0, p.stderr
    for s in (m1, "<%s>" % SENDER, "q1@d8.test", "deferred", "Subject: admin one", "could be reached"):
        assert s in p.stdout, (s, p.stdout)
    assert queue_cli(srv, "show", "0123456789ABCDEF").returncode == 1

    # hold m1; the server comes up; flush: m2 goes, m1 stays
    p = queue_cli(srv, "hold", m1)
    assert p.returncode == 0 and "held" in p.stdout, (p.stdout, p.stderr)
    assert queue_entry(srv, m1)["state"] == "held"
    # --held lists the held messages only, each with why (the admin's hold has no reason)
    p = queue_cli(srv, "list", "--held")
    assert p.returncode == 0, p.stderr
    assert m1 in p.stdout and m2 not in p.stdout and "1 held message(s)" in p.stdout, p.stdout
    assert "held: by the administrator; postern queue release %s delivers it" % m1 in p.stdout, p.stdout
    held = queue_json(srv, "--held")
    assert [m["id"] for m in held] == [m1] and held[0]["hold_reason"] is None, held
    p = queue_cli(srv, "show", m1)
    assert "held:      by the administrator" in p.stdout, p.stdout
    with AioReceiver(["127.0.0.8"], port) as rx:
        p = queue_cli(srv, "flush")
        assert p.returncode == 0 and "flushing" in p.stdout, (p.stdout, p.stderr)
        assert wait_event(srv, "delivered", qid=m2), srv.log()
        time.sleep(2.0)
        assert [m["rcpt_tos"] for m in rx.messages] == [["q2@d8.test"]], rx.messages
        assert not events(srv, "delivered", qid=m1), "a held message was delivered"
        assert queue_entry(srv, m1)["state"] == "held"

        # release: delivered at once
        p = queue_cli(srv, "release", m1)
        assert p.returncode == 0 and "released" in p.stdout, (p.stdout, p.stderr)
        assert wait_event(srv, "delivered", qid=m1), srv.log()
        assert len(rx.wait_messages(2)) == 2

        # retry: a 451 now, then retry ID tries again at once (not in 60s)
        rx.accept = False
        m3 = submit(srv, "q3@d8.test", subject="admin three")
        _wait_deferred(srv, m3)
        rx.accept = True
        p = queue_cli(srv, "retry", m3)
        assert p.returncode == 0 and m3 in p.stdout, (p.stdout, p.stderr)
        assert wait_event(srv, "delivered", qid=m3, timeout=8), srv.log()

        # delete silently / with a report
        rx.accept = False
        m4 = submit(srv, "q4@d8.test", subject="admin four")
        m5 = submit(srv, "q5@d8.test", subject="admin five")
        _wait_deferred(srv, m4)
        _wait_deferred(srv, m5)
        before = len(reports(srv, SENDER))
        p = queue_cli(srv, "delete", m4)
        assert p.returncode == 0 and "deleted" in p.stdout, (p.stdout, p.stderr)
        assert queue_entry(srv, m4) is None
        assert events(srv, "deleted", qid=m4)
        p = queue_cli(srv, "delete", m5, "--bounce")
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert queue_entry(srv, m5) is None
        rs = wait_reports(srv, before + 1, SENDER, kind="failure")
        new = [x for x in rs if b"admin five" in (x.returned or b"")]
        assert len(new) == 1, rs
        assert "administrator" in new[0].text, new[0].text
        time.sleep(0.5)
        assert not [x for x in reports(srv, SENDER) if b"admin four" in (x.returned or b"")], \
            "delete without --bounce sent a report"
        assert not events(srv, "bounce_sent", qid=m4)
        assert queue_json(srv) == []
        # nothing for the deleted messages reached the receiver
        assert sorted(r for m in rx.messages for r in m["rcpt_tos"]) == ["q1@d8.test", "q2@d8.test", "q3@d8.test"]


def test_queue_admin_offline(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    srv = make_server(server_factory, dns, port, queue={"retry_min": "60s", "retry_max": "120s"})
    m6 = submit(srv, "q6@d9.test", subject="offline six")
    m7 = submit(srv, "q7@d9.test", subject="offline seven")
    _wait_deferred(srv, m6)
    _wait_deferred(srv, m7)
    assert srv.stop() == 0

    p = queue_cli(srv, "flush")
    assert p.returncode == 1 and "not running" in p.stderr, (p.returncode, p.stdout, p.stderr)
    p = queue_cli(srv, "retry", m6)
    assert p.returncode == 1 and "not running" in p.stderr, (p.returncode, p.stdout, p.stderr)

    p = queue_cli(srv, "hold", m6)
    assert p.returncode == 0 and "held" in p.stdout, (p.stdout, p.stderr)
    assert queue_entry(srv, m6)["state"] == "held"
    p = queue_cli(srv, "release", m6)
    assert p.returncode == 0 and "released" in p.stdout, (p.stdout, p.stderr)
    assert queue_entry(srv, m6)["state"] != "held"
    p = queue_cli(srv, "hold", m6)
    assert p.returncode == 0
    p = queue_cli(srv, "delete", m7)
    assert p.returncode == 0 and "deleted" in p.stdout, (p.stdout, p.stderr)
    assert queue_entry(srv, m7) is None
    assert [m["id"] for m in queue_json(srv)] == [m6]

    # the hold made offline survives the start: nothing delivered until release
    with AioReceiver(["127.0.0.9"], port) as rx:
        srv.start()
        time.sleep(2.0)
        assert rx.messages == [] and not events(srv, "delivered", all_runs=False), srv.log()
        assert queue_entry(srv, m6)["state"] == "held"
        p = queue_cli(srv, "release", m6)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert wait_event(srv, "delivered", qid=m6, all_runs=False), srv.log()
        assert [m["rcpt_tos"] for m in rx.wait_messages(1)] == [["q6@d9.test"]]
        assert reports(srv, SENDER) == []
