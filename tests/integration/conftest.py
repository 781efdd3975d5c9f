"""Fixtures for the Postern integration tests: a real `postern serve` on an ephemeral
loopback port, with its own data directory and configuration file.

The binary is $POSTERN_BIN, else <repo>/build/postern."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import SANITIZER_MARKERS, SMTPConn  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
POSTERN_BIN = Path(os.environ.get("POSTERN_BIN", REPO / "build" / "postern"))
HOSTNAME = "mx.example.test"
LISTEN_RE = re.compile(r"event=listening\b.*\bport=(\d+)")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
# A skip that says a module or program is missing: scripts/install-deps test installs
# everything the tests use, so on a machine it has set up this means a broken install
# (or a gap in install-deps), never a reason to skip quietly.
MISSING_SKIP_RE = re.compile(r"could not import|No module named|not installed", re.I)


def _fail_missing_dependency_skip(rep):
    if not rep.skipped or getattr(rep, "wasxfail", None) is not None:
        return
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    if MISSING_SKIP_RE.search(reason):
        rep.outcome = "failed"
        rep.longrepr = ("%s\n(a missing package the project installs fails the test: "
                        "run scripts/install-deps test)" % reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_missing_dependency_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_missing_dependency_skip(outcome.get_result())


def postern_bin():
    # The binary may be being relinked right now: wait (bounded) until it is executable.
    deadline = time.monotonic() + 20
    while not os.access(POSTERN_BIN, os.X_OK) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not os.access(POSTERN_BIN, os.X_OK):
        pytest.fail("postern binary not found at %s (build it, or set POSTERN_BIN)" % POSTERN_BIN)
    return str(POSTERN_BIN)


def _retry_exec(fn):
    """Run fn(); retry a few times while the binary is being replaced (ETXTBSY, EACCES, ENOENT)."""
    for attempt in range(20):
        try:
            return fn()
        except (PermissionError, FileNotFoundError, OSError) as e:
            if attempt == 19 or not isinstance(e, (PermissionError, FileNotFoundError)) and e.errno != 26:
                raise
            time.sleep(0.5)


def sanitizer_report(text):
    for m in SANITIZER_MARKERS:
        if m in text:
            return m
    return None


def run_cli(args, conf=None, input=None, timeout=30):
    """Run `postern ARGS [-c conf]`; returns CompletedProcess with text stdout/stderr.
    Fails the test on a sanitizer report."""
    cmd = [postern_bin()] + list(args)
    if conf is not None:
        cmd += ["-c", str(conf)]
    p = _retry_exec(lambda: subprocess.run(cmd, input=input, capture_output=True, text=True,
                                           timeout=timeout, errors="replace"))
    rep = sanitizer_report(p.stderr)
    if rep:
        pytest.fail("sanitizer report (%s) from %s:\n%s" % (rep, cmd, p.stderr))
    return p


# POSTERN_TEST_DIRECTORY=postgresql runs the suite against the PostgreSQL directory:
# every configuration written here gets a [directory] section naming a database of its
# own (one per data directory) in a PostgreSQL cluster this process starts on first need
# (pg_support.py) and stops at exit.  `make test` does this as a third pass.
DIRECTORY_BACKEND = os.environ.get("POSTERN_TEST_DIRECTORY", "sqlite")
_pg_cluster = None


def _pg_directory_section(data_dir):
    global _pg_cluster
    import atexit
    import hashlib
    import tempfile
    from pg_support import PostgreSQL
    if _pg_cluster is None:
        _pg_cluster = PostgreSQL(Path(tempfile.mkdtemp(prefix="postern-pg.")) / "cluster").init().start()
        atexit.register(_pg_cluster.cleanup)
    db = "t_" + hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:24]
    if _pg_cluster.psql("SELECT 1 FROM pg_database WHERE datname = '%s'" % db).strip() != "1":
        _pg_cluster.create_database(db)
    return "\n[directory]\nbackend = postgresql\nconnection = %s\n" % _pg_cluster.connection(db)


def sqlite_directory_only(reason):
    """Mark a test that looks inside directory.db itself (SQLite's file)."""
    return pytest.mark.skipif(DIRECTORY_BACKEND != "sqlite", reason="reads the SQLite directory file: " + reason)


def write_config(path, data_dir, limits=None, queue=None, server=None, extra=""):
    srv = {"hostname": HOSTNAME, "data_dir": str(data_dir), "local_domains": "example.test"}
    if os.geteuid() == 0:
        # The suite runs as root in CI and its files belong to root; postern refuses to
        # serve as root without user = unless told (test_privileges.py covers user =).
        srv["run_as_root"] = "yes"
    srv.update(server or {})
    q = {"retry_min": "1s"}
    q.update(queue or {})
    text = "[server]\n" + "".join("%s = %s\n" % kv for kv in srv.items())
    if limits:
        text += "\n[limits]\n" + "".join("%s = %s\n" % kv for kv in limits.items())
    text += "\n[queue]\n" + "".join("%s = %s\n" % kv for kv in q.items())
    text += "\n[listener smtp]\naddress = 127.0.0.1\nport = 0\nrole = mx\n"
    text += extra
    if DIRECTORY_BACKEND == "postgresql" and "[directory]" not in text:
        text += _pg_directory_section(data_dir)
    Path(path).write_text(text)
    return path


class Server:
    def __init__(self, root, limits=None, queue=None, users=("alice@example.test",), extra=""):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = None
        self.data_dir = self.root / "var"
        self.config = write_config(self.root / "postern.conf", self.data_dir, limits, queue, extra=extra)
        self.proc = None
        self.runs = 0
        self.log_paths = []
        self.expected_exit = True
        self.problems = []
        for u in users:
            self.add_user(u)

    # -- admin ---------------------------------------------------------------
    def cli(self, *args, input=None):
        return run_cli(args, conf=self.config, input=input)

    def add_user(self, address, password="secret"):
        p = self.cli("user", "add", address, input=password + "\n")
        assert p.returncode == 0, "user add %s failed: rc=%d %s" % (address, p.returncode, p.stderr)

    # -- process -------------------------------------------------------------
    @property
    def log_path(self):
        return self.log_paths[-1]

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self.runs += 1
        lp = self.root / ("serve.%d.log" % self.runs)
        self.log_paths.append(lp)
        self.logf = open(lp, "wb")
        self.proc = _retry_exec(lambda: subprocess.Popen(
            [postern_bin(), "serve", "-c", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf, cwd=str(self.root)))
        self.expected_exit = False
        deadline = time.monotonic() + START_TIMEOUT
        self.port = None
        while time.monotonic() < deadline:
            m = LISTEN_RE.search(self.log())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if self.port is None:
            rc = self.proc.poll()
            if rc is None:
                self.proc.kill()
                self.proc.wait(5)
            self.expected_exit = True
            pytest.fail("postern serve did not log event=listening with a port within %.0fs "
                        "(exit status %s); log:\n%s" % (START_TIMEOUT, rc, self.log()))
        return self

    def log(self):
        """Text of the current run's log (stderr)."""
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_bytes(self):
        return self.log_path.read_bytes()

    def all_logs(self):
        return "".join(p.read_bytes().decode("utf-8", "replace") for p in self.log_paths if p.exists())

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, bounded wait, then SIGKILL.  Returns the exit status; a server that
        needed SIGKILL is recorded in self.problems."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.expected_exit = True
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self.problems.append("postern serve did not stop within %.0fs of SIGTERM; log tail:\n%s"
                                     % (STOP_TIMEOUT, self.log()[-4000:]))
        self.logf.close()
        return self.proc.returncode

    def kill9(self):
        assert self.alive(), "server not running"
        self.expected_exit = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)
        self.logf.close()

    def restart(self):
        if self.alive():
            self.stop()
        return self.start()

    # -- SMTP ----------------------------------------------------------------
    def connect(self, timeout=10.0):
        return SMTPConn(self.host, self.port, timeout=timeout)

    # -- mailboxes -------------------------------------------------------------
    def maildir(self, address):
        local, domain = address.lower().rsplit("@", 1)
        return self.data_dir / "mail" / domain / local

    def maildir_messages(self, address):
        md = self.maildir(address)
        out = []
        for sub in ("new", "cur"):
            d = md / sub
            if d.is_dir():
                out += sorted(p for p in d.iterdir() if p.is_file())
        return out

    def wait_delivered(self, address, n, timeout=10.0, settle=0.0):
        """Poll until at least n messages are in address's Maildir (bounded); then wait
        `settle` seconds more (to catch extra deliveries).  Returns the list."""
        deadline = time.monotonic() + timeout
        msgs = self.maildir_messages(address)
        while len(msgs) < n and time.monotonic() < deadline:
            time.sleep(0.05)
            msgs = self.maildir_messages(address)
        if settle:
            time.sleep(settle)
            msgs = self.maildir_messages(address)
        return msgs

    def check_after(self):
        """Problems found at teardown: sanitizer reports, unexpected death."""
        problems = list(self.problems)
        for lp in self.log_paths:
            text = lp.read_bytes().decode("utf-8", "replace") if lp.exists() else ""
            rep = sanitizer_report(text)
            if rep:
                problems.append("sanitizer report (%s) in %s:\n%s" % (rep, lp.name, text[-8000:]))
        return problems


@pytest.fixture
def server_factory(tmp_path):
    servers = []

    def make(limits=None, queue=None, users=("alice@example.test",), extra="", start=True):
        s = Server(tmp_path / ("srv%d" % len(servers)), limits=limits, queue=queue, users=users, extra=extra)
        servers.append(s)
        if start:
            s.start()
        return s

    yield make
    problems = []
    for s in servers:
        if s.proc is not None and s.proc.poll() is not None and not s.expected_exit:
            problems.append("server died during the test with exit status %s; log tail:\n%s"
                            % (s.proc.returncode, s.log()[-4000:]))
        s.stop()
        problems += s.check_after()
    if problems:
        pytest.fail("\n\n".join(problems))


@pytest.fixture
def server(server_factory):
    return server_factory()
