"""POP-before-SMTP ([server] pop_before_smtp = DURATION, 0 = off): a successful POP3 login
from an address lets that address relay through the mx listener without SMTP AUTH for the
window; after it, the refusal says when mail was last checked, how long the window is, and
recommends SMTP authentication."""
import re
import time

from helpers import SMTPConn, message
from pop3_support import ALICE, PASSWORD, make_pop3_server, poplib_ssl, raw_tls, wait_log

REMOTE = "someone@remote.example"


def _relay_rcpt(srv, source="127.0.0.1"):
    c = SMTPConn.__new__(SMTPConn)
    import socket
    c.timeout = 10.0
    c.sock = socket.create_connection(("127.0.0.1", srv.ports["smtp"]), timeout=10, source_address=(source, 0))
    c.buf = b""
    c.greeting = c.reply()
    return c


def _try_relay(srv, source="127.0.0.1", data=False):
    with _relay_rcpt(srv, source) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<%s>" % ALICE)
        assert r.is_(250), r
        r = c.cmd("RCPT TO:<%s> NOTIFY=NEVER" % REMOTE)
        if r.code == 250 and data:
            d = c.data(message(sender=ALICE, to=REMOTE, subject="pop-before-smtp"))
            assert d.code == 250, d
        c.cmd("QUIT")
        return r


def _pop_login(srv, source="127.0.0.1", password=PASSWORD):
    with raw_tls(srv, user=None, source=source) as c:
        st = c.login(ALICE, password)
        c.cmd("QUIT")
        return st


def test_relay_refused_without_pop3_login(server_factory):
    srv = make_pop3_server(server_factory, server={"pop_before_smtp": "30m"})
    r = _try_relay(srv)
    assert r.is_(554, "5.7.1"), r
    assert "last checked mail" not in r.text, r
    assert "not logged in" in r.text, r
    # a failed POP3 login opens nothing
    assert _pop_login(srv, password="wrong").startswith("-ERR [AUTH]")
    r = _try_relay(srv)
    assert r.is_(554, "5.7.1") and "last checked mail" not in r.text, r
    # local mail is accepted as always
    with SMTPConn("127.0.0.1", srv.ports["smtp"]) as c:
        assert c.start_mail(rcpts=(ALICE,))[0].is_(250)


def test_relay_allowed_inside_the_window_from_the_same_address_only(server_factory):
    srv = make_pop3_server(server_factory, server={"pop_before_smtp": "30m"})
    p = poplib_ssl(srv)          # a real client checks mail from 127.0.0.1
    p.stat()
    p.quit()
    r = _try_relay(srv, data=True)
    assert r.is_(250), r
    assert wait_log(srv, r"event=queued\b[^\n]*from=\"?<?%s" % re.escape(ALICE)), srv.log()[-3000:]
    # another address did not check mail
    r = _try_relay(srv, source="127.0.0.2")
    assert r.is_(554, "5.7.1"), r
    assert "last checked mail" not in r.text, r
    # it may after its own POP3 login
    assert _pop_login(srv, source="127.0.0.2").startswith("+OK")
    assert _try_relay(srv, source="127.0.0.2").is_(250)


def test_relay_refused_after_the_window_names_last_check(server_factory):
    srv = make_pop3_server(server_factory, server={"pop_before_smtp": "2s"})
    assert _pop_login(srv).startswith("+OK")
    assert _try_relay(srv).is_(250)
    time.sleep(3.2)
    r = _try_relay(srv)
    assert r.is_(554, "5.7.1"), r
    text = " ".join(r.lines)
    assert re.search(r"you last checked mail \d+ (minutes?|seconds?) ago", text), r
    assert "POP-before-SMTP" in text or "after a mail check" in text, r
    assert re.search(r"authentication", text, re.I), r       # recommends SMTP AUTH
    assert wait_log(srv, r"event=refused\b[^\n]*code=554\b[^\n]*enh=5.7.1"), srv.log()[-3000:]
    # checking mail again opens the window again
    assert _pop_login(srv).startswith("+OK")
    assert _try_relay(srv).is_(250)


def test_pop_before_smtp_off_by_default(server_factory):
    srv = make_pop3_server(server_factory)
    assert _pop_login(srv).startswith("+OK")
    r = _try_relay(srv)
    assert r.is_(554, "5.7.1"), r
    assert "last checked mail" not in r.text, r
