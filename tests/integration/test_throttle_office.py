"""Login throttling that never locks out an office (issue 9): with the default [auth]
settings, devices with stale saved passwords block only their own account from the
office's address; spraying from one address blocks the address for accounts that have
not logged in from it; the replies say whose failures caused the block, over SMTP AUTH
and POP3 alike."""
import re

from pop3_support import make_pop3_server, raw_tls
from submission_support import auth_plain, connect_tls

PASSWORD = "secret"
ANNA, BEN, CARL, DORA, ERIK = ("%s@example.test" % n for n in ("anna", "ben", "carl", "dora", "erik"))
OFFICE = (ANNA, BEN, CARL, DORA, ERIK)
UNTIL = re.compile(r"blocked until \d\d:\d\d UTC")


def _server(server_factory):
    return make_pop3_server(server_factory, submission=True, users=OFFICE)


def _smtp_auth(srv, user, password, source="127.0.0.1"):
    with connect_tls(srv, "submission", source=source) as c:
        return auth_plain(c, user, password)


def _pop3_login(srv, user, password, source="127.0.0.1"):
    with raw_tls(srv, user=None, source=source) as c:
        st = c.login(user, password)
        if st.startswith("+OK"):
            c.cmd("QUIT")
        return st


def test_stale_devices_do_not_lock_out_the_office(server_factory):
    srv = _server(server_factory)
    # Three devices with stale saved passwords: 4 + 4 failures over SMTP, 2 over POP3.
    for i in range(4):
        assert _smtp_auth(srv, ANNA, "old-anna").is_(535, "5.7.8"), i
        assert _smtp_auth(srv, BEN, "old-ben").is_(535, "5.7.8"), i
    for i in range(2):
        assert _pop3_login(srv, CARL, "old-carl").startswith("-ERR [AUTH] Login failed"), i
    # The colleague who never failed logs in, on both protocols.
    assert _smtp_auth(srv, DORA, PASSWORD).is_(235, "2.7.0")
    assert _pop3_login(srv, DORA, PASSWORD).startswith("+OK")
    # So do the stale devices' owners, once the password is corrected.
    assert _smtp_auth(srv, BEN, PASSWORD).is_(235, "2.7.0")
    assert _pop3_login(srv, CARL, PASSWORD).startswith("+OK")
    # Anna's phone fails once more: now her account, and only hers, is blocked from here.
    assert _smtp_auth(srv, ANNA, "old-anna").is_(535, "5.7.8")
    r = _smtp_auth(srv, ANNA, PASSWORD)
    assert r.is_(454, "4.7.0"), r
    assert "Too many failed logins as anna@example.test from your address" in r.text, r
    assert UNTIL.search(r.text), r
    assert "correct it in every such device" in r.text, r
    st = _pop3_login(srv, ANNA, PASSWORD)
    assert st.startswith("-ERR [AUTH] Too many failed logins as anna@example.test from your address"), st
    assert UNTIL.search(st), st
    # Everyone else is unaffected, even a colleague who never logged in from here.
    assert _smtp_auth(srv, ERIK, PASSWORD).is_(235, "2.7.0")
    assert _pop3_login(srv, DORA, PASSWORD).startswith("+OK")
    # Anna from another address is not blocked: the account is not locked.
    assert _smtp_auth(srv, ANNA, PASSWORD, source="127.0.0.2").is_(235, "2.7.0")


def test_spraying_blocks_the_address_but_not_known_colleagues(server_factory):
    srv = _server(server_factory)
    sprayer = "127.0.0.3"
    assert _pop3_login(srv, DORA, PASSWORD, source=sprayer).startswith("+OK")   # her laptop works
    for i in range(5):   # five different accounts, existing or not
        user = "nosuch%d@example.test" % i if i % 2 else ("%s" % (ANNA, BEN, CARL)[i // 2])
        assert _smtp_auth(srv, user, "Spring2026!", source=sprayer).is_(535, "5.7.8"), i
    # A colleague who has not logged in from this address: blocked, and told it is not
    # their password.
    r = _smtp_auth(srv, ERIK, PASSWORD, source=sprayer)
    assert r.is_(454, "4.7.0"), r
    assert "Logging in from your address is blocked until" in r.text, r
    assert "failed logins to several different accounts" in r.text, r
    assert "Your own password is not the problem" in r.text, r
    assert "correct" not in r.text and "wrong password" not in r.text, r
    st = _pop3_login(srv, ERIK, PASSWORD, source=sprayer)
    assert st.startswith("-ERR [SYS/TEMP] Logging in from your address is blocked until"), st
    assert "your own password is not the problem" in st, st
    # Dora logged in from there before: her devices keep working, on both protocols.
    assert _pop3_login(srv, DORA, PASSWORD, source=sprayer).startswith("+OK")
    assert _smtp_auth(srv, DORA, PASSWORD, source=sprayer).is_(235, "2.7.0")
    # Other addresses are not affected.
    assert _smtp_auth(srv, ERIK, PASSWORD, source="127.0.0.4").is_(235, "2.7.0")
    log = srv.log()
    assert re.search(r"event=refused\b[^\n]*cmd=AUTH code=454[^\n]*cause=\"blocked after failed logins\"", log), log[-3000:]


def test_admin_unblocks_over_the_control_socket(server_factory):
    """postern user unblock ACCOUNT|IP lifts a running block at once (the running
    server's throttle, through the control socket), and says so when nothing is
    blocked."""
    srv = _server(server_factory)
    phone, sprayer = "127.0.0.4", "127.0.0.5"
    for i in range(5):
        assert _smtp_auth(srv, ANNA, "old-anna", source=phone).is_(535, "5.7.8"), i
    assert _smtp_auth(srv, ANNA, PASSWORD, source=phone).is_(454, "4.7.0")
    p = srv.cli("user", "unblock", "ANNA@example.test")   # as typed, any case
    assert p.returncode == 0, p.stderr
    assert "ANNA@example.test unblocked: 1 block(s)" in p.stdout, p.stdout
    assert _smtp_auth(srv, ANNA, PASSWORD, source=phone).is_(235, "2.7.0")
    for i in range(5):
        assert _smtp_auth(srv, "nosuch%d@example.test" % i, "x", source=sprayer).is_(535, "5.7.8"), i
    assert _smtp_auth(srv, ERIK, PASSWORD, source=sprayer).is_(454, "4.7.0")
    p = srv.cli("user", "unblock", sprayer)
    assert p.returncode == 0 and "unblocked" in p.stdout, p.stdout + p.stderr
    assert _smtp_auth(srv, ERIK, PASSWORD, source=sprayer).is_(235, "2.7.0")
    p = srv.cli("user", "unblock", sprayer)
    assert p.returncode == 1 and "is not blocked by the login throttle" in p.stderr, p.stdout + p.stderr
    assert srv.cli("user", "unblock", "a b").returncode == 2
    log = srv.log()
    assert "event=admin_action by=control-socket action=unblock key=\"ANNA@example.test\" lifted=1" in log, log[-3000:]
