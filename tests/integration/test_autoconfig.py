"""Mail programs that set themselves up, replayed against a real `postern serve` with an
http listener (plain) and an https one (tls = implicit, a certificate from a test CA):

* Thunderbird's URL list (draft-ietf-mailmaint-autoconfig §3: autoconfig.DOMAIN/mail/...,
  DOMAIN/.well-known/autoconfig/mail/..., https then http, with and without
  ?emailaddress=) fetched with curl (--resolve for the autoconfig names, --cacert for
  the CA); every document validated against the RELAX NG schema with xmllint;
* Outlook's POX POST with the body Outlook sends, both path spellings, over https with
  http.client; the response well-formed (xmllint --noout) and read with ElementTree;
* Autodiscover v2 JSON, followed to the POX URL it names;
* a domain that is not ours, bad addresses, malformed, hostile and huge bodies;
* "every advertised setting really works": for each document the ports and security are
  read from the returned XML/JSON, and smtplib logs in and sends with exactly those
  settings (the certificate checked against the advertised host name), and poplib logs
  in with the advertised POP3 settings and finds the message."""
import http.client
import json
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import HOSTNAME, write_config  # noqa: E402
from submission_support import wait_ports  # noqa: E402
from transport_support import TestCA  # noqa: E402

SCHEMA = Path(__file__).parent / "data" / "autoconfig.rng"
ALICE = "alice@example.test"
BOB = "bob@second.test"          # a domain of the directory only, not of local_domains
PASSWORD = "secret"
OUTLOOK_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESP_NS = {"a": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
           "o": OUTLOOK_SCHEMA}
NAMES = [HOSTNAME, "example.test", "autoconfig.example.test", "autodiscover.example.test",
         "second.test", "autoconfig.second.test", "autodiscover.second.test"]
LISTENERS = ["smtp", "submission", "submissions", "pop3", "pop3s", "web", "webs"]


def outlook_body(address, schema=OUTLOOK_SCHEMA):
    """The request Outlook 2016+ sends (CR LF, declaration, default namespace)."""
    return ('<?xml version="1.0" encoding="utf-8"?>\r\n'
            '<Autodiscover xmlns="%s">\r\n'
            '  <Request>\r\n'
            '    <EMailAddress>%s</EMailAddress>\r\n'
            '    <AcceptableResponseSchema>%s</AcceptableResponseSchema>\r\n'
            '  </Request>\r\n'
            '</Autodiscover>\r\n' % (REQUEST_NS, address, schema)).encode()


@pytest.fixture
def site(server_factory, tmp_path):
    ca = TestCA(tmp_path / "ca")
    cert, key = ca.leaf("mail", NAMES)
    chain = tmp_path / "ca" / "mail.chain"
    chain.write_bytes(cert.read_bytes() + ca.cert.read_bytes())
    extra = ("tls = starttls\n"
             "\n[listener submission]\naddress = 127.0.0.1\nport = 0\nrole = submission\ntls = starttls\n"
             "\n[listener submissions]\naddress = 127.0.0.1\nport = 0\nrole = submission\ntls = implicit\n"
             "\n[listener pop3]\naddress = 127.0.0.1\nport = 0\nrole = pop3\ntls = starttls\n"
             "\n[listener pop3s]\naddress = 127.0.0.1\nport = 0\nrole = pop3\ntls = implicit\n"
             "\n[listener web]\naddress = 127.0.0.1\nport = 0\nrole = http\ntls = none\n"
             "\n[listener webs]\naddress = 127.0.0.1\nport = 0\nrole = http\ntls = implicit\n"
             "\n[tls]\ncertificate = %s\nkey = %s\n" % (chain, key))
    srv = server_factory(users=(ALICE,), extra=extra, start=False)
    p = srv.cli("domain", "add", "second.test")
    assert p.returncode == 0, p.stderr
    srv.add_user(BOB, PASSWORD)
    srv.start()
    srv.ports = wait_ports(srv, LISTENERS)
    srv.ca = ca
    return srv


# -- clients ---------------------------------------------------------------------------------

def curl(srv, url, *args, host=None):
    """curl URL; a name in the URL resolves to 127.0.0.1 (--resolve).  Returns
    (status, content type, body bytes)."""
    m = re.match(r"https?://([^/:]+):(\d+)", url)
    cmd = ["curl", "-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code} %{content_type}",
           "--resolve", "%s:%s:127.0.0.1" % (m.group(1), m.group(2)), "--cacert", str(srv.ca.cert)]
    p = subprocess.run(cmd + list(args) + [url], capture_output=True, timeout=30)
    assert p.returncode == 0, (url, p.stderr)
    body, _, tail = p.stdout.rpartition(b"\n")
    status, _, ctype = tail.decode().partition(" ")
    return int(status), ctype, body


def validate_autoconfig(tmp_path, body):
    f = tmp_path / ("doc-%s.xml" % uuid.uuid4().hex)
    f.write_bytes(body)
    p = subprocess.run(["xmllint", "--noout", "--relaxng", str(SCHEMA), str(f)], capture_output=True, timeout=30)
    assert p.returncode == 0, (p.stderr.decode(), body.decode())


def well_formed(tmp_path, body):
    f = tmp_path / ("ad-%s.xml" % uuid.uuid4().hex)
    f.write_bytes(body)
    p = subprocess.run(["xmllint", "--noout", str(f)], capture_output=True, timeout=30)
    assert p.returncode == 0, (p.stderr.decode(), body.decode())


def https(srv, name, method, path, body=None, headers=None):
    """http.client over TLS to the https listener, SNI and verification for `name`."""
    ctx = ssl.create_default_context(cafile=str(srv.ca.cert))
    sock = socket.create_connection(("127.0.0.1", srv.ports["webs"]), timeout=15)
    conn = http.client.HTTPSConnection(name, srv.ports["webs"], timeout=15, context=ctx)
    conn.sock = ctx.wrap_socket(sock, server_hostname=name)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()
    finally:
        conn.close()


def servers_of(doc):
    """[(kind, host, port, security, user)] of a config-v1.1 document, in order."""
    root = ET.fromstring(doc)
    out = []
    for el in root.find("emailProvider"):
        if el.tag in ("incomingServer", "outgoingServer"):
            out.append((el.get("type"), el.findtext("hostname"), int(el.findtext("port")),
                        el.findtext("socketType"), el.findtext("username")))
    return out


def protocols_of(doc):
    """[(type, host, port, security, login)] of an Autodiscover response."""
    root = ET.fromstring(doc)
    out = []
    for p in root.iterfind("o:Response/o:Account/o:Protocol", RESP_NS):
        enc = p.findtext("o:Encryption", namespaces=RESP_NS)
        ssl_on = p.findtext("o:SSL", namespaces=RESP_NS) == "on"
        sec = {"TLS": "STARTTLS", "SSL": "SSL", "None": "plain"}.get(enc) if enc else ("SSL" if ssl_on else "plain")
        out.append((p.findtext("o:Type", namespaces=RESP_NS).lower().replace("pop3", "pop3"),
                    p.findtext("o:Server", namespaces=RESP_NS), int(p.findtext("o:Port", namespaces=RESP_NS)),
                    sec, p.findtext("o:LoginName", namespaces=RESP_NS)))
    return out


class SMTPAt(smtplib.SMTP):
    """smtplib to 127.0.0.1 while the TLS name checked is the advertised host name."""
    def _get_socket(self, host, port, timeout):
        return socket.create_connection(("127.0.0.1", port), timeout)


class SMTPSSLAt(smtplib.SMTP_SSL):
    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection(("127.0.0.1", port), timeout)
        return self.context.wrap_socket(sock, server_hostname=host)


class POP3At(poplib.POP3):
    def _create_socket(self, timeout):
        return socket.create_connection(("127.0.0.1", self.port), timeout)


class POP3SSLAt(poplib.POP3_SSL):
    def _create_socket(self, timeout):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self.host)


def send_with(srv, host, port, security, user, subject):
    ctx = ssl.create_default_context(cafile=str(srv.ca.cert))
    msg = "From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nsent with the advertised settings\r\n" % (user, user, subject)
    if security == "SSL":
        s = SMTPSSLAt(host, port, context=ctx, timeout=15)
    else:
        assert security == "STARTTLS", security
        s = SMTPAt(host, port, timeout=15)
        s.starttls(context=ctx)
    try:
        s.login(user, PASSWORD)
        assert s.sendmail(user, [user], msg) == {}
    finally:
        s.quit()


def pop3_subjects(srv, host, port, security, user):
    ctx = ssl.create_default_context(cafile=str(srv.ca.cert))
    if security == "SSL":
        p = POP3SSLAt(host, port, context=ctx, timeout=15)
    else:
        assert security == "STARTTLS", security
        p = POP3At(host, port, timeout=15)
        p.stls(context=ctx)
    try:
        p.user(user)
        p.pass_(PASSWORD)
        subjects = []
        for i in range(1, len(p.list()[1]) + 1):
            for line in p.top(i, 0)[1]:
                if line.lower().startswith(b"subject:"):
                    subjects.append(line.split(b":", 1)[1].strip().decode())
        return subjects
    finally:
        p.quit()


def assert_settings_work(srv, servers, user):
    """Send through every advertised outgoing server; find each message through every
    advertised incoming server.  `servers`: [(kind, host, port, security, login)]."""
    outgoing = [s for s in servers if s[0] == "smtp"]
    incoming = [s for s in servers if s[0] == "pop3"]
    assert outgoing and incoming, servers
    sent = []
    for _, host, port, sec, login in outgoing:
        assert login == user, (login, user)
        subject = "advertised %s %d %s" % (sec, port, uuid.uuid4().hex[:8])
        send_with(srv, host, port, sec, login, subject)
        sent.append(subject)
    assert srv.wait_delivered(user, len(sent), timeout=20), "nothing delivered to %s" % user
    deadline = time.monotonic() + 20
    for _, host, port, sec, login in incoming:
        subjects = []
        while time.monotonic() < deadline:
            subjects = pop3_subjects(srv, host, port, sec, login)
            if all(s in subjects for s in sent):
                break
            time.sleep(0.2)
        assert all(s in subjects for s in sent), (port, sec, sent, subjects)


def assert_advertised_ports(srv, servers):
    """Exactly the submission and POP3 listeners, implicit TLS first; never 25 or mx."""
    p = srv.ports
    smtp = [(s[2], s[3]) for s in servers if s[0] == "smtp"]
    pop = [(s[2], s[3]) for s in servers if s[0] == "pop3"]
    assert smtp == [(p["submissions"], "SSL"), (p["submission"], "STARTTLS")], (smtp, p)
    assert pop == [(p["pop3s"], "SSL"), (p["pop3"], "STARTTLS")], (pop, p)
    ports = [s[2] for s in servers]
    assert p["smtp"] not in ports and 25 not in ports, servers
    assert all(s[1] == HOSTNAME for s in servers), servers


# -- Thunderbird -----------------------------------------------------------------------------

def thunderbird_urls(srv, domain, address):
    """The URLs Thunderbird tries, in its order (https first, then http)."""
    q = "?emailaddress=" + urllib.parse.quote(address, safe="") if address else ""   # encodeURIComponent
    web, webs = srv.ports["web"], srv.ports["webs"]
    return [
        "https://autoconfig.%s:%d/mail/config-v1.1.xml%s" % (domain, webs, q),
        "https://%s:%d/.well-known/autoconfig/mail/config-v1.1.xml%s" % (domain, webs, q),
        "http://autoconfig.%s:%d/mail/config-v1.1.xml%s" % (domain, web, q),
        "http://%s:%d/.well-known/autoconfig/mail/config-v1.1.xml%s" % (domain, web, q),
    ]


@pytest.mark.parametrize("with_address", [True, False])
def test_thunderbird_url_list(site, tmp_path, with_address):
    for domain, user in (("example.test", ALICE), ("second.test", BOB)):
        for url in thunderbird_urls(site, domain, user if with_address else None):
            status, ctype, body = curl(site, url)
            assert status == 200, (url, status, body)
            assert ctype.replace(" ", "").lower() == "text/xml;charset=utf-8", (url, ctype)
            validate_autoconfig(tmp_path, body)
            root = ET.fromstring(body)
            assert root.find("emailProvider").get("id") == domain, (url, body)
            servers = servers_of(body)
            assert_advertised_ports(site, servers)
            want_user = user if with_address else "%EMAILADDRESS%"
            assert all(s[4] == want_user for s in servers), (url, servers)
            assert all(a.text == "password-cleartext" for a in root.iter("authentication")), body
    log = site.log()
    assert re.search(r"event=http\b.*autoconfig domain=second\.test", log), log[-3000:]


def test_autoconfig_settings_really_work(site):
    """Read every port and its security from the document and use exactly those."""
    url = thunderbird_urls(site, "example.test", ALICE)[0]
    status, _, body = curl(site, url)
    assert status == 200, body
    assert_settings_work(site, servers_of(body), ALICE)
    # a user of a domain the directory alone knows
    status, _, body = curl(site, thunderbird_urls(site, "second.test", BOB)[0])
    assert status == 200, body
    assert_settings_work(site, servers_of(body), BOB)
    # the document without an address: the client puts the address in for %EMAILADDRESS%
    status, _, body = curl(site, thunderbird_urls(site, "example.test", None)[1])
    assert status == 200 and b"%EMAILADDRESS%" in body, body
    assert_settings_work(site, servers_of(body.replace(b"%EMAILADDRESS%", ALICE.encode())), ALICE)


@pytest.mark.parametrize("query,status,words", [
    ("?emailaddress=carol@elsewhere.test", 404, "elsewhere.test is not a mail domain of this server"),
    ("?emailaddress=not-an-address", 400, "emailaddress is not a mail address"),
    ("?emailaddress=%3Cscript%3E@example.test", 400, "emailaddress is not a mail address"),
    ("?emailaddress=" + "a" * 400 + "@example.test", 400, "emailaddress is not a mail address"),
])
def test_autoconfig_refusals_in_words(site, query, status, words):
    url = "http://autoconfig.example.test:%d/mail/config-v1.1.xml%s" % (site.ports["web"], query)
    got, ctype, body = curl(site, url)
    assert got == status, (got, body)
    assert ctype.startswith("text/plain"), ctype
    assert words in body.decode(), body
    assert b"<script>" not in body


# -- Outlook (POX) ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml",
                                  "/AUTODISCOVER/AUTODISCOVER.XML"])
def test_outlook_pox(site, tmp_path, path):
    status, ctype, body = https(site, "autodiscover.example.test", "POST", path, outlook_body(ALICE),
                                {"Content-Type": "text/xml", "User-Agent": "Microsoft Office/16.0",
                                 "Authorization": "Basic YWxpY2VAZXhhbXBsZS50ZXN0OnNlY3JldA=="})
    assert status == 200, (status, body)
    assert ctype.replace(" ", "").lower().startswith("text/xml"), ctype
    well_formed(tmp_path, body)
    root = ET.fromstring(body)
    acct = root.find("o:Response/o:Account", RESP_NS)
    assert acct.findtext("o:AccountType", namespaces=RESP_NS) == "email"
    assert acct.findtext("o:Action", namespaces=RESP_NS) == "settings"
    for p in acct.iterfind("o:Protocol", RESP_NS):
        assert p.findtext("o:SPA", namespaces=RESP_NS) == "off"
        assert p.findtext("o:AuthRequired", namespaces=RESP_NS) == "on"
        if p.findtext("o:Type", namespaces=RESP_NS) == "SMTP":
            assert p.findtext("o:UsePOPAuth", namespaces=RESP_NS) == "on"
    assert_advertised_ports(site, protocols_of(body))
    # the Authorization header and its password never reach the log
    log = site.log()
    assert "YWxpY2VAZXhhbXBsZS50ZXN0OnNlY3JldA" not in log and "secret" not in log
    assert re.search(r"event=http\b.*autodiscover domain=example\.test", log), log[-3000:]


def test_outlook_settings_really_work(site):
    status, _, body = https(site, "autodiscover.second.test", "POST", "/autodiscover/autodiscover.xml",
                            outlook_body(BOB), {"Content-Type": "text/xml"})
    assert status == 200, body
    assert_settings_work(site, protocols_of(body), BOB)


def test_pox_get_variant(site, tmp_path):
    status, _, body = curl(site, "http://autodiscover.example.test:%d/autodiscover/autodiscover.xml"
                           "?emailaddress=%s" % (site.ports["web"], ALICE))
    assert status == 200, body
    well_formed(tmp_path, body)
    assert_advertised_ports(site, protocols_of(body))


def error_code(body):
    return ET.fromstring(body).findtext("o:Response/o:Error/o:ErrorCode", namespaces=RESP_NS)


@pytest.mark.parametrize("body,status,code,words", [
    (outlook_body("carol@elsewhere.test"), 200, "500", "elsewhere.test is not a mail domain"),
    (outlook_body(ALICE, "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"),
     200, "601", "outlook response schema"),
    (b"<Autodiscover><Request></Request></Autodiscover>", 400, "600", "names no EMailAddress"),
    (b"<Autodiscover><Request><EMailAddress>a@b", 400, "600", "ends inside an element"),
    (b"not xml at all", 400, "600", "text outside"),
    (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><Autodiscover>&x;</Autodiscover>',
     400, "600", "DTD"),
    (b"", 400, "600", "no body"),
])
def test_pox_errors(site, tmp_path, body, status, code, words):
    got, _, resp = https(site, "autodiscover.example.test", "POST", "/autodiscover/autodiscover.xml", body,
                         {"Content-Type": "text/xml"})
    assert got == status, (got, resp)
    well_formed(tmp_path, resp)
    assert error_code(resp) == code, resp
    assert words in resp.decode(), resp
    assert b"root:" not in resp


def test_pox_huge_and_deep_bodies(site):
    # larger than the scanner takes (16 KiB) yet under the transport's bound, and far past it
    for size in (20 * 1024, 4 * 1024 * 1024):
        body = outlook_body(ALICE) + b" " * size
        try:
            got, _, resp = https(site, "autodiscover.example.test", "POST", "/autodiscover/autodiscover.xml",
                                 body, {"Content-Type": "text/xml"})
        except (ConnectionError, ssl.SSLError, http.client.HTTPException):
            continue   # the transport may close on a body past [http] body_max: bounded either way
        assert got in (400, 413), (size, got, resp[:300])
    deep = b"<Autodiscover>" + b"<a>" * 500 + b"</a>" * 500 + b"</Autodiscover>"
    got, _, resp = https(site, "autodiscover.example.test", "POST", "/autodiscover/autodiscover.xml", deep,
                         {"Content-Type": "text/xml"})
    assert got == 400 and b"deeper than 8" in resp, resp[:300]
    assert site.alive()
    status, _, body = https(site, "autodiscover.example.test", "POST", "/autodiscover/autodiscover.xml",
                            outlook_body(ALICE), {"Content-Type": "text/xml"})
    assert status == 200, body


# -- Autodiscover v2 -----------------------------------------------------------------------------

def test_v2_json_redirect_followed(site, tmp_path):
    status, ctype, body = https(site, "autodiscover.example.test", "GET",
                                "/autodiscover/autodiscover.json/v1.0/%s?Protocol=AutodiscoverV1" % ALICE)
    assert status == 200, body
    assert ctype.startswith("application/json"), ctype
    doc = json.loads(body)
    assert doc == {"Protocol": "AutodiscoverV1", "Url": "https://%s/autodiscover/autodiscover.xml" % HOSTNAME}, doc
    # follow it: the host it names, on the https listener
    m = re.match(r"https://([^/]+)(/.*)", doc["Url"])
    status, _, xml = https(site, m.group(1), "POST", m.group(2), outlook_body(ALICE), {"Content-Type": "text/xml"})
    assert status == 200, xml
    well_formed(tmp_path, xml)
    assert_settings_work(site, protocols_of(xml), ALICE)


@pytest.mark.parametrize("path,status,code", [
    ("/autodiscover/autodiscover.json/v1.0/%s?Protocol=ActiveSync" % ALICE, 400, "InvalidProtocol"),
    ("/autodiscover/autodiscover.json/v1.0/%s?Protocol=Ews" % ALICE, 400, "InvalidProtocol"),
    ("/autodiscover/autodiscover.json/v1.0/%s" % ALICE, 400, "InvalidProtocol"),
    ("/autodiscover/autodiscover.json/v1.0/carol@elsewhere.test?Protocol=AutodiscoverV1", 404, "InvalidUser"),
    ("/autodiscover/autodiscover.json/v1.0/nobody?Protocol=AutodiscoverV1", 400, "InvalidUser"),
])
def test_v2_json_errors(site, path, status, code):
    got, ctype, body = https(site, "autodiscover.example.test", "GET", path)
    assert got == status, (got, body)
    assert ctype.startswith("application/json"), ctype
    doc = json.loads(body)
    assert doc["ErrorCode"] == code and doc["ErrorMessage"], doc


def test_v2_json_query_form(site):
    got, _, body = https(site, "autodiscover.example.test", "GET",
                         "/autodiscover/autodiscover.json?Email=%s&Protocol=AutodiscoverV1&RedirectCount=1" % ALICE)
    assert got == 200, body
    assert json.loads(body)["Protocol"] == "AutodiscoverV1"
