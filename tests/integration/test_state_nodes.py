"""State that holds across nodes (serve/state_feed.c, docs/architecture.md "State across
nodes"): three `postern serve` nodes of a cluster (cluster_support.py: [cluster] node1..3
on 127.0.0.11-13, one private PostgreSQL directory), each with its own data directory,
queue and in-memory tables, sharing what they count through the state feed:

* ten wrong passwords (ten accounts) spread over the three nodes block the address on
  all three, although no node saw more than four of them ([auth] ip_accounts = 10);
  `postern user unblock` on node 1 lifts the block on nodes 2 and 3;
* an account's outbound limit ([limits] messages_per_hour = 3) counted on two nodes
  refuses its next message on the third (451 4.7.1);
* a POP3 login on node 1 opens relaying from that address on node 2 ([server]
  pop_before_smtp), and only from that address.

Real clients: poplib and smtplib, each bound to a source address of its own on the
loopback (127.0.0.6x), so the tests of this module never share throttle state.  Every
wait is a poll with a deadline."""
import poplib
import smtplib
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cluster_support import DATABASE, PASSWORD, Cluster, node_host  # noqa: E402
from pg_support import pg_bindir  # noqa: E402
from submission_support import wait_log  # noqa: E402

pytestmark = pytest.mark.skipif(pg_bindir() is None, reason="PostgreSQL is not installed (scripts/install-deps test)")

USERS = ("alice@example.test", "bob@example.test", "dave@example.test", "erin@example.test")
FEED_DEADLINE = 8.0      # seconds for a change to reach every node (the feed polls every 250 ms)
LIMITS = ("\n[limits]\nmessages_per_hour = 3\nrecipients_per_day = 1000\ndomain_messages_per_hour = 0\n"
          "domain_recipients_per_day = 0\n")


def node_extra(i):
    """Plaintext POP3 and submission listeners (no TLS handshakes in the loops) on node i's
    address, the throttle's spraying limit at 10, an account limit of 3 messages an hour."""
    host = node_host(i)
    return ("\n[listener pop3plain]\naddress = %s\nport = 0\nrole = pop3\ntls = none\nallow_plaintext_auth = yes\n"
            "\n[listener plain]\naddress = %s\nport = 0\nrole = submission\ntls = none\nallow_plaintext_auth = yes\n"
            "\n[auth]\nip_accounts = 10\n" % (host, host)) + LIMITS


def start_cluster(root, n):
    """n nodes (cluster_support) with POP-before-SMTP on, the users without a home node
    (so no login is proxied: each node serves them itself)."""
    cl = Cluster(root, n=n, extra=node_extra, start_nodes=False)
    try:
        cl.start()
        for u in USERS:
            cl.add_user(u)
            assert cl.nodes[0].cli("user", "home", u, "none").returncode == 0
        for node in cl.nodes:
            node.config.write_text(node.config.read_text().replace("[server]\n", "[server]\npop_before_smtp = 10m\n", 1))
            node.start()
            assert wait_log(node, r"event=state_feed_started node=%s " % node.name), node.log()[-3000:]
            assert wait_log(node, r"event=started "), node.log()[-3000:]
    except BaseException:
        cl.stop()
        raise
    return cl


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    cl = start_cluster(tmp_path_factory.mktemp("state-nodes"), 3)
    try:
        yield cl.nodes
        for node in cl.nodes:
            assert "state_feed_unavailable" not in node.log(), node.log()[-3000:]
    finally:
        cl.stop()


class SourcePOP3(poplib.POP3):
    """poplib's client from a chosen loopback address (the throttle's key)."""

    def __init__(self, host, port, source):
        self.source = source
        super().__init__(host, port, timeout=10)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))


def pop_login(srv, source, user, password):
    """The server's answer to USER/PASS, as text ("+OK ..." or "-ERR ...")."""
    p = SourcePOP3(srv.host, srv.ports["pop3plain"], source)
    try:
        p.user(user)
        try:
            return p.pass_(password).decode("utf-8", "replace")
        except poplib.error_proto as e:
            return e.args[0].decode("utf-8", "replace")
    finally:
        try:
            p.quit()
        except (poplib.error_proto, OSError):
            pass


def blocked_line(srv):
    p = srv.cli("user", "blocked")
    assert p.returncode == 0, p.stderr
    return p.stdout


def poll(what, check, deadline=FEED_DEADLINE):
    """check() until it returns a true value, or fail after the deadline naming what."""
    end = time.monotonic() + deadline
    for _ in range(10000):
        got = check()
        if got:
            return got
        if time.monotonic() > end:
            pytest.fail("%s: not within %.0f s" % (what, deadline))
        time.sleep(0.05)


def test_failures_spread_over_nodes_block_everywhere_and_unblock_lifts_everywhere(nodes):
    src = "127.0.0.61"
    for i in range(10):   # 4, 3 and 3 on the three nodes: none reaches ip_accounts = 10 alone
        r = pop_login(nodes[i % 3], src, "spray%d@example.test" % i, "wrong")
        assert r.startswith("-ERR"), r
    t0 = time.monotonic()
    for n, srv in enumerate(nodes):
        line = poll("node %d lists the block of %s" % (n + 1, src), lambda: src in blocked_line(srv) and blocked_line(srv))
        assert "address %s until" % src in line, line
    spread = time.monotonic() - t0
    # A colleague's correct password is refused on every node, by the block (not counted).
    for srv in nodes:
        r = pop_login(srv, src, "dave@example.test", PASSWORD)
        assert r.startswith("-ERR [SYS/TEMP]") and "blocked until" in r, r
    # Another address is not blocked anywhere.
    assert pop_login(nodes[2], "127.0.0.62", "dave@example.test", PASSWORD).startswith("+OK")

    p = nodes[0].cli("user", "unblock", src)
    assert p.returncode == 0, p.stderr
    assert "unblocked" in p.stdout and "other nodes" in p.stdout, p.stdout
    for n, srv in enumerate(nodes[1:]):
        poll("node %d lifts the block of %s" % (n + 2, src), lambda: src not in blocked_line(srv))
        r = pop_login(srv, src, "dave@example.test", PASSWORD)
        assert r.startswith("+OK"), r
    print("block listed on all nodes %.2f s after the last failure" % spread)


def smtp_login(srv, source, user):
    c = smtplib.SMTP(srv.host, srv.ports["plain"], timeout=10, source_address=(source, 0))
    c.ehlo("client.test")
    c.login(user, PASSWORD)
    return c


def send_one(srv, source, user, to="bob@example.test"):
    with smtplib.SMTP(srv.host, srv.ports["plain"], timeout=10, source_address=(source, 0)) as c:
        c.ehlo("client.test")
        c.login(user, PASSWORD)
        c.sendmail(user, [to], "From: <%s>\r\nTo: <%s>\r\nSubject: counted\r\n\r\nbody\r\n" % (user, to))


def test_limit_counted_on_two_nodes_refuses_on_the_third(nodes):
    user, src = "erin@example.test", "127.0.0.63"
    send_one(nodes[0], src, user)
    send_one(nodes[0], src, user)
    send_one(nodes[1], src, user)   # 3 of 3 this hour: 2 counted on node 1, 1 on node 2, none on node 3

    def refused(node):
        def check():
            with smtp_login(node, src, user) as c:
                code, text = c.mail(user)
                if code == 250:
                    c.rset()
                    return None
                return code, text.decode("utf-8", "replace").replace("\n", " ")
        return check

    code, text = poll("node 3 refuses the fourth message of %s" % user, refused(nodes[2]))
    assert code == 451 and "4.7.1" in text, (code, text)
    assert "messages_per_hour" in text or "per hour" in text, text
    # Node 1 counts the message of node 2 too.
    code, text = poll("node 1 refuses the fourth message of %s" % user, refused(nodes[0]))
    assert code == 451, (code, text)
    # Another account is not limited.
    with smtp_login(nodes[2], src, "alice@example.test") as c:
        assert c.mail("alice@example.test")[0] == 250


def relay_rcpt(srv, source):
    with smtplib.SMTP(srv.host, srv.ports["smtp"], timeout=10, source_address=(source, 0)) as c:
        c.ehlo("client.test")
        assert c.mail("alice@example.test")[0] == 250
        code, text = c.rcpt("someone@remote.example", options=["NOTIFY=NEVER"])
        c.rset()
        return code, text.decode("utf-8", "replace")


def test_pop_login_on_one_node_opens_relaying_on_another(nodes):
    src, other = "127.0.0.64", "127.0.0.65"
    code, text = relay_rcpt(nodes[1], src)
    assert code == 554 and "5.7.1" in text, (code, text)
    assert pop_login(nodes[0], src, "alice@example.test", PASSWORD).startswith("+OK")
    for n in (1, 2):
        poll("node %d lets %s relay after its POP3 login on node 1" % (n + 1, src),
             lambda: relay_rcpt(nodes[n], src)[0] == 250)
    code, text = relay_rcpt(nodes[1], other)
    assert code == 554 and "last checked mail" not in text, (code, text)


def test_feed_table_locked_local_throttle_works_and_catches_up(tmp_path):
    """The feed's table locked (a stuck or slow database for the feed only): node 1 still
    counts and blocks on its own at once and answers every login without waiting for
    PostgreSQL; it says the feed is unavailable, and once the lock goes it sends what it
    kept and node 2 applies it."""
    cl = start_cluster(tmp_path, 2)
    a, b = cl.nodes
    src, bob = "127.0.0.66", "bob@example.test"
    locker = None
    try:
        locker = cl.pg.psql_session(db=DATABASE)
        locker.stdin.write("BEGIN; LOCK TABLE postern_state_feed IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
        locker.stdin.flush()
        assert locker.stdout.readline().strip() == "locked", "psql did not take the lock"
        for i in range(5):   # [auth] account_ip_failures = 5: the pair is blocked by node 1's own count
            t0 = time.monotonic()
            r = pop_login(a, src, bob, "wrong%d" % i)
            assert r.startswith("-ERR"), r
            assert time.monotonic() - t0 < 1.9, "a login waited for the feed (%.2f s)" % (time.monotonic() - t0)
        line = blocked_line(a)
        assert 'account "bob@example.test" from %s' % src in line, line
        assert wait_log(a, r"event=state_feed_unavailable .*hint="), a.log()[-3000:]
        assert src not in blocked_line(b)
        locker.stdin.write("ROLLBACK;\n\\q\n")
        locker.stdin.flush()
        locker.wait(10)
        locker = None
        assert wait_log(a, r"event=state_feed_restored node=\S+ dropped=0"), a.log()[-3000:]
        line = poll("node 2 applies what node 1 kept", lambda: src in blocked_line(b) and blocked_line(b))
        assert 'account "bob@example.test" from %s' % src in line, line
        r = pop_login(b, src, bob, PASSWORD)
        assert r.startswith("-ERR [AUTH]") and "blocked until" in r, r
    finally:
        if locker:
            locker.kill()
            locker.wait(10)
        cl.stop()
