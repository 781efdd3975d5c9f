"""Several Postern nodes on one private PostgreSQL directory, for the scale-out tests.

    from cluster_support import Cluster
    cl = Cluster(tmp_path, n=3).start()       # PostgreSQL, then node1..node3
    try:
        cl.add_user("alice@example.test")     # `postern user add` on node1 (home node1)
        n2 = cl.nodes[1]                      # a Node (a conftest.Server)
        n2.host, n2.ports["pop3"]             # "127.0.0.12", the bound port
        cl.psql("SELECT name FROM postern_nodes")
        cl.wait_registry(["node1", "node2", "node3"])
    finally:
        cl.stop()                             # every node by pid, then PostgreSQL

What it starts:
* PostgreSQL (pg_support.PostgreSQL) in root/pg, one database `cluster` that every node
  names in [directory] (backend = postgresql, timeout 3s);
* node i (1-based) as `postern serve` with data_dir root/nodeI/var, [server] hostname
  nodeI.example.test and local_domains example.test, every listener on 127.0.0.1I
  (127.0.0.11, .12, ...) at port 0 (the kernel's): listener names are the keys of
  Node.ports, read from the event=listening lines:
      smtp (mx, STARTTLS), submission (STARTTLS), pop3 (STARTTLS), pop3s (implicit),
      imaps (implicit), and the roles in `Cluster(extra_roles=...)`, e.g. lmtp once
      that role exists (LISTENER_TEXT says how each is written);
* [cluster] node = nodeI, secret_file = root/cluster.secret (48 random bytes, 0600, the
  same for all), heartbeat = 1s, down_after = 4s.

Arguments: Cluster(root, n=3, extra=None, extra_roles=(), users=(), start_nodes=True)
* extra: text appended to every node's configuration (a string), or a list of n strings
  (node i gets extra[i-1]), or a function i -> string: e.g. a [listener control] section
  or a [cluster] advertise line.  A section named here that the fixture also writes
  must not be repeated (the configuration refuses a section given twice);
* extra_roles: names of LISTENER_TEXT rows to add on every node ("lmtp");
* users: added through node1 once the directory exists (password PASSWORD).

Nodes: Cluster.nodes[i] is a Node: a conftest.Server (start, stop, restart, cli,
log, maildir_messages, wait_delivered, ...) plus host (its 127.0.0.1I address),
name ("nodeI") and ports ({listener: port}, filled at each start).  Node.stop() stops one
node (SIGTERM, bounded); Node.start() brings it back with the same data directory.
Cluster.stop() stops every node, then PostgreSQL, and fails the test if a node logged a
sanitizer report or died unexpectedly (Cluster.problems())."""
import os
import re
import secrets
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Server  # noqa: E402
from pg_support import PostgreSQL  # noqa: E402

PASSWORD = "secret"
DATABASE = "cluster"
LISTENING_RE = re.compile(r"event=listening\b.*?\blistener=(\S+)\b.*?\bport=(\d+)")
# One [listener NAME] per row: name -> (role, tls).
LISTENER_TEXT = {
    "smtp": ("mx", "starttls"),
    "submission": ("submission", "starttls"),
    "pop3": ("pop3", "starttls"),
    "pop3s": ("pop3", "implicit"),
    "imaps": ("imap", "implicit"),
    "lmtp": ("lmtp", "implicit"),
    "control": ("control", "implicit"),
}
BASE_LISTENERS = ("smtp", "submission", "pop3", "pop3s", "imaps")


def node_host(i):
    """The loopback address of node i (1-based): 127.0.0.11, 127.0.0.12, ..."""
    return "127.0.0.%d" % (10 + i)


class Node(Server):
    """One node: a conftest.Server whose configuration the Cluster writes."""

    def __init__(self, root, index, text):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.index = index
        self.name = "node%d" % index
        self.host = node_host(index)
        self.port = None
        self.ports = {}
        self.data_dir = self.root / "var"
        self.config = self.root / "postern.conf"
        self.config.write_text(text)
        self.proc = None
        self.runs = 0
        self.log_paths = []
        self.expected_exit = True
        self.problems = []

    def start(self, listeners=None):
        super().start()
        names = listeners or [m.group(1) for m in re.finditer(r"^\[listener (\S+)\]", self.config.read_text(), re.M)]
        deadline = time.monotonic() + 10
        while True:
            self.ports = {m.group(1): int(m.group(2)) for m in LISTENING_RE.finditer(self.log())}
            if all(n in self.ports for n in names) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        missing = [n for n in names if n not in self.ports]
        if missing:
            pytest.fail("%s: listeners %s never logged event=listening; log:\n%s" % (self.name, missing,
                                                                                   self.log()[-4000:]))
        return self


class Cluster:
    def __init__(self, root, n=3, extra=None, extra_roles=(), users=(), start_nodes=True):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.n = n
        self.extra = extra
        self.listeners = list(BASE_LISTENERS) + list(extra_roles)
        self.users = users
        self.start_nodes = start_nodes
        self.pg = None
        self.nodes = []
        self.secret_file = self.root / "cluster.secret"

    def _extra(self, i):
        if self.extra is None:
            return ""
        if callable(self.extra):
            return self.extra(i)
        if isinstance(self.extra, (list, tuple)):
            return self.extra[i - 1]
        return self.extra

    def node_config(self, i, data_dir):
        host = node_host(i)
        text = "[server]\nhostname = node%d.example.test\ndata_dir = %s\nlocal_domains = example.test\n" % (i, data_dir)
        if os.geteuid() == 0:
            text += "run_as_root = yes\n"
        text += "\n[queue]\nretry_min = 1s\nretry_max = 2s\n"
        for name in self.listeners:
            role, tls = LISTENER_TEXT[name]
            text += "\n[listener %s]\naddress = %s\nport = 0\nrole = %s\ntls = %s\n" % (name, host, role, tls)
        text += "\n[directory]\nbackend = postgresql\nconnection = %s\ntimeout = 3s\n" % self.pg.connection(DATABASE)
        text += "\n[cluster]\nnode = node%d\nsecret_file = %s\nheartbeat = 1s\ndown_after = 4s\n" % (i, self.secret_file)
        return text + self._extra(i)

    def start(self):
        self.pg = PostgreSQL(self.root / "pg").init().start()
        self.pg.create_database(DATABASE)
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, secrets.token_urlsafe(48).encode() + b"\n")
        os.close(fd)
        for i in range(1, self.n + 1):
            root = self.root / ("node%d" % i)
            self.nodes.append(Node(root, i, self.node_config(i, root / "var")))
        assert self.nodes[0].cli("directory", "migrate").returncode == 0
        assert self.nodes[0].cli("domain", "add", "example.test").returncode == 0
        for u in self.users:
            self.add_user(u)
        if self.start_nodes:
            for node in self.nodes:
                node.start(self.node_listeners(node))
        return self

    def node_listeners(self, node):
        return list(self.listeners)

    def add_user(self, address, password=PASSWORD, on=0, home=None):
        """`postern user add` on node `on` (0-based); home: --home NODE."""
        args = ["user", "add", address] + (["--home", home] if home else [])
        p = self.nodes[on].cli(*args, input=password + "\n")
        assert p.returncode == 0, "user add %s failed: %s" % (address, p.stderr)
        return p

    def psql(self, sql):
        return self.pg.psql(sql, db=DATABASE)

    def registry(self):
        """{node name: {column: value}} from postern_nodes."""
        out = {}
        for line in self.psql("SELECT name, last_seen, lmtp, control, pop3, imap, queue_size FROM postern_nodes").split("\n"):
            if not line.strip():
                continue
            f = line.split("|")
            out[f[0]] = dict(zip(("last_seen", "lmtp", "control", "pop3", "imap", "queue_size"), f[1:]))
        return out

    def wait_registry(self, names, timeout=10.0, pred=None):
        """The registry once every name has a row (and pred(rows) holds), bounded."""
        deadline = time.monotonic() + timeout
        rows = {}
        while time.monotonic() < deadline:
            rows = self.registry()
            if all(n in rows for n in names) and (pred is None or pred(rows)):
                return rows
            time.sleep(0.1)
        pytest.fail("the node registry never showed %s; it holds: %r" % (names, rows))

    def problems(self):
        problems = []
        for s in self.nodes:
            if s.proc is not None and s.proc.poll() is not None and not s.expected_exit:
                problems.append("%s died during the test with exit status %s; log tail:\n%s"
                                % (s.name, s.proc.returncode, s.log()[-4000:]))
            s.stop()
            problems += s.check_after()
        return problems

    def stop(self):
        try:
            problems = self.problems()
        finally:
            if self.pg:
                self.pg.cleanup()
        if problems:
            pytest.fail("\n\n".join(problems))
