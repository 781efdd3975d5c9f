"""POP3 and IMAP logins proxied to the mailbox's home node (contracts §O): three nodes on
one private PostgreSQL (cluster_support.py), a user whose home is node 2, a client on
127.0.0.7 that talks to node 3.

* mail delivered on node 2 is read with poplib and imaplib on node 3 (RETR, FETCH of the
  body, IDLE noticing a new message): node 3 checks the password and splices the bytes;
* node 2 logs the real client (127.0.0.7), not node 3's address;
* a wrong password on node 3 is refused by node 3 (node 2 never hears of it);
* XCLIENT without a valid node token (a made-up one, one of another secret, one made for
  another login) is refused and does not skip the password; a valid one works;
* node 2 stopped: the refusal on node 3 names node 2 and what to do."""
import base64
import hashlib
import hmac
import imaplib
import poplib
import smtplib
import socket
import ssl
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cluster_support import Cluster, PASSWORD  # noqa: E402
from pg_support import pg_bindir  # noqa: E402
from submission_support import tls_context  # noqa: E402

pytestmark = pytest.mark.skipif(pg_bindir() is None, reason="PostgreSQL is not installed (scripts/install-deps test)")

CAROL = "carol@example.test"
CLIENT = "127.0.0.7"   # the client's own address: what node 2 must log


class POP3Client(poplib.POP3_SSL):
    """poplib over TLS from CLIENT."""

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout, source_address=(CLIENT, 0))
        return self.context.wrap_socket(sock, server_hostname=self.host)


class IMAPClient(imaplib.IMAP4_SSL):
    """imaplib over TLS from CLIENT."""

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout, source_address=(CLIENT, 0))
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cl = Cluster(tmp_path_factory.mktemp("proxy"), n=3).start()
    try:
        cl.add_user(CAROL, on=0, home="node2")
        cl.wait_registry(["node1", "node2", "node3"])
        yield cl
    finally:
        cl.stop()


def deliver(cluster, marker):
    """A message for CAROL sent to node 2 (her home), in her Maildir there."""
    node2 = cluster.nodes[1]
    before = len(node2.maildir_messages(CAROL))
    with smtplib.SMTP(node2.host, node2.ports["smtp"], timeout=10) as s:
        s.sendmail("someone@example.net", [CAROL], "From: someone@example.net\r\nTo: %s\r\nSubject: %s\r\n\r\n"
                   "body of %s\r\n" % (CAROL, marker, marker))
    msgs = node2.wait_delivered(CAROL, before + 1)
    assert len(msgs) > before, "node 2 never delivered %s; log:\n%s" % (marker, node2.log()[-3000:])


def wait_log(node, text, timeout=10):
    """node's log once it holds text (bounded)."""
    deadline = time.monotonic() + timeout
    while text not in node.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert text in node.log(), "%s never logged %r; log:\n%s" % (node.name, text, node.log()[-3000:])
    return node.log()


def pop3(node, timeout=15):
    return POP3Client(node.host, node.ports["pop3s"], timeout=timeout, context=tls_context())


def imap(node, timeout=15):
    return IMAPClient(node.host, node.ports["imaps"], ssl_context=tls_context(), timeout=timeout)


def token(cluster, purpose, node="node3", secret=None, when=None):
    """A node token as auth/node_token.c makes it."""
    secret = secret if secret is not None else cluster.secret_file.read_bytes().rstrip(b"\r\n \t")
    secs = int(when if when is not None else time.time())
    mac = hmac.new(secret, ("%s|%s|%d" % (purpose, node, secs)).encode(), hashlib.sha256).digest()
    return "%s.%d.%s" % (node, secs, base64.urlsafe_b64encode(mac).rstrip(b"=").decode())


def test_pop3_on_node3_reads_mail_kept_on_node2(cluster):
    deliver(cluster, "pop-one")
    node2, node3 = cluster.nodes[1], cluster.nodes[2]
    p = pop3(node3)
    p.user(CAROL)
    answer = p.pass_(PASSWORD)
    assert answer.startswith(b"+OK Logged in:"), answer
    count, _ = p.stat()
    assert count >= 1
    bodies = [b"\r\n".join(p.retr(i)[1]) for i in range(1, count + 1)]
    assert any(b"body of pop-one" in b for b in bodies), bodies
    assert p.quit().startswith(b"+OK")
    log2, log3 = node2.log(), node3.log()
    assert "event=pop3_login" in log2 and "client=%s user=%s mech=XCLIENT" % (CLIENT, CAROL) in log2, log2[-3000:]
    assert "client=%s user=%s" % (node3.host, CAROL) not in log2
    assert "event=proxy " in log3 and "user=%s node=node2 result=connected" % CAROL in log3, log3[-3000:]
    wait_log(node3, "event=bridge_end")


def test_imap_on_node3_fetches_and_idles_on_node2(cluster):
    deliver(cluster, "imap-one")
    node2, node3 = cluster.nodes[1], cluster.nodes[2]
    m = imap(node3)
    typ, data = m.login(CAROL, PASSWORD)
    assert typ == "OK", data
    assert "IDLE" in m.capabilities, m.capabilities   # node 2's capabilities, from its tagged OK
    typ, data = m.select("INBOX")
    assert typ == "OK", data
    typ, data = m.search(None, "SUBJECT", "imap-one")
    assert typ == "OK" and data[0], data
    num = data[0].split()[-1]
    typ, data = m.fetch(num, "(BODY[])")
    assert typ == "OK" and b"body of imap-one" in data[0][1], data
    assert "event=imap_login" in node2.log() and "client=%s user=%s mech=XCLIENT" % (CLIENT, CAROL) in node2.log()
    # IDLE through the bridge: node 2 tells of a message delivered meanwhile.
    exists_before = int(m.select("INBOX")[1][0])
    tag = m._new_tag().decode()
    m.send(("%s IDLE\r\n" % tag).encode())
    assert m.readline().startswith(b"+"), "no continuation for IDLE"
    deliver(cluster, "imap-two")
    deadline = time.monotonic() + 15
    seen = b""
    m.sock.settimeout(2)
    while time.monotonic() < deadline and b"EXISTS" not in seen:
        try:
            seen += m.readline()
        except (socket.timeout, ssl.SSLError):
            continue
    assert b"* %d EXISTS" % (exists_before + 1) in seen, seen
    m.sock.settimeout(15)
    m.send(b"DONE\r\n")
    while True:
        line = m.readline()
        if line.startswith(tag.encode()):
            assert b" OK" in line, line
            break
    m.logout()
    assert "event=proxy " in node3.log() and "node=node2 result=connected" in node3.log()


def test_wrong_password_on_node3_is_refused_by_node3(cluster):
    node2, node3 = cluster.nodes[1], cluster.nodes[2]
    handed = node2.log().count("event=xclient ")
    p = pop3(node3)
    p.user(CAROL)
    with pytest.raises(poplib.error_proto) as e:
        p.pass_("wrong-" + PASSWORD)
    assert b"-ERR [AUTH] Login failed: wrong user name or password" in e.value.args[0], e.value.args
    p.quit()
    m = imap(node3)
    with pytest.raises(imaplib.IMAP4.error) as e2:
        m.login(CAROL, "wrong-" + PASSWORD)
    assert "AUTHENTICATIONFAILED" in str(e2.value), e2.value
    m.logout()
    assert node2.log().count("event=xclient ") == handed   # node 2 never heard of it
    assert "event=login_failed" in node3.log()


def raw_pop3(node):
    s = tls_context().wrap_socket(socket.create_connection((node.host, node.ports["pop3s"]), 10),
                                  server_hostname=node.host)
    f = s.makefile("rb")
    assert f.readline().startswith(b"+OK")
    return s, f


def test_xclient_without_a_valid_token_is_refused(cluster):
    node2 = cluster.nodes[1]
    good_purpose = "pop3|127.0.0.9|%s" % CAROL
    attempts = [
        "node3.%d.%s" % (int(time.time()), "A" * 43),                               # made up
        token(cluster, good_purpose, secret=b"another cluster's secret, 32 bytes or more"),
        token(cluster, "pop3|127.0.0.9|someone@example.test"),                     # for another login
        token(cluster, "imap|127.0.0.9|%s" % CAROL),                               # for IMAP
        token(cluster, good_purpose, when=time.time() - 600),                      # stale
    ]
    s, f = raw_pop3(node2)
    for t in attempts:
        s.sendall(("XCLIENT %s 127.0.0.9 %s\r\n" % (t, CAROL)).encode())
        line = f.readline()
        assert line.startswith(b"-ERR [AUTH] XCLIENT refused: the node token"), line
        s.sendall(b"STAT\r\n")
        assert f.readline().startswith(b"-ERR STAT needs a login first")
    s.close()
    assert node2.log().count("event=xclient_refused") >= len(attempts)
    s, f = raw_pop3(node2)
    s.sendall(b"CAPA\r\n")
    capa = b""
    while not capa.endswith(b".\r\n"):
        capa += f.readline()
    assert b"XCLIENT" not in capa, capa
    # The right token for this address and login: logged in, as 127.0.0.9.
    s.sendall(("XCLIENT %s 127.0.0.9 %s\r\nSTAT\r\nQUIT\r\n" % (token(cluster, good_purpose), CAROL)).encode())
    assert f.readline().startswith(b"+OK Logged in:")
    assert f.readline().startswith(b"+OK ")
    s.close()
    assert "client=127.0.0.9 user=%s mech=XCLIENT" % CAROL in node2.log()
    m = IMAPClient(node2.host, node2.ports["imaps"], ssl_context=tls_context(), timeout=10)
    imaplib.Commands.setdefault("XCLIENT", ("NONAUTH",))
    typ, data = m._simple_command("XCLIENT", attempts[0], "127.0.0.9", CAROL)
    assert typ == "NO" and b"[AUTHENTICATIONFAILED] XCLIENT refused: the node token" in data[0], (typ, data)
    assert m.state == "NONAUTH"
    m.logout()


def test_home_node_down_is_named_in_the_refusal(cluster):
    node2, node3 = cluster.nodes[1], cluster.nodes[2]
    node2.stop()
    try:
        p = pop3(node3, timeout=30)
        p.user(CAROL)
        with pytest.raises(poplib.error_proto) as e:
            p.pass_(PASSWORD)
        words = e.value.args[0]
        assert words.startswith(b"-ERR [SYS/TEMP] Your mailbox is kept on node node2, which cannot be reached"), words
        assert b"tell the administrator that node node2 is down" in words, words
        p.quit()
        m = imap(node3, timeout=30)
        with pytest.raises(imaplib.IMAP4.error) as e2:
            m.login(CAROL, PASSWORD)
        assert "[UNAVAILABLE] Your mailbox is kept on node node2" in str(e2.value), e2.value
        m.logout()
        assert "result=unavailable" in node3.log()
    finally:
        node2.start()
    cluster.wait_registry(["node2"], pred=lambda r: r["node2"]["pop3"] == "%s:%d" % (node2.host, node2.ports["pop3s"]))
