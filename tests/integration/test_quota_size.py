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
