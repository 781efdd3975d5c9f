"""Transaction state: what RSET, EHLO and a finished message clear, and what they must
not carry over into the next message."""
from helpers import message


def test_old_refusals_do_not_leak_into_next_explanation(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        assert c.cmd("RCPT TO:<x@remote.example>").is_(554, "5.7.1")
        assert c.cmd("RSET").is_(250, "2.0.0")
        c.cmd("MAIL FROM:<a@b.example>")
        r = c.cmd("DATA")
        assert r.is_(503, "5.5.1"), r
        assert "x@remote.example" not in r.text, "refusal from the reset transaction reported: %r" % r
        assert "no rcpt" in r.text.lower(), r


def test_recipients_do_not_survive_a_finished_message(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        c.cmd("RCPT TO:<alice@example.test>")
        assert c.data(message("first")).is_(250, "2.0.0")
        r = c.cmd("RCPT TO:<alice@example.test>")
        assert r.is_(503, "5.5.1"), "RCPT without a new MAIL after a message: %r" % r
        assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
        r = c.cmd("DATA")
        assert r.is_(503, "5.5.1"), "DATA reused the previous message's recipients: %r" % r
    msgs = server.wait_delivered("alice@example.test", 1, settle=0.5)
    assert len(msgs) == 1


def test_ehlo_resets_the_transaction(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        assert c.cmd("EHLO client.example").code == 250
        r = c.cmd("DATA")
        assert r.is_(503, "5.5.1"), "EHLO did not reset the transaction (RFC 5321 4.1.4): %r" % r
        assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")


def test_some_recipients_refused_message_goes_to_the_others(server):
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        assert c.cmd("RCPT TO:<x@remote.example>").is_(554, "5.7.1")
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        assert c.cmd("RCPT TO:<bob@example.test>").is_(550, "5.1.1")
        assert c.cmd("DATA").code == 354
        c.send(message("partial") + b".\r\n")
        assert c.reply().is_(250, "2.0.0")
    msgs = server.wait_delivered("alice@example.test", 1, settle=0.5)
    assert len(msgs) == 1
    assert server.maildir_messages("bob@example.test") == []
    assert not (server.data_dir / "mail" / "remote.example").exists()


def test_several_mail_parameters(server):
    with server.connect() as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@b.example> BODY=8BITMIME SMTPUTF8 SIZE=200")
        assert r.is_(250, "2.1.0"), r
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        assert c.data(b"Subject: params\r\n\r\n\xc3\xa9t\xc3\xa9\r\n").is_(250, "2.0.0")
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1 and msgs[0].read_bytes().endswith(b"\n\n\xc3\xa9t\xc3\xa9\n")


def test_refusal_references_increase(server):
    import re
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        refs = []
        for rc in ("bob@example.test", "x@remote.example", "carol@example.test"):
            r = c.cmd("RCPT TO:<%s>" % rc)
            m = re.search(r"\(ref \d+\.(\d+)\.(\d+)\)", r.text)   # RUN.CONN.N
            assert m, r
            refs.append((int(m.group(1)), int(m.group(2))))
    assert len({conn for conn, _ in refs}) == 1
    assert [n for _, n in refs] == sorted(n for _, n in refs) and len(set(refs)) == 3, refs
