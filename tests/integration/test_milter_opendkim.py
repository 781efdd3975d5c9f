"""OpenDKIM (Debian's opendkim 2.11) as Postern's content filter, signing through the
milter interface: the DKIM-Signature it asks to insert lands in the message where
the filter asked, over the header fields it was sent, and python3-dkim (dkim.verify,
the key's record answered from the test's own key) verifies it on the delivered copy.
Proof that header fields go to the filter as they are in the message, that the body
goes whole, and that an added field is stored with the message."""
import sys
import time
from pathlib import Path

import dkim
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import SMTPConn  # noqa: E402
from milter_support import Opendkim, milter_sections  # noqa: E402

ALICE = "alice@example.test"


@pytest.fixture(scope="module")
def opendkim(tmp_path_factory):
    o = Opendkim(tmp_path_factory.mktemp("opendkim")).start()
    yield o
    o.stop()


@pytest.fixture
def srv(server_factory, opendkim):
    extra = "milters = opendkim\n" + milter_sections([("opendkim", "inet:127.0.0.1:%d" % opendkim.port,
                                                         {"default_action": "accept"})])
    return server_factory(users=(ALICE,), extra=extra)


def body_lines(n):
    # Long enough to take several body chunks' worth of lines through the filter.
    return "".join("line %d of a message that OpenDKIM signs, with a dot-free text\r\n" % i for i in range(n))


@pytest.mark.parametrize("lines", [3, 2000])
def test_opendkim_signature_verifies(srv, opendkim, lines):
    msg = ("From: Alice <%s>\r\nTo: <%s>\r\nSubject: signed through the milter\r\n"
           "Subject-Folded: one\r\n two\r\nDate: Tue, 01 Dec 2026 15:00:00 +0000\r\n"
           "Message-ID: <%d@example.test>\r\n\r\n%s" % (ALICE, ALICE, time.monotonic_ns(), body_lines(lines)))
    with SMTPConn("127.0.0.1", srv.port, timeout=30) as c:
        rr = c.start_mail(sender=ALICE, rcpts=(ALICE,))
        assert rr[0].code == 250, rr[0]
        r = c.data(msg)
        assert r.code == 250, r
        c.cmd("QUIT")
    msgs = srv.wait_delivered(ALICE, 1, timeout=15, settle=0.3)
    assert len(msgs) == 1, msgs
    data = msgs[0].read_bytes()
    assert b"DKIM-Signature:" in data, data[:2000]
    assert b"d=example.test" in data and b"s=mt" in data, data[:2000]
    assert dkim.verify(data, dnsfunc=opendkim.dnsfunc), data[:3000]
    # The signature covers what was delivered: changing the body breaks it.
    assert not dkim.verify(data.replace(b"line 1 of", b"line X of"), dnsfunc=opendkim.dnsfunc)
