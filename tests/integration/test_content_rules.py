"""What a message may not carry, and what may not happen between BDAT chunks, the same
whether it came by DATA or by BDAT (RFC 3030): recipients given after BDAT began are
refused (never accepted and then dropped), bare CR/LF and NUL bytes are refused, and lines
longer than [limits] message_line_length are refused with words naming the line."""
import re

import pytest

from helpers import message
from submission_support import auth_plain, connect_tls, make_sub_server, simple_msg, wait_log

ALICE = "alice@example.test"
BOB = "bob@example.test"
REMOTE = "friend@elsewhere.example"


def _bdat(c, chunk, last=False):
    c.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk)
    return c.reply(timeout=30)


def _queued_log_nrcpt(srv, qid):
    m = wait_log(srv, r"event=queued\b[^\n]*qid=%s[^\n]*nrcpt=(\d+)" % qid)
    assert m, srv.log()[-3000:]
    return int(m.group(1))


# -- item: a recipient given between BDAT chunks ----------------------------------------

def test_rcpt_between_bdat_chunks_refused_on_mx(server_factory):
    srv = server_factory(users=(ALICE, BOB))
    body = message("bdat envelope")
    with srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
        assert c.cmd("RCPT TO:<%s>" % ALICE).is_(250, "2.1.5")
        assert _bdat(c, body[:42]).is_(250, "2.0.0")
        r = c.cmd("RCPT TO:<%s>" % BOB)
        # RFC 3030: refuse it (503 5.5.1, with words), never 250 and then drop it
        assert r.is_(503, "5.5.1"), r
        assert "BDAT" in r.text and "recipients" in r.text, r
        r = c.cmd("MAIL FROM:<other@b.example>")
        assert r.is_(503, "5.5.1") and "BDAT" in r.text, r
        r = _bdat(c, body[42:], last=True)
        assert r.is_(250, "2.0.0") and r.qid, r
    assert _queued_log_nrcpt(srv, r.qid) == 1
    assert len(srv.wait_delivered(ALICE, 1)) == 1
    assert srv.wait_delivered(BOB, 1, timeout=1.0) == []


def test_remote_rcpt_between_bdat_chunks_refused_on_submission(server_factory):
    srv = make_sub_server(server_factory)
    body = simple_msg(subject="bdat on submission")
    with connect_tls(srv) as c:
        assert auth_plain(c).is_(235, "2.7.0")
        assert c.cmd("MAIL FROM:<%s>" % ALICE).is_(250, "2.1.0")
        assert c.cmd("RCPT TO:<%s>" % ALICE).is_(250, "2.1.5")
        assert _bdat(c, body[:42]).is_(250, "2.0.0")
        r = c.cmd("RCPT TO:<%s> NOTIFY=NEVER" % REMOTE)
        assert r.is_(503, "5.5.1"), r
        r = _bdat(c, body[42:], last=True)
        assert r.is_(250, "2.0.0") and r.qid, r
    assert _queued_log_nrcpt(srv, r.qid) == 1
    assert len(srv.wait_delivered(ALICE, 1)) == 1
    assert REMOTE not in srv.log(), "the refused recipient reached the queue or delivery"


# -- item: bare CR / bare LF in BDAT content --------------------------------------------

@pytest.mark.parametrize("content", [
    b"Subject: x\r\n\r\nhi\n.\nMAIL FROM:<evil@x>\r\n",     # bare LF
    b"Subject: x\r\n\r\nhi\r.\rsmuggled\r\n",              # bare CR
    b"Subject: x\r\n\r\nends in a bare CR\r",              # CR as the last byte
])
def test_bdat_bare_line_ends_refused_like_data(server, content):
    with server.connect() as c:
        c.ehlo()
        c.start_mail()
        # DATA's refusal, for reference
        r = c.data(content + b"\r\n")
        assert r.is_(550, "5.6.0"), r
        data_words = r.lines[0]
        c.start_mail()
        # the same content by BDAT, split in two chunks at an awkward place
        assert _bdat(c, content[:17]).is_(250, "2.0.0")
        r = _bdat(c, content[17:], last=True)
        assert r.is_(550, "5.6.0"), r
        assert "CR LF" in r.text and "RFC 5321 section 2.3.8" in r.text, r
        assert r.lines[0].split("bare")[0] == data_words.split("bare")[0], (r, data_words)
        assert c.cmd("NOOP").is_(250, "2.0.0")
    assert server.wait_delivered(ALICE, 1, timeout=1.0) == []


def test_bdat_with_crlf_split_between_chunks_accepted(server):
    content = b"Subject: split\r\n\r\nline one\r"
    rest = b"\nline two\r\n"
    with server.connect() as c:
        c.ehlo()
        c.start_mail()
        assert _bdat(c, content).is_(250, "2.0.0")
        r = _bdat(c, rest, last=True)
        assert r.is_(250, "2.0.0"), r
    msgs = server.wait_delivered(ALICE, 1)
    assert len(msgs) == 1 and msgs[0].read_bytes().endswith(b"\nline one\nline two\n")


# -- item: NUL bytes -------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["header", "body"])
@pytest.mark.parametrize("verb", ["DATA", "BDAT"])
def test_nul_refused(server, where, verb):
    if where == "header":
        content = b"Subject: a\0b\r\n\r\nhello\r\n"
    else:
        content = b"Subject: nul\r\n\r\nhel\0lo\r\n"
    with server.connect() as c:
        c.ehlo()
        c.start_mail()
        r = c.data(content) if verb == "DATA" else _bdat(c, content, last=True)
        assert r.is_(550, "5.6.0"), r
        assert "NUL" in r.text and "base64" in r.text, r
        # the session goes on: a clean message is accepted
        c.start_mail()
        assert c.data(message("after nul")).is_(250, "2.0.0")
    msgs = server.wait_delivered(ALICE, 1, settle=0.5)
    assert len(msgs) == 1 and b"Subject: after nul" in msgs[0].read_bytes()
    assert wait_log(server, r"event=nul_in_message\b[^\n]*cmd=%s" % verb)


# -- item: long lines on receipt ---------------------------------------------------------------

def test_line_over_message_line_length_refused(server_factory):
    srv = server_factory(limits={"message_line_length": "2000"})
    ok = b"Subject: long ok\r\n\r\n" + b"a" * 2000 + b"\r\n"
    with srv.connect() as c:
        c.ehlo()
        c.start_mail()
        r = c.data(ok)
        assert r.is_(250, "2.0.0"), r
        for verb in ("DATA", "BDAT"):
            c.start_mail()
            bad = b"Subject: long\r\n\r\nfirst\r\n" + b"b" * 100000 + b"\r\n"
            r = c.data(bad) if verb == "DATA" else _bdat(c, bad, last=True)
            assert r.is_(550, "5.6.0"), (verb, r)
            assert "line 4 is 100000 octets long" in r.text and "2000" in r.text, r
            assert "998" in r.text, r
    msgs = srv.wait_delivered(ALICE, 1, settle=0.5)
    assert len(msgs) == 1
    # a line longer than 998 but within the limit is stored as it came
    assert b"\n" + b"a" * 2000 + b"\n" in msgs[0].read_bytes()


def test_default_message_line_length_refuses_100000(server):
    with server.connect() as c:
        c.ehlo()
        c.start_mail()
        r = c.data(b"Subject: huge line\r\n\r\n" + b"x" * 100000 + b"\r\n")
        assert r.is_(550, "5.6.0"), r
        assert re.search(r"limit here is 10000\b", r.text), r
    assert server.wait_delivered(ALICE, 1, timeout=1.0) == []
