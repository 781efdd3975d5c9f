"""The IMAP session against real clients: Python's imaplib (STARTTLS, implicit TLS,
LOGIN, ID, ENABLE, NAMESPACE, IDLE), curl imap:// and imaps://, and a hostile client
fed whole and byte by byte (bad tags, huge and unterminated literals, commands in
the wrong state, too many errors).  LOGINDISABLED before TLS; the login words of the
shared throttle.  One server for the module (listeners imap = STARTTLS, imaps =
implicit TLS); every read is bounded."""
import base64
import imaplib
import re
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Server  # noqa: E402
from submission_support import tls_context, wait_ports  # noqa: E402

ALICE = "alice@example.test"
PASSWORD = "secret"
EXTRA = ("\n[listener imap]\naddress = 127.0.0.1\nport = 0\nrole = imap\ntls = starttls\n"
         "\n[listener imaps]\naddress = 127.0.0.1\nport = 0\nrole = imap\ntls = implicit\n"
         "\n[auth]\naccount_ip_failures = 3\n")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("imap"), users=(ALICE, "bob@example.test"), extra=EXTRA,
               limits={"bad_commands": "6"})
    s.start()
    s.ports = wait_ports(s, ["imap", "imaps"])
    yield s
    s.stop()
    problems = s.check_after()
    assert not problems, "\n".join(problems)


def plain(srv):
    return imaplib.IMAP4("127.0.0.1", srv.ports["imap"], timeout=10)


def implicit(srv):
    return imaplib.IMAP4_SSL("127.0.0.1", srv.ports["imaps"], ssl_context=tls_context(), timeout=10)


class Raw:
    """A bounded line reader over a socket (plain or TLS)."""

    def __init__(self, srv, tls=True):
        sock = socket.create_connection(("127.0.0.1", srv.ports["imaps" if tls else "imap"]), timeout=10)
        self.sock = tls_context().wrap_socket(sock) if tls else sock
        self.buf = b""
        self.greeting = self.line()

    def send(self, data, bytewise=False):
        if bytewise:
            for i in range(len(data)):
                self.sock.sendall(data[i:i + 1])
        else:
            self.sock.sendall(data)

    def line(self):
        deadline = time.monotonic() + 10
        while b"\r\n" not in self.buf:
            if time.monotonic() > deadline:
                raise AssertionError("no line within 10 s; got %r" % self.buf)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed; got %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def until_tagged(self, tag):
        lines = []
        for _ in range(1000):
            ln = self.line()
            lines.append(ln)
            if ln.startswith(tag + " "):
                return lines
        raise AssertionError("no tagged reply for %s: %r" % (tag, lines))

    def closed(self):
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True
        return False

    def close(self):
        self.sock.close()


def test_logindisabled_before_tls_then_starttls_login(srv):
    m = plain(srv)
    caps = m.capabilities
    assert "STARTTLS" in caps and "LOGINDISABLED" in caps and "IMAP4REV1" in caps
    assert not any(c.startswith("AUTH=") for c in caps), caps
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login(ALICE, PASSWORD)
    assert "[PRIVACYREQUIRED]" in str(e.value) and "STARTTLS on port 143" in str(e.value)
    m.starttls(ssl_context=tls_context())
    caps = m.capabilities
    assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps and "STARTTLS" not in caps
    typ, data = m.login(ALICE, PASSWORD)
    assert typ == "OK" and b"Logged in" in data[0]
    typ, data = m.namespace()
    assert data == [b'(("" "/")) NIL NIL']
    typ, data = m.xatom("ID", '("name" "test-client" "version" "1")')
    assert typ == "OK"
    assert m.untagged_responses.pop("ID") == [b'("name" "Postern")']
    typ, data = m.xatom("ENABLE", "QRESYNC")
    assert typ == "OK" and m.untagged_responses.pop("ENABLED") == [b"QRESYNC CONDSTORE"]
    assert m.noop()[0] == "OK"
    typ, data = m.logout()
    assert typ == "BYE"
    assert re.search(r"event=imap_login .*user=%s mech=LOGIN tls=yes" % re.escape(ALICE), srv.log())
    assert "event=imap_client_id" in srv.log() and 'name="test-client"' in srv.log()


def test_implicit_tls_login_and_wrong_state(srv):
    m = implicit(srv)
    assert "AUTH=PLAIN" in m.capabilities and "STARTTLS" not in m.capabilities
    assert m.login(ALICE, PASSWORD)[0] == "OK"
    m.logout()
    r = Raw(srv)   # imaplib refuses commands in the wrong state itself: say them raw
    r.send(b"w1 SELECT INBOX\r\nw2 STARTTLS\r\n")
    w1 = r.line()
    assert w1.startswith("w1 BAD SELECT needs a login first (LOGIN or AUTHENTICATE) (ref "), w1
    assert r.line().startswith("w2 BAD TLS is already active")
    r.send(("w3 LOGIN %s %s\r\nw4 UID FETCH 1 FLAGS\r\nw5 LOGIN a b\r\nw6 ENABLE CONDSTORE\r\n"
            % (ALICE, PASSWORD)).encode())
    assert r.until_tagged("w3")[-1].startswith("w3 OK [CAPABILITY IMAP4rev1")
    assert r.line().startswith("w4 BAD UID FETCH needs a selected folder: SELECT or EXAMINE one first")
    assert r.line().startswith("w5 BAD LOGIN is not allowed after logging in")
    assert r.until_tagged("w6")[-1] == "w6 OK ENABLE completed"
    r.close()


def test_wrong_password_words_and_throttle(srv):
    for i in range(3):
        m = implicit(srv)
        with pytest.raises(imaplib.IMAP4.error) as e:
            m.login("bob@example.test", "wrong%d" % i)
        text = str(e.value)
        assert "[AUTHENTICATIONFAILED]" in text and "wrong user name or password" in text, text
        m.shutdown()
    m = implicit(srv)
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login("bob@example.test", PASSWORD)
    text = str(e.value)
    assert "[AUTHENTICATIONFAILED]" in text and "blocked until" in text and "UTC" in text, text
    m.shutdown()


def test_authenticate_plain_with_and_without_initial_response(srv):
    r = Raw(srv)
    assert "AUTH=PLAIN" in r.greeting and "SASL-IR" in r.greeting
    cred = base64.b64encode(("\0%s\0%s" % (ALICE, PASSWORD)).encode()).decode()
    r.send(("a1 AUTHENTICATE PLAIN %s\r\n" % cred).encode())
    last = r.until_tagged("a1")[-1]
    assert last.startswith("a1 OK [CAPABILITY IMAP4rev1") and "Logged in" in last, last
    r.close()
    r = Raw(srv)
    r.send(b"b1 AUTHENTICATE PLAIN\r\n")
    assert r.line() == "+ "
    r.send(cred.encode() + b"\r\n")
    assert r.until_tagged("b1")[-1].startswith("b1 OK")
    r.send(b"b2 IDLE\r\n")
    assert r.line() == "+ idling"
    r.send(b"DONE\r\n")
    assert r.line() == "b2 OK IDLE terminated"
    r.send(b"b3 LOGOUT\r\n")
    assert r.until_tagged("b3")[-1] == "b3 OK LOGOUT completed"
    r.close()


HOSTILE = (b"\r\n"                                   # empty line
           b"+bad NOOP\r\n"                          # not a tag
           b"t1 FROBNICATE\r\n"                      # unknown command
           b"t2 LOGIN {5}\r\nalice {6}\r\nsecret\r\n"   # synchronising literals
           b"t3 SELECT INBOX\r\n"                    # (answered after t2)
           b"t4 LOGIN {99999999}\r\n"                # too big: refused before it is sent
           b"t5 UID FROB 1\r\n"
           b"t6 NOOP\r\n")


def hostile_run(srv, bytewise):
    r = Raw(srv)
    r.send(HOSTILE, bytewise=bytewise)
    got = [r.line() for _ in range(3)]
    assert got[0].startswith("* BAD Empty command line"), got
    assert got[1].startswith("* BAD Every command starts with a tag"), got
    assert got[2].startswith('t1 BAD Unknown command "FROBNICATE"') and "(ref " in got[2], got
    assert r.line() == "+ Ready for literal data"
    assert r.line() == "+ Ready for literal data"
    assert r.line().startswith("t2 NO [AUTHENTICATIONFAILED]")   # alice@... is the account, not "alice"
    assert r.line().startswith("t3 BAD SELECT needs a login first")
    t4 = r.line()
    assert t4.startswith("t4 NO [TOOBIG] Literal of 99999999 octets refused: at most 65536"), t4
    assert r.line().startswith("t5 BAD UID must be followed by FETCH")
    # six errors reach [limits] bad_commands: BYE, and the connection closes
    bye = r.line()
    assert bye.startswith("* BYE Too many errors"), bye
    assert r.closed()
    r.close()


def test_hostile_client_whole(srv):
    hostile_run(srv, bytewise=False)


def test_hostile_client_byte_by_byte(srv):
    hostile_run(srv, bytewise=True)


def test_nonsync_literal_too_big_closes_and_unterminated_literal(srv):
    r = Raw(srv)
    r.send(b"n1 LOGIN {70000+}\r\nxxxx")
    assert r.line().startswith("n1 BAD [TOOBIG] Literal of 70000 octets refused")
    assert r.line().startswith("* BYE")
    assert r.closed()
    r.close()
    r = Raw(srv)
    r.send(b"u1 LOGIN {10}\r\n")
    assert r.line() == "+ Ready for literal data"
    r.send(b"abc")          # and hang up in the middle of the literal
    r.close()
    m = implicit(srv)       # the server is still there
    assert m.noop()[0] == "OK"
    m.logout()


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "10", "-k"] + list(args), capture_output=True, text=True,
                          timeout=20)


def test_curl_imaps_and_imap_starttls(srv):
    p = curl("-u", "%s:%s" % (ALICE, PASSWORD), "imaps://127.0.0.1:%d" % srv.ports["imaps"], "-X", "NAMESPACE")
    assert p.returncode == 0, p.stderr
    assert '* NAMESPACE (("" "/")) NIL NIL' in p.stdout
    p = curl("--ssl-reqd", "-u", "%s:%s" % (ALICE, PASSWORD), "imap://127.0.0.1:%d" % srv.ports["imap"],
             "-X", "NAMESPACE")
    assert p.returncode == 0, p.stderr
    assert "NAMESPACE" in p.stdout
    p = curl("-u", "%s:wrong" % ALICE, "imaps://127.0.0.1:%d" % srv.ports["imaps"], "-X", "NAMESPACE")
    assert p.returncode == 67, (p.returncode, p.stderr)   # CURLE_LOGIN_DENIED


# -- the mailbox commands (store/folder.h, imap-store's part of the issue) -----------

REPO = Path(__file__).resolve().parents[2]
needs_store = pytest.mark.skipif(not (REPO / "src/store/folder.h").exists(),
                                 reason="store/folder.h is not in this tree yet: the mailbox commands answer NO [CANNOT]")


def logged_in(srv, user=ALICE):
    m = implicit(srv)
    m.login(user, PASSWORD)
    return m


@needs_store
def test_special_folders_created_and_listed(srv):
    m = logged_in(srv)
    typ, data = m.list('""', "*")
    assert typ == "OK"
    lines = [d.decode() for d in data]
    for name, attr in (("Sent", "\\Sent"), ("Drafts", "\\Drafts"), ("Trash", "\\Trash"), ("Junk", "\\Junk"),
                       ("Archive", "\\Archive")):
        assert '(\\HasNoChildren %s) "/" "%s"' % (attr, name) in lines, (name, lines)
    assert lines[0] == '(\\HasNoChildren) "/" "INBOX"', lines
    assert (srv.maildir(ALICE) / ".Sent" / "cur").is_dir()
    typ, data = m.list('""', '""')
    assert data == [b'(\\Noselect) "/" ""']
    m.logout()


@needs_store
def test_create_rename_delete_subscribe(srv):
    m = logged_in(srv)
    assert m.create("Projects/2026")[0] == "OK"
    typ, data = m.list('""', "%")
    assert b'(\\Noselect \\HasChildren) "/" "Projects"' in data, data   # Maildir++: a parent by its children
    typ, data = m.create('"Entw&APw-rfe"')
    assert typ == "OK"
    assert (srv.maildir(ALICE) / ".Entw&APw-rfe").is_dir()
    typ, data = m.create("Sent")
    assert typ == "NO" and b"[ALREADYEXISTS]" in data[0]
    assert m.rename("Projects/2026", "Projects/2027")[0] == "OK"
    typ, data = m.list('""', "Projects/*")
    assert [d for d in data if d.endswith(b'"Projects/2027"')], data
    assert m.subscribe("Projects/2027")[0] == "OK"
    typ, data = m.lsub('""', "Projects/*")
    assert data and data[0].endswith(b'"Projects/2027"'), data
    assert m.unsubscribe("Projects/2027")[0] == "OK"
    assert m.delete("Projects/2027")[0] == "OK"
    typ, data = m.delete("INBOX")
    assert typ == "NO" and b"[CANNOT]" in data[0]
    typ, data = m.select("Nope")
    assert typ == "NO" and b"[NONEXISTENT]" in data[0] and b'"Nope"' in data[0]
    m.logout()


@needs_store
def test_append_status_select_examine_close(srv):
    m = logged_in(srv)
    msg = b"From: a@example.test\r\nSubject: draft\r\n\r\nhello\r\n"
    typ, data = m.append("Drafts", "(\\Draft $Later)", imaplib.Time2Internaldate(1796145900), msg)
    assert typ == "OK"
    code = re.match(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
    assert code, data
    typ, data = m.status("Drafts", "(MESSAGES UIDNEXT UNSEEN UIDVALIDITY)")
    assert typ == "OK"
    st = data[0].decode()
    assert "MESSAGES 1" in st and "UNSEEN 1" in st and "UIDVALIDITY %s" % code.group(1).decode() in st, st
    assert "UIDNEXT %d" % (int(code.group(2)) + 1) in st, st
    typ, data = m.select("Drafts")
    assert typ == "OK" and data == [b"1"]
    m.state = "AUTH"   # imaplib would refuse ENABLE in SELECTED itself: let the server say it
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.xatom("ENABLE", "CONDSTORE")
    m.state = "SELECTED"
    assert "ENABLE is only allowed before SELECT" in str(e.value)
    for key in ("UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ", "PERMANENTFLAGS", "READ-WRITE"):
        assert key in m.untagged_responses or key in str(m.response(key)), key
    assert m.close()[0] == "OK"
    typ, data = m.select("Drafts", readonly=True)
    assert typ == "OK" and "READ-ONLY" in m.untagged_responses
    assert m.unselect()[0] == "OK"
    m.logout()


@needs_store
def test_quota_words_and_getquotaroot(srv):
    p = srv.cli("user", "quota", "bob@example.test", "2K")
    assert p.returncode == 0, p.stderr
    srv.cli("user", "add", "carol@example.test", input=PASSWORD + "\n")
    p = srv.cli("user", "quota", "carol@example.test", "2K")
    assert p.returncode == 0, p.stderr
    m = logged_in(srv, "carol@example.test")
    typ, data = m.getquotaroot("INBOX")
    assert typ == "OK"
    flat = b" ".join(x for d in data for x in (d if isinstance(d, list) else [d]))
    assert b'QUOTAROOT' in flat or b'""' in flat, data
    typ, data = m.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"x" * 4000 + b"\r\n")
    assert typ == "NO" and b"[OVERQUOTA]" in data[0] and b"KiB" in data[0] and b"empty the Trash" in data[0], data
    m.logout()


needs_commands = pytest.mark.skipif(not (REPO / "src/imap/cmd_fetch.c").exists(),
                                    reason="the message commands (imap-commands) are not in this tree yet")


@needs_store
@needs_commands
def test_idle_wakes_when_another_session_appends(srv):
    """RFC 2177 with imaplib2: an IDLE on INBOX hears * N EXISTS within about a second
    of another session's APPEND (the folder's change counter, polled by [imap] idle_poll)."""
    import imaplib2
    m = imaplib2.IMAP4_SSL("127.0.0.1", srv.ports["imaps"], timeout=10)
    m.login(ALICE, PASSWORD)
    typ, data = m.select("INBOX")
    before = int(data[0])
    other = logged_in(srv)
    started = time.monotonic()
    result = {}

    def done(args):
        result["args"] = args

    m.idle(timeout=8, callback=done)
    time.sleep(0.3)
    other.append("INBOX", None, None, b"Subject: wake\r\n\r\nup\r\n")
    deadline = time.monotonic() + 9
    while "args" not in result and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "args" in result, "IDLE did not return"
    assert time.monotonic() - started < 5, "woke only at the timeout"
    typ, data = m.response("EXISTS")
    assert data and data[-1] and int(data[-1]) == before + 1, data
    other.logout()
    m.logout()


def test_alert_at_login_when_outgoing_mail_fails(srv):
    """RFC 3501 §7.1: a client shows [ALERT] text to its user.  Erin's phone sent on the
    mx port without logging in (refused: the port-25 trap); at its next IMAP login it
    hears why, with the refusal's own code and where to read more.  (Erin: bob is
    throttled by the tests above.)"""
    import smtplib
    srv.add_user("erin@example.test", PASSWORD)
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
        c.ehlo("phone.example")
        c.mail("erin@example.test")
        code, _ = c.rcpt("friend@elsewhere.example")
        assert code == 554, code
    deadline = time.monotonic() + 10
    while True:
        r = Raw(srv)
        r.send(b"a1 LOGIN erin@example.test %s\r\n" % PASSWORD.encode())
        lines = r.until_tagged("a1")
        r.close()
        alert = [ln for ln in lines if ln.startswith("* OK [ALERT] ")]
        if alert or time.monotonic() > deadline:   # the store writes its records a moment later
            break
        time.sleep(0.2)
    assert lines[-1].startswith("a1 OK"), lines
    assert alert, lines
    assert "Your outgoing mail is failing" in alert[0] and "554 5.7.1" in alert[0], alert
    assert all(32 <= ord(ch) < 127 for ch in alert[0]), alert
    # Alice's mail did not fail: she is not alerted.
    r = Raw(srv)
    r.send(b"a2 LOGIN alice@example.test %s\r\n" % PASSWORD.encode())
    assert not [ln for ln in r.until_tagged("a2") if "[ALERT]" in ln]
    r.close()
