"""Recipient decisions: local users, postmaster, relaying, tricky addresses, and the
explaining 503 at DATA — seen through a raw socket and through real clients."""
import re
import smtplib
import subprocess

import pytest

from helpers import message


def test_null_sender_accepted(server):
    with server.connect() as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<>")
        assert r.is_(250, "2.1.0"), r
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        r = c.data(message("bounce", sender=""))
        assert r.is_(250, "2.0.0"), r
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    assert msgs[0].read_bytes().startswith(b"Return-Path: <>\n")


@pytest.mark.parametrize("rcpt", ["postmaster", "postmaster@example.test"])
def test_postmaster_always_accepted(server, rcpt):
    with server.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r.is_(250, "2.1.5"), r
        r = c.data(message("to " + rcpt))
        assert r.is_(250, "2.0.0"), r
    msgs = server.wait_delivered("postmaster@example.test", 1)
    assert len(msgs) == 1, "nothing in %s" % server.maildir("postmaster@example.test")
    assert ("Subject: to " + rcpt).encode() in msgs[0].read_bytes()
    assert msgs[0].parent.name == "new"


def test_unknown_local_user(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        r = c.cmd("RCPT TO:<bob@example.test>")
        assert r.is_(550, "5.1.1"), r
        assert "no mailbox" in r.text.lower() and "bob" in r.text, r


def test_relay_refused_without_login(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        r = c.cmd("RCPT TO:<x@remote.example>")
        assert r.is_(554, "5.7.1"), r
        assert "relay" in r.text.lower(), r


@pytest.mark.parametrize("rcpt", [
    "user%other@example.test",
    "x%remote.example@example.test",
    "alice%remote.example@example.test",
    "other!user@example.test",
    "remote.example!alice@example.test",
    '"user@other.example"@example.test',
    '"alice@remote.example"@example.test',
])
def test_routing_tricks_are_unknown_users(server, rcpt):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r.is_(550, "5.1.1"), "%s: %r" % (rcpt, r)


def test_source_route_is_relaying(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        r = c.cmd("RCPT TO:<@example.test:user@other.example>")
        assert r.is_(554, "5.7.1"), r


def test_trailing_dot_domain_refused(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        r = c.cmd("RCPT TO:<alice@example.test.>")
        assert r.is_(501, "5.1.3"), r


def test_upper_case_address_delivered_to_alice(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        r = c.cmd("RCPT TO:<ALICE@EXAMPLE.TEST>")
        assert r.is_(250, "2.1.5"), r
        assert c.data(message("upper")).is_(250, "2.0.0")
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    assert b"Subject: upper" in msgs[0].read_bytes()


def test_explaining_503(server):
    with server.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
        assert c.cmd("RCPT TO:<x@remote.example>").is_(554, "5.7.1")
        assert c.cmd("RCPT TO:<bob@example.test>").is_(550, "5.1.1")
        r = c.cmd("DATA")
        assert r.is_(503, "5.5.1"), r
        for raw in r.raw_lines[:-1]:
            assert raw.startswith(b"503-5.5.1 "), r
        assert r.raw_lines[-1].startswith(b"503 5.5.1 "), r
        assert len(r.lines) >= 3, "expected a multi-line explanation: %r" % r
        text = r.text
        low = text.lower()
        assert "x@remote.example" in text and "bob@example.test" in text, r
        assert "relay" in low and re.search(r"\blog(ged)?[ -]?in\b", low), r
        assert "no mailbox" in low, r
        # the last line is the fix, not one of the refused addresses
        assert "x@remote.example" not in r.lines[-1] and "bob@example.test" not in r.lines[-1], r
        # the session is still usable: the transaction can be fixed
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        assert c.data(message("after 503")).is_(250, "2.0.0")
    assert len(server.wait_delivered("alice@example.test", 1)) == 1


def test_data_without_any_rcpt(server):
    with server.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
        r = c.cmd("DATA")
        assert r.is_(503, "5.5.1"), r
        assert "no rcpt" in r.text.lower(), r
        for raw in r.raw_lines[:-1]:
            assert raw.startswith(b"503-5.5.1 "), r
        assert r.raw_lines[-1].startswith(b"503 5.5.1 "), r


def test_smtplib_sendmail_all_refused(server):
    with smtplib.SMTP(server.host, server.port, timeout=10) as s:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as ei:
            s.sendmail("a@b.example", ["x@remote.example", "bob@example.test"], message("nope"))
        refused = ei.value.recipients
        assert refused["x@remote.example"][0] == 554
        assert b"relay" in refused["x@remote.example"][1].lower()
        assert refused["bob@example.test"][0] == 550


def test_smtplib_data_after_refusals(server):
    with smtplib.SMTP(server.host, server.port, timeout=10) as s:
        s.ehlo("client.example")
        assert s.mail("a@b.example")[0] == 250
        assert s.rcpt("x@remote.example")[0] == 554
        assert s.rcpt("bob@example.test")[0] == 550
        with pytest.raises(smtplib.SMTPDataError) as ei:
            s.data(message("nope"))
        assert ei.value.smtp_code == 503
        msg = ei.value.smtp_error
        assert b"5.5.1" in msg and b"x@remote.example" in msg and b"bob@example.test" in msg, msg
        # docmd sees the same reply
        s.rset()
        s.mail("a@b.example")
        s.rcpt("x@remote.example")
        code, msg = s.docmd("DATA")
        assert code == 503 and b"relay" in msg.lower(), msg


def test_swaks_shows_relay_refusal(server):
    p = subprocess.run(["swaks", "--server", "%s:%d" % (server.host, server.port),
                        "--to", "x@remote.example", "--from", "a@b.example",
                        "--helo", "client.example", "--timeout", "10"],
                       capture_output=True, text=True, timeout=30, errors="replace")
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "554" in out and "relay" in out.lower(), out


def test_curl_shows_relay_refusal(server, tmp_path):
    f = tmp_path / "msg.txt"
    f.write_bytes(message("curl relay"))
    p = subprocess.run(["curl", "-v", "-sS", "--max-time", "15",
                        "smtp://%s:%d/client.example" % (server.host, server.port),
                        "--mail-from", "a@b.example", "--mail-rcpt", "x@remote.example",
                        "--upload-file", str(f)],
                       capture_output=True, text=True, timeout=30, errors="replace")
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "554" in out and "relay" in out.lower(), out
