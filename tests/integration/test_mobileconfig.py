"""Apple configuration profiles (src/web/mobileconfig.c): GET
/apple/profile.mobileconfig?email=ADDRESS on an https listener returns a
com.apple.mail.managed profile signed with the server's certificate (CMS, DER).  The test
checks the signature with `openssl cms -verify` against the server certificate, parses
the plist with plistlib, and logs in and sends with exactly the settings in it (poplib,
smtplib)."""
import http.client
import plistlib
import poplib
import smtplib
import subprocess
import urllib.parse

import pytest

from conftest import HOSTNAME
from submission_support import PASSWORD, listener_sections, tls_context, wait_ports

ALICE = "alice@example.test"
BOB = "bob@example.test"
MORE_LISTENERS = """
[listener pop3]
address = 127.0.0.1
port = 0
role = pop3
tls = starttls

[listener pop3s]
address = 127.0.0.1
port = 0
role = pop3
tls = implicit

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
NAMES = ["smtp", "submission", "submissions", "pop3", "pop3s", "web", "webs"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    from conftest import Server
    s = Server(tmp_path_factory.mktemp("mobileconfig"), users=(ALICE, BOB), extra=listener_sections() + MORE_LISTENERS)
    s.start()
    s.ports = wait_ports(s, NAMES)
    yield s
    s.stop()


def fetch(srv, query, listener="webs", host=None):
    port = srv.ports[listener]
    if listener == "webs":
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=tls_context())
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/apple/profile.mobileconfig" + query, headers={"Host": host or HOSTNAME})
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def verify(srv, der, tmp_path):
    """openssl cms -verify against the server certificate; returns the plist bytes."""
    cert = srv.data_dir / "tls" / "selfsigned.crt"
    assert cert.exists(), "the server's self-signed certificate"
    (tmp_path / "p.der").write_bytes(der)
    p = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "p.der"),
                        "-CAfile", str(cert), "-out", str(tmp_path / "p.plist"),
                        "-signer", str(tmp_path / "signer.pem")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "Verification successful" in p.stderr, p.stderr
    signer = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "signer.pem"), "-noout", "-fingerprint", "-sha256"],
                            capture_output=True, text=True, timeout=10).stdout
    mine = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
                          capture_output=True, text=True, timeout=10).stdout
    assert signer and signer == mine, (signer, mine)
    return (tmp_path / "p.plist").read_bytes()


def profile(srv, tmp_path, address=ALICE):
    status, headers, body = fetch(srv, "?email=" + urllib.parse.quote(address))
    assert status == 200, body
    assert headers["content-type"] == "application/x-apple-aspen-config", headers
    assert not body.startswith(b"<?xml"), "the profile is signed (DER), not bare XML"
    return plistlib.loads(verify(srv, body, tmp_path))


def test_signed_profile_has_the_running_settings(srv, tmp_path):
    top = profile(srv, tmp_path)
    assert top["PayloadType"] == "Configuration" and top["PayloadVersion"] == 1
    (mail,) = top["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAccountType"] == "EmailTypePOP"
    assert mail["EmailAddress"] == ALICE
    assert mail["IncomingMailServerHostName"] == HOSTNAME == mail["OutgoingMailServerHostName"]
    assert mail["IncomingMailServerPortNumber"] == srv.ports["pop3s"]       # implicit TLS first
    assert mail["OutgoingMailServerPortNumber"] == srv.ports["submissions"]  # 465 style first
    assert mail["IncomingMailServerUseSSL"] is True and mail["OutgoingMailServerUseSSL"] is True
    assert mail["IncomingMailServerAuthentication"] == "EmailAuthPassword"
    assert mail["OutgoingMailServerAuthentication"] == "EmailAuthPassword"
    assert mail["IncomingMailServerUsername"] == ALICE == mail["OutgoingMailServerUsername"]
    assert mail["OutgoingPasswordSameAsIncomingPassword"] is True
    assert srv.ports["smtp"] not in (mail["OutgoingMailServerPortNumber"], mail["IncomingMailServerPortNumber"])
    assert top["PayloadUUID"] != mail["PayloadUUID"]
    assert ALICE in top["PayloadDisplayName"]


def test_settings_in_the_profile_log_in_and_send(srv, tmp_path):
    (mail,) = profile(srv, tmp_path)["PayloadContent"]
    user = mail["OutgoingMailServerUsername"]
    s = smtplib.SMTP_SSL("127.0.0.1", mail["OutgoingMailServerPortNumber"], timeout=10, context=tls_context())
    try:
        s.login(user, PASSWORD)
        msg = b"From: <alice@example.test>\r\nTo: <bob@example.test>\r\nSubject: from the profile\r\n\r\nhi\r\n"
        assert s.sendmail(mail["EmailAddress"], [BOB], msg) == {}
    finally:
        s.quit()
    assert srv.wait_delivered(BOB, 1), "delivered"
    p = poplib.POP3_SSL("127.0.0.1", mail["IncomingMailServerPortNumber"], timeout=10, context=tls_context())
    try:
        p.user(mail["IncomingMailServerUsername"])
        p.pass_(PASSWORD)
        assert p.stat()[0] >= 0
    finally:
        p.quit()


def test_profile_is_stable_per_address(srv, tmp_path):
    a1, a2 = profile(srv, tmp_path), profile(srv, tmp_path)
    b = profile(srv, tmp_path, BOB)
    assert a1["PayloadUUID"] == a2["PayloadUUID"] and a1["PayloadIdentifier"] == a2["PayloadIdentifier"]
    assert a1["PayloadContent"][0]["PayloadUUID"] == a2["PayloadContent"][0]["PayloadUUID"]
    assert b["PayloadUUID"] != a1["PayloadUUID"] and b["PayloadIdentifier"] != a1["PayloadIdentifier"]
    import uuid
    u = uuid.UUID(a1["PayloadUUID"])
    assert u.version == 8 and u.variant == uuid.RFC_4122, u


def test_non_local_address_is_404_in_words(srv):
    status, headers, body = fetch(srv, "?email=someone@other.example")
    assert status == 404, body
    assert b"other.example is not a mail domain of this server" in body, body
    assert headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("query,words", [
    ("", b"needs the mail address"),
    ("?email=", b"needs the mail address"),
    ("?email=not-an-address", b"not the address of an account"),
    ("?email=%3Cscript%3E@example.test", b"not the address of an account"),
    ("?email=o%27hara%26co@example.test", b"not the address of an account"),   # (XML escaping: test_mobileconfig.c)
])
def test_bad_requests_in_words(srv, query, words):
    status, _, body = fetch(srv, query)
    assert status == 400 and words in body, (status, body)


def test_plain_http_serves_it_too_and_logs_no_address(srv, tmp_path):
    status, headers, body = fetch(srv, "?email=" + ALICE, listener="web")
    assert status == 200 and headers["content-type"] == "application/x-apple-aspen-config"
    log = srv.log()
    assert "mobileconfig domain=example.test signed=yes" in log, log[-2000:]
    assert "email=alice" not in log
