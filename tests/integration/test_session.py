"""SMTP session basics: greeting, EHLO, commands, ordering and syntax errors, limits."""
import re
import time

from helpers import message


def test_greeting(server):
    with server.connect() as c:
        assert c.greeting.code == 220, c.greeting
        assert c.greeting.lines[0].startswith("mx.example.test ESMTP Postern"), c.greeting


def test_ehlo_lists_extensions(server_factory):
    s = server_factory(limits={"message_size": "64K"})
    with s.connect() as c:
        r = c.cmd("EHLO client.example")
        assert r.code == 250, r
        assert r.lines[0].startswith("mx.example.test"), r
        keywords = {l.split()[0].upper(): l.split()[1:] for l in r.lines[1:] if l.strip()}
        for ext in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING"):
            assert ext in keywords, "%s missing from EHLO reply %r" % (ext, r)
        assert keywords["SIZE"] == ["65536"], r


def test_helo(server):
    with server.connect() as c:
        r = c.cmd("HELO client.example")
        assert r.code == 250, r
        assert r.lines[0].startswith("mx.example.test"), r
        r = c.cmd("MAIL FROM:<a@b.example>")
        assert r.is_(250, "2.1.0"), r


def test_basic_transaction(server):
    with server.connect() as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@b.example>")
        assert r.is_(250, "2.1.0"), r
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.is_(250, "2.1.5"), r
        r = c.cmd("DATA")
        assert r.code == 354, r
        c.send(message("basic") + b".\r\n")
        r = c.reply()
        assert r.is_(250, "2.0.0"), r
        assert re.match(r"^2\.0\.0 Ok: queued as [0-9A-Fa-f]{16}$", r.lines[-1]) or \
            re.match(r"^2\.0\.0 Ok: queued as [0-9A-Fa-f]{16}\b", r.lines[0]), r
        r = c.cmd("QUIT")
        assert r.is_(221, "2.0.0"), r
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    assert b"Subject: basic" in msgs[0].read_bytes()


def test_rset_noop_help_quit(server):
    with server.connect() as c:
        c.ehlo()
        assert c.cmd("NOOP").is_(250, "2.0.0")
        r = c.cmd("MAIL FROM:<a@b.example>")
        assert r.is_(250, "2.1.0"), r
        r = c.cmd("RSET")
        assert r.is_(250, "2.0.0"), r
        # RSET cleared the transaction: RCPT now needs MAIL again
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.is_(503, "5.5.1"), r
        r = c.cmd("HELP")
        assert r.code == 214, r
        r = c.cmd("QUIT")
        assert r.is_(221, "2.0.0"), r
        assert c.wait_closed(5), "connection not closed after QUIT"


def test_vrfy_never_reveals_users(server):
    with server.connect() as c:
        c.ehlo()
        replies = [c.cmd("VRFY " + a) for a in
                   ("alice", "bob", "alice@example.test", "bob@example.test", "<alice@example.test>")]
        for r in replies:
            assert r.code == 252, r
        assert len({r.text for r in replies}) == 1, "VRFY replies differ: %r" % replies


def test_expn_not_supported(server):
    with server.connect() as c:
        c.ehlo()
        r = c.cmd("EXPN staff")
        assert r.is_(502, "5.5.1"), r


def test_wrong_order(server):
    with server.connect() as c:
        r = c.cmd("MAIL FROM:<a@b.example>")
        assert r.is_(503, "5.5.1"), "MAIL before EHLO: %r" % r
        c.ehlo()
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.is_(503, "5.5.1"), "RCPT before MAIL: %r" % r
        r = c.cmd("DATA")
        assert r.is_(503, "5.5.1"), "DATA before MAIL: %r" % r
        assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
        r = c.cmd("MAIL FROM:<c@d.example>")
        assert r.is_(503, "5.5.1"), "MAIL twice: %r" % r
        # the first transaction is still there
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")


def test_bad_mail_syntax(server):
    with server.connect() as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:foo bar baz")
        assert r.code == 501 and r.enh in ("5.1.7", "5.5.4"), r
        r = c.cmd("MAIL FROM:<a@>")
        assert r.is_(501, "5.1.7"), r
        r = c.cmd("MAIL FROM:<a@b.example> FOO=BAR")
        assert r.is_(555, "5.5.4"), r
        # none of those opened a transaction
        r = c.cmd("MAIL FROM:<a@b.example>")
        assert r.is_(250, "2.1.0"), r
        r = c.cmd("RCPT TO:<>")
        assert r.is_(501, "5.1.3"), r
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.is_(250, "2.1.5"), r


def test_unknown_command(server):
    with server.connect() as c:
        r = c.cmd("XYZZY")
        assert r.is_(500, "5.5.2"), r
        assert c.cmd("EHLO client.example").code == 250


def test_line_too_long_then_session_goes_on(server):
    with server.connect() as c:
        c.ehlo()
        # the long line and a NOOP in one write: exactly two replies must come back
        c.send(b"NOOP " + b"x" * 1500 + b"\r\nNOOP\r\n")
        r = c.reply()
        assert r.is_(500, "5.5.6"), r
        r = c.reply()
        assert r.is_(250, "2.0.0"), "after the long line, NOOP got %r" % r
        # a long MAIL line whose tail looks like a command must not run that command
        c.send(b"MAIL FROM:<a@b.example> " + b"y" * 1200 + b" RSET\r\nNOOP\r\n")
        r = c.reply()
        assert r.is_(500, "5.5.6"), r
        assert c.reply().is_(250, "2.0.0")
        assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")


def test_line_exactly_at_limit_is_accepted(server_factory):
    s = server_factory(limits={"line_length": "512"})
    with s.connect() as c:
        c.ehlo()
        line = b"NOOP " + b"x" * (512 - 2 - 5)   # 512 octets with CRLF
        assert len(line) + 2 == 512
        r = c.cmd(line)
        assert r.is_(250, "2.0.0"), r
        r = c.cmd(line + b"x")
        assert r.is_(500, "5.5.6"), r


def test_too_many_bad_commands(server_factory):
    s = server_factory(limits={"bad_commands": "3"})
    with s.connect() as c:
        c.ehlo()
        got = []
        for i in range(6):
            try:
                c.send(b"XYZZY\r\n")
                r = c.reply(timeout=5)
            except (EOFError, OSError):
                break
            got.append(r)
            if r.code == 421:
                break
        codes = [r.code for r in got]
        assert 421 in codes, "no 421 after %d bad commands: %r" % (len(got), got)
        i421 = codes.index(421)
        assert got[i421].enh == "4.7.0", got[i421]
        assert 3 <= i421 + 1 <= 4, "421 came after %d bad commands (limit 3): %r" % (i421 + 1, got)
        assert c.wait_closed(5), "connection still open after 421"


def test_idle_timeout(server_factory):
    s = server_factory(limits={"idle_timeout": "10s"})
    with s.connect(timeout=20) as c:
        c.ehlo()
        t0 = time.monotonic()
        r = c.reply(timeout=20)
        elapsed = time.monotonic() - t0
        assert r.is_(421, "4.4.2"), (r, elapsed)
        assert 8.5 <= elapsed <= 18, "idle timeout after %.1fs, expected ~10s" % elapsed
        assert c.wait_closed(5)
