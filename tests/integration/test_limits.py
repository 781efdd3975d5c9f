"""Outbound abuse limits (issue 12): messages per hour and recipients per day per
account and per sending domain, per-user overrides (postern user limit), counts that
survive a restart, the 451 4.7.1 words (limit, count, when sending resumes), the one
notice per account per day in the postmaster's Maildir, and the burst hold.

Real clients: smtplib logs in on a plaintext submission listener (allow_plaintext_auth,
to keep TLS handshakes out of the loops) and sends.  Every loop is bounded by a small
count; limits are set small in the test configuration."""
import email
import re
import smtplib
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from submission_support import wait_ports, wait_log  # noqa: E402

PASSWORD = "secret"
USERS = ("alice@example.test", "bob@example.test", "carol@example.test")
PLAIN = ("\n[listener plain]\naddress = 127.0.0.1\nport = 0\nrole = submission\ntls = none\n"
         "allow_plaintext_auth = yes\n")
RESUME_RE = re.compile(r"Sending resumes at (\d\d):(\d\d) UTC \(in (\d+) minutes?\)")


def start(server_factory, **limits):
    base = {"messages_per_hour": "100", "recipients_per_day": "1000", "domain_messages_per_hour": "0",
            "domain_recipients_per_day": "0"}
    base.update({k: str(v) for k, v in limits.items()})
    srv = server_factory(users=USERS, limits=base, extra=PLAIN, start=False)
    srv.start()
    srv.ports = wait_ports(srv, ["plain"])
    return srv


def restart(srv):
    srv.restart()
    srv.ports = wait_ports(srv, ["plain"])
    # The control socket (postern queue release) comes up after the listeners.
    assert wait_log(srv, r"event=started "), srv.log()[-2000:]


def login(srv, user):
    c = smtplib.SMTP("127.0.0.1", srv.ports["plain"], timeout=10)
    c.ehlo("client.test")
    c.login(user, PASSWORD)
    return c


def send(c, sender, rcpts, subject="hello"):
    """One transaction; returns (MAIL reply, [RCPT replies], DATA reply or None)."""
    mail = c.mail(sender)
    if mail[0] != 250:
        c.rset()
        return mail, [], None
    rr = [c.rcpt(r) for r in rcpts]
    if not any(code == 250 for code, _ in rr):
        c.rset()
        return mail, rr, None
    body = "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nbody\r\n" % (sender, rcpts[0], subject)
    return mail, rr, c.data(body)


def text(reply):
    return reply[1].decode("utf-8", "replace").replace("\n", " ")


def notices(srv, subject_part, want=None, timeout=10.0):
    """Messages in the postmaster's Maildir whose Subject has subject_part (bounded poll
    until `want` are there, then a short settle to catch any extra)."""
    md = srv.data_dir / "mail" / "example.test" / "postmaster"
    deadline = time.monotonic() + timeout
    found = []
    for _ in range(400):
        found = []
        for sub in ("new", "cur"):
            d = md / sub
            for p in sorted(d.iterdir()) if d.is_dir() else []:
                m = email.message_from_bytes(p.read_bytes())
                if subject_part in (m["Subject"] or ""):
                    found.append(m)
        if (want is None or len(found) >= want) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    return found


def check_resume(reply_text, max_minutes):
    m = RESUME_RE.search(reply_text)
    assert m, reply_text
    mins = int(m.group(3))
    assert 1 <= mins <= max_minutes, reply_text
    want = time.gmtime(time.time() + mins * 60)
    # The clock time said is the moment "in N minutes" names (give or take the minute turning).
    said = int(m.group(1)) * 60 + int(m.group(2))
    assert abs(said - (want.tm_hour * 60 + want.tm_min)) % 1440 in (0, 1, 1439), reply_text


def test_messages_per_hour_words_restart_and_one_notice(server_factory):
    srv = start(server_factory, messages_per_hour=3)
    c = login(srv, "alice@example.test")
    for i in range(3):
        mail, rr, data = send(c, "alice@example.test", ["bob@example.test"], "m%d" % i)
        assert mail[0] == 250 and data[0] == 250, (mail, rr, data)
    mail, _, _ = send(c, "alice@example.test", ["bob@example.test"])
    t = text(mail)
    assert mail[0] == 451 and t.startswith("4.7.1"), mail
    assert "You have sent 3 messages in the last hour; the limit for your account is 3 per hour." in t, t
    assert "If you need a higher limit, ask your administrator (postern user limit)." in t, t
    assert "(ref " in t, t
    check_resume(t, 60)
    assert re.search(r"event=limit_reached .*account=alice@example\.test limit=messages_per_hour max=3 count=3",
                     srv.log()), srv.log()[-3000:]
    # A second refusal the same day: still one notice.
    mail, _, _ = send(c, "alice@example.test", ["bob@example.test"])
    assert mail[0] == 451
    c.quit()
    # bob is not alice: his own count.
    b = login(srv, "bob@example.test")
    assert send(b, "bob@example.test", ["carol@example.test"])[2][0] == 250
    b.quit()
    got = notices(srv, "Sending limit reached: alice@example.test", want=1)
    assert len(got) == 1, [m["Subject"] for m in got]
    body = got[0].get_payload()
    assert "3 messages in the last hour, and the limit is 3 per hour" in body, body
    assert "postern user limit alice@example.test --messages-per-hour N" in body, body
    # The counts and the notice already sent survive a restart.
    restart(srv)
    c = login(srv, "alice@example.test")
    mail, _, _ = send(c, "alice@example.test", ["bob@example.test"])
    assert mail[0] == 451 and "You have sent 3 messages in the last hour" in text(mail), mail
    c.quit()
    assert len(notices(srv, "Sending limit reached: alice@example.test")) == 1


def test_recipients_per_day_counts_the_transaction(server_factory):
    srv = start(server_factory, recipients_per_day=5)
    c = login(srv, "alice@example.test")
    mail, rr, data = send(c, "alice@example.test", ["bob@example.test", "carol@example.test", "postmaster@example.test"])
    assert data[0] == 250 and all(code == 250 for code, _ in rr), rr
    # Three sent: two more fit, the third of this message does not.
    mail, rr, data = send(c, "alice@example.test", ["bob@example.test", "carol@example.test", "alice@example.test"])
    assert [code for code, _ in rr] == [250, 250, 451], rr
    t = text(rr[2])
    assert t.startswith("4.7.1"), t
    assert ("You have sent to 3 recipients in the last 24 hours, and this message has 2 more; "
            "the limit for your account is 5 recipients per day.") in t, t
    assert "Sending resumes at" in t and "(ref " in t, t
    assert data[0] == 250, data   # the accepted two still go
    # Five sent: the next message's first recipient is refused at once.
    mail, rr, data = send(c, "alice@example.test", ["bob@example.test"])
    assert mail[0] == 250 and rr[0][0] == 451 and data is None, (mail, rr)
    assert "You have sent to 5 recipients in the last 24 hours" in text(rr[0])
    c.quit()
    assert re.search(r"event=limit_reached .*account=alice@example\.test limit=recipients_per_day max=5 count=5",
                     srv.log())


def test_user_limit_override_cli(server_factory):
    srv = start(server_factory, messages_per_hour=3)
    p = srv.cli("user", "limit", "alice@example.test", "--messages-per-hour", "1", "--recipients-per-day", "0")
    assert p.returncode == 0, p.stderr
    assert "messages/hour 1 (own), recipients/day none (own)" in p.stdout, p.stdout
    p = srv.cli("user", "show", "alice@example.test")
    assert p.returncode == 0 and "sending limits: messages/hour 1 (own), recipients/day none (own)" in p.stdout, p.stdout
    p = srv.cli("user", "list")
    assert "alice@example.test  messages/hour 1 (own)" in p.stdout, p.stdout
    assert re.search(r"^bob@example\.test$", p.stdout, re.M), p.stdout   # no override: nothing added
    p = srv.cli("user", "show", "bob@example.test")
    assert "messages/hour 3 (default), recipients/day 1000 (default)" in p.stdout, p.stdout
    # The running server reads the override at the next MAIL.
    c = login(srv, "alice@example.test")
    assert send(c, "alice@example.test", ["bob@example.test"])[2][0] == 250
    mail, _, _ = send(c, "alice@example.test", ["bob@example.test"])
    assert mail[0] == 451 and "the limit set for your account is 1 per hour" in text(mail), mail
    p = srv.cli("user", "limit", "alice@example.test", "--clear")
    assert p.returncode == 0 and "messages/hour 3 (default)" in p.stdout, p.stdout
    assert send(c, "alice@example.test", ["bob@example.test"])[2][0] == 250   # 2 of the default 3
    c.quit()
    for bad in (["--messages-per-hour", "lots"], ["--frobnicate"]):
        p = srv.cli("user", "limit", "alice@example.test", *bad)
        assert p.returncode == 2, p
    p = srv.cli("user", "limit", "nobody@example.test", "--messages-per-hour", "5")
    assert p.returncode == 1 and "no user nobody@example.test" in p.stderr


def test_domain_limit_counts_every_account(server_factory):
    srv = start(server_factory, domain_messages_per_hour=2)
    a = login(srv, "alice@example.test")
    b = login(srv, "bob@example.test")
    assert send(a, "alice@example.test", ["carol@example.test"])[2][0] == 250
    assert send(b, "bob@example.test", ["carol@example.test"])[2][0] == 250
    mail, _, _ = send(a, "alice@example.test", ["carol@example.test"])
    t = text(mail)
    assert mail[0] == 451, mail
    assert "Your domain example.test has sent 2 messages in the last hour; the limit for the domain is 2 per hour." in t
    assert "[limits] domain_messages_per_hour" in t, t
    a.quit()
    b.quit()
    assert len(notices(srv, "Sending limit reached: example.test (domain_messages_per_hour)", want=1)) == 1


def test_refused_messages_do_not_count(server_factory):
    """A message refused at the end of data (here: its From: is not the login's) is not
    counted; an unauthenticated client on the mx port is not counted either."""
    srv = start(server_factory, messages_per_hour=1)
    c = login(srv, "alice@example.test")
    c.mail("alice@example.test")
    c.rcpt("bob@example.test")
    code, _ = c.data("From: <bob@example.test>\r\nSubject: forged\r\n\r\nx\r\n")
    assert code == 550
    mail, _, data = send(c, "alice@example.test", ["bob@example.test"])
    assert data[0] == 250, (mail, data)
    c.quit()
    assert "event=limit_reached" not in srv.log()


def test_explain_knows_the_refusal(server_factory):
    srv = start(server_factory, messages_per_hour=1)
    c = login(srv, "alice@example.test")
    assert send(c, "alice@example.test", ["bob@example.test"])[2][0] == 250
    mail, _, _ = send(c, "alice@example.test", ["bob@example.test"])
    c.quit()
    assert mail[0] == 451
    reply = "451 " + mail[1].decode().replace("\n", " ")
    p = srv.cli("explain", reply)
    assert p.returncode == 0, p.stderr
    assert "outbound limit for this account" in p.stdout and "throttled" in p.stdout, p.stdout


def test_burst_is_seen_and_logged_once_when_hold_is_off(server_factory):
    """burst_hold = no (the default): a burst is logged once a day, nothing is held."""
    srv = start(server_factory, burst_factor=2, burst_floor=1)
    c = login(srv, "alice@example.test")
    for i in range(4):
        assert send(c, "alice@example.test", ["bob@example.test"], "b%d" % i)[2][0] == 250
    c.quit()
    assert wait_log(srv, r"event=burst conn=\d+ account=alice@example\.test count=2 usual=1\.0 factor=2 held=no")
    assert len(re.findall(r"event=burst ", srv.log())) == 1, srv.log()
    assert len(srv.wait_delivered("bob@example.test", 4)) == 4
    assert notices(srv, "held") == []


def test_burst_hold_holds_the_mail_and_tells_admin_and_user_once(server_factory):
    """burst_hold = yes: the usual volume of a new account is burst_floor (1) an hour, so
    with burst_factor 2 its second message in an hour is a burst: it and the next are
    accepted (250) but held, listed by postern queue list --held; the postmaster and the
    user get one notice each; a release sends one."""
    srv = start(server_factory, burst_hold="yes", burst_factor=2, burst_floor=1)
    c = login(srv, "alice@example.test")
    qids = []
    for i in range(4):
        mail, rr, data = send(c, "alice@example.test", ["bob@example.test"], "b%d" % i)
        assert data[0] == 250, data
        qids.append(re.search(r"queued as (\w+)", data[1].decode()).group(1))
    c.quit()
    assert len(srv.wait_delivered("bob@example.test", 1, settle=1.0)) == 1
    p = srv.cli("queue", "list", "--held")
    assert p.returncode == 0, p.stderr
    for q in qids[1:]:
        assert q in p.stdout, p.stdout
    assert qids[0] not in p.stdout and "3 held message(s)" in p.stdout, p.stdout
    assert "held by the outbound limits: alice@example.test sent 2 messages in the last hour" in p.stdout, p.stdout
    assert len(re.findall(r"event=burst .*account=alice@example\.test .*held=yes", srv.log())) == 3
    admin = notices(srv, "Outgoing mail held: alice@example.test sent a burst", want=1)
    assert len(admin) == 1, admin
    assert "postern queue list --held" in admin[0].get_payload()
    user = [p for p in srv.wait_delivered("alice@example.test", 1, settle=0.5)
            if b"Your outgoing mail is held: unusual volume" in p.read_bytes()]
    assert len(user) == 1, user
    assert b"change it now" in user[0].read_bytes()
    # Still held across a restart; a release sends it.
    restart(srv)
    p = srv.cli("queue", "release", qids[1])
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert len(srv.wait_delivered("bob@example.test", 2)) == 2
    assert len(notices(srv, "Outgoing mail held")) == 1


def test_trusted_network_counts_per_sending_domain(server_factory):
    """A trusted network (no login) is counted per sending domain only: its messages and
    a logged-in account's of the same domain share domain_messages_per_hour."""
    srv = server_factory(users=USERS, extra=PLAIN, start=False)
    from conftest import write_config
    write_config(srv.config, srv.data_dir, limits={"domain_messages_per_hour": "2", "messages_per_hour": "0"},
                 server={"trusted_networks": "127.0.0.1/32"}, extra=PLAIN)
    srv.start()
    srv.ports = wait_ports(srv, ["smtp", "plain"])
    app = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10)   # no login: trusted by address
    app.ehlo("app.test")
    assert send(app, "robot@example.test", ["bob@example.test"])[2][0] == 250
    a = login(srv, "alice@example.test")
    assert send(a, "alice@example.test", ["bob@example.test"])[2][0] == 250
    mail, _, _ = send(app, "robot@example.test", ["bob@example.test"])
    assert mail[0] == 451 and "Your domain example.test has sent 2 messages in the last hour" in text(mail), mail
    # Another sending domain is counted apart (and messages_per_hour = 0: no account limit).
    assert send(app, "robot@other.test", ["bob@example.test"])[2][0] == 250
    app.quit()
    a.quit()
    assert re.search(r"event=limit_reached .*domain=example\.test limit=domain_messages_per_hour max=2 count=2", srv.log())
