"""GET /metrics (Prometheus text format 0.0.4) on a real `postern serve`: an http listener
whose `services` lists metrics, scraped with http.client and parsed with Debian's
python3-prometheus-client (a parser nobody here wrote).  The test sends known traffic
(smtplib and raw SMTP: a delivered local message, refused recipients, a failed login,
TLS connections) and checks that each counter moved by exactly what was sent; the
route is 404 on an http listener without `metrics`; every metric is documented."""
import http.client
import re
import smtplib
import socket
import time
from pathlib import Path

import pytest

from submission_support import (
    PASSWORD, auth_plain, connect, connect_implicit, connect_tls, listener_sections, simple_msg, wait_ports,
    write_config,
)

# Debian's python3-prometheus-client (scripts/install-deps, test profile).
from prometheus_client.parser import text_string_to_metric_families

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
HTTP_LISTENERS = ("\n[listener metrics]\naddress = 127.0.0.1\nport = 0\nrole = http\nservices = metrics, health\n"
                  "\n[listener web]\naddress = 127.0.0.1\nport = 0\nrole = http\nservices = health\n")
NAMES = ["smtp", "submission", "submissions", "metrics", "web"]


@pytest.fixture
def srv(server_factory):
    s = server_factory(users=("alice@example.test", "bob@example.test"),
                       extra=listener_sections() + HTTP_LISTENERS, start=False)
    s.start()
    s.ports = wait_ports(s, NAMES)
    return s


def closed_port():
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def get(srv, listener, path):
    c = http.client.HTTPConnection("127.0.0.1", srv.ports[listener], timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode("utf-8")
    finally:
        c.close()


def scrape(srv):
    """{(sample name, ((label, value), ...)): value}, the families' types, the text."""
    status, ctype, text = get(srv, "metrics", "/metrics")
    assert status == 200, text
    assert ctype == "text/plain; version=0.0.4; charset=utf-8", ctype
    samples, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types, text


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before, after, name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)


def wait_for(srv, pred, timeout=10.0):
    """Scrape until pred(samples) holds (bounded); returns the last scrape."""
    deadline = time.monotonic() + timeout
    for _ in range(200):
        samples, _, _ = scrape(srv)
        if pred(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)
    return samples


def send_local_message(srv):
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10) as s:
        s.ehlo("client.example")
        refused = s.sendmail("someone@sender.example", ["alice@example.test"],
                             simple_msg("someone@sender.example", "alice@example.test"))
        assert refused == {}


def refuse_recipients(srv):
    """One unknown local mailbox, and mail for another domain on the mx port (the port-25
    trap: explain's cause wrong_port): two refusals."""
    with connect(srv, "smtp") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<someone@sender.example>").code == 250
        r = c.cmd("RCPT TO:<nobody@example.test>")
        assert r.is_(550, "5.1.1"), r
        r = c.cmd("RCPT TO:<friend@elsewhere.example>")
        assert r.code == 554, r
        c.cmd("QUIT")


def refuse_message(srv):
    """A message that arrives whole and is refused for its content (a NUL byte): received,
    never queued."""
    with connect(srv, "smtp") as c:
        replies = c.start_mail("someone@sender.example", ("alice@example.test",))
        assert replies[0].code == 250, replies
        r = c.data(b"Subject: nul\r\n\r\nbad \x00 byte\r\n")
        assert r.is_(550, "5.6.0"), r
        c.cmd("QUIT")


def fail_login(srv):
    with connect_tls(srv, "submission") as c:
        r = auth_plain(c, "alice@example.test", PASSWORD + "-wrong")
        assert r.code == 535, r
        r = c.cmd("MAIL FROM:<alice@example.test>")   # not logged in on submission
        assert r.code == 530, r
        c.cmd("QUIT")


def implicit_tls_session(srv):
    with connect_implicit(srv, "submissions") as c:
        assert c.greeting.code == 220, c.greeting
        c.ehlo()
        c.cmd("QUIT")


def test_counters_move_with_the_traffic(srv):
    before, types, text = scrape(srv)
    assert types["postern_connections"] == "counter"
    assert types["postern_queue_messages"] == "gauge"
    assert types["postern_delivery_latency_seconds"] == "histogram"

    send_local_message(srv)
    assert len(srv.wait_delivered("alice@example.test", 1)) == 1
    refuse_recipients(srv)
    refuse_message(srv)
    fail_login(srv)
    implicit_tls_session(srv)

    after = wait_for(srv, lambda s: delta(before, s, "postern_recipients_delivered_total", route="local") >= 1
                     and delta(before, s, "postern_logins_total", result="failure") >= 1
                     and value(s, "postern_queue_messages") == 0)
    d = lambda name, **labels: delta(before, after, name, **labels)  # noqa: E731
    assert d("postern_connections_total", listener="smtp") == 3          # the message, the refusals, the NUL
    assert d("postern_connections_total", listener="submission") == 1    # the failed login
    assert d("postern_connections_total", listener="submissions") == 1
    assert d("postern_messages_received_total", listener="smtp") == 2   # the NUL message too
    assert d("postern_messages_queued_total", listener="smtp") == 1
    assert d("postern_recipients_delivered_total", route="local") == 1
    assert d("postern_recipients_deferred_total", route="local") == 0
    assert d("postern_recipients_bounced_total", route="local") == 0
    assert d("postern_refusals_total", cause="unknown_recipient") == 1
    assert d("postern_refusals_total", cause="wrong_port") == 1
    assert d("postern_refusals_total", cause="syntax_error") == 1         # the NUL byte
    assert d("postern_refusals_total", cause="not_authenticated") == 1
    assert d("postern_refusals_total", cause="wrong_credentials") == 1
    assert d("postern_logins_total", result="failure") == 1
    assert d("postern_logins_total", result="success") == 0
    tls = sum(v for (n, l), v in after.items() if n == "postern_tls_handshakes_total") - \
        sum(v for (n, l), v in before.items() if n == "postern_tls_handshakes_total")
    assert tls == 2, after                                                # STARTTLS + implicit
    assert d("postern_tls_handshakes_total", version="TLSv1.3") == 2
    assert d("postern_delivery_latency_seconds_count", route="local") == 1
    assert 0 <= d("postern_delivery_latency_seconds_sum", route="local") < 30
    assert value(after, "postern_delivery_latency_seconds_bucket", route="local", le="+Inf") == 1
    assert value(after, "postern_queue_messages") == 0
    assert value(after, "postern_queue_oldest_message_age_seconds") == 0


def test_queue_gauges_while_a_message_waits(server_factory):
    """A message for a smarthost that refuses connections stays queued: the gauge counts
    it, its age grows, the failed attempt is one deferral."""
    extra = HTTP_LISTENERS + "\n[relay]\nhost = 127.0.0.1\nport = %d\ntls = none\n" % closed_port()
    s = server_factory(extra=extra, queue={"retry_min": "1h"}, start=False)
    write_config(s.config, s.data_dir, queue={"retry_min": "1h"}, server={"trusted_networks": "127.0.0.0/8"},
                 extra=extra)
    s.start()
    s.ports = wait_ports(s, ["smtp", "metrics", "web"])
    with smtplib.SMTP("127.0.0.1", s.ports["smtp"], timeout=10) as c:
        c.ehlo("client.example")
        assert c.sendmail("alice@example.test", ["far@elsewhere.example"],
                          simple_msg("alice@example.test", "far@elsewhere.example")) == {}
    after = wait_for(s, lambda x: value(x, "postern_recipients_deferred_total", route="remote") >= 1
                     and value(x, "postern_queue_oldest_message_age_seconds") >= 2, timeout=15)
    assert value(after, "postern_queue_messages") == 1
    assert value(after, "postern_recipients_deferred_total", route="remote") == 1
    assert 2 <= value(after, "postern_queue_oldest_message_age_seconds") < 60


def test_format_parses_and_every_metric_is_documented(srv):
    samples, types, text = scrape(srv)
    assert text.endswith("\n")
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or re.match(r"^postern_[a-z0-9_]+({.*})? \S+$", line), line
    docs = DOCS.read_text()
    names = re.findall(r"^# TYPE (\S+) ", text, re.M)
    assert len(names) >= 15
    for name in names:
        assert "`%s`" % name in docs, "%s is not in docs/operations.md's Metrics table" % name


def test_route_only_where_listed(srv):
    before, _, _ = scrape(srv)
    status, ctype, text = get(srv, "web", "/metrics")
    assert status == 404, text
    assert "health" in text and "metrics" not in text.split("It serves", 1)[-1].split(":", 1)[0], text
    status, _, _ = get(srv, "web", "/healthz")
    assert status == 200
    after, _, _ = scrape(srv)
    # A request is counted when answered (after its own render), a connection when admitted.
    assert delta(before, after, "postern_http_requests_total", status="404") == 1
    assert delta(before, after, "postern_http_requests_total", status="200") == 2   # the first scrape, /healthz
    assert delta(before, after, "postern_connections_total", listener="web") == 2
    assert delta(before, after, "postern_connections_total", listener="metrics") == 1


def test_dns_lookups_timed(srv):
    """The start-up DNSSEC probe asks for DNSKEY records: each lookup is one observation."""
    after = wait_for(srv, lambda s: value(s, "postern_dns_lookup_duration_seconds_count", type="DNSKEY") >= 1)
    n = value(after, "postern_dns_lookup_duration_seconds_count", type="DNSKEY")
    assert n >= 1
    assert value(after, "postern_dns_lookup_duration_seconds_bucket", type="DNSKEY", le="+Inf") == n
    assert 0 < value(after, "postern_dns_lookup_duration_seconds_sum", type="DNSKEY") < 60 * n


def test_fsyncs_counted_per_message(srv):
    """postern_fsyncs_total (every fsync the server makes goes through util/fileio.c):
    N messages accepted and delivered into a Maildir cost at least one fsync each (the
    queue file's data; invariant 1) and at most a handful (queue file and active/, the
    Maildir file and new/, the removal).  A count, not a timing."""
    n = 10
    before, types, _ = scrape(srv)
    assert types["postern_fsyncs"] == "counter"
    assert types["postern_commit_batch_size"] == "histogram"
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10) as s:
        s.ehlo("client.example")
        for i in range(n):
            assert s.sendmail("someone@sender.example", ["bob@example.test"],
                              simple_msg("someone@sender.example", "bob@example.test")) == {}
    assert len(srv.wait_delivered("bob@example.test", n)) == n
    after = wait_for(srv, lambda x: delta(before, x, "postern_recipients_delivered_total", route="local") >= n
                     and value(x, "postern_queue_messages") == 0)
    fsyncs = delta(before, after, "postern_fsyncs_total")
    assert n <= fsyncs <= 10 * n, "%d fsyncs for %d messages" % (fsyncs, n)
    # every commit was one directory fsync for a batch of >= 1 message
    assert delta(before, after, "postern_commit_batch_size_sum") == n
    assert 1 <= delta(before, after, "postern_commit_batch_size_count") <= n
