"""The server log: one key=value line per event, client text escaped."""
import re

from helpers import message


def test_log_events_for_a_session(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        assert c.cmd("RCPT TO:<bob@example.test>").is_(550, "5.1.1")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        r = c.data(message("logged"))
        assert r.is_(250, "2.0.0")
        qid = r.qid
        c.cmd("QUIT")
    assert len(server.wait_delivered("alice@example.test", 1)) == 1
    lines = server.log().splitlines()
    # delivery is logged right after the file is renamed: allow a moment (bounded)
    import time
    for _ in range(40):
        if any("event=delivered" in l and qid in l for l in lines):
            break
        time.sleep(0.05)
        lines = server.log().splitlines()
    for l in lines:
        assert re.match(r"^ts=\S+ .*\bevent=\S+", l), "log line without ts= / event=: %r" % l
    assert any(re.search(r"\bevent=connect\b.*\bclient=127\.0\.0\.1\b", l) for l in lines), lines
    refused = [l for l in lines if "event=refused" in l]
    assert any("code=550" in l and "enh=5.1.1" in l and "bob@example.test" in l for l in refused), refused
    queued = [l for l in lines if re.search(r"\bevent=queued\b", l)]
    assert any(re.search(r"\bqid=%s\b" % qid, l) for l in queued), (qid, queued)
    delivered = [l for l in lines if re.search(r"\bevent=delivered\b", l)]
    assert any(re.search(r"\bqid=%s\b" % qid, l) and "alice@example.test" in l for l in delivered), \
        (qid, delivered)


def test_refusal_reference_matches_log(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        r = c.cmd("RCPT TO:<bob@example.test>")
        assert r.is_(550, "5.1.1")
        m = re.search(r"\(ref (\d+\.\d+\.\d+)\)", r.text)
        assert m, "refusal without a (ref RUN.CONN.N): %r" % r
        ref = m.group(1)
    assert any("event=refused" in l and "ref=%s" % ref in l for l in server.log().splitlines()), \
        (ref, server.log())


def test_client_text_is_escaped(server):
    with server.connect() as c:
        r = c.cmd(b"HELO evil\x01host\x1b[31m")
        assert r.code in (250, 500, 501), r
        c.cmd(b"EHLO client.example")
        c.cmd(b"MAIL FROM:<a@b.example>")
        c.cmd(b"RCPT TO:<bo\x01b\x7f@example.test>")
        c.cmd(b"XYZZY\x01\x1b")
        c.cmd(b"RCPT TO:<x\xff\xfe@remote.example>")
        c.cmd(b"QUIT")
    data = server.log_bytes()
    assert b"event=connect" in data
    assert b"\x01" not in data, "raw \\x01 in the log"
    assert b"\x1b" not in data, "raw ESC in the log"
    assert b"\x7f" not in data, "raw DEL in the log"
    for ch in data:
        assert ch in (9, 10) or 32 <= ch < 127 or ch >= 128, "control byte %#x in the log" % ch
    assert b"\xff\xfe" not in data, "raw non-ASCII client bytes in the log"
    # the refused RCPT is logged with its argument, escaped as \xNN
    assert re.search(rb"x\\x[fF][fF]\\x[fF][eE]@remote\.example", data), data.decode("latin-1")
