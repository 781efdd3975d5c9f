"""The MTA-STS policy file (src/web/mta_sts.c): GET
https://mta-sts.DOMAIN/.well-known/mta-sts.txt on a listener of role http serves the
policy of [mta-sts] (RFC 8461 §3.2: CR LF lines, text/plain) for a local DOMAIN only, and
its id is the one `postern dns DOMAIN` prints in the _mta-sts TXT record.  Fetched with
curl --resolve (the name a sender asks for) over https, and with http.client."""
import hashlib
import http.client
import re
import subprocess

import pytest

from conftest import HOSTNAME, Server, run_cli
from submission_support import tls_context, wait_ports

WEB = """tls = starttls

[listener webs]
address = 127.0.0.1
port = 0
role = http
tls = implicit

[listener web]
address = 127.0.0.1
port = 0
role = http
"""
STS = "\n[mta-sts]\nmode = enforce\nmx = %s, *.backup.example.test\nmax_age = 14d\n" % HOSTNAME


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("mta-sts"), extra=WEB + STS)
    s.start()
    s.ports = wait_ports(s, ["smtp", "webs", "web"])
    yield s
    s.stop()


def curl(srv, host, path="/.well-known/mta-sts.txt"):
    port = srv.ports["webs"]
    p = subprocess.run(["curl", "-sS", "-k", "--max-time", "10", "--resolve", "%s:%d:127.0.0.1" % (host, port),
                        "-D", "-", "https://%s:%d%s" % (host, port, path)], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def parse_policy(body):
    """RFC 8461 §3.2 as a sender reads it: key: value lines, CR LF."""
    text = body.decode("ascii")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", ""), repr(text)
    fields = {}
    for line in text.split("\r\n")[:-1]:
        k, _, v = line.partition(": ")
        fields.setdefault(k, []).append(v)
    return fields


def dns_id(srv):
    p = run_cli(["dns", "example.test"], conf=srv.config)
    assert p.returncode == 0, p.stderr
    m = re.search(r'^_mta-sts\.example\.test\.\t3600\tIN\tTXT\t"v=STSv1; id=([0-9a-f]+)"$', p.stdout, re.M)
    assert m, p.stdout
    return m.group(1), p.stdout


def test_policy_served_over_https_matches_dns(srv):
    status, headers, body = curl(srv, "mta-sts.example.test")
    assert status == 200, body
    assert headers["content-type"].split(";")[0] == "text/plain", headers
    f = parse_policy(body)
    assert f == {"version": ["STSv1"], "mode": ["enforce"], "mx": [HOSTNAME, "*.backup.example.test"],
                 "max_age": [str(14 * 86400)]}, f
    sts_id, printed = dns_id(srv)
    # the TXT id is the digest of exactly the file served (RFC 8461 §3.1: new policy, new id)
    assert sts_id == hashlib.sha256(body).hexdigest()[:20], (sts_id, body)
    for line in body.decode().split("\r\n")[:-1]:
        assert ";     " + line in printed, (line, printed)
    assert re.search(r"event=http\b[^\n]*mta-sts domain=example\.test id=%s" % sts_id, srv.log()), srv.log()[-2000:]


def test_other_hosts_get_404_in_words(srv):
    for host in ("mta-sts.other.example", HOSTNAME, "autoconfig.example.test"):
        status, _, body = curl(srv, host)
        assert status == 404, (host, body)
        assert b"https://mta-sts.DOMAIN/.well-known/mta-sts.txt" in body, body


def test_plain_http_answers_the_same_file(srv):
    """Senders fetch over https only (§3.3); the file is the same on a plain listener
    (a proxy in front may terminate TLS)."""
    c = http.client.HTTPConnection("127.0.0.1", srv.ports["web"], timeout=10)
    try:
        c.request("GET", "/.well-known/mta-sts.txt", headers={"Host": "mta-sts.example.test"})
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    assert r.status == 200 and parse_policy(body)["mode"] == ["enforce"]


def test_mode_off_serves_nothing(tmp_path):
    s = Server(tmp_path, extra=WEB + "\n[mta-sts]\nmode = off\n")
    s.start()
    try:
        s.ports = wait_ports(s, ["smtp", "webs", "web"])
        status, _, body = curl(s, "mta-sts.example.test")
        assert status == 404 and b"mode = off" in body, body
        p = run_cli(["dns", "example.test"], conf=s.config)
        assert "_mta-sts.example.test.\t" not in p.stdout.replace("; _mta-sts", ""), p.stdout
    finally:
        s.stop()
