"""POP3 (RFC 1939, 2449, 2595, 5034): Python's poplib over STLS and implicit TLS, and a raw
client for what poplib cannot do.  UIDLs are the Maildir base names and survive sessions
and restarts; DELE takes effect only at QUIT; sizes are exact for the CRLF form; lines
starting with "." are byte-stuffed; one session per mailbox; logins share throttling and
app passwords with SMTP."""
import poplib
import re
import socket
import time

import pytest

from pop3_support import (
    ALICE, BOB, PASSWORD, RawPOP3, crlf, lf_message, list_map, make_pop3_server, poplib_ssl,
    poplib_stls, put_message, raw_tls, restart, smtp_send, tls_context, uidl_map, wait_log, b64,
)
from submission_support import app_password_from, auth_plain, connect_tls

CAPS = ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE", "IMPLEMENTATION", "SASL")


@pytest.fixture
def srv(server_factory):
    return make_pop3_server(server_factory, plain=True)


def _capa(conn):
    st, lines = conn.cmd_multi("CAPA")
    assert st.startswith("+OK"), st
    return {l.decode().split(" ", 1)[0].upper(): l.decode() for l in lines}


def _files(srv, address=ALICE):
    return sorted(p.name for p in srv.maildir_messages(address))


# -- real clients: poplib -------------------------------------------------------------

def test_poplib_stls_and_pop3_ssl_see_the_same_mailbox(srv):
    for i in range(2):
        r = smtp_send(srv, subject="poplib %d" % i, body="line one\r\nline two %d\r\n" % i)
        assert r.is_(250), r
        # Delivered one after the other: two delivery threads may store two queued
        # messages in either order, and message 1 below must be the first one sent.
        assert len(srv.wait_delivered(ALICE, i + 1)) == i + 1

    p = poplib_stls(srv)
    try:
        count, total = p.stat()
        assert count == 2, (count, total)
        sizes = list_map(p)
        assert sorted(sizes) == [1, 2] and sum(sizes.values()) == total, (sizes, total)
        uids = uidl_map(p)
        resp, lines, octets = p.retr(1)
        assert resp.startswith(b"+OK"), resp
        text = b"\r\n".join(lines)
        assert b"Subject: poplib 0" in text, text
        assert b"line two 0" in text
        assert b"Delivered-To: alice@example.test" in text
    finally:
        assert p.quit().startswith(b"+OK")

    p = poplib_ssl(srv)
    try:
        assert p.stat() == (2, total)
        assert uidl_map(p) == uids
        assert b"Subject: poplib 1" in b"\r\n".join(p.retr(2)[1])
    finally:
        p.quit()

    # the UIDLs are the Maildir base names (the session moved new/ to cur/NAME:2,)
    names = _files(srv)
    assert all(srv.maildir(ALICE).joinpath("cur", n).exists() for n in names), names
    bases = sorted(re.sub(r"(,[SW]=\d+)*(:2,.*)?$", "", n) for n in names)
    assert sorted(uids.values()) == bases, (uids, names)
    assert wait_log(srv, r"event=login\b[^\n]*proto=pop3\b[^\n]*user=alice@example.test"), srv.log()[-3000:]


def test_wrong_password_and_unknown_user_look_the_same(srv):
    answers = []
    for user, pw in ((ALICE, "wrong"), ("nobody@example.test", PASSWORD)):
        with raw_tls(srv, user=None) as c:
            st = c.login(user, pw)
            assert st.startswith("-ERR [AUTH]"), st
            answers.append(re.sub(r"\(ref [^)]*\)", "", st))
    assert answers[0] == answers[1], answers
    p = poplib_ssl(srv, user=None)
    try:
        p.user(ALICE)
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            p.pass_("wrong")
    finally:
        p.close()


# -- capabilities and TLS -----------------------------------------------------------

def test_capa_before_and_after_stls_and_on_implicit_tls(srv):
    with RawPOP3(srv.ports["pop3"]) as c:
        assert c.greeting.startswith("+OK"), c.greeting
        caps = _capa(c)
        for k in set(CAPS + ("STLS",)) - {"USER", "SASL"}:
            assert k in caps, (k, caps)
        assert "NEVER" in caps["EXPIRE"].upper(), caps
        # RFC 2595 §6: logins are refused before TLS, so they are not advertised
        assert "USER" not in caps and "SASL" not in caps, caps
        c.stls()
        caps = _capa(c)
        for k in CAPS:
            assert k in caps, (k, caps)
        assert "STLS" not in caps, caps
        assert "PLAIN" in caps["SASL"].upper().split(), caps
        # STLS again inside TLS is refused
        assert c.cmd("STLS").startswith("-ERR"), "STLS accepted twice"
        assert c.login().startswith("+OK")
        assert c.cmd("QUIT").startswith("+OK")
    with raw_tls(srv, user=None) as c:
        caps = _capa(c)
        for k in CAPS:
            assert k in caps, (k, caps)
        assert "STLS" not in caps, caps
    with RawPOP3(srv.ports["pop3plain"]) as c:
        caps = _capa(c)
        assert "STLS" not in caps, caps     # no TLS on this listener
        assert "USER" in caps, caps


def test_poplib_capa_offers_logins_only_once_tls_is_up(srv):
    """RFC 2595 §6: a listener that refuses plaintext logins advertises only STLS
    until TLS is up; a client (poplib here) that trusts CAPA never sends its password
    in the clear.  After STLS, USER and SASL PLAIN LOGIN."""
    p = poplib.POP3("127.0.0.1", srv.ports["pop3"], timeout=10)
    try:
        before = p.capa()
        assert "STLS" in before, before
        assert "USER" not in before and "SASL" not in before, before
        for k in ("TOP", "UIDL", "RESP-CODES", "PIPELINING"):
            assert k in before, (k, before)
        p.stls(context=tls_context())
        after = p.capa()
        assert "USER" in after and "STLS" not in after, after
        assert after["SASL"] == ["PLAIN", "LOGIN"], after
        p.user(ALICE)
        assert p.pass_(PASSWORD).startswith(b"+OK")
    finally:
        p.quit()
    # a listener that allows plaintext logins says so before TLS
    p = poplib.POP3("127.0.0.1", srv.ports["pop3plain"], timeout=10)
    try:
        caps = p.capa()
        assert "USER" in caps and "SASL" in caps, caps
    finally:
        p.quit()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls11_after_stls_gets_the_protocol_version_alert(srv):
    """After STLS, a TLS 1.0/1.1 ClientHello is answered with alert 70
    (protocol_version), as on the implicit-TLS port, not a bare hang-up."""
    import ssl
    def old_client():
        ctx = tls_context()
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        return ctx
    try:
        old_client()
    except (ValueError, ssl.SSLError) as e:
        pytest.skip("this Python cannot offer TLS 1.1: %s" % e)
    errors = []
    with RawPOP3(srv.ports["pop3"]) as c:
        assert c.cmd("STLS").startswith("+OK")
        with pytest.raises(ssl.SSLError) as e:
            old_client().wrap_socket(c.sock)
        errors.append(str(e.value))
    sock = socket.create_connection(("127.0.0.1", srv.ports["pop3s"]), timeout=10)
    try:
        with pytest.raises(ssl.SSLError) as e:
            old_client().wrap_socket(sock)
        errors.append(str(e.value))
    finally:
        sock.close()
    for err in errors:
        assert "PROTOCOL_VERSION" in err.upper() and "EOF" not in err.upper(), errors


def test_plaintext_login_refused_before_stls_with_words_naming_the_fix(srv):
    with RawPOP3(srv.ports["pop3"]) as c:
        st = c.cmd("USER " + ALICE)
        if st.startswith("+OK"):
            st = c.cmd("PASS " + PASSWORD)
        assert st.startswith("-ERR [AUTH]"), st
        assert re.search(r"STARTTLS|STLS", st), st
        assert re.search(r"SSL/TLS", st) and "995" in st, st
        st = c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (ALICE, PASSWORD)))
        assert st.startswith("-ERR"), st
        assert c.cmd("STAT").startswith("-ERR")          # not logged in
        # after STLS the same client logs in (RFC 2595 §4: state before STLS forgotten)
        c.stls()
        assert c.login().startswith("+OK")
        assert c.cmd("STAT").startswith("+OK")
        c.cmd("QUIT")
    # poplib: the same refusal, then success after stls()
    p = poplib.POP3("127.0.0.1", srv.ports["pop3"], timeout=10)
    try:
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            p.user(ALICE)
            p.pass_(PASSWORD)
    finally:
        p.close()
    # a listener with allow_plaintext_auth = yes accepts USER/PASS without TLS
    with RawPOP3(srv.ports["pop3plain"]) as c:
        assert c.login().startswith("+OK")
        c.cmd("QUIT")
    assert wait_log(srv, r"event=login\b[^\n]*proto=pop3\b[^\n]*tls=no"), srv.log()[-3000:]


def test_auth_plain_sasl_over_tls(srv):
    put_message(srv, ALICE, lf_message("sasl"))
    with raw_tls(srv, user=None) as c:
        st = c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (ALICE, PASSWORD)))   # initial response (RFC 5034)
        assert st.startswith("+OK"), st
        assert c.cmd("STAT").startswith("+OK 1 "), "STAT after AUTH"
        c.cmd("QUIT")
    with raw_tls(srv, user=None) as c:
        st = c.cmd("AUTH PLAIN")                           # continuation
        assert st.startswith("+"), st
        st = c.cmd(b64("\0%s\0%s" % (ALICE, PASSWORD)))
        assert st.startswith("+OK"), st
        c.cmd("QUIT")
    with raw_tls(srv, user=None) as c:
        st = c.cmd("AUTH PLAIN " + b64("\0%s\0wrong" % ALICE))
        assert st.startswith("-ERR [AUTH]"), st
        st = c.cmd("AUTH LOGIN")
        assert st.startswith("+ "), st
        assert c.cmd(b64(ALICE)).startswith("+ ")
        st = c.cmd(b64(PASSWORD))
        assert st.startswith("+OK"), st
        c.cmd("QUIT")
    assert wait_log(srv, r"event=login\b[^\n]*proto=pop3\b[^\n]*mech=PLAIN"), srv.log()[-3000:]


# -- UIDL ----------------------------------------------------------------------------

def test_uidl_stable_across_sessions_and_restart(srv):
    bases = [put_message(srv, ALICE, lf_message("u%d" % i), t=1700000000 + i) for i in range(3)]
    bases.append(put_message(srv, ALICE, lf_message("u3"), sub="cur", t=1700000003))
    seen = []
    for _ in range(2):
        p = poplib_ssl(srv)
        try:
            seen.append(uidl_map(p))
            assert p.uidl(2).startswith(b"+OK 2 " + seen[-1][2].encode()), p.uidl(2)
        finally:
            p.quit()
    restart(srv)
    p = poplib_stls(srv)
    try:
        seen.append(uidl_map(p))
    finally:
        p.quit()
    assert seen[0] == seen[1] == seen[2], seen
    assert sorted(seen[0].values()) == sorted(bases), (seen[0], bases)
    # message numbers follow delivery time: the same order every session
    assert [seen[0][i] for i in (1, 2, 3, 4)] == bases, seen[0]
    for u in seen[0].values():
        assert 1 <= len(u) <= 70 and all(0x21 <= ord(ch) <= 0x7E for ch in u), u


def test_mail_delivered_during_a_session_appears_in_the_next(srv):
    put_message(srv, ALICE, lf_message("first"))
    with raw_tls(srv) as c:
        assert c.cmd("STAT").startswith("+OK 1 ")
        put_message(srv, ALICE, lf_message("second"))
        assert c.cmd("STAT").startswith("+OK 1 "), "the maildrop changed during the session"
        st, lines = c.cmd_multi("UIDL")
        assert len(lines) == 1, lines
        assert c.cmd("QUIT").startswith("+OK")
    with raw_tls(srv) as c:
        assert c.cmd("STAT").startswith("+OK 2 ")
        c.cmd("QUIT")


# -- DELE / RSET / QUIT / dropped connection ----------------------------------------------

def _three(srv):
    return [put_message(srv, ALICE, lf_message("d%d" % i), t=1700000100 + i) for i in range(3)]


def test_dele_then_quit_removes(srv):
    bases = _three(srv)
    p = poplib_ssl(srv)
    try:
        assert p.dele(2).startswith(b"+OK")
        # marked: no longer listed, not retrievable, STAT excludes it
        assert p.stat()[0] == 2
        with pytest.raises(poplib.error_proto):
            p.retr(2)
        with pytest.raises(poplib.error_proto):
            p.dele(2)
        assert len(_files(srv)) == 3, "deleted before QUIT"
    finally:
        resp = p.quit()
    assert resp.startswith(b"+OK"), resp
    files = _files(srv)
    assert len(files) == 2, files
    assert not any(f.startswith(bases[1]) for f in files), (files, bases)
    p = poplib_ssl(srv)
    try:
        assert sorted(uidl_map(p).values()) == sorted([bases[0], bases[2]])
    finally:
        p.quit()


def test_dele_then_rset_keeps(srv):
    _three(srv)
    p = poplib_stls(srv)
    try:
        p.dele(1)
        p.dele(3)
        assert p.stat()[0] == 1
        assert p.rset().startswith(b"+OK")
        assert p.stat()[0] == 3
    finally:
        p.quit()
    assert len(_files(srv)) == 3


def test_dropped_connection_deletes_nothing(srv):
    _three(srv)
    c = raw_tls(srv)
    for n in (1, 2, 3):
        assert c.cmd("DELE %d" % n).startswith("+OK")
    c.sock.close()            # no QUIT
    # the server notices (the lock goes), and nothing was removed
    st = None
    for _ in range(50):
        with raw_tls(srv, user=None) as c2:
            st = c2.login()
            if st.startswith("+OK"):
                assert c2.cmd("STAT").startswith("+OK 3 "), "messages removed by a dropped connection"
                c2.cmd("QUIT")
                break
            assert st.startswith("-ERR [IN-USE]"), st
        time.sleep(0.1)
    assert st.startswith("+OK"), "mailbox still locked 5 s after the connection dropped: %s" % st
    assert len(_files(srv)) == 3
    # the same with plaintext TCP shutdown mid-session on the STLS port
    with RawPOP3(srv.ports["pop3"]) as c:
        c.stls()
        assert c.login().startswith("+OK")
        assert c.cmd("DELE 1").startswith("+OK")
        c.sock.shutdown(socket.SHUT_RDWR)
    for _ in range(20):
        if len(_files(srv)) != 3:
            break
        time.sleep(0.05)
    assert len(_files(srv)) == 3


def test_second_session_gets_in_use(srv):
    put_message(srv, ALICE, lf_message("lock"))
    first = poplib_ssl(srv)
    try:
        with raw_tls(srv, user=None) as c:
            st = c.login()
            assert st.startswith("-ERR [IN-USE]"), st
        p2 = poplib_stls(srv, user=None)
        try:
            p2.user(ALICE)
            with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
                p2.pass_(PASSWORD)
        finally:
            p2.close()
        # another user's mailbox is not affected
        p3 = poplib_ssl(srv, user=BOB)
        p3.quit()
    finally:
        first.quit()
    p = poplib_ssl(srv)           # free again after QUIT
    assert p.stat()[0] == 1
    p.quit()


# -- sizes, byte-stuffing, TOP -------------------------------------------------------------

def test_exact_sizes_and_byte_stuffing(srv):
    body = ["ordinary line", ".hidden", "..two dots", ".", "last line"]
    m1 = lf_message("stuffing", body)
    big_lines = ["%06d %s" % (i, "x" * 70) for i in range(3000)]    # ~230 KB: streamed
    big_lines[1000] = ".starts with a dot"
    m2 = lf_message("big", big_lines)
    m3 = lf_message("no W= in the name", ["counted", ".dot"])
    put_message(srv, ALICE, m1, t=1700000200)
    put_message(srv, ALICE, m2, t=1700000201)
    put_message(srv, ALICE, m3, t=1700000202, with_sizes=False)
    expect = [crlf(m) for m in (m1, m2, m3)]

    p = poplib_ssl(srv)
    try:
        sizes = list_map(p)
        assert [sizes[i] for i in (1, 2, 3)] == [len(e) for e in expect], (sizes, [len(e) for e in expect])
        assert p.stat() == (3, sum(len(e) for e in expect))
        for i, e in enumerate(expect, 1):
            resp, lines, octets = p.retr(i)
            got = b"\r\n".join(lines) + b"\r\n"
            assert got == e, (i, got[:300], e[:300])
            assert sizes[i] == len(got)
            assert p.list(i).split()[2] == str(len(e)).encode()
        assert b".hidden" in p.retr(1)[1]
    finally:
        p.quit()

    # on the wire: the lines starting with "." are stuffed, nothing else changes
    with raw_tls(srv) as c:
        st = c.cmd("RETR 1")
        assert st.startswith("+OK"), st
        wire = []
        for _ in range(100):
            l = c.readline()
            if l == b".":
                break
            wire.append(l)
        assert b"..hidden" in wire and b"...two dots" in wire and b".." in wire, wire
        assert b"ordinary line" in wire and b"last line" in wire
        c.cmd("QUIT")


def test_top(srv):
    m = lf_message("top", ["b1", ".b2", "b3", "b4"])
    put_message(srv, ALICE, m)
    head, _ = crlf(m).split(b"\r\n\r\n", 1)
    p = poplib_ssl(srv)
    try:
        resp, lines, _ = p.top(1, 0)
        assert resp.startswith(b"+OK"), resp
        assert b"\r\n".join(lines) == head + b"\r\n", lines
        resp, lines, _ = p.top(1, 2)
        assert lines[-3:] == [b"", b"b1", b".b2"], lines
        resp, lines, _ = p.top(1, 100)
        assert lines[-4:] == [b"b1", b".b2", b"b3", b"b4"], lines
        with pytest.raises(poplib.error_proto):
            p.top(2, 0)
    finally:
        p.quit()


def test_pipelined_commands_answered_in_order(srv):
    put_message(srv, ALICE, lf_message("pipe", ["a"]))
    with raw_tls(srv, user=None) as c:
        c.send("USER %s\r\nPASS %s\r\nSTAT\r\nUIDL\r\nLIST 1\r\nRETR 1\r\nNOOP\r\nQUIT\r\n" % (ALICE, PASSWORD))
        assert c.status().startswith("+OK")            # USER
        assert c.status().startswith("+OK")            # PASS
        assert c.status().startswith("+OK 1 ")         # STAT
        assert c.status().startswith("+OK")
        assert len(c.multiline()) == 1                 # UIDL
        assert c.status().startswith("+OK 1 ")         # LIST 1
        assert c.status().startswith("+OK")
        assert b"Subject: pipe" in c.multiline()       # RETR
        assert c.status().startswith("+OK")            # NOOP
        assert c.status().startswith("+OK")            # QUIT
        assert c.wait_closed()


def test_bad_commands_and_message_numbers(srv):
    put_message(srv, ALICE, lf_message("n"))
    with raw_tls(srv) as c:
        for bad in ("RETR 0", "RETR 2", "RETR x", "DELE 9", "TOP 1", "LIST 99"):
            assert c.cmd(bad).startswith("-ERR"), bad
        assert c.cmd("FOO").startswith("-ERR")
        assert c.cmd("STAT").startswith("+OK 1 ")
        c.cmd("QUIT")


# -- logins shared with SMTP: app passwords and throttling ---------------------------------

def test_app_password_logs_in_over_pop3(srv):
    p = srv.cli("app-password", "add", ALICE, "--name", "phone")
    assert p.returncode == 0, p.stderr
    pw = app_password_from(p.stdout)
    assert pw, p.stdout
    put_message(srv, ALICE, lf_message("app"))
    pp = poplib_ssl(srv, password=pw)
    assert pp.stat()[0] == 1
    pp.quit()
    assert wait_log(srv, r"event=login\b[^\n]*proto=pop3\b[^\n]*password=app:phone"), srv.log()[-3000:]
    assert srv.cli("app-password", "revoke", ALICE, "phone").returncode == 0
    with raw_tls(srv, user=None) as c:
        st = c.login(ALICE, pw)
        assert st.startswith("-ERR [AUTH]"), st


def test_failed_pop3_logins_throttle_smtp_auth_too(server_factory):
    srv = make_pop3_server(server_factory, submission=True,
                           auth={"account_ip_failures": 3, "window": "60s", "block": "60s"})
    for i in range(3):
        with raw_tls(srv, user=None) as c:
            st = c.login(ALICE, "wrong%d" % i)
            assert st.startswith("-ERR [AUTH]"), (i, st)
    assert len(re.findall(r"event=login_failed\b[^\n]*proto=pop3", srv.log())) == 3, srv.log()[-3000:]
    # POP3 with the right password: refused, with a response code
    with raw_tls(srv, user=None) as c:
        st = c.login()
        assert st.startswith("-ERR [AUTH] Too many failed logins as alice@example.test"), st
    # SMTP AUTH from the same address: blocked too; another account is not
    with connect_tls(srv, "submission") as c:
        r = auth_plain(c, ALICE, PASSWORD)
        assert r.is_(454, "4.7.0"), r
    with connect_tls(srv, "submission") as c:
        assert auth_plain(c, BOB, PASSWORD).is_(235, "2.7.0")
    # another address still logs in (the account is not blocked)
    with raw_tls(srv, user=None, source="127.0.0.2") as c:
        st = c.login()
        assert st.startswith("+OK"), st
        c.cmd("QUIT")


def test_uidl_survives_flag_renames_by_another_program(srv):
    """An IMAP server changing flags renames cur/NAME:2, to cur/NAME:2,S - the UIDL stays,
    and a message renamed during a session is still retrieved."""
    m = lf_message("renamed", ["still here"])
    base = put_message(srv, ALICE, m, sub="cur")
    with raw_tls(srv) as c:
        st, lines = c.cmd_multi("UIDL")
        assert lines == [b"1 " + base.encode()], lines
        cur = srv.maildir(ALICE) / "cur"
        (old,) = list(cur.iterdir())
        old.rename(cur / (old.name.split(":2,")[0] + ":2,RS"))      # renamed mid-session
        st, lines = c.cmd_multi("RETR 1")
        assert st.startswith("+OK"), st
        assert b"\r\n".join(lines) + b"\r\n" == crlf(m)
        c.cmd("QUIT")
    p = poplib_ssl(srv)
    try:
        assert uidl_map(p) == {1: base}
    finally:
        p.quit()


def test_server_shutdown_mid_session_deletes_nothing(srv):
    _three(srv)
    c = raw_tls(srv)
    try:
        assert c.cmd("DELE 1").startswith("+OK")
        srv.stop()
        line = c.readline(timeout=5)          # told before the close (RFC 3206)
        assert line.startswith(b"-ERR [SYS/TEMP]"), line
    finally:
        c.close()
    assert len(_files(srv)) == 3
    restart(srv)
    p = poplib_ssl(srv)
    assert p.stat()[0] == 3
    p.quit()
