"""Outbound MTA-STS (RFC 8461): the TXT record from NSD, the policy from an HTTPS server
on 127.x.y.z:443 with a certificate from a test CA (Postern's [delivery] tls_ca_file),
receivers with and without STARTTLS.

enforce + MX matching + valid certificate -> delivered over TLS; enforce + no STARTTLS ->
deferred, the words in `queue show`; enforce + the MX not named by the policy -> deferred;
testing mode -> delivered and logged as would_fail; a redirect -> no policy (RFC 8461
§3.3); the cache: a second message is not fetched again while the id holds.  Peers: nsd,
python http.server + ssl, aiosmtpd (transport_support.py)."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from delivery_support import submit, events, wait_event, queue_cli  # noqa: E402
from transport_support import TransportEnv, STS_ID  # noqa: E402


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = TransportEnv(tmp_path_factory.mktemp("transport")).start()
    yield e
    e.stop()


def deferred_reason(srv, qid):
    ev = wait_event(srv, "deferred", qid=qid, timeout=20)
    assert ev, srv.log()
    return ev[0]["reason"]


def test_enforce_matching_mx_valid_certificate_delivers(server_factory, env):
    # no connection cache: the second message opens its own connection, so its
    # policy is looked up again (from the disk cache) rather than riding on the first's
    srv = env.server(server_factory, connection_cache_time="0")
    qid = submit(srv, "alice@enf.open.test")
    assert wait_event(srv, "delivered", qid=qid, timeout=20), srv.log()
    pol = events(srv, "mta_sts", qid=qid, domain="enf.open.test", mode="enforce")
    assert pol and pol[0]["id"] == STS_ID and pol[0]["source"] == "fetched", srv.log()
    assert events(srv, "mta_sts", qid=qid, host="mx-tls.open.test", result="verified"), srv.log()
    got = [m for m in env.tls_rx.wait_messages(1) if "alice@enf.open.test" in m["rcpt_tos"]]
    assert got and got[0]["tls"], got
    assert env.https.fetches("mta-sts.enf.open.test"), env.https.requests
    # the policy is cached in the data directory, with the record's id
    cache = Path(srv.data_dir) / "mta-sts" / "enf.open.test"
    assert cache.exists() and ("id=%s" % STS_ID) in cache.read_text().splitlines()[0]
    assert oct(os.stat(cache).st_mode & 0o777) == "0o600"
    # a second message: the same id, within max_age -> from the cache, no new fetch
    n = len(env.https.fetches("mta-sts.enf.open.test"))
    qid2 = submit(srv, "alice2@enf.open.test")
    assert wait_event(srv, "delivered", qid=qid2, timeout=20), srv.log()
    pol2 = events(srv, "mta_sts", qid=qid2, domain="enf.open.test", mode="enforce")
    assert pol2 and pol2[0]["source"] == "cached", pol2
    assert len(env.https.fetches("mta-sts.enf.open.test")) == n


def test_enforce_without_starttls_defers_and_queue_show_says_why(server_factory, env):
    srv = env.server(server_factory)
    qid = submit(srv, "bob@nost.open.test")
    why = deferred_reason(srv, qid)
    words = "nost.open.test publishes an MTA-STS policy in enforce mode; mx-plain.open.test offered no STARTTLS"
    assert words in why, why
    assert why.startswith("4.7.10 "), why
    # the deferred line is logged just before the queue state is written: poll briefly
    import time
    for _ in range(50):
        p = queue_cli(srv, "show", qid)
        if p.returncode == 0 and words in p.stdout:
            break
        time.sleep(0.1)
    assert p.returncode == 0 and words in p.stdout, p.stdout
    assert "bob@nost.open.test" not in env.plain_rx.recipients()
    assert events(srv, "mta_sts", qid=qid, result="failed"), srv.log()


def test_enforce_mx_not_in_policy_defers(server_factory, env):
    srv = env.server(server_factory)
    qid = submit(srv, "carol@other.open.test")
    why = deferred_reason(srv, qid)
    assert ("other.open.test publishes an MTA-STS policy in enforce mode that names its mail servers as "
            "mx.elsewhere.test, *.other.test; mx-tls.open.test is not one of them") in why, why
    assert "carol@other.open.test" not in env.tls_rx.recipients()


def test_testing_mode_delivers_and_logs(server_factory, env):
    srv = env.server(server_factory)
    qid = submit(srv, "dave@tst.open.test")
    assert wait_event(srv, "delivered", qid=qid, timeout=20), srv.log()
    ev = events(srv, "mta_sts", qid=qid, host="mx-plain.open.test", mode="testing")
    assert ev and ev[0]["result"] == "would_fail" and "offered no STARTTLS" in ev[0]["reason"], srv.log()
    assert "dave@tst.open.test" in env.plain_rx.recipients()


def test_redirect_is_not_followed_no_policy(server_factory, env):
    srv = env.server(server_factory)
    qid = submit(srv, "erin@redir.open.test")
    assert wait_event(srv, "delivered", qid=qid, timeout=20), srv.log()
    ev = events(srv, "mta_sts", qid=qid, domain="redir.open.test", result="no_policy")
    assert ev and "redirect (HTTP 302)" in ev[0]["note"], srv.log()


def test_policy_fetch_needs_a_trusted_certificate(server_factory, env):
    # without the test CA the policy server's certificate does not verify: no policy,
    # so mail to nost.open.test goes in plaintext (RFC 8461 §5: as if none)
    srv = env.server(server_factory, tls_ca_file="")
    qid = submit(srv, "frank@nost.open.test")
    assert wait_event(srv, "delivered", qid=qid, timeout=20), srv.log()
    ev = events(srv, "mta_sts", qid=qid, domain="nost.open.test", result="no_policy")
    assert ev and "certificate not verified" in ev[0]["note"], srv.log()


def test_mta_sts_off(server_factory, env):
    srv = env.server(server_factory, mta_sts="off")
    qid = submit(srv, "gina@nost.open.test")
    assert wait_event(srv, "delivered", qid=qid, timeout=20), srv.log()
    assert not events(srv, "mta_sts", qid=qid)


def test_delay_notice_tells_the_sender_why(server_factory, env):
    from delivery_support import wait_reports
    srv = env.server(server_factory, delay_notice="1s")
    qid = submit(srv, "hal@nost.open.test")
    assert deferred_reason(srv, qid)
    rs = wait_reports(srv, 1, kind="delay", timeout=20)
    assert rs, srv.log()
    words = "nost.open.test publishes an MTA-STS policy in enforce mode; mx-plain.open.test offered no STARTTLS"
    assert words in " ".join(rs[0].text.split()), rs[0].text


def test_id_change_fetches_again_and_a_failed_refresh_keeps_the_cached_policy(server_factory, env):
    srv = env.server(server_factory, connection_cache_time="0")   # each message its own lookup
    qid = submit(srv, "ivan@enf.open.test")
    assert wait_event(srv, "delivered", qid=qid, timeout=20), srv.log()
    cache = Path(srv.data_dir) / "mta-sts" / "enf.open.test"
    # the cache holds another id than the DNS record now: fetched again (RFC 8461 §5.1)
    cache.write_text(cache.read_text().replace("id=%s " % STS_ID, "id=older1 ", 1))
    n = len(env.https.fetches("mta-sts.enf.open.test"))
    qid2 = submit(srv, "ivan2@enf.open.test")
    assert wait_event(srv, "delivered", qid=qid2, timeout=20), srv.log()
    pol = events(srv, "mta_sts", qid=qid2, domain="enf.open.test", mode="enforce")
    assert pol and pol[0]["source"] == "fetched", pol
    assert len(env.https.fetches("mta-sts.enf.open.test")) == n + 1
    assert ("id=%s " % STS_ID) in cache.read_text()
    # the id differs again and the server fails: the cached policy stays in force
    cache.write_text(cache.read_text().replace("id=%s " % STS_ID, "id=older2 ", 1))
    env.https.set_policy("mta-sts.enf.open.test", "gone", status=404)
    try:
        qid3 = submit(srv, "ivan3@enf.open.test")
        assert wait_event(srv, "delivered", qid=qid3, timeout=20), srv.log()
        pol = events(srv, "mta_sts", qid=qid3, domain="enf.open.test", mode="enforce")
        assert pol and pol[0]["source"] == "cached" and "refresh failed" in pol[0]["note"], pol
        assert "HTTP 404" in pol[0]["note"], pol
    finally:
        from transport_support import policy
        env.https.set_policy("mta-sts.enf.open.test", policy("enforce", "mx-tls.open.test"))


def test_failure_report_after_the_lifetime_says_why(server_factory, env):
    from delivery_support import wait_reports
    srv = env.server(server_factory, max_lifetime="2s", delay_notice="0")
    qid = submit(srv, "judy@nost.open.test")
    assert wait_event(srv, "bounced", qid=qid, timeout=30), srv.log()
    rs = wait_reports(srv, 1, kind="failure", timeout=20)
    assert rs, srv.log()
    words = "nost.open.test publishes an MTA-STS policy in enforce mode; mx-plain.open.test offered no STARTTLS"
    assert words in " ".join(rs[0].text.split()), rs[0].text
    st = rs[0].recipients[0]
    assert st["Status"] == "5.7.10" and words in st["Diagnostic-Code"], st   # the class becomes permanent
    # postern explain on the report as the sender got it (data/explain.ini)
    import json
    from conftest import run_cli
    out = json.loads(run_cli(["explain", "--json"], input=" ".join(rs[0].text.split())).stdout)
    assert [c["id"] for c in out["causes"]][:2] == ["delivery_expired", "mta_sts_failed"], out


def test_a_failed_fetch_is_not_repeated_on_every_attempt(server_factory, env):
    # RFC 8461 §3.3 / §5.1: the policy of tst.open.test cannot be fetched (HTTP 404);
    # Postern remembers that for STS_FETCH_RETRY_S (600 s) instead of asking the policy
    # server again for every message and every attempt
    host = "mta-sts.tst.open.test"
    env.https.set_policy(host, "gone", status=404)
    try:
        srv = env.server(server_factory, connection_cache_time="0")   # each message its own lookup
        n = len(env.https.fetches(host))
        qids = []
        for i in range(3):
            qid = submit(srv, "kim%d@tst.open.test" % i)
            assert wait_event(srv, "delivered", qid=qid, timeout=20), srv.log()   # as if no policy (§5)
            qids.append(qid)
        assert len(env.https.fetches(host)) == n + 1, env.https.fetches(host)
        first = events(srv, "mta_sts", qid=qids[0], domain="tst.open.test")
        assert first and "HTTP 404" in first[0]["note"], srv.log()
        later = events(srv, "mta_sts", qid=qids[2], domain="tst.open.test")
        assert later and "HTTP 404" in later[0]["note"] and "not fetched again before 600 s" in later[0]["note"], later
    finally:
        from transport_support import policy
        env.https.set_policy(host, policy("testing", "mx-plain.open.test"))
