"""Several nodes on one PostgreSQL directory ([cluster], cluster_support.py): three
`postern serve` nodes on 127.0.0.11-13 sharing a private PostgreSQL.

* each node's registry row (postern_nodes) appears and is refreshed by its heartbeat,
  naming where peers reach its POP3 and IMAP listeners (the implicit-TLS ones);
* a user added on node 1 gets node 1 as home node and logs in over SMTP AUTH and POP3 on
  all three nodes at once (no restart, no cache);
* `postern user home` moves the home node, `--home` sets it at add;
* check-config refuses a node without PostgreSQL, without a secret, with a short or
  world-readable secret, with words."""
import os
import poplib
import smtplib
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cluster_support import Cluster, PASSWORD  # noqa: E402
from conftest import run_cli, write_config  # noqa: E402
from pg_support import pg_bindir  # noqa: E402
from submission_support import tls_context  # noqa: E402

pytestmark = pytest.mark.skipif(pg_bindir() is None, reason="PostgreSQL is not installed (scripts/install-deps test)")

ALICE = "alice@example.test"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cl = Cluster(tmp_path_factory.mktemp("cluster"), n=3).start()
    yield cl
    cl.stop()


def test_registry_rows_appear_and_are_refreshed(cluster):
    rows = cluster.wait_registry(["node1", "node2", "node3"])
    for node in cluster.nodes:
        row = rows[node.name]
        assert row["pop3"] == "%s:%d" % (node.host, node.ports["pop3s"]), row
        assert row["imap"] == "%s:%d" % (node.host, node.ports["imaps"]), row
        assert row["lmtp"] == "" and row["queue_size"] == "0", row
    first = int(rows["node2"]["last_seen"])
    cluster.wait_registry(["node2"], timeout=6, pred=lambda r: int(r["node2"]["last_seen"]) > first)


def test_user_added_on_node1_logs_in_on_every_node_at_once(cluster):
    cluster.add_user(ALICE)          # on node1, while every node runs
    show = cluster.nodes[0].cli("user", "show", ALICE)
    assert "home node: node1" in show.stdout, show.stdout
    for node in cluster.nodes:
        with smtplib.SMTP(node.host, node.ports["submission"], timeout=10) as s:
            s.starttls(context=tls_context())
            s.login(ALICE, PASSWORD)
        p = poplib.POP3(node.host, node.ports["pop3"], timeout=10)
        p.stls(context=tls_context())
        p.user(ALICE)
        p.pass_(PASSWORD)
        p.quit()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            with smtplib.SMTP(node.host, node.ports["submission"], timeout=10) as s:
                s.starttls(context=tls_context())
                s.login(ALICE, "wrong")


def test_home_node_set_at_add_and_moved(cluster):
    cluster.add_user("bob@example.test", on=2, home="node2")
    assert cluster.psql("SELECT home_node FROM users WHERE address = 'bob@example.test'").strip() == "node2"
    moved = cluster.nodes[2].cli("user", "home", "bob@example.test", "node3")
    assert moved.returncode == 0 and "not moved" in moved.stdout, moved.stdout + moved.stderr
    assert cluster.psql("SELECT home_node FROM users WHERE address = 'bob@example.test'").strip() == "node3"
    bad = cluster.nodes[2].cli("user", "home", "bob@example.test", "Node 3")
    assert bad.returncode == 1 and "not a node name" in bad.stderr, bad.stderr


def test_check_config_refuses_a_node_without_what_it_needs(tmp_path):
    def check(extra):
        conf = write_config(tmp_path / "c.conf", tmp_path / "var", extra=extra)
        p = run_cli(["check-config", "--no-bind"], conf=conf)
        return p.returncode, p.stdout + p.stderr
    rc, out = check("\n[directory]\nbackend = sqlite\n\n[cluster]\nnode = node1\n")
    assert rc == 1 and "backend is not postgresql" in out and "without secret_file" in out, out
    pg = "\n[directory]\nbackend = postgresql\nconnection = host=127.0.0.1 port=1 dbname=x\n"
    rc, out = check(pg + "\n[cluster]\nnode = Node_1\nsecret_file = /nonexistent\n")
    assert rc == 1 and "is not a node name" in out, out
    rc, out = check(pg + "\n[cluster]\nnode = node1\nsecret_file = /nonexistent\n")
    assert rc == 1 and "cannot read /nonexistent" in out, out
    secret = tmp_path / "short.secret"
    secret.write_text("too short\n")
    os.chmod(secret, 0o600)
    rc, out = check(pg + "\n[cluster]\nnode = node1\nsecret_file = %s\n" % secret)
    assert rc == 1 and "holds 9 bytes" in out, out
    secret.write_text("x" * 40 + "\n")
    os.chmod(secret, 0o644)
    rc, out = check(pg + "\n[cluster]\nnode = node1\nsecret_file = %s\n" % secret)
    assert rc == 1 and "chmod o-rwx" in out, out
    os.chmod(secret, 0o600)
    rc, out = check(pg + "\n[cluster]\nnode = node1\nsecret_file = %s\n" % secret)
    assert rc == 0, out
