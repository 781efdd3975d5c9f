"""Authentication-Results fields that claim Postern's authserv-id are removed at
receipt (RFC 8601 §5), on DATA and on BDAT, whatever their case, comments, quoting or
folding; fields of other servers stay.  The stored copy is read from the Maildir."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from helpers import message  # noqa: E402

FORGED = [
    "Authentication-Results: mx.example.test; dkim=pass header.d=forged.example\r\n",
    "Authentication-Results: MX.EXAMPLE.TEST;\r\n\tdmarc=pass header.from=forged.example\r\n",
    "Authentication-Results: (looks (harmless)) \"mx.example.test\" 1;\r\n spf=pass smtp.mailfrom=forged.example\r\n",
]
KEPT = "Authentication-Results: upstream.example.net; spf=pass smtp.mailfrom=kept.example\r\n"
LOOKALIKE = "Authentication-Results: mx.example.test.evil.example; dkim=pass header.d=lookalike.example\r\n"


def stored(server, n):
    msgs = server.wait_delivered("alice@example.test", n)
    assert len(msgs) >= n, "message %d not delivered; log:\n%s" % (n, server.log()[-3000:])
    return msgs[n - 1].read_bytes()


def check(data):
    assert b"forged.example" not in data, data.decode("latin-1")
    assert b"kept.example" in data and b"lookalike.example" in data, data.decode("latin-1")
    assert b"Subject: forged A-R" in data
    assert b"body line 2" in data
    # The forged fields sat between From: and Subject:; the fields around them survived.
    assert b"X-Before: 1" in data and b"X-After: 2" in data


def forged_message():
    extra = "X-Before: 1\r\n" + "".join(FORGED) + KEPT + LOOKALIKE + "X-After: 2\r\n"
    return message(subject="forged A-R", body="body line 1\r\nbody line 2\r\n", extra=extra)


def test_forged_fields_removed_on_data(server):
    with server.connect() as c:
        c.start_mail()
        r = c.data(forged_message())
        assert r.code == 250, r
    check(stored(server, 1))
    assert "event=authres_removed" in server.log() and "fields=3" in server.log()


def test_forged_fields_removed_on_bdat(server):
    msg = forged_message()
    with server.connect() as c:
        c.start_mail()
        # Split inside a forged field, so the filter sees it across chunks.
        cut = msg.index(b"forged.example") - 5
        c.send(b"BDAT %d\r\n" % cut + msg[:cut])
        assert c.reply().code == 250
        rest = msg[cut:]
        c.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
        r = c.reply(timeout=30)
        assert r.code == 250, r
    check(stored(server, 1))


def test_own_authserv_id_setting(server_factory):
    srv = server_factory(extra="\n[mailauth]\nauthserv_id = auth.example.org\n")
    extra = ("Authentication-Results: auth.example.org; dkim=pass header.d=forged.example\r\n"
             "Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=kept.example\r\n")
    with srv.connect() as c:
        c.start_mail()
        r = c.data(message(subject="id", extra=extra))
        assert r.code == 250, r
    data = stored(srv, 1)
    assert b"forged.example" not in data
    assert b"kept.example" in data   # the host name is no longer our id
