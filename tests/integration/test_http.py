"""The HTTP listener (issue 13): role http on a real `postern serve`, plain and with
implicit TLS (SNI, the mail certificates), /healthz, the router's words (404 naming
what the listener serves, 405 with Allow, HEAD, OPTIONS), and hostile clients:
traversal attempts, oversized headers, a huge body, a client that trickles, many
connections.  Clients: curl and Python's http.client, and raw sockets where a client
would tidy up what is sent.  Every request must leave one event=http line, without
the Authorization header, the query or the body."""
import http.client
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import run_cli, sqlite_directory_only, write_config

HTTP_LISTENERS = """
[listener web]
address = 127.0.0.1
port = 0
role = http

[listener webs]
address = 127.0.0.1
port = 0
role = http
tls = implicit
"""

LINE_RE = re.compile(r'event=http listener=(\S+) client=(\S+) method=(\S+) path=("(?:[^"\\]|\\.)*") '
                     r'status=(\d+) bytes=(\d+) ms=(\d+)')


def port_of(srv, name, timeout=10.0):
    """The port listener `name` bound, once the server has started (its web threads run)."""
    wait_log(srv, r"event=started ", timeout)
    deadline = time.monotonic() + timeout
    pat = re.compile(r"event=listening listener=%s \S+ port=(\d+)" % re.escape(name))
    while time.monotonic() < deadline:
        m = pat.search(srv.log())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    pytest.fail("listener %s did not log its port:\n%s" % (name, srv.log()[-3000:]))


def wait_log(srv, pattern, timeout=5.0):
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        m = rx.search(srv.log())
        if m:
            return m
        time.sleep(0.05)
    pytest.fail("no log line matching %r; log tail:\n%s" % (pattern, srv.log()[-3000:]))


def get(port, path, method="GET", headers=None, body=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def raw(port, data, timeout=10, read_limit=1 << 20):
    """Send bytes as they are; return everything the server sends until it closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while len(out) < read_limit:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


@pytest.fixture
def web(server_factory):
    srv = server_factory(extra=HTTP_LISTENERS)
    srv.http_port = port_of(srv, "web")
    srv.https_port = port_of(srv, "webs")
    return srv


# --- health and the router's words --------------------------------------------------

def test_healthz_answers_ok_and_logs_one_line(web):
    status, headers, body = get(web.http_port, "/healthz")
    assert status == 200 and body == b"ok\n", (status, body)
    assert headers["content-type"].startswith("text/plain")
    m = wait_log(web, r'event=http listener=web client=127\.0\.0\.1 method=GET path="/healthz" status=200 bytes=3 ms=\d+ note="health ok"')
    assert LINE_RE.search(m.group(0))


def test_healthz_is_503_naming_the_queue_when_it_cannot_spool(web):
    incoming = web.data_dir / "queue" / "incoming"
    away = web.data_dir / "queue" / "incoming.away"
    incoming.rename(away)
    incoming.write_text("not a directory\n")   # root ignores modes: a file in the way fails for everyone
    try:
        status, _, body = get(web.http_port, "/healthz")
        assert status == 503, body
        text = body.decode()
        assert text.startswith("unhealthy") and "queue: cannot create a file in" in text and "incoming" in text, text
        assert "directory:" not in text, text
        wait_log(web, r'event=http .*path="/healthz" status=503 .*note="health failed: queue"')
    finally:
        incoming.unlink()
        away.rename(incoming)
    status, _, body = get(web.http_port, "/healthz")
    assert status == 200 and body == b"ok\n"


@sqlite_directory_only("it breaks directory.db's tables behind the server's back")
def test_healthz_is_503_naming_the_directory_when_it_fails(web):
    import sqlite3
    db = sqlite3.connect(str(web.data_dir / "directory.db"), timeout=10)
    try:
        db.execute("ALTER TABLE domains RENAME TO domains_away")   # the query /healthz asks now fails
        db.commit()
        status, _, body = get(web.http_port, "/healthz")
        assert status == 503, body
        text = body.decode()
        assert text.startswith("unhealthy") and "directory: " in text and "queue:" not in text, text
        wait_log(web, r'note="health failed: directory"')
    finally:
        db.execute("ALTER TABLE domains_away RENAME TO domains")
        db.commit()
        db.close()
    assert get(web.http_port, "/healthz")[0] == 200


def test_404_names_what_the_listener_serves(web):
    status, headers, body = get(web.http_port, "/nothing-here")
    text = body.decode()
    assert status == 404, text
    assert "Not found" in text and "(web)" in text and "/healthz (health)" in text, text
    assert "autoconfig" in text and "mta-sts" in text and "metrics" not in text.split("It serves")[1].split(":")[0], text
    assert text.count("/autodiscover/autodiscover.xml ") == 1, text   # one path, listed once
    wait_log(web, r'path="/nothing-here" status=404 .*note="no route"')


def test_services_limit_what_a_listener_answers(server_factory):
    srv = server_factory(extra="\n[listener mon]\naddress = 127.0.0.1\nport = 0\nrole = http\nservices = metrics\n")
    port = port_of(srv, "mon")
    status, _, body = get(port, "/healthz")
    assert status == 404 and "It serves metrics" in body.decode(), body


def test_405_with_allow_head_and_options(web):
    status, headers, body = get(web.http_port, "/healthz", method="POST", body=b"x=1")
    assert status == 405, body
    assert headers["allow"] == "GET, HEAD, OPTIONS", headers
    assert "POST is not answered at /healthz" in body.decode()
    status, headers, body = get(web.http_port, "/healthz", method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == "3", (status, headers)
    status, headers, body = get(web.http_port, "/healthz", method="OPTIONS")
    assert status == 204 and headers["allow"] == "GET, HEAD, OPTIONS" and body == b"", headers
    status, headers, _ = get(web.http_port, "/healthz", method="DELETE")
    assert status == 405
    wait_log(web, r'method=HEAD path="/healthz" status=200 bytes=0 ')


def test_curl_sees_the_same(web):
    p = subprocess.run(["curl", "-sS", "-i", "http://127.0.0.1:%d/healthz" % web.http_port],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0 and p.stdout.startswith("HTTP/1.1 200") and p.stdout.endswith("ok\n"), p.stdout + p.stderr
    assert "x-content-type-options: nosniff" in p.stdout.lower()


# --- what never reaches the log ----------------------------------------------------

def test_authorization_query_and_body_never_reach_the_log(web):
    secret = "Zm9vOnNlY3JldC1wYXNzd29yZA=="
    get(web.http_port, "/healthz?password=hunter2-query", headers={"Authorization": "Basic " + secret})
    get(web.http_port, "/nope", method="POST", body=b"password=hunter3-body",
        headers={"Authorization": "Bearer " + secret, "Content-Type": "application/x-www-form-urlencoded"})
    wait_log(web, r'path="/nope" status=404')
    log = web.log()
    for needle in (secret, "hunter2", "hunter3", "Authorization", "Bearer"):
        assert needle not in log, needle


# --- traversal: refused before any handler, and no file is ever served ------------

TRAVERSALS = [
    b"/%2e%2e/etc/passwd",
    b"/%2E%2E/%2e%2e/etc/passwd",
    b"/../etc/passwd",
    b"/a/../../etc/passwd",
    b"/..%2f..%2fetc%2fpasswd",
    b"/healthz/../../etc/passwd",
    b"/%2e%2e%5c%2e%2e%5cetc%5cpasswd",
    b"/a\\..\\..\\etc\\passwd",
    b"/%00",
    b"/healthz%00.txt",
    b"/%zz",
    b"/%2",
    b"/%0d%0aSet-Cookie:%20x",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_and_bad_paths_are_400(web, target):
    out = raw(web.http_port, b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), out[:300]
    assert b"root:" not in out and b"/bin/" not in out
    assert b"Bad request" in body and b"serves no files" in body, body


def test_dot_segments_that_stay_inside_are_resolved(web):
    out = raw(web.http_port, b"GET /x/../healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"ok\n"), out
    wait_log(web, r'path="/healthz" status=200')


def test_curl_path_as_is_traversal(web):
    p = subprocess.run(["curl", "-sS", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
                        "http://127.0.0.1:%d/%%2e%%2e/%%2e%%2e/etc/passwd" % web.http_port],
                       capture_output=True, text=True, timeout=20)
    assert p.stdout == "400", p.stdout + p.stderr


# --- TLS: the mail certificates, chosen by SNI -----------------------------------------

def make_cert(d, name):
    key, crt = d / (name + ".key"), d / (name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=DNS:" + name], check=True, capture_output=True, timeout=30)
    return crt, key


def test_implicit_tls_with_the_servers_certificate(web):
    cert = web.data_dir / "tls" / "selfsigned.crt"
    p = subprocess.run(["curl", "-sS", "--cacert", str(cert), "--resolve", "mx.example.test:%d:127.0.0.1" % web.https_port,
                        "https://mx.example.test:%d/healthz" % web.https_port], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0 and p.stdout == "ok\n", p.stdout + p.stderr
    wait_log(web, r'event=http listener=webs client=127\.0\.0\.1 method=GET path="/healthz" status=200')


def test_sni_picks_the_certificate_section(server_factory, tmp_path):
    crt, key = make_cert(tmp_path, "autoconfig.example.test")
    extra = HTTP_LISTENERS + "\n[certificate auto]\ncertificate = %s\nkey = %s\nnames = autoconfig.example.test\n" % (crt, key)
    srv = server_factory(extra=extra)
    port = port_of(srv, "webs")
    p = subprocess.run(["curl", "-sS", "--cacert", str(crt), "--resolve", "autoconfig.example.test:%d:127.0.0.1" % port,
                        "https://autoconfig.example.test:%d/healthz" % port], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0 and p.stdout == "ok\n", p.stdout + p.stderr
    # Without that name the default certificate answers, which that CA does not vouch for.
    p = subprocess.run(["curl", "-sS", "--cacert", str(crt), "--resolve", "mx.example.test:%d:127.0.0.1" % port,
                        "https://mx.example.test:%d/healthz" % port], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0


def test_plaintext_on_the_tls_port_is_told_to_use_https(web):
    try:
        out = raw(web.https_port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", timeout=5)
    except (ConnectionResetError, socket.timeout):
        out = b""
    assert b"ok\n" not in out
    assert out.startswith(b"HTTP/1.1 400") and b"this port speaks https" in out, out
    p = subprocess.run(["curl", "-sS", "http://127.0.0.1:%d/healthz" % web.https_port], capture_output=True, text=True, timeout=20)
    assert "this port speaks https" in p.stdout, p.stdout + p.stderr
    wait_log(web, r'event=tls_failed listener=webs client=127\.0\.0\.1 reason="[^"]*http request[^"]*" hint="the client spoke plain HTTP')


def test_starttls_on_an_http_listener_is_refused_with_words(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var",
                        extra="\n[listener web]\naddress = 127.0.0.1\nport = 0\nrole = http\ntls = starttls\n")
    p = run_cli(["check-config"], conf=conf)
    assert p.returncode != 0
    assert "[listener web] tls: starttls means nothing to HTTP clients" in p.stderr and "tls = implicit" in p.stderr, p.stderr


def test_check_config_lists_an_http_listeners_services(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var",
                        extra="\n[listener web]\naddress = 127.0.0.1\nport = 0\nrole = http\nservices = health, metrics\n")
    p = run_cli(["check-config"], conf=conf)
    assert p.returncode == 0, p.stderr
    assert "listener web: 127.0.0.1 port 0, role http, tls none, services health, metrics" in p.stdout, p.stdout


def test_services_on_a_mail_listener_is_refused(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var",
                        extra="\n[listener sub]\naddress = 127.0.0.1\nport = 0\nrole = submission\nservices = health\n")
    p = run_cli(["check-config"], conf=conf)
    assert p.returncode != 0 and "only a listener with role = http" in p.stderr, p.stderr


# --- hostile clients --------------------------------------------------------------------

def rss_kib(srv):
    for line in Path("/proc/%d/status" % srv.proc.pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def read_all(s):
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    except (ConnectionResetError, socket.timeout):
        return out


def test_oversized_header_line_is_400_and_closed(web):
    s = socket.create_connection(("127.0.0.1", web.http_port), timeout=10)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Filler: " + b"a" * 40000 + b"\r\n\r\n")
        out = read_all(s)
    finally:
        s.close()
    assert out.startswith(b"HTTP/1.1 400") or out.startswith(b"HTTP/1.1 431"), out[:200]
    assert get(web.http_port, "/healthz")[0] == 200


def test_endless_headers_are_cut_off_with_memory_bounded(web):
    before = rss_kib(web)
    s = socket.create_connection(("127.0.0.1", web.http_port), timeout=5)
    sent, ended = 0, False
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")
        chunk = b"X-More: " + b"b" * 1000 + b"\r\n"
        deadline = time.monotonic() + 20
        while sent < (64 << 20) and time.monotonic() < deadline:   # 64 MB offered, at most
            try:
                s.sendall(chunk * 64)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                ended = True
                break
            sent += len(chunk) * 64
        if not ended:
            read_all(s)
            ended = True
    finally:
        s.close()
    assert ended
    # Whatever the kernel buffered, the server kept none of it.
    assert rss_kib(web) - before < 16 * 1024, (before, rss_kib(web))
    wait_log(web, r'event=http listener=web client=127\.0\.0\.1 method=- path="-" status=400 .*header_max')
    assert get(web.http_port, "/healthz")[0] == 200


def test_huge_post_is_413_and_closed(web):
    s = socket.create_connection(("127.0.0.1", web.http_port), timeout=10)
    try:
        s.sendall(b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: a\r\nContent-Type: text/xml\r\n"
                  b"Content-Length: 1073741824\r\n\r\n" + b"<" * 65536)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except ConnectionResetError:
            pass
    finally:
        s.close()
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    wait_log(web, r'event=http listener=web client=127\.0\.0\.1 method=- path="-" status=413 .*body_max')
    assert get(web.http_port, "/healthz")[0] == 200


def test_a_trickling_client_is_closed_at_request_timeout(server_factory):
    srv = server_factory(extra=HTTP_LISTENERS + "\n[http]\nrequest_timeout = 2s\n")
    port = port_of(srv, "web")
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    start = time.monotonic()
    closed_after = None
    try:
        for ch in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 40:
            try:
                s.sendall(bytes([ch]))
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - start
                break
            s.settimeout(0.5)
            try:
                if s.recv(1024) == b"":
                    closed_after = time.monotonic() - start
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed_after = time.monotonic() - start
                break
    finally:
        s.close()
    assert closed_after is not None, "a client trickling for %.0fs was never closed" % (time.monotonic() - start)
    assert 1.5 <= closed_after <= 6, closed_after
    wait_log(srv, r"event=http_timeout listener=web client=127\.0\.0\.1 limit=2s")


def test_connections_per_address_are_bounded(server_factory):
    srv = server_factory(limits={"connections_per_ip": "4"}, extra=HTTP_LISTENERS)
    port = port_of(srv, "web")
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
    try:
        time.sleep(0.3)
        out = raw(port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", timeout=10)
        assert out.startswith(b"HTTP/1.1 503"), out[:200]
        assert b"as many connections as its [limits] allow" in out
        wait_log(srv, r'event=refused_connection client=127\.0\.0\.1 reason="per-address limit" limit=4')
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 5
    status = None
    while time.monotonic() < deadline:
        status = get(port, "/healthz")[0]
        if status == 200:
            break
        time.sleep(0.3)
    assert status == 200, "the slots were not given back after the clients left"


def test_many_connections_stay_bounded(server_factory):
    srv = server_factory(limits={"connections": "30", "connections_per_ip": "30"}, extra=HTTP_LISTENERS)
    port = port_of(srv, "web")
    socks = []
    try:
        for _ in range(200):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
        time.sleep(0.5)
        served = refused = 0
        for s in socks:
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
        for s in socks:
            s.settimeout(5)
            try:
                data = s.recv(4096)
            except (socket.timeout, ConnectionResetError):
                data = b""
            if data.startswith(b"HTTP/1.1 200"):
                served += 1
            elif data.startswith(b"HTTP/1.1 503") or data == b"":
                refused += 1
        # 30 in all, the last 10 % kept for addresses with none open ([limits] connections_reserved)
        assert 20 <= served <= 30, (served, refused)
        assert refused >= len(socks) - 30, (served, refused)
    finally:
        for s in socks:
            s.close()
    assert srv.alive()
    assert get(port, "/healthz")[0] == 200 or time.sleep(1) or get(port, "/healthz")[0] == 200


def test_a_client_that_leaves_mid_request_does_no_harm(web):
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", web.http_port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        s.close()
    deadline = time.monotonic() + 5
    while get(web.http_port, "/healthz")[0] != 200 and time.monotonic() < deadline:   # the slots come back
        time.sleep(0.2)
    assert get(web.http_port, "/healthz")[0] == 200
    assert web.alive()


def test_chunked_body_over_body_max_is_413(web):
    s = socket.create_connection(("127.0.0.1", web.http_port), timeout=10)
    try:
        s.sendall(b"POST /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % 32768 + b"c" * 32768 + b"\r\n"
        try:
            for _ in range(8):   # 256K offered; body_max is 64K
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = read_all(s)
    finally:
        s.close()
    assert out.startswith(b"HTTP/1.1 413") or out == b"", out[:200]
    wait_log(web, r'event=http listener=web client=127\.0\.0\.1 method=- path="-" status=413')


@pytest.mark.parametrize("listener", ["web", "webs"])
def test_a_silent_client_is_closed_at_request_timeout(server_factory, listener):
    """Plain: no request line; TLS: not even a ClientHello."""
    srv = server_factory(extra=HTTP_LISTENERS + "\n[http]\nrequest_timeout = 2s\n")
    port = port_of(srv, listener)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    start = time.monotonic()
    try:
        read_all(s)
    finally:
        s.close()
    took = time.monotonic() - start
    assert 1.5 <= took <= 6, took


def test_a_refused_tls_client_is_told_why_over_tls(server_factory):
    srv = server_factory(limits={"connections_per_ip": "2"}, extra=HTTP_LISTENERS)
    port = port_of(srv, "webs")
    cert = srv.data_dir / "tls" / "selfsigned.crt"
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
    try:
        time.sleep(0.3)
        p = subprocess.run(["curl", "-sS", "-i", "--cacert", str(cert), "--resolve", "mx.example.test:%d:127.0.0.1" % port,
                            "https://mx.example.test:%d/healthz" % port], capture_output=True, text=True, timeout=20)
        assert p.stdout.startswith("HTTP/1.1 503"), p.stdout + p.stderr
        assert "as many connections as its [limits] allow" in p.stdout
    finally:
        for s in held:
            s.close()


def test_head_of_an_unknown_path_is_404_without_a_body(web):
    status, headers, body = get(web.http_port, "/nothing", method="HEAD")
    assert status == 404 and body == b"" and int(headers["content-length"]) > 0, (status, headers)
    wait_log(web, r'method=HEAD path="/nothing" status=404 bytes=0 ')
