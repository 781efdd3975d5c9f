"""The port-25 trap (src/smtp/wrong_port.c): a mail program set up to send on the mx
listener.  AUTH there is never offered and is answered 502 5.5.1 before any credentials
are read; a transaction from outside to an outside domain is refused (554 5.7.1, relaying
denied) with words naming this server's submission ports as bound (465-style implicit TLS,
587-style STARTTLS), and both log event=wrong_port, which `postern explain --ref` shows."""
import base64
import json
import re
import smtplib

import pytest

from conftest import run_cli
from submission_support import (
    PASSWORD, connect, connect_tls, ehlo_auth_line, make_sub_server, starttls, tls_context, wait_log,
)

ALICE = "alice@example.test"
REMOTE = "friend@other.example"
REF_RE = re.compile(r"\(ref ([0-9A-Za-z.]+)\)")


@pytest.fixture
def srv(server_factory):
    return make_sub_server(server_factory)


def _ports_named(srv, text):
    """The reply names the bound submission ports (the test's listeners use port 0)."""
    want = "%d with SSL/TLS, or %d with STARTTLS" % (srv.ports["submissions"], srv.ports["submission"])
    assert want in text, text


def _explain_ref(srv, ref):
    assert wait_log(srv, r"event=wrong_port\b[^\n]*ref=%s\b" % re.escape(ref)), srv.log()[-3000:]
    p = run_cli(["explain", "--ref", ref, "--log", str(srv.log_path)])
    assert p.returncode == 0, p.stderr
    p2 = run_cli(["explain", "--json", "--ref", ref, "--log", str(srv.log_path)])
    assert p2.returncode == 0, p2.stderr
    return p.stdout, json.loads(p2.stdout)


def test_ehlo_on_mx_never_offers_auth(srv):
    with connect(srv, "smtp") as c:
        assert ehlo_auth_line(c.ehlo()) is None
        starttls(c)
        assert ehlo_auth_line(c.ehlo()) is None
    with connect_tls(srv, "submission") as c:
        assert ehlo_auth_line(c.ehlo()) is not None   # the submission listener still does


@pytest.mark.parametrize("tls", [False, True])
def test_auth_on_mx_names_submission_ports(srv, tls):
    token = base64.b64encode(("\0%s\0%s" % (ALICE, PASSWORD)).encode()).decode()
    with (connect_tls(srv, "smtp") if tls else connect(srv, "smtp")) as c:
        if not tls:
            c.ehlo()
        r = c.cmd("AUTH PLAIN " + token)
        assert r.is_(502, "5.5.1"), r
        assert "AUTH is not offered on port %d" % srv.ports["smtp"] in r.text, r
        _ports_named(srv, r.text)
        assert "outgoing server (SMTP)" in r.text, r
        # no 334 challenge: the line after AUTH LOGIN is a command again
        r2 = c.cmd("AUTH LOGIN")
        assert r2.is_(502, "5.5.1"), r2
        assert c.cmd("NOOP").is_(250), "the session goes on"
    ref = REF_RE.search(r.text).group(1)
    m = wait_log(srv, r"event=wrong_port\b[^\n]*ref=%s\b[^\n]*" % re.escape(ref))
    assert m, srv.log()[-3000:]
    line = m.group(0)
    assert "attempt=auth" in line and "listener=smtp" in line, line
    assert "submissions=%d submission=%d" % (srv.ports["submissions"], srv.ports["submission"]) in line, line
    # the credentials on the AUTH line were never decoded, checked or logged
    log = srv.log()
    assert token not in log and PASSWORD not in log.replace("secret=", ""), "credentials in the log"
    assert not re.search(r"event=login(_failed)?\b", log), "a login was attempted on the mx listener"
    out, js = _explain_ref(srv, ref)
    assert "port:" in out and "is for mail from other mail servers" in out, out
    assert "wrong_port" in out and "465" in out, out
    assert js["causes"][0]["id"] == "wrong_port" and js["code"] == 502, js
    assert "%d with SSL/TLS" % srv.ports["submissions"] in js["wrong_port"], js


def test_smtplib_auth_on_mx_raw(srv):
    """smtplib itself will not log in where AUTH is not advertised; a client that tries
    anyway (docmd) gets the words."""
    s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10)
    try:
        s.ehlo()
        s.starttls(context=tls_context())
        s.ehlo()
        assert not s.has_extn("auth")
        with pytest.raises(smtplib.SMTPNotSupportedError):
            s.login(ALICE, PASSWORD)
        code, msg = s.docmd("AUTH", "LOGIN")
        assert code == 502, (code, msg)
        _ports_named(srv, msg.decode())
    finally:
        s.close()


def test_outside_to_outside_on_mx(srv):
    s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10)
    try:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as ei:
            s.sendmail("someone@elsewhere.example", [REMOTE], b"Subject: out\r\n\r\nhi\r\n")
        code, msg = ei.value.recipients[REMOTE]
    finally:
        s.close()
    text = msg.decode()
    assert code == 554 and text.startswith("5.7.1"), (code, text)
    assert "relaying denied" in text, text
    assert "Port %d is for mail from other mail servers" % srv.ports["smtp"] in text, text
    _ports_named(srv, text)
    ref = REF_RE.search(text).group(1)
    m = wait_log(srv, r"event=wrong_port\b[^\n]*ref=%s\b[^\n]*" % re.escape(ref))
    assert m and "attempt=relay" in m.group(0), srv.log()[-3000:]
    out, js = _explain_ref(srv, ref)
    assert js["causes"][0]["id"] == "wrong_port" and js["code"] == 554, js
    assert "relaying denied" in js["reason"], js


def test_pipelined_transaction_503_names_ports(srv):
    with connect(srv, "smtp") as c:
        c.ehlo()
        c.send("MAIL FROM:<someone@elsewhere.example>\r\nRCPT TO:<%s>\r\nDATA\r\n" % REMOTE)
        assert c.reply().is_(250, "2.1.0")
        assert c.reply().is_(554, "5.7.1")
        r = c.reply()
        assert r.is_(503, "5.5.1"), r
        assert "Wrong port" in r.text, r
        _ports_named(srv, r.text)


def test_local_mail_on_mx_untouched(srv):
    """Mail from outside for a local user is what the mx port is for: no trap."""
    with connect(srv, "smtp") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<someone@elsewhere.example>").is_(250, "2.1.0")
        assert c.cmd("RCPT TO:<%s>" % ALICE).is_(250, "2.1.5")
        assert c.data(b"Subject: in\r\n\r\nhello\r\n").is_(250, "2.0.0")
    assert "event=wrong_port" not in srv.log()


def test_submission_login_and_relay_work(srv):
    """The ports the words name really work: log in and send to another domain there."""
    s = smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], timeout=10, context=tls_context())
    try:
        s.login(ALICE, PASSWORD)
        refused = s.sendmail(ALICE, [REMOTE], b"From: <alice@example.test>\r\nSubject: out\r\n\r\nhi\r\n")
        assert refused == {}
    finally:
        s.close()
    s = smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=10)
    try:
        s.starttls(context=tls_context())
        s.login(ALICE, PASSWORD)
        assert s.sendmail(ALICE, [REMOTE], b"From: <alice@example.test>\r\nSubject: out2\r\n\r\nhi\r\n") == {}
    finally:
        s.close()
    assert "event=wrong_port" not in srv.log()
