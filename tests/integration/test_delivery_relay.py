"""Smarthost mode ([relay]): STARTTLS + AUTH to an aiosmtpd relay, a wrong password, a
credentials file others can read, and a relay that refuses to relay (554 to RCPT, 503 to
DATA: the mission's scenario) — the log and the bounce must say which setting is wrong."""
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import postern_bin  # noqa: E402
from delivery_support import (  # noqa: E402,F401
    AioReceiver, RawReceiver, SENDER, free_port, make_server, submit, events, wait_event, reports,
    wait_reports, queue_json, queue_cli, queue_entry, wait_queue, make_cert, write_credentials,
)

RELAY_ADDR = "127.0.0.5"
RELAY_USER, RELAY_PASS = "postern-out", "s3cret pass"


def _authenticator(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult, LoginPassword
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == RELAY_USER.encode()
          and auth_data.password == RELAY_PASS.encode())
    return AuthResult(success=ok, handled=False)


def _relay(tmp_path, port, **kw):
    ctx, _cert, _key = make_cert(tmp_path)
    return AioReceiver([RELAY_ADDR], port, tls_context=ctx, require_starttls=True, auth_require_tls=True,
                       auth_required=True, authenticator=_authenticator, **kw)


def _relay_conf(port, cred_path, tls="starttls"):
    r = {"host": RELAY_ADDR, "port": str(port), "tls": tls, "tls_verify": "no"}
    if cred_path:
        r["credentials"] = str(cred_path)
    return r


def test_smarthost_starttls_auth_delivers(server_factory, tmp_path):
    port = free_port((RELAY_ADDR,))
    cred = write_credentials(tmp_path / "relay.cred", "%s %s\n" % (RELAY_USER, RELAY_PASS))
    with _relay(tmp_path, port) as rx:
        srv = make_server(server_factory, None, None, relay=_relay_conf(port, cred))
        # two domains, neither in DNS: everything goes to the relay
        qid = submit(srv, ["x@far-away.example", "y@elsewhere.invalid"])
        ev = wait_event(srv, "delivered", n=2, qid=qid)
        assert len(ev) == 2, srv.log()
        assert all(e["remote"].startswith("127.0.0.5 said: 250") for e in ev), ev
        got = rx.wait_messages(1)
        assert len(got) == 1 and sorted(got[0]["rcpt_tos"]) == ["x@far-away.example", "y@elsewhere.invalid"], got
        assert got[0]["tls"], "the relay saw no TLS"
        assert got[0]["auth"], "Postern did not log in to the relay"
        conn = events(srv, "remote_connect", address=RELAY_ADDR)
        assert conn and conn[0]["port"] == str(port) and "TLSv1" in conn[0]["tls"], conn
        assert "not verified" in conn[0]["tls"], conn     # tls_verify = no: recorded as such
        assert not events(srv, "relay_failed")


def _queue_cli_until(srv, args, words, timeout=10.0):
    deadline = time.monotonic() + timeout
    p = queue_cli(srv, *args)
    while words not in p.stdout and time.monotonic() < deadline:
        time.sleep(0.1)
        p = queue_cli(srv, *args)
    return p


def test_smarthost_wrong_password_deferred_and_named(server_factory, tmp_path):
    port = free_port((RELAY_ADDR,))
    cred = write_credentials(tmp_path / "relay.cred", "%s wrong-password\n" % RELAY_USER)
    with _relay(tmp_path, port) as rx:
        srv = make_server(server_factory, None, None, relay=_relay_conf(port, cred))
        qid = submit(srv, "x@far-away.example")
        rf = wait_event(srv, "relay_failed", qid=qid)
        assert rf, srv.log()
        assert "[relay] credentials" in rf[0]["reason"], rf
        assert "535" in rf[0]["reason"], rf
        de = wait_event(srv, "deferred", qid=qid)
        assert de and "[relay] credentials" in de[0]["reason"], de
        assert not events(srv, "bounced", qid=qid), "a login failure is the admin's to fix: keep the mail"
        # The deferred line is logged while the delivery thread still holds the message:
        # queue list rightly says "sending" until the attempt has returned.
        deadline = time.monotonic() + 10
        e = queue_entry(srv, qid)
        while e and e["state"] == "sending" and time.monotonic() < deadline:
            time.sleep(0.1)
            e = queue_entry(srv, qid)
        assert e and e["state"] == "deferred", e
        assert "[relay] credentials" in e["recipients"][0]["last_reply"], e
        # With retry_min = 1s the next attempt may already be running ("sending") when the
        # list is read: read it again until it shows the message between two attempts.
        p = _queue_cli_until(srv, ("list",), "refused Postern's login")
        assert qid in p.stdout and "refused Postern's login" in p.stdout, p.stdout
        p = _queue_cli_until(srv, ("show", qid), "[relay] credentials")
        assert "[relay] credentials" in p.stdout, p.stdout
        assert rx.messages == []

        # fixed password + retry: delivered
        write_credentials(cred, "%s %s\n" % (RELAY_USER, RELAY_PASS))
        srv.restart()
        assert wait_event(srv, "delivered", qid=qid, all_runs=False, timeout=10), srv.log()
        assert len(rx.wait_messages(1)) == 1


def test_smarthost_credentials_readable_by_others_refused(server_factory, tmp_path):
    port = free_port((RELAY_ADDR,))
    cred = write_credentials(tmp_path / "relay.cred", "%s %s\n" % (RELAY_USER, RELAY_PASS), mode=0o644)
    srv = make_server(server_factory, None, None, relay=_relay_conf(port, cred), start=False)
    p = subprocess.run([postern_bin(), "serve", "-c", str(srv.config)], capture_output=True, text=True,
                       timeout=15, stdin=subprocess.DEVNULL)
    assert p.returncode != 0, "postern serve started with a world-readable credentials file"
    assert "chmod 600" in p.stderr and str(cred) in p.stderr, p.stderr


def test_smarthost_refuses_relaying_554_503_bounce_names_setting(server_factory, tmp_path):
    """The mission's scenario: the relay did not get a login (Postern has no
    credentials), refuses each RCPT with 554 5.7.1 and the DATA with 503."""
    port = free_port((RELAY_ADDR,))

    def script(verb, line, n):
        if verb == "RCPT":
            return "554 5.7.1 <%s>: Relay access denied" % line.split("<", 1)[1].split(">", 1)[0]
        return None

    with RawReceiver([RELAY_ADDR], port, ext=("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"),
                     script=script) as rx:
        srv = make_server(server_factory, None, None, relay=_relay_conf(port, None, tls="none"))
        qid = submit(srv, "x@far-away.example")
        rs = wait_reports(srv, 1, kind="failure")
        assert len(rs) == 1, srv.log()
        r = rs[0]
        assert "Relay access denied" in r.text, r.text
        assert "[relay] credentials" in r.text, "the bounce must name the setting: " + r.text
        assert "log in" in r.text, r.text
        assert "relay" in r.text.lower()
        rc = r.recipients[0]
        assert rc["Action"] == "failed" and rc["Status"] == "5.7.1", rc
        b = events(srv, "bounced", qid=qid)
        assert b and "[relay] credentials" in b[0]["reason"], b
        # DATA was pipelined and answered 503; nothing was delivered
        assert any(c.upper() == "DATA" for c in rx.commands), rx.commands
        assert rx.transactions == []


def test_smarthost_no_auth_offered_deferred_names_tls(server_factory, tmp_path):
    """Credentials set, relay tls = none, and the relay offers AUTH only after STARTTLS:
    Postern cannot log in; it keeps the mail and says to set the relay's tls."""
    port = free_port((RELAY_ADDR,))
    cred = write_credentials(tmp_path / "relay.cred", "%s %s\n" % (RELAY_USER, RELAY_PASS))
    with _relay(tmp_path, port) as rx:
        srv = make_server(server_factory, None, None, relay=_relay_conf(port, cred, tls="none"))
        qid = submit(srv, "x@far-away.example")
        rf = wait_event(srv, "relay_failed", qid=qid)
        assert rf and "no AUTH" in rf[0]["reason"] and "tls" in rf[0]["reason"], (rf, srv.log())
        assert wait_event(srv, "deferred", qid=qid)
        assert not events(srv, "bounced")
        assert rx.messages == []


def test_smarthost_silent_after_starttls_timeout_is_named(server_factory, tmp_path):
    """A relay that never answers the AUTH command (inside TLS): the reason logged should
    say that no answer came in time, as it does without TLS ("no answer within Ns"),
    not a bare errno text."""
    from aiosmtpd.smtp import AuthResult
    port = free_port((RELAY_ADDR,))
    cred = write_credentials(tmp_path / "relay.cred", "%s %s\n" % (RELAY_USER, RELAY_PASS))
    ctx, _c, _k = make_cert(tmp_path)
    # handled=True with success=False: aiosmtpd sends nothing at all
    with AioReceiver([RELAY_ADDR], port, tls_context=ctx, require_starttls=True, auth_require_tls=True,
                     authenticator=lambda *a: AuthResult(success=False, handled=True)):
        srv = make_server(server_factory, None, None, relay=_relay_conf(port, cred),
                          delivery={"command_timeout": "2s"})
        qid = submit(srv, "x@far-away.example")
        rf = wait_event(srv, "relay_failed", qid=qid, timeout=10)
        assert rf, srv.log()
        assert wait_event(srv, "deferred", qid=qid)
        reason = rf[0]["reason"]
        assert "Resource temporarily unavailable" not in reason, reason
        assert "no answer within 2s" in reason or "timed out" in reason, reason


def test_smarthost_wrong_password_delay_notice_and_failure_name_setting(server_factory, tmp_path):
    port = free_port((RELAY_ADDR,))
    cred = write_credentials(tmp_path / "relay.cred", "%s wrong-password\n" % RELAY_USER)
    with _relay(tmp_path, port) as rx:
        srv = make_server(server_factory, None, None, relay=_relay_conf(port, cred),
                          delivery={"delay_notice": "1s", "max_lifetime": "4s"})
        submit(srv, "x@far-away.example")
        fails = wait_reports(srv, 1, kind="failure", timeout=15)
        assert fails, srv.log()
        delays = [r for r in reports(srv) if r.is_delay]
        assert len(delays) == 1, reports(srv)
        for r in (delays[0], fails[0]):
            assert "[relay] credentials" in r.text, r.text
            assert "mail administrator" in r.text, r.text   # the plain-words meaning for [relay]
        assert rx.messages == []
