"""The cluster's one view (issue 18 §N): three nodes (cluster_support.py, 127.0.0.11-13,
one private PostgreSQL) each with a listener of role control (implicit TLS):

* `postern cluster status` on node1 asks every node of the registry over its control
  address and shows them all up, each with its queue (node2 holds one deferred message:
  its [relay] host refuses connections);
* `postern queue list --cluster` lists every node's queue in one listing, the message
  on node2's row;
* the control protocol itself: a connection without a valid token (none, a forged one,
  one made for another purpose) is refused with words and logged; a valid token gets
  `status`, and a command that changes the queue is refused over the network;
* node3 stopped: `cluster status` shows it down since its last heartbeat, within the
  3 s deadline, the others still up; started again, it is up."""
import base64
import hashlib
import hmac
import re
import smtplib
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cluster_support import PASSWORD, Cluster  # noqa: E402
from conftest import run_cli, write_config  # noqa: E402
from pg_support import pg_bindir, free_port  # noqa: E402
from submission_support import tls_context  # noqa: E402

pytestmark = pytest.mark.skipif(pg_bindir() is None, reason="PostgreSQL is not installed (scripts/install-deps test)")

ALICE = "alice@example.test"
REMOTE = "someone@remote.example"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    dead_port = free_port()   # nothing listens there: node2's relay defers
    extra = lambda i: ("\n[relay]\nhost = 127.0.0.1\nport = %d\ntls = none\n" % dead_port) if i == 2 else ""
    cl = Cluster(tmp_path_factory.mktemp("cluster"), n=3, extra=extra, extra_roles=("control",), users=(ALICE,))
    try:
        cl.start()
        cl.wait_registry(["node1", "node2", "node3"], pred=lambda rows: all(r["control"] for r in rows.values()))
        n2 = cl.nodes[1]
        with smtplib.SMTP(n2.host, n2.ports["submission"], timeout=10) as s:
            s.starttls(context=tls_context())
            s.login(ALICE, PASSWORD)
            s.sendmail(ALICE, [REMOTE], b"Subject: stays queued\r\n\r\nfor the relay that refuses\r\n")
        yield cl
    finally:
        cl.stop()


def token(cl, purpose, node="node1", when=None):
    secret = cl.secret_file.read_bytes().rstrip(b"\r\n\t ")
    seconds = int(time.time() if when is None else when)
    mac = hmac.new(secret, ("%s|%s|%d" % (purpose, node, seconds)).encode(), hashlib.sha256).digest()
    return "%s.%d.%s" % (node, seconds, base64.urlsafe_b64encode(mac).decode().rstrip("="))


def control(node, lines, timeout=10):
    """Send lines over TLS to node's control listener; the one answer line."""
    raw = socket.create_connection((node.host, node.ports["control"]), timeout=timeout)
    with tls_context().wrap_socket(raw, server_hostname=node.host) as s:
        s.sendall(b"".join(line.encode() + b"\r\n" for line in lines))
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace").strip()


def status_rows(out):
    return {m.group(1): m.group(0) for m in re.finditer(r"^(node\d)\s.*$", out, re.M)}


def cluster_status(cl, on=0):
    t0 = time.monotonic()
    p = cl.nodes[on].cli("cluster", "status")
    return p, time.monotonic() - t0


def test_cluster_status_shows_every_node_up_with_its_queue(cluster):
    deadline = time.monotonic() + 15
    while True:
        p, _ = cluster_status(cluster)
        rows = status_rows(p.stdout)
        if p.returncode == 0 and re.search(r"^node2\s+1\s+1\s", p.stdout, re.M) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert p.returncode == 0, p.stdout + p.stderr
    assert set(rows) == {"node1", "node2", "node3"}, p.stdout
    for name, row in rows.items():
        assert "up since" in row, row
    assert re.match(r"node2\s+1\s+1\s+\d\d:\d\d:\d\d", rows["node2"]), p.stdout    # queue 1, deferred 1, oldest
    assert re.match(r"node1\s+0\s+0\s+-", rows["node1"]), p.stdout
    assert "3 node(s), 3 up, 0 down" in p.stdout, p.stdout


def test_queue_list_cluster_names_the_node_of_each_message(cluster):
    p = cluster.nodes[2].cli("queue", "list", "--cluster")
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [line for line in p.stdout.splitlines() if re.match(r"node\d\s+\S+\s+\S+\s+\d+\s+(deferred|sending|active)", line)]
    assert len(rows) == 1 and rows[0].startswith("node2 "), p.stdout
    assert ALICE in rows[0] and "to " + REMOTE in p.stdout, p.stdout
    assert "1 message(s) on 3 node(s)" in p.stdout, p.stdout


def test_control_without_a_valid_token_is_refused(cluster):
    n1 = cluster.nodes[0]
    assert control(n1, ["status"]).startswith("1 refused: the first line must be AUTH"), "no AUTH line"
    forged = token(cluster, "control")[:-4] + "AAAA"
    for bad in ("AUTH nonsense", "AUTH " + forged, "AUTH " + token(cluster, "lmtp"),
                "AUTH " + token(cluster, "control", when=time.time() - 600)):
        answer = control(n1, [bad, "status"])
        assert answer.startswith("1 refused: the control token is not valid"), (bad, answer)
        assert "node=" not in answer and "queue=" not in answer, answer
    assert re.search(r"event=control_refused .*reason=\"token not valid\"", n1.log()), n1.log()[-2000:]
    ok = control(n1, ["AUTH " + token(cluster, "control", node="node3"), "status"])
    assert re.match(r"0 node=node1 started=\d+ now=\d+ queue=0 deferred=0 held=0 oldest=0$", ok), ok
    changing = control(n1, ["AUTH " + token(cluster, "control"), "flush"])
    assert changing.startswith("1 refused: \"flush\" is not served over the network"), changing


def test_a_stopped_node_shows_down_and_comes_back_up(cluster):
    n3 = cluster.nodes[2]
    n3.stop()
    try:
        p, took = cluster_status(cluster)
        rows = status_rows(p.stdout)
        assert p.returncode == 1, p.stdout + p.stderr
        assert re.search(r"down since \d\d:\d\d:\d\d \(\d+ s\) \(last heartbeat; control 127\.0\.0\.13:\d+: "
                         r"connection refused", rows["node3"]), p.stdout
        assert "up since" in rows["node1"] and "up since" in rows["node2"], p.stdout
        assert "3 node(s), 2 up, 1 down" in p.stdout, p.stdout
        assert took < 3 + 5, took     # the dead node costs at most its deadline
        q = cluster.nodes[0].cli("queue", "list", "--cluster")
        assert q.returncode == 1 and "node3: not listed: connection refused" in q.stdout, q.stdout
    finally:
        n3.start(cluster.node_listeners(n3))
    cluster.wait_registry(["node3"], pred=lambda rows: rows["node3"]["control"].endswith(":%d" % n3.ports["control"]))
    p, _ = cluster_status(cluster)
    assert p.returncode == 0 and "up since" in status_rows(p.stdout)["node3"], p.stdout


def test_check_config_refuses_a_control_listener_without_the_cluster_or_tls(tmp_path):
    conf = write_config(tmp_path / "p.conf", tmp_path / "var",
                        extra="\n[listener control]\naddress = 127.0.0.1\nport = 0\nrole = control\ntls = none\n")
    p = run_cli(["check-config", "--no-bind"], conf=conf)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "[listener control] role = control needs [cluster] node and secret_file" in out, out
    assert "[listener control] role = control needs tls = implicit" in out, out
