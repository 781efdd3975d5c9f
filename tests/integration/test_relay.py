"""Relaying: the mx port relays only for logged-in or trusted clients; open-relay address
tricks are refused; the 503 at DATA explains the refusals that led to it."""
import smtplib

import pytest

from submission_support import (
    auth_plain, connect, connect_tls, make_sub_server, wait_log,
)

REMOTE = "user@other.example"


@pytest.fixture
def srv(server_factory):
    return make_sub_server(server_factory)


def _relay_refused(r):
    assert r.is_(554, "5.7.1"), r
    assert "relay" in r.text.lower(), r


# -- the mx port --------------------------------------------------------------------------

def test_mx_refuses_relay_without_login(srv):
    with connect(srv, "smtp") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<x@y.example>").is_(250, "2.1.0")
        _relay_refused(c.cmd("RCPT TO:<%s>" % REMOTE))
        # mail for a local user is still accepted from anyone
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
    assert wait_log(srv, r"event=refused\b[^\n]*cmd=RCPT[^\n]*code=554[^\n]*enh=5\.7\.1"), srv.log()[-3000:]


def test_mx_refuses_relay_after_starttls_without_login(srv):
    with connect_tls(srv, "smtp") as c:
        assert c.cmd("MAIL FROM:<x@y.example>").is_(250, "2.1.0")
        _relay_refused(c.cmd("RCPT TO:<%s>" % REMOTE))


def test_relays_after_login(srv):
    # (logins belong to the submission listeners; AUTH on mx: test_wrong_port.py)
    with connect_tls(srv, "submission") as c:
        assert auth_plain(c).is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        r = c.cmd("RCPT TO:<%s>" % REMOTE)
        assert r.is_(250, "2.1.5"), r
        r = c.data(b"From: <alice@example.test>\r\nTo: <user@other.example>\r\nSubject: out\r\n\r\nhi\r\n")
        assert r.is_(250, "2.0.0"), r
    assert wait_log(srv, r"event=(deferred|bounced)\b[^\n]*to=<%s>" % REMOTE), \
        srv.log()[-3000:]


def test_smtplib_relay_refused_is_recipients_refused(srv):
    s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10)
    try:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as ei:
            s.sendmail("x@y.example", [REMOTE], b"Subject: relay\r\n\r\nhi\r\n")
        rec = ei.value.recipients
        assert set(rec) == {REMOTE}, rec
        code, text = rec[REMOTE]
        assert code == 554, rec
        assert b"5.7.1" in text and b"relay" in text.lower(), rec
    finally:
        s.close()


# -- trusted networks ------------------------------------------------------------------------

def test_trusted_network_relays_without_login(server_factory):
    srv = make_sub_server(server_factory, server={"trusted_networks": "127.0.0.2/32"})
    with connect(srv, "smtp", source="127.0.0.2") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<x@y.example>").is_(250, "2.1.0")
        r = c.cmd("RCPT TO:<%s>" % REMOTE)
        assert r.is_(250, "2.1.5"), r
        r = c.data(b"From: <x@y.example>\r\nSubject: trusted\r\n\r\nhi\r\n")
        assert r.is_(250, "2.0.0"), r
    with connect(srv, "smtp") as c:                   # 127.0.0.1 is not trusted
        c.ehlo()
        assert c.cmd("MAIL FROM:<x@y.example>").is_(250, "2.1.0")
        _relay_refused(c.cmd("RCPT TO:<%s>" % REMOTE))
    # submission listeners always require login, trusted or not
    with connect_tls(srv, "submission", source="127.0.0.2") as c:
        r = c.cmd("MAIL FROM:<x@y.example>")
        assert r.is_(530, "5.7.0"), r


def test_smtplib_from_trusted_source(server_factory):
    srv = make_sub_server(server_factory, server={"trusted_networks": "127.0.0.2"})
    s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10, source_address=("127.0.0.2", 0))
    try:
        assert s.sendmail("x@y.example", [REMOTE], b"Subject: t\r\n\r\nhi\r\n") == {}
    finally:
        s.quit()


# -- open-relay tricks ---------------------------------------------------------------------------

@pytest.mark.parametrize("rcpt,code,enh", [
    ("<user%other.example@example.test>", 550, "5.1.1"),
    ("<other.example!user@example.test>", 550, "5.1.1"),
    ("<\"user@other.example\"@example.test>", 550, "5.1.1"),
    ("<@example.test:user@other.example>", 554, "5.7.1"),
    ("<user@other.example.>", 501, "5.1.3"),
    ("<USER@OTHER.EXAMPLE>", 554, "5.7.1"),
    ("<user@OTHER.example>", 554, "5.7.1"),
])
def test_open_relay_tricks_refused(srv, rcpt, code, enh):
    with connect(srv, "smtp") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<x@y.example>").is_(250, "2.1.0")
        r = c.cmd("RCPT TO:" + rcpt)
        assert r.is_(code, enh), (rcpt, r)
        if code == 554:
            assert "relay" in r.text.lower(), r
        # nothing to send: DATA explains, naming the refused recipient as the client wrote it
        r = c.cmd("DATA")
        assert r.is_(503, "5.5.1"), r
        mailbox = rcpt[1:-1].split(":", 1)[1] if rcpt.startswith("<@") else rcpt[1:-1]
        assert "<%s>" % mailbox.lower() in r.text.lower(), (rcpt, r)   # domains may be lower-cased
        assert "TO:" not in r.text.upper(), (rcpt, r)
    assert "event=queued" not in srv.log()


# -- the 503 that explains ------------------------------------------------------------------

def _data_503(c):
    r = c.cmd("DATA")
    assert r.is_(503, "5.5.1"), r
    assert len(r.raw_lines) >= 2, r
    assert r.raw_lines[-1].startswith(b"503 5.5.1 Fix:"), r
    return r


def test_503_not_logged_in_relay(srv):
    with connect(srv, "smtp") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<x@y.example>").is_(250, "2.1.0")
        _relay_refused(c.cmd("RCPT TO:<%s>" % REMOTE))
        r = _data_503(c)
        assert "<%s>" % REMOTE in r.text, r
        assert "requires authentication" in r.lines[-1].lower(), r


def test_503_sender_not_owned(srv):
    with connect_tls(srv, "submission") as c:
        assert auth_plain(c).is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<bob@example.test>").is_(553, "5.7.1")
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.is_(503, "5.5.1"), r
        r = _data_503(c)
        assert "bob@example.test" in r.text and "not one of your addresses" in r.text, r


def test_503_auth_before_starttls(srv):
    # (on the mx listener AUTH is not offered at all: test_wrong_port.py)
    with connect(srv, "submission") as c:
        c.ehlo()
        assert auth_plain(c).is_(530, "5.7.0")
        r = c.cmd("MAIL FROM:<alice@example.test>")
        assert r.is_(530, "5.7.0"), r
        c.cmd("RCPT TO:<%s>" % REMOTE)
        r = _data_503(c)
        assert "not encrypted" in r.text, r
        assert "STARTTLS" in r.lines[-1], r


def test_503_unknown_local_user(srv):
    with connect(srv, "smtp") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<x@y.example>").is_(250, "2.1.0")
        r = c.cmd("RCPT TO:<nobody@example.test>")
        assert r.is_(550, "5.1.1"), r
        r = _data_503(c)
        assert "<nobody@example.test>" in r.text and "no mailbox" in r.text.lower(), r


def test_503_after_auth_on_mx(srv):
    with connect_tls(srv, "smtp") as c:
        assert auth_plain(c).is_(502, "5.5.1")
        assert c.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        _relay_refused(c.cmd("RCPT TO:<%s>" % REMOTE))
        r = _data_503(c)
        assert "wrong port" in r.text.lower() and str(srv.ports["submission"]) in r.text, r


def test_503_after_failed_login_on_submission(srv):
    with connect_tls(srv, "submission") as c:
        assert auth_plain(c, password="wrong").is_(535, "5.7.8")
        assert c.cmd("MAIL FROM:<alice@example.test>").is_(530, "5.7.0")
        r = _data_503(c)
        low = r.text.lower()
        assert "login failed" in low or "wrong user name or password" in low, r
