"""State that lives in PostgreSQL with [directory] backend = postgresql, seen by every
server: two `postern serve` share one private PostgreSQL (pg_support.py) and one
database, each with its own data_dir.

* The event store: a message submitted on server 1 (a Subject of its own, delivered to
  a local mailbox there) is listed on server 2 by `postern events list` and on server 2's
  "My outgoing mail" page (http.client: POST /login, GET /mail), and the records sit in
  postern_events, not in an events.db file.
* DKIM keys: a key made by `postern dkim keygen` on server 1 (a row of postern_dkim_keys,
  no file) signs mail a user sends through server 2 to a remote domain (d2.test: MX from
  dnsmasq, an aiosmtpd receiver on 127.0.0.2), and python3-dkim verifies it against the
  record server 1's `postern dkim list` publishes; retired on server 2, server 1 stops
  signing with it within seconds.
* Three nodes of a cluster (cluster_support.py): a refusal on node 2 is listed on node 3,
  a key made on node 3 signs mail sent through node 1.
* PostgreSQL stopped: an RCPT on server 1 still gets its answer at once (451, the
  directory's), the log says the event store is unavailable and that records wait in
  memory; started again, the waiting record of that refusal is written and listed."""
import http.client
import json
import re
import smtplib
import sys
import time
import urllib.parse
from pathlib import Path

import dkim
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Server  # noqa: E402
from delivery_support import AioReceiver, Dns, delivery_config_text, free_port  # noqa: E402
from pg_support import PostgreSQL, pg_bindir  # noqa: E402
from submission_support import (auth_plain, connect, connect_tls, listener_sections, smtplib_login,  # noqa: E402
                                tls_context, wait_log, wait_ports)

pytestmark = pytest.mark.skipif(pg_bindir() is None, reason="PostgreSQL is not installed (scripts/install-deps test)")

ALICE, BOB = "alice@example.test", "bob@example.test"
PASSWORD = "secret"
COOKIE_RE = re.compile(r"^postern_session=([A-Za-z0-9_-]{43});")
WEB = "\n[listener web]\naddress = 127.0.0.1\nport = 0\nrole = http\nservices = account\n\n[events]\nenabled = yes\n"


def directory_section(pg, db):
    return "\n[directory]\nbackend = postgresql\nconnection = %s\ntimeout = 2s\npool = 2\n" % pg.connection(db)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """PostgreSQL and two servers on one database (users added once, through server 1)."""
    root = tmp_path_factory.mktemp("pgdata")
    pg = PostgreSQL(root / "cluster").init().start()
    pg.create_database("shared")
    dns = Dns(root / "dns").start()
    rx_port = free_port(("127.0.0.2",))
    rx = AioReceiver(["127.0.0.2"], rx_port).start()
    extra = listener_sections() + WEB + directory_section(pg, "shared") + delivery_config_text(dns.port, rx_port)
    servers = []
    try:
        for i in (1, 2):
            srv = Server(root / ("node%d" % i), users=(), extra=extra, queue={"retry_min": "1h"})
            if i == 1:
                assert srv.cli("directory", "migrate").returncode == 0
                assert srv.cli("domain", "add", "example.test").returncode == 0
                srv.add_user(ALICE)
                srv.add_user(BOB)
            servers.append(srv)
        for srv in servers:
            srv.start()
            srv.ports = wait_ports(srv, ["smtp", "submission", "web"])
        yield pg, servers[0], servers[1], rx
    finally:
        for srv in servers:
            if srv.proc:
                srv.stop()
        rx.stop()
        dns.stop()
        pg.cleanup()
    for srv in servers:
        problems = srv.check_after()
        assert not problems, problems


def submit(srv, rcpt, subject):
    with connect_tls(srv, "submission") as c:
        auth_plain(c, ALICE, PASSWORD)
        assert c.cmd("MAIL FROM:<%s>" % ALICE).code == 250
        assert c.cmd("RCPT TO:<%s>" % rcpt).code == 250
        assert c.cmd("DATA").code == 354
        r = c.cmd("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nhello\r\n." % (ALICE, rcpt, subject))
        assert r.code == 250, r
        c.cmd("QUIT")


def events_json(srv, account=ALICE):
    p = srv.cli("events", "list", "--account", account, "--json")
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def poll(fn, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail("%s: never; last seen %r" % (what, last))


def web(srv, method, path, body=None, cookie=None):
    c = http.client.HTTPConnection("127.0.0.1", srv.ports["web"], timeout=15)
    h = {"Cookie": "postern_session=" + cookie} if cookie else {}
    if body is not None:
        body = urllib.parse.urlencode(body)
        h["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode("utf-8", "replace")
    finally:
        c.close()


def test_events_written_on_one_server_are_listed_on_the_other(pair):
    pg, one, two, _ = pair
    subject = "pgdata-cross-node-%d" % time.monotonic_ns()
    submit(one, BOB, subject)
    one.wait_delivered(BOB, 1)

    def on_two():
        recs = events_json(two)
        kinds = {r.get("kind") for r in recs if r.get("subject") == subject or r.get("qid") in
                 {q.get("qid") for q in recs if q.get("subject") == subject}}
        return recs if {"queued", "delivered"} <= kinds else None
    recs = poll(on_two, "server 2 lists server 1's queued and delivered records")
    queued = next(r for r in recs if r.get("subject") == subject)
    assert queued["kind"] == "queued" and queued["qid"], queued

    st, h, body = web(two, "POST", "/login", {"address": ALICE, "password": PASSWORD})
    assert st == 303, (st, body)
    cookie = COOKIE_RE.match(h["set-cookie"]).group(1)
    st, _, page = web(two, "GET", "/mail", cookie=cookie)
    assert st == 200 and subject in page, page[:2000]

    assert not (two.data_dir / "events.db").exists() and not (one.data_dir / "events.db").exists()
    n = pg.psql("SELECT count(*) FROM postern_events WHERE subject = '%s'" % subject, db="shared").strip()
    assert n == "1", n


def dkim_records(srv):
    """dkimpy's dnsfunc: the TXT records `postern dkim list` prints (the published keys)."""
    out = srv.cli("dkim", "list").stdout
    recs = {}
    for line in out.splitlines():
        m = re.search(r"(\S+\._domainkey\.\S+)\s+IN TXT\s+\((.*)\)", line)
        if m:
            recs[m.group(1).encode()] = "".join(re.findall(r'"([^"]*)"', m.group(2))).encode()
    return lambda name, timeout=5: recs.get(name)


def send_remote(srv, subject):
    msg = ("From: <%s>\r\nTo: <far@d2.test>\r\nSubject: %s\r\nDate: Wed, 02 Dec 2026 00:00:00 +0000\r\n"
           "Message-ID: <%d@client.example>\r\n\r\nsigned by the other node\r\n" % (ALICE, subject, time.monotonic_ns()))
    s = smtplib_login(srv, user=ALICE)
    try:
        s.sendmail(ALICE, ["far@d2.test"], msg.encode())
    finally:
        s.quit()


def arrived(rx, subject):
    def find():
        return [m["content"] for m in rx.messages if subject.encode() in m["content"]]
    return poll(find, "the message %r at the receiver" % subject, timeout=30)[0]


def test_dkim_key_made_on_one_server_signs_on_the_other(pair):
    pg, one, two, rx = pair
    mark = wait_log(two, r"event=dkim_keys_loaded store=postgresql keys=0", timeout=5)
    assert mark, "server 2 did not read the (empty) key set at start"
    made = one.cli("dkim", "keygen", "example.test", "--selector", "pg1", "--type", "rsa")
    assert made.returncode == 0 and "postern_dkim_keys" in made.stdout, made.stdout + made.stderr
    assert not (one.data_dir / "dkim").exists(), "with PostgreSQL the key is a row, not a file"
    assert pg.psql("SELECT selector, algorithm, active FROM postern_dkim_keys", db="shared").split() == ["pg1|rsa|t"]
    assert wait_log(two, r"event=dkim_keys_loaded store=postgresql keys=1 ", timeout=10), two.log()[-3000:]
    listed = two.cli("dkim", "list").stdout
    assert re.search(r"^example\.test\s+pg1\s+rsa\s+2048\s+active", listed, re.M), listed

    send_remote(two, "via-two")
    content = arrived(rx, "via-two")
    assert b"s=pg1;" in content and b"d=example.test;" in content, content[:600]
    assert dkim.verify(content, dnsfunc=dkim_records(one)), "dkimpy: server 2's signature with server 1's key fails"
    assert wait_log(two, r"event=dkim_signed\b.*selectors=pg1:rsa-sha256")

    assert two.cli("dkim", "retire", "example.test", "pg1").returncode == 0
    assert wait_log(one, r"event=dkim_keys_loaded store=postgresql keys=1 version=1\.2", timeout=10), one.log()[-3000:]
    send_remote(one, "via-one-retired")
    content = arrived(rx, "via-one-retired")
    assert b"DKIM-Signature" not in content, "a retired key still signs on server 1"


def test_database_down_answers_at_once_and_the_record_waits(pair):
    pg, one, two, _ = pair
    pg.stop()
    try:
        with connect(one, "smtp") as c:
            c.ehlo("client.example")
            assert c.cmd("MAIL FROM:<%s>" % ALICE).code == 250
            t0 = time.monotonic()
            r = c.cmd("RCPT TO:<%s>" % BOB)
            took = time.monotonic() - t0
            c.cmd("QUIT")
        assert r.code == 451 and took < 4.0, (r, took)
        wait_log(one, r"event=events_store_unavailable .*records are kept in memory", timeout=15)
    finally:
        pg.start()
    wait_log(one, r"event=events_store_resumed", timeout=20)

    def refused_listed():
        return [x for x in events_json(two) if x.get("kind") == "refused" and x.get("code") == 451]
    poll(refused_listed, "the refusal made while PostgreSQL was down is listed once it is back")


def test_three_nodes_share_the_events_and_the_dkim_keys(tmp_path):
    """cluster_support's three nodes (127.0.0.11-13, [cluster] set): a refusal on node 2
    is listed by `postern events` on node 3; a key made on node 3 signs what alice sends
    to a remote domain through node 1."""
    from cluster_support import Cluster
    dns = Dns(tmp_path / "dns").start()
    rx_port = free_port(("127.0.0.2",))
    rx = AioReceiver(["127.0.0.2"], rx_port).start()
    cl = Cluster(tmp_path / "cl", n=3, users=(ALICE,),
                 extra="\n[events]\nenabled = yes\n" + delivery_config_text(dns.port, rx_port))
    try:
        cl.start()
        n1, n2, n3 = cl.nodes
        made = n3.cli("dkim", "keygen", "example.test", "--selector", "c3", "--type", "ed25519")
        assert made.returncode == 0, made.stderr
        with smtplib.SMTP(n2.host, n2.ports["smtp"], timeout=15) as s:
            s.ehlo("client.example")
            s.mail(ALICE)
            code, _ = s.rcpt("nobody-%d@example.test" % time.monotonic_ns())
            assert code == 550
        poll(lambda: [r for r in events_json(n3) if r.get("kind") == "refused" and r.get("code") == 550],
             "node 3 lists node 2's refusal")

        assert wait_log(n1, r"event=dkim_keys_loaded store=postgresql keys=1 ", timeout=10), n1.log()[-3000:]
        with smtplib.SMTP(n1.host, n1.ports["submission"], timeout=15) as s:
            s.ehlo("client.example")
            s.starttls(context=tls_context())
            s.ehlo("client.example")
            s.login(ALICE, PASSWORD)
            s.sendmail(ALICE, ["far@d2.test"], ("From: <%s>\r\nTo: <far@d2.test>\r\nSubject: three-nodes\r\n"
                                                "Message-ID: <c3@client.example>\r\n\r\nhi\r\n" % ALICE).encode())
        content = arrived(rx, "three-nodes")
        assert b"s=c3;" in content and b"a=ed25519-sha256;" in content, content[:600]
        assert dkim.verify(content, dnsfunc=dkim_records(n2)), "dkimpy: node 1's signature with node 3's key fails"
    finally:
        cl.stop()
        rx.stop()
        dns.stop()
