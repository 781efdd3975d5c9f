"""The event store (src/events/, [events]): what a real `postern serve` records in
data_dir/events.db for "My outgoing mail" and the refusal statistics.

One server for the module (mx, submissions with implicit TLS, a smarthost relay): an
aiosmtpd relay on 127.0.0.6 that refuses bounce@far.example (550 5.1.1) and delays
later@far.example (451 4.3.0).  Clients are smtplib.  The file is read with Python's
sqlite3 module, read-only, and through `postern events list`.
Checked: a RCPT refused as an unknown local user; mail for another domain sent to the
mx port without logging in (the port-25 trap); a message queued with its Subject and
delivered locally; one bounced and one deferred by the relay; retention at start (rows
written here with old timestamps); and a flood of refusals while the file is locked
with queue_max = 1: the SMTP replies keep coming, the records are dropped and counted."""
import json
import re
import smtplib
import sqlite3
import ssl
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import DIRECTORY_BACKEND, Server, run_cli  # noqa: E402
from delivery_support import AioReceiver, free_port  # noqa: E402
from submission_support import wait_ports  # noqa: E402

# With the PostgreSQL directory the records live in PostgreSQL (test_pgdata.py covers
# that store); this module reads the SQLite file itself.
pytestmark = pytest.mark.skipif(DIRECTORY_BACKEND != "sqlite", reason="reads data_dir/events.db, the SQLite event "
                                "store (the PostgreSQL one: test_pgdata.py)")

RELAY = "127.0.0.6"
PASSWORD = "secret"
REF_RE = re.compile(r"\(ref ([^)]+)\)")
KIND = {"refused": 1, "queued": 2, "delivered": 3, "deferred": 4, "bounced": 5}


def _relay_reply(address, options, n):
    if address.startswith("bounce@"):
        return "550 5.1.1 <%s>: no such user here at the far end" % address
    if address.startswith("later@"):
        return "451 4.3.0 greylisted, come back later"
    return None


def _tls():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _server(root, events="", limits=None, relay_port=None):
    extra = "\n[listener submissions]\naddress = 127.0.0.1\nport = 0\nrole = submission\ntls = implicit\n"
    if relay_port:
        extra += "\n[relay]\nhost = %s\nport = %d\ntls = none\n" % (RELAY, relay_port)
        extra += "\n[delivery]\nconnect_timeout = 2s\ncommand_timeout = 10s\n"
    if events:
        extra += "\n[events]\n" + events
    return Server(root, limits=limits, queue={"retry_min": "1h"}, users=("alice@example.test", "bob@example.test"),
                  extra=extra)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("events")
    port = free_port((RELAY,))
    rx = AioReceiver([RELAY], port, rcpt_reply=_relay_reply).start()
    srv = _server(root / "srv", relay_port=port).start()
    srv.ports = wait_ports(srv, ["smtp", "submissions"])
    yield srv
    srv.stop()
    rx.stop()
    problems = srv.check_after()
    assert not problems, "\n\n".join(problems)


def rows(srv, where, args=()):
    """Rows of events.db (read-only) matching an SQL condition."""
    db = sqlite3.connect("file:%s?mode=ro" % (srv.data_dir / "events.db"), uri=True, timeout=5)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM events WHERE " + where + " ORDER BY id", args)]
    finally:
        db.close()


def wait_rows(srv, where, args=(), n=1, timeout=10.0):
    deadline = time.monotonic() + timeout
    got = []
    while time.monotonic() < deadline:
        if (srv.data_dir / "events.db").exists():
            got = rows(srv, where, args)
            if len(got) >= n:
                return got
        time.sleep(0.05)
    pytest.fail("events.db: fewer than %d rows where %s %r after %.0fs: %r\nlog tail:\n%s"
                % (n, where, args, timeout, got, srv.log()[-3000:]))


def submit(srv, rcpts, subject):
    """Log in as alice on the submissions port and send one message; returns the qid."""
    with smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], context=_tls(), timeout=15) as c:
        c.login("alice@example.test", PASSWORD)
        msg = ("From: <alice@example.test>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nhello\r\n" % (rcpts[0], subject))
        c.sendmail("alice@example.test", rcpts, msg.encode("utf-8"))
        code, text = c.noop()
        assert code == 250
    q = wait_rows(srv, "kind = ? AND subject = ?", (KIND["queued"], subject))
    return q[0]["qid"]


def test_unknown_local_user_refused_at_rcpt(env):
    with smtplib.SMTP("127.0.0.1", env.ports["smtp"], timeout=15) as c:
        c.ehlo("client.example")
        assert c.mail("someone@far.example")[0] == 250
        code, text = c.rcpt("nobody@example.test")
        assert code == 550, text
    ref = REF_RE.search(text.decode()).group(1)
    r = wait_rows(env, "ref = ?", (ref,))[0]
    assert r["kind"] == KIND["refused"] and r["cmd"] == "RCPT", r
    assert r["rcpt"] == "nobody@example.test" and r["sender"] == "someone@far.example", r
    assert r["account"] == "" and r["client_addr"] == "127.0.0.1" and r["listener"] == "smtp", r
    assert r["code"] == 550 and r["enh"].startswith("5.1."), r
    assert r["cause_id"] == "unknown_recipient", r
    assert "(ref" not in r["text"] and r["text"], r


def test_relay_on_mx_port_without_login(env):
    with smtplib.SMTP("127.0.0.1", env.ports["smtp"], timeout=15) as c:
        c.ehlo("laptop")
        assert c.mail("alice@example.test")[0] == 250
        code, text = c.rcpt("friend@far.example")
        assert code >= 500, text
    ref = REF_RE.search(text.decode()).group(1)
    r = wait_rows(env, "ref = ?", (ref,))[0]
    assert r["cmd"] == "RCPT" and r["rcpt"] == "friend@far.example", r
    assert r["sender"] == "alice@example.test" and r["account"] == "", r
    assert r["cause_id"], r
    # The account sees it through its own address (the CLI's default sender).
    p = run_cli(["events", "list", "--account", "alice@example.test", "--json"], conf=env.config)
    assert p.returncode == 0, p.stderr
    got = [json.loads(line) for line in p.stdout.splitlines()]
    assert any(g["ref"] == ref and g["kind"] == "refused" for g in got), got
    # ... and bob does not.
    p = run_cli(["events", "list", "--account", "bob@example.test", "--json"], conf=env.config)
    assert p.returncode == 0 and ref not in p.stdout, p.stdout


def test_queued_with_subject_and_delivered_locally(env):
    subject = "Lunch <script>alert(1)</script> \u00e9t\u00e9"
    qid = submit(env, ["bob@example.test"], subject)
    q = rows(env, "qid = ? AND kind = ?", (qid, KIND["queued"]))[0]
    assert q["account"] == "alice@example.test" and q["sender"] == "alice@example.test", q
    assert q["n_rcpts"] == 1 and q["listener"] == "submissions", q
    d = wait_rows(env, "qid = ? AND kind = ?", (qid, KIND["delivered"]))[0]
    assert d["rcpt"] == "bob@example.test" and d["where_to"] == "local mailbox", d
    p = run_cli(["events", "list", "--account", "alice@example.test", "--qid", qid], conf=env.config)
    assert p.returncode == 0 and "delivered" in p.stdout and "queued" in p.stdout, p.stdout


def test_relay_bounce_and_deferral(env):
    qid = submit(env, ["bounce@far.example", "later@far.example"], "to the far end")
    b = wait_rows(env, "qid = ? AND kind = ?", (qid, KIND["bounced"]))[0]
    assert b["rcpt"] == "bounce@far.example" and b["code"] == 550 and b["enh"] == "5.1.1", b
    assert "no such user here at the far end" in b["text"], b
    assert b["sender"] == "alice@example.test", b
    d = wait_rows(env, "qid = ? AND kind = ?", (qid, KIND["deferred"]))[0]
    assert d["rcpt"] == "later@far.example" and d["code"] == 451, d
    assert "greylisted" in d["text"] and d["next_try"] > time.time() + 60, d   # retry_min = 1h
    assert RELAY in d["where_to"], d


def test_retention_purges_old_rows_at_start(env):
    now = int(time.time())
    db = sqlite3.connect(str(env.data_dir / "events.db"), timeout=5)
    with db:
        db.execute("INSERT INTO events (at, kind, account, cause_id) VALUES (?, 1, 'old@example.test', 'x'),"
                   " (?, 1, 'old@example.test', 'y')", (now - 15 * 86400, now - 13 * 86400))
    db.close()
    env.restart()
    env.ports = wait_ports(env, ["smtp", "submissions"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and rows(env, "cause_id = 'x'"):
        time.sleep(0.05)
    assert not rows(env, "cause_id = 'x'"), "a 15-day-old record survived the start"
    assert len(rows(env, "cause_id = 'y'")) == 1, "a 13-day-old record was removed (retention is 14d)"


def _refuse_many(srv, n):
    """n RCPTs refused as unknown local users in one session; returns the seconds spent."""
    t0 = time.monotonic()
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as c:
        c.ehlo("client.example")
        assert c.mail("someone@far.example")[0] == 250
        for i in range(n):
            assert c.rcpt("nobody%d@example.test" % i)[0] == 550
    return time.monotonic() - t0


def test_flood_with_tiny_queue_drops_and_counts_without_blocking(tmp_path):
    srv = _server(tmp_path / "flood", events="queue_max = 1\n",
                  limits={"refused_recipients": "1000", "refused_recipient_delay_ms": "0"}).start()
    try:
        n = 60
        baseline = _refuse_many(srv, n)              # the store writing freely (queue_max = 1 drops some already)
        wait_rows(srv, "kind = 1")
        lock = sqlite3.connect(str(srv.data_dir / "events.db"), timeout=10, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")               # now the disk is stuck for the writer
        try:
            spent = _refuse_many(srv, n)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        # A store that made SMTP wait would hold each refusal for the writer's busy
        # timeout (5 s): minutes for 60.  Load on the machine moves both runs alike.
        assert spent < max(10.0, 3 * baseline), "SMTP waited for the event store: %.1fs locked, %.1fs free" % (
            spent, baseline)
        assert srv.stop() == 0
        m = re.search(r"event=events_stopped \S+ written=(\d+) dropped=(\d+)", srv.log())
        assert m, srv.log()[-3000:]
        stored, dropped = int(m.group(1)), int(m.group(2))
        assert stored + dropped == 2 * n, (stored, dropped)
        assert dropped >= n - 3, "queue_max = 1 and a stuck disk: all but the writer's batch and one dropped"
        assert "event=events_dropped" in srv.log()
        assert len(rows(srv, "kind = 1")) == stored
    finally:
        srv.stop()
        problems = srv.check_after()
        assert not problems, "\n\n".join(problems)
