"""The DKIM signing stage (END_OF_DATA) in a real `postern serve`.

A logged-in user's mail to a remote domain (d2.test, MX from dnsmasq, delivered to an
aiosmtpd receiver on 127.0.0.2) arrives with an rsa-sha256 and an ed25519-sha256
signature that python3-dkim (`dkim.verify`, its DNS answered from the records `postern
dkim list` prints) and OpenDKIM's verifier (`opendkim -t`, its key records given
in a TestPublicKeys file) accept; the fields sit above Postern's Received: field, in front
of the message.  Mail from an mx client to a local mailbox is not signed, a From:
domain without a key is not signed, and `[mailauth] dkim_signing = no` signs nothing."""
import re
import subprocess
import sys
import time
from pathlib import Path

import dkim
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import write_config  # noqa: E402
from delivery_support import AioReceiver, Dns, delivery_config_text, free_port  # noqa: E402
from helpers import SMTPConn, dot_stuff  # noqa: E402
from submission_support import listener_sections, smtplib_login, wait_log, wait_ports  # noqa: E402

ALICE = "alice@example.test"
CAROL = "carol@other.test"


@pytest.fixture
def dns(tmp_path):
    d = Dns(tmp_path / "dns").start()
    yield d
    d.stop()


@pytest.fixture
def world(server_factory, dns):
    port = free_port(("127.0.0.2",))
    recv = AioReceiver(["127.0.0.2"], port).start()
    extra = listener_sections() + delivery_config_text(dns.port, port)
    srv = server_factory(users=(ALICE,), extra=extra, start=False)
    assert srv.cli("domain", "add", "other.test").returncode == 0
    srv.add_user(CAROL)
    for sel, t in (("r1", "rsa"), ("e1", "ed25519")):
        r = srv.cli("dkim", "keygen", "example.test", "--selector", sel, "--type", t)
        assert r.returncode == 0, r.stderr
    srv.extra = extra
    srv.start()
    srv.ports = wait_ports(srv, ["smtp", "submission", "submissions"])
    yield srv, recv
    recv.stop()


def records(srv):
    """dnsfunc for dkimpy: the TXT records of `postern dkim list`."""
    out = srv.cli("dkim", "list").stdout
    recs = {}
    for line in out.splitlines():
        m = re.search(r"(\S+\._domainkey\.\S+)\s+IN TXT\s+\((.*)\)", line)
        if m:
            recs[m.group(1).encode()] = "".join(re.findall(r'"([^"]*)"', m.group(2))).encode()
    assert len(recs) >= 2, out
    return lambda name, timeout=5: recs.get(name)


def message(sender, to, subject):
    return ("From: Sender <%s>\r\nTo: <%s>\r\nCc: <cc@d2.test>\r\nSubject: %s\r\n"
            "Date: Tue, 01 Dec 2026 12:00:00 +0000\r\nMessage-ID: <%d@client.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\n  with  spaces \r\n\r\n.leading dot\r\n\r\n\r\n"
            % (sender, to, subject, time.monotonic_ns())).encode()


def send_logged_in(srv, user, to, subject):
    s = smtplib_login(srv, user=user)
    try:
        s.sendmail(user, [to], message(user, to, subject))
    finally:
        s.quit()


def verifies(content, idx, dnsfunc):
    """dkimpy's verdict on signature idx (it raises on some failures: False then)."""
    try:
        return dkim.DKIM(content).verify(idx=idx, dnsfunc=dnsfunc)
    except dkim.DKIMException:
        return False


def received(recv, n=1):
    msgs = recv.wait_messages(n, timeout=20)
    assert len(msgs) >= n, msgs
    return msgs[n - 1]["content"]


def opendkim_verifies(tmp, content, srv):
    """OpenDKIM's verifier (`opendkim -t`, test mode), its keys from a file (TestPublicKeys)
    instead of the DNS.  Returns its report lines."""
    keyfile = tmp / "opendkim-keys"
    lines = []
    for line in srv.cli("dkim", "list").stdout.splitlines():
        m = re.search(r"(\S+\._domainkey\.\S+)\.\s+IN TXT\s+\((.*)\)", line)
        if m:
            lines.append("%s %s" % (m.group(1), "".join(re.findall(r'"([^"]*)"', m.group(2)))))
    keyfile.write_text("\n".join(lines) + "\n")
    conf = tmp / "opendkim.conf"
    conf.write_text("Mode v\nSyslog no\nTestPublicKeys %s\n" % keyfile)
    msg = tmp / "signed.eml"
    msg.write_bytes(content)
    p = subprocess.run(["/usr/sbin/opendkim", "-x", str(conf), "-t", str(msg), "-vv"], capture_output=True,
                       timeout=30)
    return re.findall(r"dkim=(\w+)[^;]*header\.s=(\w+)", p.stdout.decode(errors="replace"))


def test_logged_in_mail_to_remote_domain_is_signed(world, tmp_path):
    srv, recv = world
    send_logged_in(srv, ALICE, "bob@d2.test", "signed")
    content = received(recv)
    head = content.split(b"\r\n\r\n", 1)[0]
    fields = re.findall(rb"^[^\s:]+:", head, re.M)
    assert fields[:3] == [b"DKIM-Signature:", b"DKIM-Signature:", b"Received:"], fields
    assert b"a=rsa-sha256" in content and b"a=ed25519-sha256" in content
    assert re.search(rb"d=example\.test;", content) and b" l=" not in head
    dnsfunc = records(srv)
    assert verifies(content, 0, dnsfunc), "dkimpy: the ed25519 signature does not verify"
    assert verifies(content, 1, dnsfunc), "dkimpy: the rsa signature does not verify"
    report = opendkim_verifies(tmp_path, content, srv)
    assert sorted(report) == [("pass", "e1"), ("pass", "r1")], report
    assert wait_log(srv, r"event=dkim_signed\b.*domain=example\.test\b.*selectors=e1:ed25519-sha256,r1:rsa-sha256")
    # changed in transit: the verifiers notice
    bad = content.replace(b"with  spaces", b"with spices")
    assert not verifies(bad, 1, dnsfunc) and not verifies(bad, 0, dnsfunc)


def test_mx_mail_to_local_user_is_not_signed(world):
    srv, _recv = world
    with SMTPConn("127.0.0.1", srv.ports["smtp"], timeout=15) as c:
        c.ehlo("client.example")
        assert c.cmd("MAIL FROM:<someone@d2.test>").code == 250
        assert c.cmd("RCPT TO:<%s>" % ALICE).code == 250
        r = c.data(dot_stuff(message("someone@example.test", ALICE, "inbound")))
        assert r.code == 250, r
        c.cmd("QUIT")
    msgs = srv.wait_delivered(ALICE, 1)
    assert len(msgs) == 1
    text = Path(msgs[0]).read_bytes()
    assert b"Subject: inbound" in text and b"DKIM-Signature:" not in text, text


def test_from_domain_without_key_is_not_signed(world):
    srv, recv = world
    send_logged_in(srv, CAROL, "bob@d2.test", "no key")
    content = received(recv)
    assert b"DKIM-Signature:" not in content
    assert b"Subject: no key" in content


def test_signing_off(world):
    srv, recv = world
    srv.stop()
    text = Path(srv.config).read_text() + "\n[mailauth]\ndkim_signing = no\n"
    Path(srv.config).write_text(text)
    srv.start()
    srv.ports = wait_ports(srv, ["smtp", "submission", "submissions"])
    send_logged_in(srv, ALICE, "bob@d2.test", "off")
    content = received(recv)
    assert b"Subject: off" in content and b"DKIM-Signature:" not in content
