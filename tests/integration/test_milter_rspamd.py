"""rspamd as Postern's content filter, through the milter protocol (rspamd 3.4's proxy
worker in milter mode, started once for the module on a loopback port, offline: see
milter_support.Rspamd).

- GTUBE is refused at the end of data with rspamd's own words passed through and the
  content filter named, nothing queued or delivered;
- a clean message passes with the headers rspamd adds (X-Spamd-Result, and
  X-Rspamd-Queue-Id carrying Postern's queue id: the `i` macro);
- a logged-in user's message reaches rspamd with {auth_authen} (rspamd's log names
  the user: it scores the mail as outbound)."""
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import SMTPConn  # noqa: E402
from milter_support import GTUBE, Rspamd, milter_sections, queue_files  # noqa: E402
from submission_support import listener_sections, simple_msg, smtplib_login, wait_ports  # noqa: E402

ALICE = "alice@example.test"
BOB = "bob@example.test"


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    r = Rspamd(tmp_path_factory.mktemp("rspamd")).start()
    yield r
    r.stop()


@pytest.fixture
def srv(server_factory, rspamd):
    extra = "milters = rspamd\n" + listener_sections(submission_extra="milters = rspamd\n")
    extra += milter_sections([("rspamd", "inet:127.0.0.1:%d" % rspamd.port,
                               {"content_timeout": "30s", "command_timeout": "20s"})])
    s = server_factory(users=(ALICE, BOB), extra=extra)
    s.ports = wait_ports(s, ["smtp", "submission"])
    return s


def send_mx(srv, body, sender="someone@sender.example", rcpt=ALICE):
    with SMTPConn("127.0.0.1", srv.ports["smtp"], timeout=40) as c:
        rr = c.start_mail(sender=sender, rcpts=(rcpt,))
        assert rr[0].code == 250, rr[0]
        r = c.data(body)
        c.cmd("QUIT")
        return r


def message(body, subject="hello", sender="someone@sender.example"):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: Tue, 01 Dec 2026 15:00:00 +0000\r\n"
            "Message-ID: <%d@sender.example>\r\n\r\n%s\r\n" % (sender, ALICE, subject, time.monotonic_ns(), body))


def test_gtube_refused_with_rspamds_words(srv, rspamd):
    r = send_mx(srv, message("This is spam.\r\n" + GTUBE))
    assert r.code in (550, 554), r
    assert "The content filter (rspamd) refused this message: " in str(r), r
    # rspamd's own words come through (its reject_message), with Postern's reference.
    assert "Spam message rejected" in str(r) or "Gtube" in str(r), r
    assert re.search(r"\(ref [\w.]+\)", str(r)), r
    assert "5.7.1" in str(r), r
    time.sleep(0.5)
    assert srv.maildir_messages(ALICE) == []
    assert [p for p in queue_files(srv) if "active" in str(p) or "incoming" in str(p)] == []


def test_clean_message_passes_with_rspamd_headers(srv, rspamd):
    r = send_mx(srv, message("Just a friendly note about lunch tomorrow.\r\nSee you there.\r\n"))
    assert r.code == 250, r
    qid = re.search(r"queued as ([A-Za-z0-9]+)", str(r)).group(1)
    msgs = srv.wait_delivered(ALICE, 1, timeout=15, settle=0.3)
    assert len(msgs) == 1, msgs
    data = msgs[0].read_bytes().decode("utf-8", "replace")
    head = data.split("\r\n\r\n", 1)[0] if "\r\n\r\n" in data else data.split("\n\n", 1)[0]
    assert re.search(r"^X-Spamd-Result:", head, re.M | re.I), head
    m = re.search(r"^X-Rspamd-Queue-Id:\s*(\S+)", head, re.M | re.I)
    assert m and m.group(1) == qid, (qid, head)
    assert "Just a friendly note" in data


def test_logged_in_user_is_scored_as_outbound(srv, rspamd):
    s = smtplib_login(srv, user=ALICE)
    try:
        s.sendmail(ALICE, [BOB], simple_msg(sender=ALICE, to=BOB, subject="outbound check"))
    finally:
        s.quit()
    msgs = srv.wait_delivered(BOB, 1, timeout=15, settle=0.3)
    assert len(msgs) == 1
    # rspamd's task log line names the authenticated user it was told ({auth_authen}).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "user: %s" % ALICE not in rspamd.log_text():
        time.sleep(0.2)
    assert "user: %s" % ALICE in rspamd.log_text(), rspamd.log_text()[-3000:]

