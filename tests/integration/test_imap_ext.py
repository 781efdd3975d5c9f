"""IMAP LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819) and the SPECIAL-USE
selection (RFC 6154 §5.1), and UTF8=ACCEPT (RFC 6855), against Python's imaplib
(which switches itself to UTF-8 after ENABLE UTF8=ACCEPT); interimap, which needs
LIST-EXTENDED and LIST-STATUS, runs in test_imap_messages.py.  One server for the
module; every read is bounded (imaplib's timeout)."""
import imaplib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Server, run_cli  # noqa: E402
from submission_support import tls_context, wait_ports  # noqa: E402

PASSWORD = "secret"
USERS = ("carol@example.test", "dave@example.test")
EXTRA = "\n[listener imaps]\naddress = 127.0.0.1\nport = 0\nrole = imap\ntls = implicit\n"
imaplib.Commands.setdefault("ENABLE", ("AUTH",))


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("imapx"), users=USERS, extra=EXTRA)
    s.start()
    s.ports = wait_ports(s, ["imaps"])
    yield s
    s.stop()
    problems = s.check_after()
    assert not problems, "\n".join(problems)


def login(srv, user):
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.ports["imaps"], ssl_context=tls_context(), timeout=10)
    assert m.login(user, PASSWORD)[0] == "OK"
    return m


def ok(r):
    assert r[0] == "OK", r
    return r[1]


def listing(m, *args):
    """The untagged LIST (and STATUS) lines of one LIST command, in order, as text."""
    tag = m._command("LIST", *args)
    lines = []
    while True:
        line = m._get_line()
        if line.startswith(tag):
            assert line.split()[1] == b"OK", line
            return lines
        lines.append(line.decode())


def test_list_extended(srv):
    m = login(srv, USERS[0])
    caps = ok(m.capability())[-1].split()
    assert b"LIST-EXTENDED" in caps and b"LIST-STATUS" in caps and b"SPECIAL-USE" in caps
    for name in ("Proj", "Proj/Alpha", "Proj/Beta", "Other", "Gone"):
        ok(m.create(name))
    ok(m.subscribe("Proj/Alpha"))
    ok(m.subscribe("Gone"))
    ok(m.delete("Gone"))   # the subscription stays (RFC 3501 §6.3.4): \NonExistent
    ok(m.append("Other", None, None, b"Subject: one\r\n\r\nx\r\n"))

    got = listing(m, "(SUBSCRIBED)", '""', "*")
    assert '* LIST (\\HasNoChildren \\Subscribed) "/" "Proj/Alpha"' in got, got
    assert '* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" "Gone"' in got, got
    assert not any(line.endswith(' "Other"') or line.endswith(' "Proj"') for line in got), got

    # RECURSIVEMATCH: Proj is not subscribed, but a child that "%" does not reach is
    got = listing(m, "(SUBSCRIBED RECURSIVEMATCH)", '""', "%")
    assert '* LIST (\\HasChildren) "/" "Proj" ("CHILDINFO" ("SUBSCRIBED"))' in got, got
    assert not any("Alpha" in line or " Other" in line for line in got), got

    # SPECIAL-USE selection (RFC 6154 §5.1): only the special folders
    got = listing(m, "(SPECIAL-USE)", '""', "*", "RETURN", "(SPECIAL-USE)")
    names = sorted(line.rsplit(" ", 1)[1].strip('"') for line in got)
    assert names == ["Archive", "Drafts", "Junk", "Sent", "Trash"], got
    assert any("\\Sent" in line and line.endswith(' "Sent"') for line in got), got

    # several patterns, RETURN (CHILDREN STATUS ...) (RFC 5819): STATUS after its LIST line
    got = listing(m, '""', "(Proj Other)", "RETURN", "(CHILDREN STATUS (MESSAGES UIDNEXT))")
    assert got == ['* LIST (\\HasNoChildren) "/" "Other"', '* STATUS "Other" (MESSAGES 1 UIDNEXT 2)',
                   '* LIST (\\HasChildren) "/" "Proj"', '* STATUS "Proj" (MESSAGES 0 UIDNEXT 1)'], got
    got = listing(m, '""', "*", "RETURN", "(SUBSCRIBED)")
    assert '* LIST (\\HasNoChildren \\Subscribed) "/" "Proj/Alpha"' in got and \
        '* LIST (\\HasNoChildren) "/" "Proj/Beta"' in got, got
    assert not any("Gone" in line for line in got), got   # only SUBSCRIBED selection lists it

    with pytest.raises(imaplib.IMAP4.error) as e:
        m._simple_command("LIST", "(RECURSIVEMATCH)", '""', "*")
    assert "RECURSIVEMATCH needs another selection option" in str(e.value)
    m.logout()


def test_utf8_accept(srv):
    m = login(srv, USERS[1])
    assert b"UTF8=ACCEPT" in ok(m.capability())[-1].split()
    typ, data = m.enable("UTF8=ACCEPT")   # imaplib now speaks UTF-8
    assert typ == "OK" and m.untagged_responses.pop("ENABLED") == [b"UTF8=ACCEPT"]
    ok(m.create('"Grüße"'))
    assert any(line.endswith(' "/" "Grüße"') or line.endswith(' "/" Grüße') for line in listing(m, '""', "*"))
    # APPEND UTF8 (literal8, RFC 6855 §4): imaplib's own append() frames it wrongly, so by hand
    message = "From: Jörg <j@example.test>\r\nSubject: Grüße aus Köln\r\n\r\nHallo\r\n".encode()
    tag = m._new_tag()
    m.send(tag + ' APPEND "Grüße" UTF8 (~{%d+}\r\n'.encode() % len(message) + message + b")\r\n")
    typ, data = m._command_complete("APPEND", tag)
    assert typ == "OK" and b"APPENDUID" in data[0], data
    ok(m.select('"Grüße"'))
    data = ok(m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] ENVELOPE)"))
    raw = b"".join(d[1] if isinstance(d, tuple) else d for d in data) + b"".join(
        d[0] for d in data if isinstance(d, tuple))
    assert "Subject: Grüße aus Köln".encode() in raw, data   # the 8-bit header as it was
    assert ok(m.search(None, "SUBJECT", '"Köln"')) == [b"1"]
    typ, data = m._simple_command("SEARCH", "RETURN", "(COUNT)", "SUBJECT", '"grüße"')
    assert typ == "OK" and m.untagged_responses.pop("ESEARCH")[0].endswith(b"COUNT 1")
    m.logout()

    # a session without UTF8=ACCEPT keeps seeing modified UTF-7 (RFC 3501 §5.1.3)
    o = login(srv, USERS[1])
    got = listing(o, '""', "*")
    assert '* LIST (\\HasNoChildren) "/" "Gr&APwA3w-e"' in got, got
    ok(o.select("Gr&APwA3w-e"))
    with pytest.raises(imaplib.IMAP4.error) as e:
        tag = o._new_tag()
        o.send(tag + b" APPEND INBOX UTF8 (~{1+}\r\na)\r\n")
        o._command_complete("APPEND", tag)
    assert "APPEND UTF8 needs ENABLE UTF8=ACCEPT first" in str(e.value)
    o.logout()


def test_explain_knows_imap_refusals():
    """What a phone shows from an IMAP refusal, pasted into `postern explain`."""
    for reply, words in (
            ("a1 NO [OVERQUOTA] Mailbox full (10 KiB of 10 KiB used)", "Your own mailbox is full"),
            ("a1 NO [AUTHENTICATIONFAILED] Login failed: wrong user name or password", "The IMAP login failed"),
            ("b NO [COMPRESSIONACTIVE] Compression is already active", "COMPRESS=DEFLATE")):
        p = run_cli(["explain", reply])
        assert p.returncode == 0 and words in p.stdout.replace("\n          ", " "), (reply, p.stdout)
