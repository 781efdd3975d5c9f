"""Quotas and message sizes (issue 9): a message that cannot fit is refused while the
client is still connected, never answered 250 and bounced days later.

* MAIL ... SIZE= declares the size (RFC 1870 §6.1): RCPT refuses a recipient whose
  mailbox cannot take it, 452 4.2.2 (552 5.2.2 with [quota] full_is_permanent), saying
  how much room is left.
* Without SIZE, the end of DATA/BDAT checks again with the real size.
* The quota warning never takes room a real message needs.
Replies are read through smtplib, as a mail program sees them."""
import smtplib

import pytest

from helpers import SMTPConn
from pop3_support import ALICE, BOB, lf_message, make_pop3_server, put_message, wait_log


def _set_quota(srv, address, size):
    p = srv.cli("user", "quota", address, size)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _smtp(srv):
    s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30)
    s.ehlo("client.example")
    return s


def _body(nbytes, subject="test", to=ALICE):
    line = "x" * 76 + "\r\n"
    return ("From: <sender@elsewhere.example>\r\nTo: <%s>\r\nSubject: %s\r\n\r\n" % (to, subject) +
            line * max(1, nbytes // len(line))).encode()


@pytest.mark.parametrize("permanent", [False, True])
def test_declared_size_that_does_not_fit_is_refused_at_rcpt(server_factory, permanent):
    srv = make_pop3_server(server_factory, quota={"full_is_permanent": "yes" if permanent else "no"})
    _set_quota(srv, ALICE, "64K")                  # empty mailbox, 64 KiB quota
    s = _smtp(srv)
    try:
        # the case: larger than the whole quota, so it can never be delivered:
        # 552 5.2.2 whatever full_is_permanent says (a retry cannot help)
        code, _ = s.mail("sender@elsewhere.example", ["SIZE=262144"])
        assert code == 250
        code, text = s.rcpt(ALICE)
        text = text.decode()
        assert code == 552 and text.startswith("5.2.2"), (code, text)
        assert "64.0 KB left" in text and "256.0 KB" in text and "larger than the whole mailbox" in text, text
        s.rset()
        code, _ = s.mail("sender@elsewhere.example", ["SIZE=50000"])
        assert code == 250
        code, text = s.rcpt(ALICE)                 # 50,000 octets fit in 64 KiB
        assert code == 250, (code, text)
        s.rset()
        code, _ = s.mail("sender@elsewhere.example", ["SIZE=60000"])
        assert code == 250
        _set_quota(srv, ALICE, "100K")
        code, _ = s.rcpt(ALICE)
        assert code == 250
        s.rset()
        # 20 KiB used: 44 KiB left, and the message declares 50,000 octets (48.8 KiB)
        put_message(srv, ALICE, b"x" * (20 * 1024))
        _set_quota(srv, ALICE, "64K")
        code, _ = s.mail("sender@elsewhere.example", ["SIZE=50000"])
        assert code == 250
        code, text = s.rcpt(ALICE)
        text = text.decode()
        if permanent:
            assert code == 552 and text.startswith("5.2.2"), (code, text)
        else:
            assert code == 452 and text.startswith("4.2.2"), (code, text)
        assert ALICE in text and "44.0 KB left" in text and "48.8 KB" in text, text
        assert "delete mail" in text and "(ref " in text, text
        code, _ = s.rcpt(BOB)                      # bob has no quota
        assert code == 250
        s.quit()
    finally:
        s.close()
    assert wait_log(srv, r"event=refused\b[^\n]*cmd=RCPT[^\n]*cause=\"mailbox full\""), srv.log()[-2000:]
    assert len(srv.maildir_messages(ALICE)) == 1     # only the one put there


def _fill(srv, nbytes, address=ALICE, quota="100K"):
    """nbytes (a multiple of 1 KiB) straight into the Maildir, in lines POP3 can read."""
    put_message(srv, address, (b"x" * 1023 + b"\n") * (nbytes // 1024))
    _set_quota(srv, address, quota)


def _queued_count(srv):
    return len(re_findall(r"event=queued\b", srv.log()))


def re_findall(pat, text):
    import re
    return re.findall(pat, text)


@pytest.mark.parametrize("permanent", [False, True])
def test_no_declared_size_refused_at_end_of_data(server_factory, permanent):
    """No SIZE=: the real size is checked before the 250; nothing is queued."""
    srv = make_pop3_server(server_factory, quota={"full_is_permanent": "yes" if permanent else "no"})
    _fill(srv, 60 * 1024)                          # 40 KiB left of 100 KiB
    s = _smtp(srv)
    try:
        code, _ = s.mail("sender@elsewhere.example")
        assert code == 250
        code, _ = s.rcpt(ALICE)                    # not full yet: 250
        assert code == 250
        code, text = s.data(_body(50 * 1024))
        text = text.decode()
        if permanent:
            assert code == 552 and text.startswith("5.2.2"), (code, text)
        else:
            assert code == 452 and text.startswith("4.2.2"), (code, text)
        assert "Message not accepted: it is 50." in text, text
        assert "the mailbox of alice@example.test has 40.0 KB left (60.0 KB of 100.0 KB used)" in text, text
        assert "delete mail" in text and "(ref " in text, text
        # the session goes on: a message that fits is accepted
        code, _ = s.mail("sender@elsewhere.example")
        assert code == 250
        code, _ = s.rcpt(ALICE)
        assert code == 250
        code, text = s.data(_body(10 * 1024))
        assert code == 250, (code, text)
        s.quit()
    finally:
        s.close()
    assert _queued_count(srv) == 1, srv.log()[-3000:]
    assert len(srv.wait_delivered(ALICE, 2)) == 2
    assert wait_log(srv, r"event=refused\b[^\n]*code=%s\b[^\n]*Message not accepted" % (552 if permanent else 452))


def test_bdat_checked_at_last_chunk_too(server_factory):
    srv = make_pop3_server(server_factory)
    _fill(srv, 60 * 1024)
    body = _body(50 * 1024)
    with SMTPConn("127.0.0.1", srv.ports["smtp"]) as c:
        assert c.start_mail(sender="sender@elsewhere.example", rcpts=(ALICE,))[0].is_(250)
        half = len(body) // 2
        c.send(b"BDAT %d\r\n" % half + body[:half])
        assert c.reply().is_(250)
        c.send(b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:])
        r = c.reply()
        assert r.is_(452, "4.2.2"), r
        assert "has 40.0 KB left" in r.text, r
        c.cmd("QUIT")
    assert _queued_count(srv) == 0


def test_no_recipient_has_room_names_each(server_factory):
    srv = make_pop3_server(server_factory)
    _fill(srv, 60 * 1024)
    _fill(srv, 90 * 1024, address=BOB)
    s = _smtp(srv)
    try:
        s.mail("sender@elsewhere.example")
        assert s.rcpt(ALICE)[0] == 250 and s.rcpt(BOB)[0] == 250
        code, text = s.data(_body(50 * 1024))
        text = text.decode()
        assert code == 452 and text.startswith("4.2.2"), (code, text)
        assert "no recipient's mailbox has room for it" in text, text
        assert "alice@example.test has 40.0 KB left" in text and "bob@example.test has 10.0 KB left" in text, text
        s.quit()
    finally:
        s.close()
    assert _queued_count(srv) == 0


def test_some_recipients_full_bounce_at_once(server_factory):
    """alice has no room, bob has: the message is accepted, bob gets it, and the sender
    gets a bounce for alice at once (with the quota words), not after days of retries."""
    carol = "carol@example.test"
    srv = make_pop3_server(server_factory, users=(ALICE, BOB, carol))
    _fill(srv, 60 * 1024)
    s = _smtp(srv)
    try:
        s.mail(carol)
        assert s.rcpt(ALICE)[0] == 250 and s.rcpt(BOB)[0] == 250
        code, text = s.data(_body(50 * 1024))
        assert code == 250, (code, text)
        s.quit()
    finally:
        s.close()
    m = wait_log(srv, r"event=bounced\b[^\n]*to=<alice@example.test>[^\n]*")
    assert m, srv.log()[-3000:]
    assert "5.2.2" in m.group(0) and "40.0 KB left" in m.group(0), m.group(0)
    assert not re_findall(r"event=deferred\b", srv.log()), srv.log()[-3000:]
    assert len(srv.wait_delivered(BOB, 1)) == 1
    reports = srv.wait_delivered(carol, 1)
    assert len(reports) == 1
    report = reports[0].read_bytes()
    assert b"alice@example.test" in report and b"5.2.2" in report, report[:3000]
    assert len(srv.maildir_messages(ALICE)) == 1     # only the filler


def _sizes(srv, address=ALICE):
    """(bytes of real mail, bytes of the warning, names) from S= of every file."""
    import re
    real = warn = 0
    for p in srv.maildir_messages(address):
        size = int(re.search(r",S=(\d+)", p.name).group(1))
        if b"Subject: Your mailbox is" in p.read_bytes()[:1000]:
            warn += size
        else:
            real += size
    return real, warn


def _maildirsize(srv, address=ALICE):
    lines = (srv.maildir(address) / "maildirsize").read_text().splitlines()
    return (sum(int(l.split()[0]) for l in lines[1:] if l.strip()),
            sum(int(l.split()[1]) for l in lines[1:] if l.strip()))


def test_warning_never_takes_room_from_real_mail(server_factory):
    """The 90% warning is stored in the mailbox but not counted: a real message that
    fits exactly in the room real mail leaves is accepted and delivered, and the
    mailbox never goes over its limit because of the warning."""
    from pop3_support import poplib_ssl
    # Sizes are counted to the octet: no Authentication-Results field (its length
    # depends on what the DNS says of the sender's domain).
    srv = make_pop3_server(server_factory, quota={"warning_percent": "90"}, mailauth={"dmarc": "off"})
    limit = 100 * 1024
    _fill(srv, 88 * 1024)                          # 88%: no warning yet
    s = _smtp(srv)
    try:
        s.sendmail("sender@elsewhere.example", [ALICE], _body(4 * 1024, "crossing"))   # -> 92%: warning
    finally:
        s.quit()
    msgs = srv.wait_delivered(ALICE, 3)
    assert len(msgs) == 3, msgs
    real, warn = _sizes(srv)
    assert warn > 300, (real, warn)
    used, count = _maildirsize(srv)
    assert (used, count) == (real, 2), (used, count, real, warn)   # the warning is not counted
    # a message that fits the room real mail leaves, but not if the warning counted:
    # queued size (Received header ~170 octets + data) about room - warn/2
    room = limit - real
    data = _body(room - warn // 2 - 170, "fits")
    s = _smtp(srv)
    try:
        assert s.mail("sender@elsewhere.example")[0] == 250
        assert s.rcpt(ALICE)[0] == 250
        code, text = s.data(data)
        assert code == 250, (code, text, room, warn)
        s.quit()
    finally:
        s.close()
    msgs = srv.wait_delivered(ALICE, 4)
    assert len(msgs) == 4, (msgs, srv.log()[-2000:])
    real2, warn2 = _sizes(srv)
    assert warn2 == warn and real2 <= limit, (real2, warn2, limit)
    used, count = _maildirsize(srv)
    assert (used, count) == (real2, 3) and used <= limit, (used, count, real2)
    # a recalculation (quota set) and deleting the warning over POP3 keep it uncounted
    _set_quota(srv, ALICE, "100K")
    assert _maildirsize(srv) == (real2, 3)
    p = poplib_ssl(srv)
    try:
        n = p.stat()[0]
        for i in range(1, n + 1):
            if any(l.startswith(b"Subject: Your mailbox is") for l in p.top(i, 0)[1]):
                p.dele(i)
    finally:
        p.quit()
    assert _sizes(srv) == (real2, 0)
    assert _maildirsize(srv) == (real2, 3)
