"""A content filter's changes and quarantine, end to end: a pymilter (python3-milter)
filter written here asks a real `postern serve` for every modification the milter
protocol has (header add, insert at an index, change of a folded field, delete, body
replacement, a recipient added with ESMTP arguments, one deleted, the sender changed
with its arguments), and the message is checked where it lands: the local copy in the
Maildir, the copy the smarthost receives (with its envelope: MAIL FROM with RET= and
ENVID=, RCPT TO with NOTIFY= and ORCPT=), signed by the DKIM signing stage after the
changes (python3-dkim verifies the signature over the edited message).  A quarantined
message is accepted and held: `postern queue list --held`, `queue show` with the
filter's reason, still held after a restart, delivered once by `queue release`.  A
filter that deletes every recipient gets a 250 and nothing queued; one whose recipient
arguments the RCPT parser refuses does not get that recipient.  Every time: nothing
lost, nothing doubled, nothing left in the queue."""
import re
import sys
import time
from pathlib import Path

import dkim
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import write_config  # noqa: E402
from delivery_support import RawReceiver, delivery_config_text, free_port  # noqa: E402
from helpers import SMTPConn  # noqa: E402
from milter_support import PyMilter, milter_sections, queue_files  # noqa: E402

ALICE = "alice@example.test"
BOB = "bob@example.test"
DAVE = "dave@remote.test"
CAROL = "carol@remote.test"
RELAY_ADDR = "127.0.0.10"

FILTER = r'''
import sys
import Milter

MODE = %(mode)r


class F(Milter.Base):
    def eom(self):
        if MODE == "edit":
            self.addheader("X-End", "at the end")
            self.addheader("X-Top", "at the top", 0)
            self.addheader("X-Second", "after the Received field", 2)
            self.chgheader("subject", 1, "edited subject")
            self.chgheader("X-Fold", 1, "replaced\n\tand folded again")
            self.chgheader("X-Remove-Me", 1, None)
            self.chgheader("X-Not-There", 1, None)
            self.replacebody(b"new body line one\r\nline two\r\n.leading dot\r\n")
            self.addrcpt("<%(carol)s>", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;%(carol)s")
            self.delrcpt("<%(alice)s>")
            self.chgfrom("<bounces@example.test>", "RET=HDRS ENVID=e-123")
        elif MODE == "quarantine":
            self.quarantine("looks like a phish")
        elif MODE == "delete_all":
            for r in ("<%(alice)s>", "<%(bob)s>", "<%(dave)s>"):
                self.delrcpt(r)
        elif MODE == "bad_args":
            self.addrcpt("<%(carol)s>", "FOO=bar")
            self.addheader("X-Still", "applied")
        return Milter.ACCEPT


Milter.factory = F
Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY | Milter.ADDRCPT | Milter.ADDRCPT_PAR
                 | Milter.DELRCPT | Milter.CHGFROM | Milter.QUARANTINE)
Milter.runmilter("f", "inet:%%s@127.0.0.1" %% sys.argv[1], timeout=60)
'''

MESSAGE = ("From: Someone <someone@example.test>\r\nTo: <%s>, <%s>\r\nCc: <%s>\r\nSubject: original subject\r\n"
           "X-Remove-Me: please\r\nX-Fold: first\r\n\tsecond\r\nDate: Tue, 01 Dec 2026 12:00:00 +0000\r\n"
           "Message-ID: <%%d@client.example>\r\n\r\noriginal body\r\n" % (ALICE, BOB, DAVE))


@pytest.fixture
def world(server_factory, tmp_path, request):
    """Postern with the filter in `request.param` mode on its mx listener (127.0.0.1
    trusted, so that mail to remote.test goes to the smarthost), a DKIM key for
    example.test, and the smarthost (a raw SMTP receiver advertising DSN)."""
    f = PyMilter(tmp_path / "filter", FILTER % {"mode": request.param, "alice": ALICE, "bob": BOB, "dave": DAVE,
                                                  "carol": CAROL}, name=request.param).start()
    port = free_port((RELAY_ADDR,))
    rx = RawReceiver([RELAY_ADDR], port).start()
    extra = ("milters = editor\n" + milter_sections([("editor", "inet:127.0.0.1:%d" % f.port,
                                                      {"content_timeout": "10s", "command_timeout": "10s"})])
             + delivery_config_text(None, None, None, {"host": RELAY_ADDR, "port": str(port), "tls": "none"}))
    srv = server_factory(users=(ALICE, BOB), extra=extra, start=False)
    q = {"retry_min": "1s", "retry_max": "2s"}
    write_config(srv.config, srv.data_dir, queue=q, server={"trusted_networks": "127.0.0.0/8"}, extra=extra)
    r = srv.cli("dkim", "keygen", "example.test", "--selector", "r1", "--type", "rsa")
    assert r.returncode == 0, r.stderr
    srv.start()
    yield srv, rx, f
    rx.stop()
    f.stop()


def send(srv, rcpts=(ALICE, BOB, DAVE)):
    with SMTPConn("127.0.0.1", srv.port, timeout=30) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<someone@example.test>").code == 250
        for r in rcpts:
            rr = c.cmd("RCPT TO:<%s> NOTIFY=FAILURE" % r)
            assert rr.code == 250, rr
        dr = c.data(MESSAGE % time.monotonic_ns())
        assert c.cmd("NOOP").code == 250
        c.cmd("QUIT")
    return dr


def qid_of(reply):
    m = re.search(r"queued as ([0-9A-F]{16})", str(reply))
    assert m, reply
    return m.group(1)


def dkim_records(srv):
    out = srv.cli("dkim", "list").stdout
    recs = {}
    for line in out.splitlines():
        m = re.search(r"(\S+\._domainkey\.\S+)\s+IN TXT\s+\((.*)\)", line)
        if m:
            recs[m.group(1).encode()] = "".join(re.findall(r'"([^"]*)"', m.group(2))).encode()
    assert recs, out
    return lambda name, timeout=5: recs.get(name if name.endswith(b".") else name + b".") or recs.get(name)


def queue_empty(srv, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in queue_files(srv) if "/active/" in str(p) or "/incoming/" in str(p)]
        if not left:
            return True
        time.sleep(0.1)
    return False


def fields(head):
    """The header block as [(name, whole field)], folded lines kept."""
    out = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            out[-1] = (out[-1][0], out[-1][1] + b"\r\n" + line)
        elif line:
            out.append((line.split(b":", 1)[0], line))
    return out


@pytest.mark.parametrize("world", ["edit"], indirect=True)
def test_every_modification_lands(world):
    srv, rx, f = world
    dr = send(srv)
    assert dr.code == 250, dr
    qid = qid_of(dr)
    (tx,) = rx.wait_transactions(1, timeout=20)
    bob = srv.wait_delivered(BOB, 1, timeout=10, settle=1.0)
    assert len(bob) == 1, bob
    assert srv.maildir_messages(ALICE) == []          # deleted from the envelope
    assert queue_empty(srv), queue_files(srv)
    time.sleep(0.5)
    assert len(rx.transactions) == 1, rx.transactions  # once, not twice

    # the smarthost's envelope: the new sender with its arguments, dave as sent, carol added with hers
    assert re.match(r"MAIL FROM:<bounces@example\.test>", tx["mail"]), tx["mail"]
    assert "RET=HDRS" in tx["mail"] and "ENVID=e-123" in tx["mail"], tx["mail"]
    rcpts = sorted(tx["rcpts"])
    assert len(rcpts) == 2, rcpts
    assert rcpts[0].startswith("RCPT TO:<%s>" % CAROL) and "NOTIFY=SUCCESS,FAILURE" in rcpts[0], rcpts
    assert "ORCPT=rfc822;%s" % CAROL in rcpts[0], rcpts
    assert rcpts[1].startswith("RCPT TO:<%s>" % DAVE) and "NOTIFY=FAILURE" in rcpts[1], rcpts

    # the message: every header change where the filter asked, the new body, CR LF throughout
    data = tx["body"]
    assert b"\n" not in data.replace(b"\r\n", b""), data[:800]
    head, body = data.split(b"\r\n\r\n", 1)
    assert body == b"new body line one\r\nline two\r\n.leading dot\r\n", body
    names = [n for n, _ in fields(head)]
    assert names[0] == b"DKIM-Signature", names          # signed last, after the changes
    assert names[1:4] == [b"X-Top", b"Received", b"X-Second"], names
    assert names[-1] == b"X-End", names
    by = dict(fields(head))
    assert by[b"Subject"] == b"Subject: edited subject", by   # its own name's spelling, in its place
    assert names.index(b"Subject") == names.index(b"Cc") + 1, names
    assert by[b"X-Fold"] == b"X-Fold: replaced\r\n\tand folded again", by
    assert b"X-Remove-Me" not in names and b"X-Not-There" not in names, names
    assert b"original" not in data
    assert dkim.verify(data, dnsfunc=dkim_records(srv)), "the signature does not cover the edited message"

    # the local copy: the same edited message (Return-Path: the new sender)
    local = bob[0].read_bytes().replace(b"\r\n", b"\n")
    assert local.startswith(b"Return-Path: <bounces@example.test>\n"), local[:300]
    assert b"Subject: edited subject\n" in local and local.endswith(b"\n\nnew body line one\nline two\n.leading dot\n")
    log = srv.log()
    assert re.search(r"event=edited conn=\d+ qid=%s header_edits=7 body=replaced sender=\"bounces@example.test\" "
                     r"rcpts_added=1 rcpts_deleted=1 nrcpt=3" % qid, log), log


@pytest.mark.parametrize("world", ["quarantine"], indirect=True)
def test_quarantine_held_until_release(world):
    srv, rx, f = world
    dr = send(srv, rcpts=(BOB, DAVE))
    assert dr.code == 250, dr
    qid = qid_of(dr)
    time.sleep(1.5)
    assert srv.maildir_messages(BOB) == [] and rx.transactions == [], "a held message was delivered"
    assert re.search(r"event=held conn=\d+ qid=%s reason=\"quarantined by the content filter \(editor\): "
                     r"looks like a phish\"" % qid, srv.log()), srv.log()
    held = srv.cli("queue", "list", "--held")
    assert held.returncode == 0 and qid in held.stdout and "1 held message(s)" in held.stdout, held.stdout
    assert "held: quarantined by the content filter (editor): looks like a phish" in held.stdout, held.stdout
    show = srv.cli("queue", "show", qid).stdout
    assert "held:      quarantined by the content filter (editor): looks like a phish" in show, show
    assert "postern queue release %s" % qid in show, show

    # durable: still held after a restart
    assert srv.stop() == 0
    srv.start()
    time.sleep(1.5)
    assert srv.maildir_messages(BOB) == [] and rx.transactions == [], "held message delivered after restart"
    assert qid in srv.cli("queue", "list", "--held").stdout

    p = srv.cli("queue", "release", qid)
    assert p.returncode == 0 and "released" in p.stdout, (p.stdout, p.stderr)
    assert len(srv.wait_delivered(BOB, 1, timeout=10, settle=1.0)) == 1
    (tx,) = rx.wait_transactions(1, timeout=20)
    assert [r.split(">")[0] for r in tx["rcpts"]] == ["RCPT TO:<%s" % DAVE], tx["rcpts"]
    assert queue_empty(srv), queue_files(srv)
    time.sleep(0.5)
    assert len(rx.transactions) == 1 and len(srv.maildir_messages(BOB)) == 1
    assert "0 held message(s)" in srv.cli("queue", "list", "--held").stdout


@pytest.mark.parametrize("world", ["delete_all"], indirect=True)
def test_every_recipient_deleted_is_discarded(world):
    srv, rx, f = world
    dr = send(srv)
    assert dr.code == 250, dr
    qid = qid_of(dr)
    assert queue_empty(srv), queue_files(srv)
    time.sleep(1.0)
    assert srv.maildir_messages(ALICE) == [] and srv.maildir_messages(BOB) == [] and rx.transactions == []
    assert re.search(r"event=discarded conn=\d+ qid=%s reason=\"the content filter removed every recipient\""
                     % qid, srv.log()), srv.log()


@pytest.mark.parametrize("world", ["bad_args"], indirect=True)
def test_recipient_arguments_the_parser_refuses(world):
    srv, rx, f = world
    dr = send(srv, rcpts=(BOB,))
    assert dr.code == 250, dr
    got = srv.wait_delivered(BOB, 1, timeout=10, settle=1.0)
    assert len(got) == 1
    assert b"X-Still: applied" in got[0].read_bytes()   # the filter's other changes still made
    assert queue_empty(srv), queue_files(srv)
    assert rx.transactions == []                        # carol was never added
    assert re.search(r"event=edit_refused conn=\d+ edit=add_rcpt address=\"<%s>\"" % CAROL, srv.log()), srv.log()
