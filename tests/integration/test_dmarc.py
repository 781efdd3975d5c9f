"""The inbound checks at the end of data, with real peers: a real `postern serve` mx
listener, dnsmasq serving the DMARC, SPF and DKIM key records, messages signed by
OpenDKIM (as a milter) and by python3-dkim that Postern must verify as pass, a tampered
one that fails, p=reject refused with the words, p=quarantine delivered with the
quarantine field, a DNS time-out answered 4xx, and Postern's Authentication-Results
field parsed by python3-authres (the oracle).  Forged fields claiming our id are gone,
another server's stays."""
import socket
import sys
import time
from pathlib import Path

import dns.message
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import HOSTNAME  # noqa: E402
from delivery_support import Dns  # noqa: E402
from dmarc_support import OpenDkim, parse_authres, py_key, py_sign, txt_args  # noqa: E402
from helpers import unfolded_headers  # noqa: E402

RCPT = "alice@example.test"
NOT_US = "v=spf1 ip4:192.0.2.7 -all"     # the tests connect from 127.0.0.1


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    root = tmp_path_factory.mktemp("dmarc-peers")
    odk = OpenDkim(root / "opendkim", "odk.example", "odk").start()
    pem, py_record = py_key(root)
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # never answers
    blackhole.bind(("127.0.0.1", 0))
    records = {
        "_dmarc.odk.example": "v=DMARC1; p=reject",
        "odk.example": NOT_US,
        "odk._domainkey.odk.example": odk.record,
        "_dmarc.py.example": "v=DMARC1; p=reject; adkim=s",
        "py.example": NOT_US,
        "py._domainkey.py.example": py_record,
        "_dmarc.reject.example": "v=DMARC1; p=reject; rua=mailto:dmarc@reject.example",
        "reject.example": NOT_US,
        "_dmarc.quar.example": "v=DMARC1; p=quarantine",
        "quar.example": NOT_US,
        "_dmarc.spfok.example": "v=DMARC1; p=reject",
        "spfok.example": "v=spf1 ip4:127.0.0.1 -all",
        "slow.example": NOT_US,
    }
    dns = Dns(root / "dns", extra_args=txt_args(records) + [
        "--local=/example/",
        "--server=/_dmarc.slow.example/127.0.0.1#%d" % blackhole.getsockname()[1],
    ]).start()
    yield {"dns": dns, "odk": odk, "pem": pem}
    dns.stop()
    odk.stop()
    blackhole.close()


@pytest.fixture
def mx(server_factory, peers):
    return server_factory(extra="\n[delivery]\nresolver = 127.0.0.1@%d\n\n[mailauth]\nskip_networks =\ndmarc_timeout = 3s\n"
                          % peers["dns"].port)


def msg(sender_domain, subject, extra=""):
    return ("From: Sender <someone@%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: Tue, 1 Dec 2026 12:00:00 +0000\r\n"
            "Message-ID: <%s.%s@client.example>\r\n%s\r\nHello,\r\nthis is the body.\r\n"
            % (sender_domain, RCPT, subject, subject.replace(" ", "-"), sender_domain, extra)).encode()


def send(server, sender, data):
    with server.connect() as c:
        c.ehlo("client.example")
        r = c.cmd("MAIL FROM:<%s>" % sender)
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<%s>" % RCPT)
        assert r.code == 250, r
        return c.data(data)


def delivered(server, n=1):
    msgs = server.wait_delivered(RCPT, n)
    assert len(msgs) >= n, "not delivered; log:\n%s" % server.log()[-3000:]
    return msgs[n - 1].read_bytes()


def our_authres(data):
    """Postern's own Authentication-Results (its id first), parsed by python3-authres."""
    ours = [v for n, v in unfolded_headers(data.replace(b"\r\n", b"\n"))
            if n.lower() == "authentication-results" and v.split(";")[0].strip().lower() == HOSTNAME]
    assert len(ours) == 1, ours
    return parse_authres(ours[0])


def results(ar, method):
    return [r for r in ar.results if r.method == method]


def prop(result, ptype, name):
    """A property's value as python3-authres parsed it (dmarc's has no attribute of its own)."""
    values = [p.value for p in result.properties if p.type == ptype and p.name == name]
    assert len(values) == 1, (ptype, name, str(result))
    return values[0]


def test_opendkim_signature_passes(mx, peers):
    data = peers["odk"].sign(msg("odk.example", "opendkim"), "someone@odk.example", RCPT)
    r = send(mx, "someone@odk.example", data)
    assert r.code == 250, r
    ar = our_authres(delivered(mx))
    assert ar.authserv_id == HOSTNAME
    dkim = results(ar, "dkim")
    assert [d.result for d in dkim] == ["pass"], str(ar)
    assert dkim[0].header_d == "odk.example" and dkim[0].header_s == "odk"
    dmarc = results(ar, "dmarc")
    assert [(d.result, prop(d, "header", "from")) for d in dmarc] == [("pass", "odk.example")], str(ar)
    assert [s.result for s in results(ar, "spf")][:1] == ["fail"], str(ar)   # DKIM alone carries it


def test_python_dkim_signature_passes_strict(mx, peers):
    data = py_sign(msg("py.example", "pydkim"), "py.example", "py", peers["pem"])
    r = send(mx, "bounce@py.example", data)
    assert r.code == 250, r
    ar = our_authres(delivered(mx))
    assert [(d.result, d.header_d) for d in results(ar, "dkim")] == [("pass", "py.example")], str(ar)
    assert results(ar, "dmarc")[0].result == "pass"


def test_tampered_message_fails_and_is_refused(mx, peers):
    data = py_sign(msg("py.example", "tampered"), "py.example", "py", peers["pem"])
    data = data.replace(b"this is the body.", b"this is another body.")
    r = send(mx, "bounce@py.example", data)
    assert r.is_(550, "5.7.1"), r
    assert "the message claims to be from py.example, but py.example's DMARC policy says to reject mail " \
           "that neither SPF nor DKIM confirms; SPF: " in r.text, r.text
    assert "DKIM: the signature of py.example did not verify" in r.text, r.text
    assert mx.wait_delivered(RCPT, 1, timeout=1) == []


def test_reject_without_signature_words(mx):
    r = send(mx, "someone@reject.example", msg("reject.example", "reject"))
    assert r.is_(550, "5.7.1"), r
    assert ("the message claims to be from reject.example, but reject.example's DMARC policy says to reject "
            "mail that neither SPF nor DKIM confirms; SPF: 127.0.0.1 is not allowed to send for reject.example") \
        in r.text, r.text
    assert "; DKIM: no signature" in r.text, r.text
    assert "event=refused" in mx.log()


def test_spf_aligned_passes(mx):
    r = send(mx, "someone@spfok.example", msg("spfok.example", "spf"))
    assert r.code == 250, r
    ar = our_authres(delivered(mx))
    spf = results(ar, "spf")[0]
    assert spf.result == "pass" and spf.smtp_mailfrom == "someone@spfok.example", str(ar)
    assert [d.result for d in results(ar, "dkim")] == ["none"]
    assert results(ar, "dmarc")[0].result == "pass"


def test_quarantine_delivered_with_field(mx):
    r = send(mx, "someone@quar.example", msg("quar.example", "quarantine"))
    assert r.code == 250, r
    data = delivered(mx)
    fields = dict((n.lower(), v) for n, v in unfolded_headers(data.replace(b"\r\n", b"\n")))
    assert "x-postern-quarantine" in fields, data.decode("latin-1")
    assert fields["x-postern-quarantine"].startswith("dmarc; quar.example's DMARC policy asks to quarantine")
    dmarc = results(our_authres(data), "dmarc")[0]
    assert dmarc.result == "fail" and prop(dmarc, "header", "from") == "quar.example"


def test_dns_timeout_is_temporary(mx):
    r = send(mx, "someone@slow.example", msg("slow.example", "slow"))
    assert r.code == 451 and r.text.startswith("4."), r
    assert "DMARC check of slow.example could not finish" in r.text, r.text


def test_reject_off_delivers_as_quarantined(server_factory, peers):
    srv = server_factory(extra="\n[delivery]\nresolver = 127.0.0.1@%d\n\n[mailauth]\nskip_networks =\ndmarc_reject = no\n"
                         "dmarc_quarantine_header = X-Spam-DMARC\n" % peers["dns"].port)
    r = send(srv, "someone@reject.example", msg("reject.example", "noreject"))
    assert r.code == 250, r
    data = delivered(srv)
    assert b"X-Spam-DMARC: dmarc; reject.example's DMARC policy asks to reject" in data


def test_forged_authres_removed_other_kept(mx):
    extra = ("Authentication-Results: %s; dmarc=pass header.from=forged.example\r\n"
             "Authentication-Results: upstream.example.net; spf=pass smtp.mailfrom=kept.example\r\n" % HOSTNAME)
    r = send(mx, "someone@spfok.example", msg("spfok.example", "forged", extra))
    assert r.code == 250, r
    data = delivered(mx)
    assert b"forged.example" not in data
    assert b"upstream.example.net; spf=pass smtp.mailfrom=kept.example" in data
    our_authres(data)   # exactly one field with our id: Postern's own


def test_dmarc_off_adds_nothing(server_factory, peers):
    srv = server_factory(extra="\n[delivery]\nresolver = 127.0.0.1@%d\n\n[mailauth]\nskip_networks =\ndmarc = off\n"
                         % peers["dns"].port)
    r = send(srv, "someone@reject.example", msg("reject.example", "off"))
    assert r.code == 250, r
    data = delivered(srv)
    assert b"dmarc=" not in data


def test_loopback_client_not_checked_by_default(server_factory, peers):
    """[mailauth] skip_networks defaults to the loopback networks: mail from this host
    (a web application, cron) gets no SPF, DKIM or DMARC check and no
    Authentication-Results field, although reject.example's DMARC says p=reject; a
    forged field with our id is still removed.  With the resolver a socket that never
    answers, no query reaches it and the message is answered at once."""
    srv = server_factory(extra="\n[delivery]\nresolver = 127.0.0.1@%d\n" % peers["dns"].port)
    extra = "Authentication-Results: %s; dmarc=pass header.from=forged.example\r\n" % HOSTNAME
    r = send(srv, "someone@reject.example", msg("reject.example", "local", extra))
    assert r.code == 250, r
    data = delivered(srv)
    assert b"Authentication-Results" not in data and b"forged.example" not in data, data.decode("latin-1")
    skipped = [ln for ln in srv.log().splitlines() if "event=spf " in ln]
    assert len(skipped) == 1 and "result=skipped" in skipped[0] and "skip_networks" in skipped[0], skipped
    srv.stop()

    blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blackhole.bind(("127.0.0.1", 0))
    blackhole.setblocking(False)
    try:
        # spf_timeout long (30 s): a check that ran would hold the reply far beyond any load's delay.
        quiet = server_factory(extra="\n[delivery]\nresolver = 127.0.0.1@%d\n\n[mailauth]\nspf_timeout = 30s\n"
                               % blackhole.getsockname()[1])
        start = time.monotonic()
        r = send(quiet, "someone@slow.example", msg("slow.example", "local quiet"))
        took = time.monotonic() - start
        assert r.code == 250 and took < 15, (r, took)
        delivered(quiet)
        asked = []   # the start-up DNSSEC probe asks too: only the message's names count
        while True:
            try:
                asked += [str(q.name) for q in dns.message.from_wire(blackhole.recv(4096)).question]
            except BlockingIOError:
                break
        assert not [n for n in asked if "slow.example" in n], asked   # no SPF, DKIM or DMARC query
    finally:
        blackhole.close()


def test_empty_skip_networks_checks_loopback(server_factory, peers):
    srv = server_factory(extra="\n[delivery]\nresolver = 127.0.0.1@%d\n\n[mailauth]\nskip_networks =\n"
                         % peers["dns"].port)
    r = send(srv, "someone@reject.example", msg("reject.example", "checked"))
    assert r.code == 550 and r.text.startswith("5.7.1"), r
    assert "result=skipped" not in srv.log()
    assert any("event=spf " in ln and "result=fail" in ln for ln in srv.log().splitlines()), srv.log()[-2000:]
