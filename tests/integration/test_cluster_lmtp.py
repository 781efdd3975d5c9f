"""Mail for a user whose home is another node ([cluster], §K): three nodes on
127.0.0.11-13 (cluster_support.py) with listeners of role lmtp.

* a message for bob (home node2) sent to node1's mx port is handed to node2 by LMTP and
  lands in node2's Maildir exactly once (never in node1's); POP3 on node2 reads it;
* node2 stopped: node1 keeps the message queued, `postern queue list` and the delay
  notice to the sender say that home node node2 has not answered since when; node2
  started again gets it;
* the lmtp listener refuses a peer without a valid node token, with words, and a node
  with a valid token (made here, from the shared secret) for a user whose home is
  another node."""
import base64
import hashlib
import hmac
import poplib
import re
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

ALICE = "alice@example.test"     # home node1: the sender, who gets the delay notice
BOB = "bob@example.test"         # home node2
CAROL = "carol@example.test"     # home node3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cl = Cluster(tmp_path_factory.mktemp("lmtp"), n=3, extra_roles=("lmtp",),
                 extra="\n[delivery]\ndelay_notice = 3s\n")
    cl.start()
    try:
        cl.add_user(ALICE)
        cl.add_user(BOB, home="node2")
        cl.add_user(CAROL, home="node3")
        cl.wait_registry(["node1", "node2", "node3"], pred=lambda r: all(r[n]["lmtp"] for n in r))
    except BaseException:
        cl.stop()
        raise
    yield cl
    cl.stop()


def send(node, rcpt, subject, sender=ALICE):
    with smtplib.SMTP(node.host, node.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example")
        s.sendmail(sender, [rcpt], ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nhello\r\n"
                                    % (sender, rcpt, subject)).encode())


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    pytest.fail("timed out waiting for " + what)


def test_message_for_node2_user_sent_to_node1_lands_on_node2_once(cluster):
    n1, n2, n3 = cluster.nodes
    send(n1, BOB, "via node1")
    msgs = n2.wait_delivered(BOB, 1, timeout=20)
    assert len(msgs) == 1, n1.log()[-3000:]
    time.sleep(1.0)   # a second copy would come within the retry time
    assert len(n2.maildir_messages(BOB)) == 1
    assert n1.maildir_messages(BOB) == [] and n3.maildir_messages(BOB) == []
    assert re.search(r"event=node_lmtp qid=\S+ node=node2", n1.log()), n1.log()[-3000:]
    assert re.search(r"event=node_peer conn=\d+ node=node1", n2.log()), n2.log()[-3000:]
    p = poplib.POP3(n2.host, n2.ports["pop3"], timeout=10)
    p.stls(context=tls_context())
    p.user(BOB)
    p.pass_(PASSWORD)
    assert p.stat()[0] == 1
    text = b"\r\n".join(p.retr(1)[1])
    assert b"Subject: via node1" in text
    p.quit()


def lmtp(node):
    raw = socket.create_connection((node.host, node.ports["lmtp"]), timeout=10)
    s = tls_context().wrap_socket(raw, server_hostname=node.name)
    f = s.makefile("rb")

    def reply():
        lines = []
        while True:
            line = f.readline().decode()
            assert line, "connection closed"
            lines.append(line.rstrip("\r\n"))
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    def cmd(line):
        s.sendall(line.encode() + b"\r\n")
        return reply()
    assert reply().startswith("220 ")
    return s, reply, cmd


def token(cluster, node, ts=None):
    secret = cluster.secret_file.read_bytes().rstrip(b" \t\r\n")
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(secret, ("lmtp|%s|%d" % (node, ts)).encode(), hashlib.sha256).digest()
    return "%s.%d.%s" % (node, ts, base64.urlsafe_b64encode(mac).decode().rstrip("="))


def test_lmtp_refuses_a_peer_without_a_valid_token_with_words(cluster):
    n2 = cluster.nodes[1]
    s, reply, cmd = lmtp(n2)
    try:
        assert re.match(r"500[- ]5\.5\.1 This is LMTP", cmd("EHLO intruder.example"))
        r = cmd("LHLO intruder.example")
        assert r.startswith("250-") and "XNODE" in r and "STARTTLS" not in r and "AUTH" not in r, r
        r = cmd("MAIL FROM:<x@elsewhere.example>")
        assert re.match(r"530[- ]5\.7\.0 Node token required", r), r
        r = cmd("XNODE node1.%d.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" % int(time.time()))
        assert re.match(r"535[- ]5\.7\.8 Node token refused", r) and "node1" in r and "secret" in r, r
        r = cmd("XNODE " + token(cluster, "node1", int(time.time()) - 600))   # stale
        assert re.match(r"535[- ]5\.7\.8", r), r
        # a valid token: the peer is a node, but carol's home is node3
        assert cmd("XNODE " + token(cluster, "node1")).startswith("250 2.7.0 Ok: node node1")
        assert cmd("MAIL FROM:<%s>" % ALICE).startswith("250")
        r = cmd("RCPT TO:<%s>" % CAROL)
        assert re.match(r"550[- ]5\.1\.1", r) and "home node node3" in r, r
        assert cmd("RCPT TO:<%s>" % BOB).startswith("250")
        cmd("QUIT")
    finally:
        s.close()
    assert re.search(r"event=node_token_refused conn=\d+ node=node1", n2.log()), n2.log()[-3000:]


def queue_list(node):
    p = node.cli("queue", "list")
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_home_node_down_queues_with_words_and_delivers_when_back(cluster):
    n1, n2 = cluster.nodes[0], cluster.nodes[1]
    before = len(n2.maildir_messages(BOB))
    n2.stop()
    try:
        send(n1, BOB, "while node2 is down")
        listing = wait_for(lambda: (lambda t: t if "has not answered since" in t else None)(queue_list(n1)), 30,
                           "queue list to say node2 has not answered")
        assert re.search(r"home node node2 has not answered since \d\d:\d\d:\d\d UTC \(\d+ (s|min)\)", listing), listing
        qid = re.search(r"^node1:([0-9A-F]{16}) ", listing, re.M)     # queue ids name their node
        assert qid, listing
        shown = n1.cli("queue", "show", "node1:" + qid.group(1))
        assert shown.returncode == 0 and "id:        node1:" + qid.group(1) in shown.stdout, shown.stdout + shown.stderr
        other = n1.cli("queue", "show", "node2:" + qid.group(1))
        assert other.returncode == 2 and "is a message of node node2" in other.stderr, other.stderr
        notice = wait_for(lambda: [m for m in n1.maildir_messages(ALICE)
                                   if b"home node node2" in m.read_bytes()], 30, "the delay notice to alice")
        assert b"delay" in notice[0].read_bytes().lower()
    finally:
        n2.start(cluster.node_listeners(n2))
    msgs = n2.wait_delivered(BOB, before + 1, timeout=30)
    assert len(msgs) == before + 1, n1.log()[-3000:]
    wait_for(lambda: "has not answered" not in queue_list(n1), 20, "node1's queue to empty")
