"""Message transfer: PIPELINING, dot-stuffing, 8-bit, headers added at delivery, Maildir
file names, SIZE limits, SMTP smuggling, BDAT, several recipients."""
import re
import time

import pytest

from helpers import message, split_message, unfolded_headers


def send_one(server, msg, rcpts=("alice@example.test",), sender="a@b.example", params="", helo="EHLO"):
    with server.connect() as c:
        r = c.cmd("%s client.example" % helo)
        assert r.code == 250, r
        assert c.cmd("MAIL FROM:<%s>%s" % (sender, params)).is_(250, "2.1.0")
        for rc in rcpts:
            assert c.cmd("RCPT TO:<%s>" % rc).is_(250, "2.1.5")
        r = c.data(msg)
        assert r.is_(250, "2.0.0"), r
        assert r.qid, r
        return r.qid


def test_pipelining(server):
    with server.connect() as c:
        c.send(b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
        r = c.reply()
        assert r.code == 250 and any(l.upper().startswith("PIPELINING") for l in r.lines), r
        r = c.reply()
        assert r.is_(250, "2.1.0"), r
        r = c.reply()
        assert r.is_(250, "2.1.5"), r
        r = c.reply()
        assert r.is_(550, "5.1.1"), r
        r = c.reply()
        assert r.code == 354, r
        c.send(message("pipelined") + b".\r\nQUIT\r\n")
        r = c.reply()
        assert r.is_(250, "2.0.0") and r.qid, r
        r = c.reply()
        assert r.is_(221, "2.0.0"), r
        assert c.wait_closed(5)
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1 and b"Subject: pipelined" in msgs[0].read_bytes()


def test_pipelined_transactions_back_to_back(server):
    """Two whole transactions in one write, the second pipelined after the first dot."""
    with server.connect() as c:
        c.ehlo()
        one = b"MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
        c.send(one)
        assert [c.reply().code for _ in range(3)] == [250, 250, 354]
        c.send(message("first") + b".\r\n" + one)
        assert c.reply().is_(250, "2.0.0")
        assert [c.reply().code for _ in range(3)] == [250, 250, 354]
        c.send(message("second") + b".\r\n")
        assert c.reply().is_(250, "2.0.0")
    msgs = server.wait_delivered("alice@example.test", 2, settle=0.5)
    assert len(msgs) == 2


def test_dot_stuffing_and_8bit(server):
    body = (b"line one\r\n"
            b"..one leading dot\r\n"
            b"...two leading dots\r\n"
            b"..\r\n"
            b"x.y not at start\r\n"
            b"caf\xe9 \xff\xfe eight-bit\r\n"
            b"last line\r\n")
    msg = b"Subject: dots\r\n\r\n" + body
    send_one(server, msg, params=" BODY=8BITMIME")
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    data = msgs[0].read_bytes()
    _, stored_body = split_message(data)
    assert stored_body == (b"line one\n"
                           b".one leading dot\n"
                           b"..two leading dots\n"
                           b".\n"
                           b"x.y not at start\n"
                           b"caf\xe9 \xff\xfe eight-bit\n"
                           b"last line\n"), stored_body


def test_stored_headers_esmtp(server):
    qid = send_one(server, message("headers"))
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    data = msgs[0].read_bytes()
    assert b"\r" not in data, "stored message has CR bytes (must be LF line ends)"
    lines = data.split(b"\n")
    assert lines[0] == b"Return-Path: <a@b.example>", lines[:3]
    assert re.match(rb"^Delivered-To: <?alice@example\.test>?$", lines[1]), lines[:3]
    # The inbound checks' Authentication-Results field (one, folded) comes first, then
    # Postern's Received: (both added on top, RFC 8601 §4, RFC 5321 §4.4).
    i = 2
    if lines[i].startswith(b"Authentication-Results: mx.example.test;"):
        i += 1
        while lines[i][:1] in (b" ", b"\t"):
            i += 1
    assert lines[i].startswith(b"Received:"), lines[:i + 1]
    hdrs = unfolded_headers(data)
    received = [v for n, v in hdrs if n.lower() == "received"][0]
    assert "from client.example" in received, received
    assert "[127.0.0.1]" in received, received
    assert "with ESMTP" in received, received
    assert re.search(r"\bid %s\b" % qid, received), (qid, received)
    assert "for <alice@example.test>" in received, received
    # the client's own headers follow unchanged
    assert b"\nSubject: headers\n" in data


def test_stored_headers_helo_is_smtp(server):
    send_one(server, message("helo"), helo="HELO")
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    received = [v for n, v in unfolded_headers(msgs[0].read_bytes()) if n.lower() == "received"][0]
    assert re.search(r"\bwith SMTP\b", received), received
    assert "from client.example" in received, received


def test_maildir_file_name_sizes(server):
    send_one(server, message("sizes", body="a\r\nbb\r\n\r\nccc\r\n" * 20))
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    p = msgs[0]
    assert p.parent.name == "new" and p.parent.parent == server.maildir("alice@example.test")
    m = re.search(r",S=(\d+),W=(\d+)", p.name)
    assert m, p.name
    data = p.read_bytes()
    assert int(m.group(1)) == len(data), (p.name, len(data))
    assert int(m.group(2)) == len(data) + data.count(b"\n"), (p.name, len(data), data.count(b"\n"))
    for sub in ("cur", "new", "tmp"):
        assert (server.maildir("alice@example.test") / sub).is_dir()


def test_declared_size_too_big(server_factory):
    s = server_factory(limits={"message_size": "64K"})
    with s.connect() as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@b.example> SIZE=100000")
        assert r.is_(552, "5.3.4"), r
        # nothing was started: RCPT needs a MAIL
        assert c.cmd("RCPT TO:<alice@example.test>").is_(503, "5.5.1")
        r = c.cmd("MAIL FROM:<a@b.example> SIZE=1000")
        assert r.is_(250, "2.1.0"), r


def test_undeclared_size_too_big(server_factory):
    s = server_factory(limits={"message_size": "64K"})
    line = b"x" * 98 + b"\r\n"
    big = b"Subject: big\r\n\r\n" + line * 1000          # ~100 KB
    with s.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        assert c.cmd("DATA").code == 354
        c.send(big + b".\r\n")
        r = c.reply(timeout=30)
        assert r.is_(552, "5.3.4"), r
        # the session goes on, and no line of the body was taken as a command
        assert c.cmd("NOOP").is_(250, "2.0.0")
        assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
    assert s.wait_delivered("alice@example.test", 1, timeout=1.5) == []


def test_message_under_the_limit_accepted(server_factory):
    s = server_factory(limits={"message_size": "64K"})
    body = (b"y" * 98 + b"\r\n") * 500          # ~50 KB
    send_one(s, b"Subject: fits\r\n\r\n" + body)
    msgs = s.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1


SMUGGLE = (b"MAIL FROM:<evil@x>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
           b"From: <evil@x>\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n")


@pytest.mark.parametrize("sep", [b"\n.\n", b"\r.\n", b"\n.\r\n", b"\r\n.\r", b"\r\n.\n",
                                 b"\r.\r", b"\r\n.\r\r\n"],
                         ids=["LF.LF", "CR.LF", "LF.CRLF", "CRLF.CR", "CRLF.LF", "CR.CR", "CRLF.CRCRLF"])
def test_smtp_smuggling(server, sep):
    with server.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        assert c.cmd("DATA").code == 354
        c.send(b"From: <a@b.example>\r\nSubject: real\r\n\r\nreal body" + sep + SMUGGLE)
        c.send(b"QUIT\r\n")
        replies = []
        for _ in range(10):
            try:
                r = c.reply(timeout=10)
            except EOFError:
                break
            replies.append(r)
            if r.code == 221:
                break
        assert len(replies) >= 1
        first = replies[0]
        assert first.code == 550 and first.enh and first.enh.startswith("5."), replies
        assert [r.code for r in replies] == [550, 221], \
            "the smuggled commands were executed: %r" % replies
    msgs = server.wait_delivered("alice@example.test", 1, timeout=1)
    assert len(msgs) == 0, "refused message delivered anyway"
    assert "evil@x" not in server.log() or "event=queued" not in \
        "\n".join(l for l in server.log().splitlines() if "evil@x" in l)


def test_bdat(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        c.send(b"BDAT 10\r\nSubject: x")
        r = c.reply()
        assert r.is_(250, "2.0.0"), r
        chunk = b"\r\n\r\nbody line\r\n.leading dot stays\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        r = c.reply()
        assert r.is_(250, "2.0.0") and r.qid, r
        assert "Ok: queued as" in r.text, r
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    data = msgs[0].read_bytes()
    assert data.endswith(b"\nSubject: x\n\nbody line\n.leading dot stays\n"), data
    received = [v for n, v in unfolded_headers(data) if n.lower() == "received"][0]
    assert "ESMTP" in received


def test_bdat_without_recipient_consumes_its_bytes(server):
    payload = b"RSET\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<alice@example.test>\r\nQUIT\r\n"
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        assert c.cmd("RCPT TO:<bob@example.test>").is_(550, "5.1.1")
        c.send(b"BDAT %d LAST\r\n" % len(payload) + payload + b"NOOP\r\n")
        r = c.reply()
        assert r.is_(503, "5.5.1"), r
        r = c.reply()
        assert r.is_(250, "2.0.0"), "the BDAT payload was executed as commands: %r" % r
        assert c.cmd("NOOP").is_(250, "2.0.0")
    assert server.wait_delivered("alice@example.test", 1, timeout=1) == []


def test_bdat_without_mail_consumes_its_bytes(server):
    payload = b"MAIL FROM:<evil@x>\r\n"
    with server.connect() as c:
        c.ehlo()
        c.send(b"BDAT %d\r\n" % len(payload) + payload + b"NOOP\r\n")
        r = c.reply()
        assert r.code == 503 and r.enh == "5.5.1", r
        r = c.reply()
        assert r.is_(250, "2.0.0"), "the BDAT payload was executed as a command: %r" % r


def test_data_after_bdat(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@example.test>")
        c.send(b"BDAT 5\r\nhello")
        assert c.reply().is_(250, "2.0.0")
        r = c.cmd("DATA")
        assert r.is_(503, "5.5.1"), r


def test_multiple_recipients(server_factory):
    s = server_factory(users=("alice@example.test", "bob@example.test"))
    send_one(s, message("for both"), rcpts=("alice@example.test", "bob@example.test"))
    a = s.wait_delivered("alice@example.test", 1)
    b = s.wait_delivered("bob@example.test", 1)
    assert len(a) == 1 and len(b) == 1
    assert b"Subject: for both" in a[0].read_bytes() and b"Subject: for both" in b[0].read_bytes()
    assert re.search(rb"^Delivered-To: <?bob@example\.test>?$", b[0].read_bytes(), re.M)


def test_same_recipient_twice_delivered_once(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.code in (250, 251, 452, 550, 553) or r.code // 100 == 2, r
        r2 = c.cmd("RCPT TO:<Alice@Example.Test>")
        assert r2.code // 100 in (2, 4, 5)
        assert c.data(message("dup")).is_(250, "2.0.0")
    msgs = server.wait_delivered("alice@example.test", 1, settle=1.0)
    assert len(msgs) == 1, [m.name for m in msgs]


def test_large_message_content_exact(server):
    """~1 MB with lines of many lengths, some starting with dots: the stored body must be
    exactly the original with CRLF turned into LF (catches errors at buffer boundaries)."""
    import random
    rnd = random.Random(1234)
    lines = []
    size = 0
    for i in range(20000):
        n = rnd.choice((0, 1, 2, 70, 76, 998, rnd.randrange(0, 990)))
        line = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789 .") for _ in range(n))
        if i % 7 == 0:
            line = "." + line[1:] if line else "."
        lines.append(line.encode())
        size += n + 2
        if size > 1_000_000:
            break
    original = b"Subject: large\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
    stuffed = b"\r\n".join((b"." + l) if l.startswith(b".") else l for l in original.split(b"\r\n"))
    send_one(server, stuffed)
    msgs = server.wait_delivered("alice@example.test", 1, timeout=15)
    assert len(msgs) == 1
    data = msgs[0].read_bytes()
    expected = original.replace(b"\r\n", b"\n")
    assert data.endswith(expected), "stored body differs from the original (%d vs %d bytes)" % (
        len(data), len(expected))
    assert len(data) - len(expected) < 2000


def test_long_body_lines(server):
    """Body lines longer than the command line limit neither hang the server nor leak
    into the command stream."""
    long_line = b"z" * 5000
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@example.test>")
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: long lines\r\n\r\n" + long_line + b"\r\nNOOP\r\n.\r\nNOOP\r\n")
        r = c.reply(timeout=10)
        assert r.code == 250 or r.code // 100 == 5, r
        r2 = c.reply(timeout=10)
        assert r2.is_(250, "2.0.0") and "queued" not in r2.text, "after the message: %r" % r2
        accepted = r.code == 250
    msgs = server.wait_delivered("alice@example.test", 1, timeout=5 if accepted else 1)
    if accepted:
        assert len(msgs) == 1 and (long_line + b"\nNOOP\n") in msgs[0].read_bytes()
    else:
        assert msgs == []
