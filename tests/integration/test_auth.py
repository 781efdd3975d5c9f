"""SMTP AUTH (RFC 4954): PLAIN and LOGIN, errors, TLS requirement, app passwords,
throttling of failed logins."""
import datetime
import re
import smtplib

import pytest

from submission_support import (
    PASSWORD, app_password_from, auth_plain, b64, connect, connect_implicit, connect_tls,
    ehlo_auth_line, ehlo_keywords, make_sub_server, plain_token, smtplib_login, wait_log,
)

ALICE = "alice@example.test"
REF_RE = re.compile(r"\s*\(ref [0-9.]+\)")


@pytest.fixture
def srv(server_factory):
    return make_sub_server(server_factory)


def _no_ref(text):
    return REF_RE.sub("", text)


# -- success paths -------------------------------------------------------------------

def test_auth_plain_initial_response(srv):
    with connect_tls(srv) as c:
        r = auth_plain(c)
        assert r.is_(235, "2.7.0"), r
        assert c.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
    assert wait_log(srv, r"event=login\b[^\n]*user=alice@example\.test[^\n]*mech=PLAIN[^\n]*tls=yes")


def test_auth_plain_without_initial_response(srv):
    with connect_tls(srv) as c:
        r = c.cmd("AUTH PLAIN")
        assert r.code == 334, r
        assert r.lines[0].strip() == "", r     # RFC 4954: empty challenge for PLAIN
        r = c.cmd(plain_token(ALICE, PASSWORD))
        assert r.is_(235, "2.7.0"), r


def test_auth_plain_empty_initial_response_equals(srv):
    # "=" is a present but empty initial response (RFC 4954 §4): PLAIN needs user and password
    with connect_tls(srv) as c:
        r = c.cmd("AUTH PLAIN =")
        assert r.is_(501, "5.5.2"), r
        # not logged in; a correct login still works afterwards
        assert auth_plain(c).is_(235, "2.7.0")


def test_auth_login_multi_step(srv):
    with connect_tls(srv) as c:
        r = c.cmd("AUTH LOGIN")
        assert r.code == 334 and r.lines[0].strip() == b64("Username:"), r
        r = c.cmd(b64(ALICE))
        assert r.code == 334 and r.lines[0].strip() == b64("Password:"), r
        r = c.cmd(b64(PASSWORD))
        assert r.is_(235, "2.7.0"), r
    assert wait_log(srv, r"event=login\b[^\n]*user=alice@example\.test[^\n]*mech=LOGIN")


def test_auth_login_with_initial_username(srv):
    with connect_tls(srv) as c:
        r = c.cmd("AUTH LOGIN " + b64(ALICE))
        assert r.code == 334 and r.lines[0].strip() == b64("Password:"), r
        assert c.cmd(b64(PASSWORD)).is_(235, "2.7.0")


def test_auth_on_implicit_port(srv):
    with connect_implicit(srv) as c:
        c.ehlo()
        assert auth_plain(c).is_(235, "2.7.0")


def test_mail_from_with_auth_param_empty(srv):
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        r = c.cmd("MAIL FROM:<alice@example.test> AUTH=<>")
        assert r.is_(250, "2.1.0"), r
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")


# -- failures -------------------------------------------------------------------------

def test_wrong_password_and_unknown_user_same_reply(srv):
    with connect_tls(srv) as c:
        r1 = auth_plain(c, ALICE, "wrong")
        assert r1.is_(535, "5.7.8"), r1
        assert "password" in r1.text.lower(), r1
        r2 = auth_plain(c, "nobody@example.test", "wrong")
        assert r2.is_(535, "5.7.8"), r2
        assert _no_ref(r1.text) == _no_ref(r2.text), (r1, r2)
        # LOGIN too
        assert c.cmd("AUTH LOGIN").code == 334
        assert c.cmd(b64("nobody@example.test")).code == 334
        r3 = c.cmd(b64("x"))
        assert r3.is_(535, "5.7.8") and _no_ref(r3.text) == _no_ref(r1.text), r3
        # the session stays usable: a correct login now works
        assert auth_plain(c).is_(235, "2.7.0")
    m = wait_log(srv, r"event=login_failed\b[^\n]*reason=")
    assert m, srv.log()[-3000:]


def test_535_hint_speaks_of_postern_app_passwords(srv):
    # Postern has no two-step login; its hint names the app passwords it does offer
    # (the `postern app-password add` command), and so does the 503 that follows.
    with connect_tls(srv) as c:
        r = auth_plain(c, ALICE, "wrong")
        assert r.is_(535, "5.7.8"), r
        assert "two-step" not in r.text.lower(), r
        assert "postern app-password add" in r.text, r
        assert c.cmd("MAIL FROM:<alice@example.test>").code == 530
        c.cmd("RCPT TO:<friend@elsewhere.example>")
        r = c.cmd("DATA")
        assert r.is_(503, "5.5.1"), r
        assert "two-step" not in r.text.lower(), r
        assert "postern app-password add" in r.text, r
    p = srv.cli("explain", "535 5.7.8 Authentication credentials invalid")
    assert p.returncode == 0, p
    assert "Postern has no two-step login" in " ".join(p.stdout.split()), p.stdout


def test_smtplib_wrong_password_raises_535(srv):
    s = smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=10)
    try:
        s.starttls(context=__import__("submission_support").tls_context())
        with pytest.raises(smtplib.SMTPAuthenticationError) as ei:
            s.login(ALICE, "wrong")
        assert ei.value.smtp_code == 535, ei.value
        assert b"5.7.8" in ei.value.smtp_error, ei.value
    finally:
        s.close()


def test_malformed_base64(srv):
    with connect_tls(srv) as c:
        r = c.cmd("AUTH PLAIN !!!not-base64!!!")
        assert r.is_(501, "5.5.2"), r
        assert "base64" in r.text.lower(), r
        assert c.cmd("AUTH LOGIN").code == 334
        r = c.cmd("@@@@")
        assert r.is_(501, "5.5.2"), r
        assert auth_plain(c).is_(235, "2.7.0")


def test_malformed_plain_form(srv):
    with connect_tls(srv) as c:
        r = c.cmd("AUTH PLAIN " + b64("no-nul-separators"))
        assert r.is_(501, "5.5.2"), r


def test_cancel_with_star(srv):
    with connect_tls(srv) as c:
        assert c.cmd("AUTH LOGIN").code == 334
        r = c.cmd("*")
        assert r.is_(501, "5.7.0"), r
        assert "cancel" in r.text.lower(), r
        assert c.cmd("AUTH PLAIN").code == 334
        assert c.cmd("*").is_(501, "5.7.0")
        assert auth_plain(c).is_(235, "2.7.0")


def test_second_auth_after_success(srv):
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        r = auth_plain(c, "bob@example.test")
        assert r.is_(503, "5.5.1"), r
        assert "already" in r.text.lower(), r


def test_unknown_mechanism(srv):
    with connect_tls(srv) as c:
        r = c.cmd("AUTH CRAM-MD5")
        assert r.is_(504, "5.5.4"), r
        assert "PLAIN" in r.text and "LOGIN" in r.text, r


def test_auth_during_transaction_refused(srv):
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        # not logged in again, but it must not be a success either
        r = c.cmd("AUTH PLAIN " + plain_token(ALICE, PASSWORD))
        assert r.code == 503 and r.enh == "5.5.1", r


def test_authzid_of_other_user_refused(srv):
    with connect_tls(srv) as c:
        r = c.cmd("AUTH PLAIN " + plain_token(ALICE, PASSWORD, authzid="bob@example.test"))
        assert r.is_(535, "5.7.8"), r


# -- TLS requirement -------------------------------------------------------------------

def test_auth_before_starttls_refused(srv):
    # (on the mx listener AUTH is not offered at all: test_wrong_port.py)
    with connect(srv, "submission") as c:
        c.ehlo()
        r = auth_plain(c)
        assert r.is_(530, "5.7.0"), r
        assert "STARTTLS" in r.text, r
        # LOGIN too, and before any credentials are asked for
        r = c.cmd("AUTH LOGIN")
        assert r.is_(530, "5.7.0"), r


def test_auth_on_plain_port_without_allow_plaintext(server_factory):
    srv = make_sub_server(server_factory, plain=True)
    with connect(srv, "plain") as c:
        r = c.ehlo()
        assert ehlo_auth_line(r) is None, r
        assert "STARTTLS" not in ehlo_keywords(r), r
        r = auth_plain(c)
        assert r.is_(538, "5.7.11"), r
        assert "encrypt" in r.text.lower(), r


def test_auth_on_plain_port_with_allow_plaintext(server_factory):
    srv = make_sub_server(server_factory, plain=True, plain_auth="yes")
    with connect(srv, "plain") as c:
        r = c.ehlo()
        auth = ehlo_auth_line(r)
        assert auth and "PLAIN" in auth and "LOGIN" in auth, r
        assert auth_plain(c).is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
    assert wait_log(srv, r"event=login\b[^\n]*user=alice@example\.test[^\n]*tls=no"), srv.log()[-3000:]


# -- app passwords ---------------------------------------------------------------------

def test_app_password(srv):
    p = srv.cli("app-password", "add", ALICE, "--name", "phone")
    assert p.returncode == 0, p.stderr
    pw = app_password_from(p.stdout)
    assert pw, "no line of dash-separated 4-character groups in: %r" % p.stdout
    assert pw != PASSWORD
    with connect_tls(srv) as c:
        assert auth_plain(c, ALICE, pw).is_(235, "2.7.0")
    assert wait_log(srv, r"event=login\b[^\n]*user=alice@example\.test[^\n]*password=app:phone"), srv.log()[-3000:]
    p = srv.cli("app-password", "list", ALICE)
    assert p.returncode == 0 and "phone" in p.stdout, p
    assert pw not in p.stdout, "app-password list shows the password"
    p = srv.cli("app-password", "revoke", ALICE, "phone")
    assert p.returncode == 0, p.stderr
    with connect_tls(srv) as c:
        assert auth_plain(c, ALICE, pw).is_(535, "5.7.8")


# -- throttling ------------------------------------------------------------------------

def test_failed_logins_throttle_the_pair_not_the_account(server_factory):
    srv = make_sub_server(server_factory, auth={"account_ip_failures": 3, "window": "60s", "block": "60s"})
    for i in range(3):
        with connect_tls(srv) as c:
            r = auth_plain(c, ALICE, "wrong%d" % i)
            assert r.is_(535, "5.7.8"), (i, r)
    with connect_tls(srv) as c:
        r = auth_plain(c)          # correct password, but this account from this address is blocked
        assert r.is_(454, "4.7.0"), r
        assert "failed logins as alice@example.test" in r.text, r
        assert re.search(r"blocked until \d\d:\d\d UTC", r.text), r
    with connect_tls(srv) as c:
        # another account from the same address is not blocked (an office shares it)
        assert auth_plain(c, "bob@example.test").is_(235, "2.7.0")
    # the time named is within the block (60 s) from now, in UTC
    m = re.search(r"(\d\d):(\d\d) UTC", r.text)
    now = datetime.datetime.now(datetime.timezone.utc)
    said = now.replace(hour=int(m.group(1)), minute=int(m.group(2)), second=0, microsecond=0)
    diffs = [abs((said + datetime.timedelta(days=d) - now).total_seconds()) for d in (-1, 0, 1)]
    assert min(diffs) <= 180, (r, now)
    # another client address still logs in to the same account (real client)
    s = smtplib_login(srv, source="127.0.0.2")
    try:
        assert s.sendmail(ALICE, [ALICE], b"From: <alice@example.test>\r\nSubject: t\r\n\r\nx\r\n") == {}
    finally:
        s.quit()
    log = srv.log()
    assert re.search(r"event=login_failed\b[^\n]*client=127\.0\.0\.1[^\n]*reason=", log), log[-3000:]
    assert re.search(r"event=login\b[^\n]*client=127\.0\.0\.2[^\n]*user=alice@example\.test", log), log[-3000:]


def test_passwords_never_logged(srv):
    secret_wrong = "Wr0ng-Pa55word-XYZ"
    with connect_tls(srv) as c:
        assert auth_plain(c, ALICE, secret_wrong).is_(535, "5.7.8")
        assert c.cmd("AUTH LOGIN").code == 334
        assert c.cmd(b64(ALICE)).code == 334
        assert c.cmd(b64(secret_wrong)).is_(535, "5.7.8")
        assert auth_plain(c).is_(235, "2.7.0")
    assert wait_log(srv, r"event=login\b")
    log = srv.log()
    for needle in (secret_wrong, plain_token(ALICE, secret_wrong), b64(secret_wrong),
                   plain_token(ALICE, PASSWORD), "secret"):
        assert needle not in log, "log contains %r" % needle


def test_account_ip_pair_block_leaves_other_accounts(server_factory):
    srv = make_sub_server(server_factory, auth={"ip_failures": 50, "account_ip_failures": 3,
                                                 "window": "60s", "block": "60s"})
    with connect_tls(srv) as c:
        for i in range(3):
            r = auth_plain(c, ALICE, "bad%d" % i)
            assert r.is_(535, "5.7.8"), (i, r)
    with connect_tls(srv) as c:
        r = auth_plain(c)
        assert r.is_(454, "4.7.0") and "blocked until" in r.text.lower(), r
    with connect_tls(srv) as c:              # another account from the same address: fine
        assert auth_plain(c, "bob@example.test").is_(235, "2.7.0")
    s = smtplib_login(srv, source="127.0.0.2")  # the same account from another address: fine
    s.quit()


def test_deleted_user_cannot_log_in(srv):
    p = srv.cli("user", "del", "bob@example.test")
    assert p.returncode == 0, p.stderr
    with connect_tls(srv) as c:
        r = auth_plain(c, "bob@example.test")
        assert r.is_(535, "5.7.8"), r
