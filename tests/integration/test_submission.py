"""Submission (RFC 6409 / RFC 8314): real clients log in over STARTTLS or implicit TLS and
send; the submission port requires login; senders must be the login's own addresses."""
import os
import smtplib

import pytest

from submission_support import (
    PASSWORD, auth_plain, connect, connect_implicit, connect_tls,
    make_sub_server, run, simple_msg, smtplib_login, tls_context, wait_log,
)
from helpers import unfolded_headers

ALICE = "alice@example.test"
REMOTE = "someone@remote.example"


@pytest.fixture
def srv(server_factory):
    return make_sub_server(server_factory)


def _received(data):
    return [v for n, v in unfolded_headers(data) if n.lower() == "received"]


def _assert_delivered_via_tls_auth(srv, subject):
    msgs = srv.wait_delivered(ALICE, 1)
    assert len(msgs) == 1, "no message delivered to alice; log:\n%s" % srv.log()[-3000:]
    data = msgs[0].read_bytes()
    assert ("Subject: " + subject).encode() in data, data[:2000]
    rec = _received(data)
    assert rec, data[:2000]
    assert "ESMTPSA" in rec[0], rec[0]
    assert "using TLSv1." in rec[0], rec[0]
    # the delivered copy is in <data>/mail/example.test/alice/new
    assert msgs[0].parent == srv.data_dir / "mail" / "example.test" / "alice" / "new", msgs[0]
    return data


# -- real clients ------------------------------------------------------------------

def test_smtplib_starttls_login_sends_local_and_remote(srv):
    s = smtplib_login(srv)
    try:
        refused = s.sendmail(ALICE, [ALICE], simple_msg(subject="smtplib local"))
        assert refused == {}
        # NOTIFY=NEVER: the undeliverable .example address must not put a report in
        # alice's mailbox, which the check below counts.
        refused = s.sendmail(ALICE, [REMOTE], simple_msg(to=REMOTE, subject="smtplib remote"),
                             rcpt_options=["NOTIFY=NEVER"])
        assert refused == {}
    finally:
        s.quit()
    _assert_delivered_via_tls_auth(srv, "smtplib local")
    # remote mail is accepted and handed to outbound delivery (.example names never
    # leave the machine: the resolver answers RFC 6761 names itself)
    m = wait_log(srv, r"event=(deferred|bounced)\b[^\n]*to=<%s>" % REMOTE)
    assert m, srv.log()[-3000:]


def test_swaks_starttls_auth(srv):
    for mech in ("PLAIN", "LOGIN"):
        p = run(["swaks", "--server", "127.0.0.1:%d" % srv.ports["submission"], "--tls",
                 "--auth", mech, "--auth-user", ALICE, "--auth-password", PASSWORD,
                 "--from", ALICE, "--to", ALICE, "--helo", "client.example",
                 "--header", "Subject: swaks %s" % mech, "--timeout", "10"])
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        assert p.returncode == 0, out
        assert "235 2.7.0" in out and "250 2.0.0" in out, out
    msgs = srv.wait_delivered(ALICE, 2)
    assert len(msgs) == 2
    for m in msgs:
        rec = _received(m.read_bytes())
        assert "ESMTPSA" in rec[0] and "using TLSv1." in rec[0], rec


def _msmtp(srv, tmp_path, port, starttls, body, rcpt=ALICE, password=PASSWORD):
    conf = tmp_path / ("msmtprc-%d" % port)
    conf.write_text("defaults\naccount default\nhost 127.0.0.1\nport %d\ntls on\ntls_starttls %s\n"
                    "tls_certcheck off\nauth on\nuser %s\npassword %s\nfrom %s\ndomain client.example\n"
                    "timeout 15\n" % (port, "on" if starttls else "off", ALICE, password, ALICE))
    os.chmod(conf, 0o600)
    return run(["msmtp", "-C", str(conf), "-a", "default", rcpt], input=body,
               env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})


def test_msmtp_starttls_and_implicit(srv, tmp_path):
    body = b"From: <alice@example.test>\nTo: <alice@example.test>\nSubject: msmtp starttls\n\nhi\n"
    p = _msmtp(srv, tmp_path, srv.ports["submission"], True, body)
    assert p.returncode == 0, (p.stdout + p.stderr).decode("utf-8", "replace")
    _assert_delivered_via_tls_auth(srv, "msmtp starttls")
    body = b"From: <alice@example.test>\nTo: <alice@example.test>\nSubject: msmtp implicit\n\nhi\n"
    p = _msmtp(srv, tmp_path, srv.ports["submissions"], False, body)
    assert p.returncode == 0, (p.stdout + p.stderr).decode("utf-8", "replace")
    assert len(srv.wait_delivered(ALICE, 2)) == 2


def test_msmtp_wrong_password_fails(srv, tmp_path):
    body = b"From: <alice@example.test>\nTo: <alice@example.test>\nSubject: x\n\nhi\n"
    p = _msmtp(srv, tmp_path, srv.ports["submission"], True, body, password="wrong")
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode != 0, out
    assert "535" in out, out
    assert srv.maildir_messages(ALICE) == []


def _curl(url, tmp_path, subject, extra=()):
    f = tmp_path / "curl-msg.txt"
    f.write_bytes(b"From: <alice@example.test>\r\nTo: <alice@example.test>\r\nSubject: %s\r\n\r\nbody\r\n"
                  % subject.encode())
    return run(["curl", "-sS", "--max-time", "15", url, "-k", "--user", "%s:%s" % (ALICE, PASSWORD),
                "--mail-from", ALICE, "--mail-rcpt", ALICE, "--upload-file", str(f)] + list(extra))


def test_curl_ssl_reqd(srv, tmp_path):
    p = _curl("smtp://127.0.0.1:%d/client.example" % srv.ports["submission"], tmp_path, "curl starttls",
              ["--ssl-reqd"])
    assert p.returncode == 0, (p.stdout + p.stderr).decode("utf-8", "replace")
    _assert_delivered_via_tls_auth(srv, "curl starttls")


def test_curl_smtps_implicit(srv, tmp_path):
    p = _curl("smtps://127.0.0.1:%d/client.example" % srv.ports["submissions"], tmp_path, "curl smtps")
    assert p.returncode == 0, (p.stdout + p.stderr).decode("utf-8", "replace")
    _assert_delivered_via_tls_auth(srv, "curl smtps")


def test_smtplib_smtp_ssl_implicit(srv):
    s = smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], timeout=10, context=tls_context())
    try:
        code, resp = s.ehlo("client.example")
        assert code == 250
        assert s.has_extn("auth") and not s.has_extn("starttls"), resp
        s.login(ALICE, PASSWORD)
        assert s.sendmail(ALICE, [ALICE], simple_msg(subject="smtp_ssl")) == {}
    finally:
        s.quit()
    _assert_delivered_via_tls_auth(srv, "smtp_ssl")


def test_swaks_implicit_tlsc(srv):
    p = run(["swaks", "--server", "127.0.0.1:%d" % srv.ports["submissions"], "--tlsc",
             "--auth", "PLAIN", "--auth-user", ALICE, "--auth-password", PASSWORD,
             "--from", ALICE, "--to", ALICE, "--header", "Subject: swaks tlsc", "--timeout", "10"])
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode == 0, out
    _assert_delivered_via_tls_auth(srv, "swaks tlsc")


# -- submission requires login -----------------------------------------------------

@pytest.mark.parametrize("listener", ["submission", "submissions"])
def test_submission_requires_login(srv, listener):
    conn = connect_implicit(srv) if listener == "submissions" else connect_tls(srv, ehlo=False)
    with conn:
        conn.ehlo()
        r = conn.cmd("MAIL FROM:<alice@example.test>")
        assert r.is_(530, "5.7.0"), r
        assert "authentication required" in r.text.lower(), r
        assert "requires authentication" in r.text.lower(), r
        r = conn.cmd("RCPT TO:<alice@example.test>")
        assert r.code == 503 and r.enh == "5.5.1", r
        r = conn.cmd("DATA")
        assert r.is_(503, "5.5.1"), r
        assert len(r.raw_lines) >= 2, r
        assert "MAIL FROM:<alice@example.test>" in r.text or "<alice@example.test>" in r.text, r
        assert r.raw_lines[-1].startswith(b"503 5.5.1 Fix:"), r
        assert "requires authentication" in r.lines[-1].lower(), r
    assert srv.maildir_messages(ALICE) == []


def test_seed_scenario_503_names_the_recipients_smtplib(srv):
    # A mail program that does not log in, with smtplib on the submission port:
    # MAIL 530, RCPT 503 "No sender", DATA 503 naming whose message was not sent.
    s = smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=10)
    try:
        s.ehlo("client.example")
        s.starttls(context=tls_context())
        s.ehlo("client.example")
        code, msg = s.mail(ALICE)
        assert code == 530 and b"5.7.0" in msg, msg
        code, msg = s.rcpt("friend@elsewhere.example")
        assert code == 503 and b"No sender" in msg, msg
        with pytest.raises(smtplib.SMTPDataError) as ei:
            s.data(simple_msg(to="friend@elsewhere.example"))
        code, msg = ei.value.smtp_code, ei.value.smtp_error.decode()
        assert code == 503, ei.value
        assert "your message to friend@elsewhere.example was not sent" in msg.lower(), msg
        assert "MAIL FROM:<alice@example.test>: authentication required" in msg, msg
        assert msg.splitlines()[-1].startswith("5.5.1 Fix: log in"), msg
        # several recipients: the first few named, then a count
        s.rset()
        assert s.mail(ALICE)[0] == 530
        rcpts = ["r%d@elsewhere.example" % i for i in range(12)]   # more than bad_commands (10)
        for r in rcpts:
            assert s.rcpt(r)[0] == 503
        with pytest.raises(smtplib.SMTPDataError) as ei:
            s.data(simple_msg())
        msg = ei.value.smtp_error.decode()
        assert ("Your message to r0@elsewhere.example, r1@elsewhere.example, r2@elsewhere.example, "
                "r3@elsewhere.example and 8 more was not sent") in msg, msg
        assert "r4@" not in msg, msg
    finally:
        s.close()
    assert srv.maildir_messages(ALICE) == []


def test_submission_plaintext_mail_without_tls_refused(srv):
    # before STARTTLS, with no login: still 530 (no mail accepted in the clear without login)
    with connect(srv, "submission") as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<alice@example.test>")
        assert r.is_(530, "5.7.0"), r


# -- sender matching -------------------------------------------------------------------

def test_mail_from_someone_else_refused(srv):
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        r = c.cmd("MAIL FROM:<bob@example.test>")
        assert r.is_(553, "5.7.1"), r
        assert "alice@example.test" in r.text and "bob@example.test" in r.text, r
        # own address still fine afterwards
        assert c.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")


def test_mail_from_case_of_own_address_accepted(srv):
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        r = c.cmd("MAIL FROM:<Alice@Example.TEST>")
        assert r.is_(250, "2.1.0"), r


def test_alias_lets_user_send_as_alias(srv):
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        r = c.cmd("MAIL FROM:<info@example.test>")
        assert r.is_(553, "5.7.1"), r
    p = srv.cli("alias", "add", "info@example.test", ALICE)
    assert p.returncode == 0, p.stderr
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        r = c.cmd("MAIL FROM:<info@example.test>")
        assert r.is_(250, "2.1.0"), r
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        r = c.data(simple_msg(sender="info@example.test", subject="as alias"))
        assert r.is_(250, "2.0.0"), r
    # bob may not use alice's alias
    with connect_tls(srv) as c:
        assert auth_plain(c, "bob@example.test").is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<info@example.test>").is_(553, "5.7.1")


def test_sender_allow_address_and_domain(srv):
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<shared@example.test>").is_(553, "5.7.1")
        assert c.cmd("MAIL FROM:<anyone@other.example>").is_(553, "5.7.1")
    p = srv.cli("sender", "allow", ALICE, "shared@example.test")
    assert p.returncode == 0, p.stderr
    p = srv.cli("sender", "allow", ALICE, "@other.example")
    assert p.returncode == 0, p.stderr
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<shared@example.test>").is_(250, "2.1.0")
        assert c.cmd("RSET").code == 250
        assert c.cmd("MAIL FROM:<anyone@other.example>").is_(250, "2.1.0")
        assert c.cmd("RSET").code == 250
        assert c.cmd("MAIL FROM:<someone.else@other.example>").is_(250, "2.1.0")
        assert c.cmd("RSET").code == 250
        # the grant is for other.example only, not its subdomains nor other domains
        assert c.cmd("MAIL FROM:<x@sub.other.example>").is_(553, "5.7.1")
        assert c.cmd("MAIL FROM:<x@third.example>").is_(553, "5.7.1")
        assert c.cmd("MAIL FROM:<bob@example.test>").is_(553, "5.7.1")


# -- From: header check ---------------------------------------------------------------

def _send_with_from(srv, from_header):
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        return c.data(simple_msg(from_header=from_header, subject="from check"))


def test_from_header_of_someone_else_refused(srv):
    r = _send_with_from(srv, "\"Mark's email\" <bob@example.test>")
    assert r.is_(550, "5.7.1"), r
    assert "bob@example.test" in r.text, r
    assert srv.wait_delivered(ALICE, 1, timeout=1.0) == []


@pytest.mark.parametrize("from_header", [
    "Mark's email <alice@example.test>",
    "\"Doe, Alice\" <alice@example.test>",
    "alice@example.test (Alice)",
    "=?UTF-8?B?QWxpY2U=?= <alice@example.test>",
])
def test_from_header_own_address_forms_accepted(srv, from_header):
    r = _send_with_from(srv, from_header)
    assert r.is_(250, "2.0.0"), r
    assert len(srv.wait_delivered(ALICE, 1)) == 1


@pytest.mark.parametrize("from_header", [
    "<alice@example.test>, <bob@example.test>",                 # one of two is someone else's
    "alice@example.test,\r\n bob@example.test",                 # folded list
    "\"alice@example.test\" <bob@example.test>",                # own address only as display name
    "bob@example.test (alice@example.test)",                     # own address only in a comment
    "\"Doe, <alice@example.test>\" <bob@example.test>",          # own address inside a quoted name
    "Group: <bob@example.test>;",                                # group syntax
    "<BOB@EXAMPLE.TEST>",                                        # case does not help
])
def test_from_header_tricks_refused(srv, from_header):
    r = _send_with_from(srv, from_header)
    assert r.is_(550, "5.7.1"), (from_header, r)
    assert "bob@example.test" in r.text.lower(), r
    assert srv.wait_delivered(ALICE, 1, timeout=0.5) == []


def test_from_header_checked_with_bdat(srv):
    body = simple_msg(from_header="\"Mark's email\" <bob@example.test>", subject="bdat")
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        r = c.reply(timeout=30)
        assert r.is_(550, "5.7.1"), r
        assert "bob@example.test" in r.text, r
    assert srv.wait_delivered(ALICE, 1, timeout=0.5) == []


FILLER = "".join("X-Filler-%04d: %s\r\n" % (i, "f" * 60) for i in range(900))   # ~68 KB


def _send_raw(srv, content, bdat=False):
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        if isinstance(content, str):
            content = content.encode()
        if not bdat:
            return c.data(content)
        c.send(b"BDAT %d LAST\r\n" % len(content) + content)
        return c.reply(timeout=30)


@pytest.mark.parametrize("bdat", [False, True], ids=["DATA", "BDAT"])
def test_forged_from_after_66kb_of_filler_refused(srv, bdat):
    assert len(FILLER) > 66000
    content = "Subject: filler\r\n" + FILLER + "From: <bob@example.test>\r\n\r\nhello\r\n"
    r = _send_raw(srv, content, bdat)
    assert r.is_(550, "5.7.1"), r
    assert "bob@example.test" in r.text, r
    assert srv.wait_delivered(ALICE, 1, timeout=0.5) == []


@pytest.mark.parametrize("filler", [False, True], ids=["adjacent", "after-66kb"])
@pytest.mark.parametrize("bdat", [False, True], ids=["DATA", "BDAT"])
def test_second_from_after_a_legitimate_one_refused(srv, filler, bdat):
    content = ("From: <alice@example.test>\r\nSubject: two froms\r\n" + (FILLER if filler else "")
               + "from : Bob <bob@example.test>\r\n\r\nhello\r\n")
    r = _send_raw(srv, content, bdat)
    assert r.is_(550, "5.6.0"), r
    assert "2 From: header fields" in r.text and "RFC 5322 section 3.6" in r.text, r
    assert srv.wait_delivered(ALICE, 1, timeout=0.5) == []


def test_from_in_body_and_long_header_accepted(srv):
    # a long header with one legitimate From:, and "From:" lines in the body, are fine
    content = ("Subject: long header\r\n" + FILLER + "From: <alice@example.test>\r\n\r\n"
               "From: <bob@example.test>\r\nthat line is the body\r\n")
    r = _send_raw(srv, content)
    assert r.is_(250, "2.0.0"), r
    assert len(srv.wait_delivered(ALICE, 1)) == 1


def test_from_with_more_addresses_than_checked_refused(srv):
    many = ", ".join(["<alice@example.test>"] * 32 + ["<bob@example.test>"])
    r = _send_raw(srv, "From: %s\r\nSubject: many\r\n\r\nhello\r\n" % many)
    assert r.code == 550 and r.enh in ("5.6.0", "5.7.1"), r
    assert srv.wait_delivered(ALICE, 1, timeout=0.5) == []


def test_from_header_check_after_login_to_other_domain(srv):
    with connect_tls(srv, "submission") as c:
        assert auth_plain(c).is_(235, "2.7.0")
        r = c.cmd("MAIL FROM:<bob@example.test>")
        assert r.is_(553, "5.7.1"), r
        assert c.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert c.cmd("RCPT TO:<someone@remote.example>").is_(250, "2.1.5")
        r = c.data(simple_msg(from_header="<bob@example.test>", to="someone@remote.example"))
        assert r.is_(550, "5.7.1"), r


def test_received_header_protocols(server_factory):
    srv = make_sub_server(server_factory, plain=True, plain_auth="yes")
    # mx port with STARTTLS, no login: ESMTPS
    with connect_tls(srv, "smtp") as c:
        assert c.cmd("MAIL FROM:<x@y.example>").is_(250, "2.1.0")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        assert c.data(simple_msg(sender="x@y.example", subject="esmtps")).is_(250, "2.0.0")
    # plaintext port with login allowed: ESMTPA, and no claim of TLS
    with connect(srv, "plain") as c:
        c.ehlo()
        assert auth_plain(c).is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<alice@example.test>").is_(250, "2.1.0")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        assert c.data(simple_msg(subject="esmtpa")).is_(250, "2.0.0")
    msgs = srv.wait_delivered(ALICE, 2)
    assert len(msgs) == 2
    by_subject = {}
    for m in msgs:
        data = m.read_bytes()
        subj = [v for n, v in unfolded_headers(data) if n.lower() == "subject"][0]
        by_subject[subj] = _received(data)[0]
    rec = by_subject["esmtps"]
    assert "ESMTPS" in rec and "ESMTPSA" not in rec and "using TLSv1." in rec, rec
    rec = by_subject["esmtpa"]
    assert "ESMTPA" in rec and "ESMTPSA" not in rec and "TLS" not in rec, rec


def test_sender_deny_and_alias_del_take_effect(srv):
    assert srv.cli("sender", "allow", ALICE, "shared@example.test").returncode == 0
    assert srv.cli("alias", "add", "info@example.test", ALICE).returncode == 0
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<shared@example.test>").is_(250, "2.1.0")
        assert c.cmd("RSET").code == 250
        assert c.cmd("MAIL FROM:<info@example.test>").is_(250, "2.1.0")
    p = srv.cli("sender", "deny", ALICE, "shared@example.test")
    assert p.returncode == 0, p.stderr
    p = srv.cli("alias", "del", "info@example.test")
    assert p.returncode == 0, p.stderr
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<shared@example.test>").is_(553, "5.7.1")
        assert c.cmd("MAIL FROM:<info@example.test>").is_(553, "5.7.1")


def test_check_from_header_off(server_factory):
    srv = make_sub_server(server_factory, auth={"check_from_header": "no"})
    r = _send_with_from(srv, "\"Mark's email\" <bob@example.test>")
    assert r.is_(250, "2.0.0"), r
    # the envelope sender is still checked
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<bob@example.test>").is_(553, "5.7.1")
