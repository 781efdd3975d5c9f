"""Content filters that misbehave, written here with pymilter (python3-milter) or as a
raw socket server, against a real `postern serve`: every fault becomes the filter's
default action (tempfail by default: 451 4.7.1 in words that say it is the server's
fault; accept; reject), logged for the administrator as event=milter_failed, and never
a protocol error, a lost message or a doubled one (the delivered copies and the queue
files are counted).  Also: a filter's own refusals (at MAIL, at one RCPT) passed on
in its words, the macros and the lazy start of the conversation, abort after RSET."""
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_cli  # noqa: E402
from delivery_support import free_port  # noqa: E402
from helpers import SMTPConn  # noqa: E402
from milter_support import PyMilter, RawFilter, milter_sections, queue_files  # noqa: E402
from submission_support import listener_sections, simple_msg, smtplib_login, wait_ports  # noqa: E402

ALICE = "alice@example.test"
BOB = "bob@example.test"
BLOCKED = "blocked@example.test"

FILTER = r'''
import os, sys, time
import Milter

MODE = %(mode)r
FLAG = %(flag)r
ALICE = "alice@example.test"
BOB = "bob@example.test"


def log(*a):
    print(*[str(x) for x in a], flush=True)


class F(Milter.Base):
    def connect(self, hostname, family, hostaddr):
        log("connect", hostname, hostaddr[0], "j=%%s" %% self.getsymval("j"),
            "daemon=%%s" %% self.getsymval("{daemon_name}"), "port=%%s" %% self.getsymval("{client_port}"))
        return Milter.CONTINUE

    def hello(self, name):
        log("helo", name, "tls=%%s" %% self.getsymval("{tls_version}"), "cipher=%%s" %% self.getsymval("{cipher}"))
        return Milter.CONTINUE

    def envfrom(self, sender, *params):
        log("mail", sender, "auth=%%s" %% self.getsymval("{auth_authen}"), "mail_addr=%%s" %% self.getsymval("{mail_addr}"),
            "auth_type=%%s" %% self.getsymval("{auth_type}"))
        if MODE == "reject_mail":
            self.setreply("550", "5.7.1", "senders like %%s are not welcome here" %% sender)
            return Milter.REJECT
        return Milter.CONTINUE

    def envrcpt(self, rcpt, *params):
        log("rcpt", rcpt, "rcpt_addr=%%s" %% self.getsymval("{rcpt_addr}"))
        if "blocked" in rcpt:
            self.setreply("550", "5.7.1", "no mail for the blocked mailbox")
            return Milter.REJECT
        return Milter.CONTINUE

    def header(self, name, value):
        log("header", name)
        return Milter.CONTINUE

    def body(self, chunk):
        log("body", len(chunk))
        if MODE == "close_body":
            os._exit(3)
        return Milter.CONTINUE

    def eom(self):
        log("eom", "i=%%s" %% self.getsymval("i"))
        if MODE == "hang" or (MODE == "hang_once" and not os.path.exists(FLAG)):
            if MODE == "hang_once":
                open(FLAG, "w").close()
            time.sleep(20)
        if MODE == "headers":
            self.addheader("X-Filter-Added", "at the end")
            self.addheader("X-Filter-First", "at the top", 0)
        if MODE == "modify":
            self.addheader("X-Filter-Added", "at the end")
            self.addheader("X-Filter-First", "at the top", 0)
            self.chgheader("Subject", 1, "changed by the filter")
            self.chgheader("X-Remove-Me", 1, None)
            self.replacebody(b"the filter's new body\r\nsecond line\r\n")
            self.addrcpt("<%%s>" %% BOB)
            self.delrcpt("<%%s>" %% ALICE)
            self.chgfrom("<changed@sender.example>")
        if MODE == "quarantine":
            self.quarantine("looks odd to the filter")
        if MODE == "discard":
            return Milter.DISCARD
        return Milter.ACCEPT

    def abort(self):
        log("abort")
        return Milter.CONTINUE

    def close(self):
        log("close")
        return Milter.CONTINUE


Milter.factory = F
Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY | Milter.ADDRCPT | Milter.DELRCPT
                 | Milter.CHGFROM | Milter.QUARANTINE)
Milter.runmilter("f", "inet:%%s@127.0.0.1" %% sys.argv[1], timeout=60)
'''


def start_filter(tmp_path, mode):
    f = PyMilter(tmp_path / ("filter-" + mode), FILTER % {"mode": mode, "flag": str(tmp_path / "flag")}, name=mode)
    return f.start()


@pytest.fixture
def filters():
    started = []
    yield started
    for f in started:
        f.stop()


def make_srv(server_factory, name, sock, **opts):
    opts.setdefault("command_timeout", "2s")
    opts.setdefault("content_timeout", "2s")
    opts.setdefault("connect_timeout", "2s")
    extra = "milters = %s\n" % name + milter_sections([(name, sock, opts)])
    return server_factory(users=(ALICE, BOB, BLOCKED), extra=extra)


def message(subject="fault test"):
    return ("From: <someone@sender.example>\r\nTo: <%s>\r\nSubject: %s\r\nX-Remove-Me: please\r\n"
            "Message-ID: <%d@sender.example>\r\n\r\nbody line\r\n" % (ALICE, subject, time.monotonic_ns()))


def send(srv, rcpts=(ALICE,), timeout=30):
    """One transaction; returns (MAIL reply, RCPT replies, DATA reply or None)."""
    with SMTPConn("127.0.0.1", srv.port, timeout=timeout) as c:
        c.ehlo()
        mr = c.cmd("MAIL FROM:<someone@sender.example>")
        if mr.code != 250:
            assert c.cmd("NOOP").code == 250   # the session goes on: no protocol error
            c.cmd("QUIT")
            return mr, [], None
        rr = [c.cmd("RCPT TO:<%s>" % r) for r in rcpts]
        dr = c.data(message()) if any(r.code == 250 for r in rr) else None
        assert c.cmd("NOOP").code == 250
        c.cmd("QUIT")
        return mr, rr, dr


def explained(reply):
    """postern explain on a reply as the client got it: the rule's meaning."""
    p = run_cli(["explain", "--json", b"\r\n".join(reply.raw_lines).decode("latin-1")])
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def assert_not_answering(reply, name):
    text = str(reply)
    assert reply.code == 451, reply
    assert "4.7.1" in text, reply
    assert ("content filter (%s) not answering; this is the server's fault, not your message's; try again later"
            % name) in text, reply
    out = explained(reply)
    assert "content filter could not check" in out and "server_unavailable" in out, out


def assert_nothing_queued(srv):
    time.sleep(0.3)
    left = [p for p in queue_files(srv) if "/active/" in str(p) or "/incoming/" in str(p)]
    assert left == [], left


def failed_lines(srv, name):
    return [ln for ln in srv.log().splitlines() if "event=milter_failed" in ln and "filter=%s" % name in ln]


def test_hanging_filter_tempfails_in_words(server_factory, filters, tmp_path):
    f = start_filter(tmp_path, "hang")
    filters.append(f)
    srv = make_srv(server_factory, "slow", "inet:127.0.0.1:%d" % f.port)
    t0 = time.monotonic()
    mr, rr, dr = send(srv)
    assert mr.code == 250 and rr[0].code == 250
    assert_not_answering(dr, "slow")
    assert time.monotonic() - t0 < 15
    lines = failed_lines(srv, "slow")
    assert lines and "socket=inet:127.0.0.1:%d" % f.port in lines[0] and 'what="' in lines[0], srv.log()
    assert srv.maildir_messages(ALICE) == []
    assert_nothing_queued(srv)


@pytest.mark.parametrize("action", ["accept", "reject"])
def test_hanging_filter_default_action(server_factory, filters, tmp_path, action):
    f = start_filter(tmp_path, "hang")
    filters.append(f)
    srv = make_srv(server_factory, "slow", "inet:127.0.0.1:%d" % f.port, default_action=action)
    mr, rr, dr = send(srv)
    if action == "accept":
        assert dr.code == 250, dr
        assert len(srv.wait_delivered(ALICE, 1, timeout=10, settle=0.5)) == 1
    else:
        assert dr.code == 550 and "5.7.1" in str(dr), dr
        assert "content filter (slow) not answering" in str(dr), dr
        assert srv.maildir_messages(ALICE) == []
        assert_nothing_queued(srv)
    assert failed_lines(srv, "slow"), srv.log()


def test_filter_closing_mid_message(server_factory, filters, tmp_path):
    f = start_filter(tmp_path, "close_body")
    filters.append(f)
    srv = make_srv(server_factory, "closer", "inet:127.0.0.1:%d" % f.port)
    mr, rr, dr = send(srv)
    assert_not_answering(dr, "closer")
    assert failed_lines(srv, "closer"), srv.log()
    assert srv.maildir_messages(ALICE) == []
    assert_nothing_queued(srv)


def test_filter_answering_garbage(server_factory):
    raw = RawFilter(b"\x00\x00\x00\x05Zjunk" + b"\xff" * 32).start()
    try:
        srv = make_srv(server_factory, "garbage", "inet:127.0.0.1:%d" % raw.port)
        mr, rr, dr = send(srv)
        assert_not_answering(mr, "garbage")   # the conversation opens at MAIL
        assert raw.connections >= 1
        assert failed_lines(srv, "garbage"), srv.log()
    finally:
        raw.stop()


@pytest.mark.parametrize("action", ["tempfail", "accept"])
def test_filter_down(server_factory, action):
    port = free_port()   # nobody listens there
    srv = make_srv(server_factory, "down", "inet:127.0.0.1:%d" % port, default_action=action)
    mr, rr, dr = send(srv)
    if action == "tempfail":
        assert_not_answering(mr, "down")
    else:
        assert dr.code == 250, dr
        assert len(srv.wait_delivered(ALICE, 1, timeout=10, settle=0.5)) == 1
    assert failed_lines(srv, "down"), srv.log()


def test_retry_after_tempfail_delivers_once(server_factory, filters, tmp_path):
    f = start_filter(tmp_path, "hang_once")
    filters.append(f)
    srv = make_srv(server_factory, "once", "inet:127.0.0.1:%d" % f.port)
    mr, rr, dr = send(srv)
    assert_not_answering(dr, "once")
    mr, rr, dr = send(srv)   # the client tries again, as its 451 told it
    assert dr.code == 250, dr
    msgs = srv.wait_delivered(ALICE, 1, timeout=10, settle=1.0)
    assert len(msgs) == 1, msgs
    assert_nothing_queued(srv)


def test_filter_refusals_in_its_words(server_factory, filters, tmp_path):
    f = start_filter(tmp_path, "reject_mail")
    filters.append(f)
    srv = make_srv(server_factory, "picky", "inet:127.0.0.1:%d" % f.port)
    mr, rr, dr = send(srv)
    assert mr.code == 550 and "5.7.1" in str(mr), mr
    assert "The content filter (picky) refused this message: senders like" in str(mr), mr
    assert "not welcome here" in str(mr) and re.search(r"\(ref [\w.]+\)", str(mr)), mr
    out = explained(mr)
    assert "A content filter of Postern" in out and "spam_or_policy" in out, out


def test_rcpt_refusal_refuses_that_recipient_only(server_factory, filters, tmp_path):
    f = start_filter(tmp_path, "plain")
    filters.append(f)
    srv = make_srv(server_factory, "rcptcheck", "inet:127.0.0.1:%d" % f.port)
    mr, rr, dr = send(srv, rcpts=(BLOCKED, ALICE))
    assert rr[0].code == 550 and "The content filter (rcptcheck) refused this recipient: no mail for the blocked mailbox" \
        in str(rr[0]), rr[0]
    assert rr[1].code == 250, rr[1]
    assert dr.code == 250, dr
    assert len(srv.wait_delivered(ALICE, 1, timeout=10, settle=0.5)) == 1
    assert srv.maildir_messages(BLOCKED) == []


def test_lazy_conversation_macros_and_abort(server_factory, filters, tmp_path):
    f = start_filter(tmp_path, "plain")
    filters.append(f)
    srv = make_srv(server_factory, "watch", "inet:127.0.0.1:%d" % f.port)
    with SMTPConn("127.0.0.1", srv.port) as c:   # no MAIL: the filter is never asked
        c.ehlo()
        assert c.cmd("NOOP").code == 250
        c.cmd("QUIT")
    time.sleep(0.5)
    assert "connect" not in f.log_text(), f.log_text()
    with SMTPConn("127.0.0.1", srv.port) as c:
        c.ehlo("client.example")
        assert c.cmd("MAIL FROM:<first@sender.example>").code == 250
        assert c.cmd("RCPT TO:<%s>" % ALICE).code == 250
        assert c.cmd("RSET").code == 250
        assert c.cmd("MAIL FROM:<second@sender.example>").code == 250
        assert c.cmd("RCPT TO:<%s>" % ALICE).code == 250
        r = c.data(message())
        assert r.code == 250, r
        qid = re.search(r"queued as ([A-Za-z0-9]+)", str(r)).group(1)
        c.cmd("QUIT")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "close" not in f.log_text():
        time.sleep(0.1)
    log = f.log_text().splitlines()
    kinds = [ln.split()[0] for ln in log if ln.split()]
    assert kinds.count("connect") == 1, log
    assert kinds.count("mail") == 2 and kinds.count("abort") >= 1 and kinds.count("eom") == 1, log
    connect = [ln for ln in log if ln.startswith("connect")][0]
    assert "j=mx.example.test" in connect and "daemon=smtp" in connect and re.search(r"port=\d+", connect), connect
    assert any(ln.startswith("helo client.example tls=None") for ln in log), log
    assert any(ln.startswith("rcpt <%s>" % ALICE) for ln in log), log
    assert "eom i=%s" % qid in log, log
    assert [ln for ln in log if ln.startswith("header")], log
    assert len(srv.wait_delivered(ALICE, 1, timeout=10, settle=0.3)) == 1


def test_filter_headers_added(server_factory, filters, tmp_path):
    f = start_filter(tmp_path, "headers")
    filters.append(f)
    srv = make_srv(server_factory, "tagger", "inet:127.0.0.1:%d" % f.port)
    mr, rr, dr = send(srv)
    assert dr.code == 250, dr
    msgs = srv.wait_delivered(ALICE, 1, timeout=10, settle=0.3)
    assert len(msgs) == 1
    data = msgs[0].read_bytes()
    assert b"X-Filter-Added: at the end\r\n" in data or b"X-Filter-Added: at the end\n" in data, data[:1500]
    assert b"X-Filter-First: at the top" in data, data[:1500]


def test_filter_asks_for_every_modification(server_factory, filters, tmp_path):
    f = start_filter(tmp_path, "modify")
    filters.append(f)
    srv = make_srv(server_factory, "editor", "inet:127.0.0.1:%d" % f.port)
    mr, rr, dr = send(srv, rcpts=(ALICE,))
    assert dr.code == 250, dr
    msgs = srv.wait_delivered(BOB, 1, timeout=10, settle=1.0)
    assert len(msgs) == 1, msgs
    assert srv.maildir_messages(ALICE) == []   # deleted from the envelope
    data = msgs[0].read_bytes().replace(b"\r\n", b"\n")
    head, body = data.split(b"\n\n", 1)
    assert b"Return-Path: <changed@sender.example>" in head, head
    assert b"X-Filter-Added: at the end" in head and b"X-Filter-First: at the top" in head, head
    assert b"Subject: changed by the filter" in head and b"fault test" not in head, head
    assert b"X-Remove-Me" not in head, head
    assert body == b"the filter's new body\nsecond line\n", body
    assert_nothing_queued(srv)


def test_filter_quarantine_holds_the_message(server_factory, filters, tmp_path):
    f = start_filter(tmp_path, "quarantine")
    filters.append(f)
    srv = make_srv(server_factory, "quar", "inet:127.0.0.1:%d" % f.port)
    mr, rr, dr = send(srv)
    assert dr.code == 250, dr
    qid = re.search(r"queued as ([A-Za-z0-9]+)", str(dr)).group(1)
    time.sleep(1.0)
    assert srv.maildir_messages(ALICE) == []
    held = srv.cli("queue", "list", "--held")
    assert held.returncode == 0 and qid in held.stdout, held.stdout + held.stderr
    assert "quarantined by the content filter (quar)" in srv.cli("queue", "show", qid).stdout


def test_filter_discard_drops_the_message(server_factory, filters, tmp_path):
    f = start_filter(tmp_path, "discard")
    filters.append(f)
    srv = make_srv(server_factory, "bin", "inet:127.0.0.1:%d" % f.port)
    mr, rr, dr = send(srv)
    assert dr.code == 250, dr
    time.sleep(1.0)
    assert srv.maildir_messages(ALICE) == []
    assert_nothing_queued(srv)
    assert "event=discarded" in srv.log() and "discarded by the content filter (bin)" in srv.log(), srv.log()


def test_tls_and_login_macros(server_factory, filters, tmp_path):
    f = start_filter(tmp_path, "plain")
    filters.append(f)
    extra = "milters = watch\n" + listener_sections(submission_extra="milters = watch\n")
    extra += milter_sections([("watch", "inet:127.0.0.1:%d" % f.port, {})])
    srv = server_factory(users=(ALICE, BOB), extra=extra)
    srv.ports = wait_ports(srv, ["smtp", "submission"])
    s = smtplib_login(srv, user=ALICE)
    try:
        s.sendmail(ALICE, [BOB], simple_msg(sender=ALICE, to=BOB))
    finally:
        s.quit()
    assert len(srv.wait_delivered(BOB, 1, timeout=10, settle=0.3)) == 1
    log = f.log_text().splitlines()
    helo = [ln for ln in log if ln.startswith("helo ")]
    assert helo and re.search(r"tls=TLSv1\.[23] cipher=\S+", helo[-1]), log
    mail = [ln for ln in log if ln.startswith("mail ")]
    assert mail and "auth=%s" % ALICE in mail[0] and "auth_type=PLAIN" in mail[0], log
    assert "mail_addr=%s" % ALICE in mail[0], log
