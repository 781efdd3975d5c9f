"""Quotas (Maildir++ maildirsize): a full mailbox is refused at RCPT with 452 4.2.2 (or
552 5.2.2 when [quota] full_is_permanent = yes) naming whose mailbox is full and that its
owner must delete mail; the end of data checks the real size (test_quota_size.py);
delivery checks again (a recipient without room fails at once, 5.2.2); one warning
message when usage crosses [quota] warning_percent; `postern user quota` and `user list`."""
import re
import time

import pytest

from helpers import SMTPConn, message
from pop3_support import (
    ALICE, BOB, crlf, lf_message, make_pop3_server, poplib_ssl, put_message, wait_log,
)


def _set_quota(srv, address, size):
    p = srv.cli("user", "quota", address, size)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _rcpt(srv, rcpt):
    with SMTPConn("127.0.0.1", srv.ports["smtp"]) as c:
        r = c.start_mail(rcpts=(rcpt,))[0]
        c.cmd("QUIT")
        return r


def _send(srv, rcpt, subject, body_bytes):
    """One message of about body_bytes over the mx listener; asserts 250 at RCPT and DATA."""
    line = "x" * 76 + "\r\n"
    body = line * max(1, body_bytes // len(line))
    with SMTPConn("127.0.0.1", srv.ports["smtp"]) as c:
        r = c.start_mail(rcpts=(rcpt,))[0]
        assert r.is_(250), r
        r = c.data(message(subject=subject, body=body, to=rcpt))
        assert r.code == 250, r
        c.cmd("QUIT")
        return r.qid


def _maildirsize(srv, address=ALICE):
    lines = (srv.maildir(address) / "maildirsize").read_text().splitlines()
    used = sum(int(l.split()[0]) for l in lines[1:] if l.strip())
    count = sum(int(l.split()[1]) for l in lines[1:] if l.strip())
    return lines[0], used, count


def _disk_usage(srv, address=ALICE):
    total = 0
    for p in srv.maildir_messages(address):
        m = re.search(r",S=(\d+)", p.name)
        total += int(m.group(1)) if m else p.stat().st_size
        assert p.stat().st_size == (int(m.group(1)) if m else p.stat().st_size), p.name   # S= is the file size
    return total


def _fill_over(srv, address, nbytes):
    """Put nbytes+ of mail straight into the Maildir (as another program would)."""
    put_message(srv, address, lf_message("filler", ["y" * 100] * (nbytes // 101 + 1)))


@pytest.mark.parametrize("permanent", [False, True])
def test_full_mailbox_refused_at_rcpt(server_factory, permanent):
    srv = make_pop3_server(server_factory, quota={"full_is_permanent": "yes" if permanent else "no"})
    _fill_over(srv, ALICE, 110 * 1024)
    out = _set_quota(srv, ALICE, "100K")          # recalculates usage: already over the limit
    assert ALICE in out, out
    first, used, count = _maildirsize(srv)
    assert first.startswith("102400S"), first
    assert used == _disk_usage(srv) and count == 1, (used, count)

    r = _rcpt(srv, ALICE)
    if permanent:
        assert r.is_(552, "5.2.2"), r
    else:
        assert r.is_(452, "4.2.2"), r
    text = r.text.lower()
    assert "alice@example.test" in text and "full" in text, r
    assert "delete" in text and "owner" in text, r
    assert wait_log(srv, r"event=refused\b[^\n]*code=%d\b[^\n]*enh=%s" % (552 if permanent else 452,
                                                                          "5.2.2" if permanent else "4.2.2")), \
        srv.log()[-3000:]
    # another mailbox on the same server is not affected
    assert _rcpt(srv, BOB).is_(250, "2.1.5")

    # the owner deletes mail over POP3: the expunge is counted, mail is accepted again
    p = poplib_ssl(srv)
    try:
        assert p.stat()[0] == 1
        p.dele(1)
    finally:
        p.quit()
    _, used, count = _maildirsize(srv)
    assert (used, count) == (0, 0), (used, count)
    assert _rcpt(srv, ALICE).is_(250, "2.1.5")


def test_delivery_checks_again_and_bounces_at_once(server_factory):
    """A message accepted for alice (no room) and bob (room): delivery checks alice's
    quota again and fails her at once with the quota words (whatever full_is_permanent
    says: the message was accepted, so retrying for days would only delay the news);
    see also test_quota_size.py."""
    srv = make_pop3_server(server_factory, quota={"full_is_permanent": "yes", "warning_percent": "95"})
    _set_quota(srv, ALICE, "100K")
    _send(srv, ALICE, "first", 60 * 1024)
    assert len(srv.wait_delivered(ALICE, 1)) == 1
    line = "x" * 76 + "\r\n"
    with SMTPConn("127.0.0.1", srv.ports["smtp"]) as c:
        r = c.start_mail(rcpts=(ALICE, BOB))
        assert all(x.is_(250) for x in r), r
        r = c.data(message(subject="second", body=line * (60 * 1024 // len(line)), to=ALICE))
        assert r.code == 250, r
        qid = r.qid
        c.cmd("QUIT")
    m = wait_log(srv, r"event=bounced\b[^\n]*qid=%s[^\n]*" % qid)
    assert m, srv.log()[-3000:]
    assert "5.2.2" in m.group(0) and "alice@example.test" in m.group(0), m.group(0)
    assert len(srv.maildir_messages(ALICE)) == 1
    assert len(srv.wait_delivered(BOB, 1)) == 1
    assert _disk_usage(srv) <= 100 * 1024


def _cross_warning_threshold(server_factory):
    """A 100K quota, warning at 50%: 10K (no warning), 45K (warning), three more of 2K."""
    srv = make_pop3_server(server_factory, quota={"warning_percent": "50"})
    _set_quota(srv, ALICE, "100K")
    _send(srv, ALICE, "small", 10 * 1024)          # ~10%: no warning
    assert len(srv.wait_delivered(ALICE, 1, settle=0.5)) == 1
    assert not wait_log(srv, r"event=quota_warning", timeout=0.1)
    _send(srv, ALICE, "big", 45 * 1024)            # crosses 50%
    msgs = srv.wait_delivered(ALICE, 3)
    assert len(msgs) == 3, msgs
    for i in range(3):                              # more deliveries: no second warning
        _send(srv, ALICE, "more %d" % i, 2 * 1024)
    msgs = srv.wait_delivered(ALICE, 6, settle=1.0)
    assert len(msgs) == 6, [m.name for m in msgs]
    return srv, msgs


def test_warning_message_once_at_the_threshold(server_factory):
    srv, msgs = _cross_warning_threshold(server_factory)
    warnings = [m for m in msgs if re.search(rb"^Subject: Your mailbox is \d+% full", m.read_bytes(), re.M)]
    assert len(warnings) == 1, [m.read_bytes()[:200] for m in msgs]
    assert len(re.findall(r"event=quota_warning\b", srv.log())) == 1, srv.log()[-3000:]
    w = warnings[0].read_bytes()
    pct = int(re.search(rb"Your mailbox is (\d+)% full", w).group(1))
    assert 50 <= pct <= 100, pct
    assert re.search(rb"^To: <alice@example.test>", w, re.M), w
    # the warning is an ordinary message over POP3: exact size, CRLF only once
    p = poplib_ssl(srv)
    try:
        n = p.stat()[0]
        found = 0
        for i in range(1, n + 1):
            lines = p.retr(i)[1]
            data = b"\r\n".join(lines) + b"\r\n"
            assert int(p.list(i).split()[2]) == len(data), (i, p.list(i), len(data))
            assert b"\r\r" not in data and not any(l.endswith(b"\r") for l in lines), lines[:5]
            if any(l.startswith(b"Subject: Your mailbox is") for l in lines):
                found += 1
        assert found == 1
    finally:
        p.quit()


def test_maildirsize_counts_all_but_the_warning(server_factory):
    """maildirsize sums what is on disk (S= of every file) except the quota warning,
    which is never counted (issue 9: it must not push a mailbox over its limit); the
    next recalculation reads the same figures."""
    srv, msgs = _cross_warning_threshold(server_factory)
    _, used, count = _maildirsize(srv)
    warning = [p for p in msgs if ",Q=postern-warning" in p.name]
    assert len(warning) == 1, [p.name for p in msgs]
    wsize = int(re.search(r",S=(\d+)", warning[0].name).group(1))
    assert (used, count) == (_disk_usage(srv) - wsize, 5), (used, count, _disk_usage(srv), wsize)
    _set_quota(srv, ALICE, "100K")                  # a recalculation agrees
    assert _maildirsize(srv)[1:] == (used, count)


def test_user_quota_and_user_list_show_usage(server_factory):
    srv = make_pop3_server(server_factory)
    p = srv.cli("user", "list")
    assert p.returncode == 0
    line = [l for l in p.stdout.splitlines() if l.startswith(ALICE)][0]
    assert line.strip() == ALICE, line                  # no quota: the address alone
    put_message(srv, ALICE, lf_message("usage", ["z" * 1000] * 1300))   # ~1.3 MB
    out = _set_quota(srv, ALICE, "2M")
    assert "2.0 MB" in out and "1.2 MB used" in out, out
    p = srv.cli("user", "list")
    assert p.returncode == 0, p.stderr
    line = [l for l in p.stdout.splitlines() if l.startswith(ALICE)][0]
    assert re.search(r"1\.2 MB of 2\.0 MB \(6[0-9]%\)", line), line
    line_bob = [l for l in p.stdout.splitlines() if l.startswith(BOB)][0]
    assert line_bob.strip() == BOB, line_bob
    # remove the quota: nothing enforced, the file goes
    assert srv.cli("user", "quota", ALICE, "none").returncode == 0
    assert not (srv.maildir(ALICE) / "maildirsize").exists()
    p = srv.cli("user", "list")
    line = [l for l in p.stdout.splitlines() if l.startswith(ALICE)][0]
    assert line.strip() == ALICE, line
    # bad sizes are refused
    p = srv.cli("user", "quota", ALICE, "12X")
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    p = srv.cli("user", "quota", "nobody@example.test", "1G")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
