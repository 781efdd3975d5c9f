"""Outbound DANE (RFC 7672): TLSA records in a DNSSEC-signed zone served by NSD, Postern's
libunbound trusting that zone's key, receivers with certificates from a test CA.

TLSA 3 1 1 matching -> delivered over TLS, authenticated; not matching -> deferred with
words naming the record; a bogus TLSA or MX signature -> deferred with the reason; DANE-TA
(2 0 1) of the issuing CA -> delivered; only unusable records (usage 1) -> TLS without
authentication; TLSA but no STARTTLS -> deferred; an unsigned zone's TLSA -> ignored,
delivered opportunistically.  Peers: nsd + ldnsutils, aiosmtpd with ssl, openssl(1)
(transport_support.py)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from delivery_support import submit, events, wait_event, queue_cli  # noqa: E402
from transport_support import TransportEnv  # noqa: E402


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = TransportEnv(tmp_path_factory.mktemp("transport")).start()
    yield e
    e.stop()


def deferred_reason(srv, qid):
    ev = wait_event(srv, "deferred", qid=qid, timeout=20)
    assert ev, srv.log()
    return ev[0]["reason"]


def queue_show(srv, qid):
    p = queue_cli(srv, "show", qid)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_tlsa_3_1_1_matching_delivers_over_authenticated_tls(server_factory, env):
    srv = env.server(server_factory)
    qid = submit(srv, "alice@ok.sec.test")
    ev = wait_event(srv, "delivered", qid=qid, timeout=20)
    assert ev, srv.log()
    dane = events(srv, "dane", qid=qid, host="mx-ok.sec.test")
    assert dane and dane[0]["result"] == "authenticated", srv.log()
    assert dane[0]["record"] == "usage 3, SHA-256 of the public key", dane
    got = [m for m in env.tls_rx.wait_messages(1) if "alice@ok.sec.test" in m["rcpt_tos"]]
    assert got and got[0]["tls"], got
    conn = events(srv, "remote_connect", host="mx-ok.sec.test")
    assert conn and "TLSv1." in conn[0]["tls"] and "DANE TLSA record 1 matched" in conn[0]["tls"], conn


def test_tlsa_mismatch_defers_with_words(server_factory, env):
    before = len(env.tls_rx.recipients())
    srv = env.server(server_factory)
    qid = submit(srv, "bob@bad.sec.test")
    why = deferred_reason(srv, qid)
    words = "mx-bad.sec.test's certificate does not match its DANE TLSA record (usage 3, SHA-256 of the public key)"
    assert words in why, why
    assert why.startswith("4.7.5 "), why
    assert words in queue_show(srv, qid)
    assert "bob@bad.sec.test" not in env.tls_rx.recipients()[before:]
    assert events(srv, "dane", qid=qid, result="failed"), srv.log()
    # postern explain knows these words (data/explain.ini)
    import json
    from conftest import run_cli
    out = json.loads(run_cli(["explain", "--json", why]).stdout)
    assert out["causes"][0]["id"] == "dane_mismatch", out


def test_bogus_tlsa_signature_defers(server_factory, env):
    srv = env.server(server_factory)
    qid = submit(srv, "carol@bogus.sec.test")
    why = deferred_reason(srv, qid)
    assert "the DANE TLSA records at _%d._tcp.mx-bogus.sec.test failed DNSSEC validation" % env.port in why, why
    assert "Postern does not deliver to mx-bogus.sec.test until they validate" in why, why
    assert "carol@bogus.sec.test" not in env.tls_rx.recipients()
    assert events(srv, "dane", qid=qid, result="unusable")


def test_bogus_mx_signature_defers(server_factory, env):
    srv = env.server(server_factory)
    qid = submit(srv, "dave@bogusmx.sec.test")
    why = deferred_reason(srv, qid)
    assert "the DNS answer for bogusmx.sec.test (MX) failed DNSSEC validation" in why, why
    assert "dave@bogusmx.sec.test" not in env.tls_rx.recipients()
    assert "failed DNSSEC validation" in queue_show(srv, qid)


def test_dane_ta_of_the_issuing_ca_delivers(server_factory, env):
    srv = env.server(server_factory)
    qid = submit(srv, "erin@ta.sec.test")
    assert wait_event(srv, "delivered", qid=qid, timeout=20), srv.log()
    dane = events(srv, "dane", qid=qid, host="mx-ta.sec.test")
    assert dane and dane[0]["result"] == "authenticated" and dane[0]["record"] == "usage 2, SHA-256 of the certificate", dane


def test_unusable_tlsa_means_tls_without_authentication(server_factory, env):
    srv = env.server(server_factory)
    qid = submit(srv, "frank@unusable.sec.test")
    assert wait_event(srv, "delivered", qid=qid, timeout=20), srv.log()
    dane = events(srv, "dane", qid=qid, host="mx-unusable.sec.test")
    assert dane and dane[0]["result"] == "encrypted_only", dane
    got = [m for m in env.tls_rx.wait_messages(1) if "frank@unusable.sec.test" in m["rcpt_tos"]]
    assert got and got[0]["tls"], got


def test_tlsa_without_starttls_defers(server_factory, env):
    srv = env.server(server_factory)
    qid = submit(srv, "gina@notls.sec.test")
    why = deferred_reason(srv, qid)
    assert "mx-notls.sec.test publishes DANE TLSA records, so TLS is required; mx-notls.sec.test offered no STARTTLS" in why, why
    assert why.startswith("4.7.10 "), why
    assert "gina@notls.sec.test" not in env.plain_rx.recipients()


def test_unsigned_zone_tlsa_ignored_delivers_opportunistically(server_factory, env):
    srv = env.server(server_factory)
    qid = submit(srv, "hal@u.open.test")
    assert wait_event(srv, "delivered", qid=qid, timeout=20), srv.log()
    assert not events(srv, "dane", qid=qid), srv.log()
    got = [m for m in env.tls_rx.wait_messages(1) if "hal@u.open.test" in m["rcpt_tos"]]
    assert got and got[0]["tls"], got


def test_dane_off_ignores_the_records(server_factory, env):
    srv = env.server(server_factory, dane="off")
    qid = submit(srv, "ivan@bad.sec.test")
    assert wait_event(srv, "delivered", qid=qid, timeout=20), srv.log()
    assert not events(srv, "dane", qid=qid)
