"""A private PostgreSQL server for the tests (Debian's postgresql package): initdb into a
directory of the test's own, pg_ctl start on a free loopback port with its socket in that
directory, trust authentication for loopback only, stopped by the pid in postmaster.pid
(pg_ctl stop, then SIGKILL).  Nothing of the system's clusters is touched.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user the
package creates (the directory is handed to it)."""
import glob
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT = 30


def pg_bindir():
    """The newest installed PostgreSQL's bin directory, or None."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                  key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(dirs[-1]) if dirs else None


def free_port():
    for _ in range(100):
        port = random.randint(20000, 60000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port")


class PostgreSQL:
    """One cluster; `connection(db)` gives the libpq connection string Postern uses."""

    def __init__(self, root):
        self.bin = pg_bindir()
        if not self.bin:
            raise RuntimeError("PostgreSQL is not installed (Debian package postgresql; scripts/install-deps test)")
        self.root = Path(root)
        self.data = self.root / "pgdata"
        self.sock = self.root / "pgsock"
        self.log = self.root / "postgresql.log"
        self.port = None
        self.as_user = None
        if os.geteuid() == 0:
            self.as_user = pwd.getpwnam("postgres")

    def _as_owner(self, cmd):
        """cmd run as the cluster's owner (postgres when we are root)."""
        if not self.as_user:
            return list(cmd)
        return ["setpriv", "--reuid=%d" % self.as_user.pw_uid, "--regid=%d" % self.as_user.pw_gid,
                "--init-groups", "--"] + list(cmd)

    def _run(self, args, check=True, timeout=60, input=None):
        r = subprocess.run(self._as_owner(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           input=input.encode() if input else None, stdin=None if input else subprocess.DEVNULL,
                           cwd="/")
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (" ".join(args), r.returncode, r.stdout.decode(errors="replace")))
        return r.stdout.decode(errors="replace")

    def init(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        if self.as_user:
            for p in (self.root, self.sock):
                os.chown(p, self.as_user.pw_uid, self.as_user.pw_gid)
            # the user must be able to reach its directory through the test's tmp path
            p = self.root
            while str(p) not in ("/", "/tmp") and p != p.parent:
                os.chmod(p, os.stat(p).st_mode | 0o711)
                p = p.parent
        self._run([os.path.join(self.bin, "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                   "-E", "UTF8", "--no-instructions", "--no-sync"], timeout=120)
        return self

    def start(self):
        if self.port is None:
            self.port = free_port()
        opts = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" % (self.port, self.sock)
        self._run([os.path.join(self.bin, "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts,
                   "-w", "-t", str(START_TIMEOUT), "start"], timeout=START_TIMEOUT + 10)
        return self

    def pid(self):
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self, mode="fast"):
        pid = self.pid()
        if not pid:
            return
        try:
            self._run([os.path.join(self.bin, "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "20", "stop"],
                      check=False, timeout=30)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def psql(self, sql, db="postgres", timeout=30):
        return self._run([os.path.join(self.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                          "-p", str(self.port), "-U", "postgres", "-d", db, "-At", "-c", sql], timeout=timeout)

    def psql_session(self, db="postgres"):
        """An interactive psql (stdin a pipe): for holding a lock while the server waits."""
        cmd = self._as_owner([os.path.join(self.bin, "psql"), "-X", "-q", "-At", "-h", "127.0.0.1",
                              "-p", str(self.port), "-U", "postgres", "-d", db])
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                cwd="/", text=True)

    def create_database(self, name):
        self.psql("CREATE DATABASE %s" % name)
        return name

    def connection(self, db):
        # gssencmode=disable: no Kerberos probing (keytab lookups) on a loopback test cluster
        return "host=127.0.0.1 port=%d dbname=%s user=postgres connect_timeout=5 gssencmode=disable" % (self.port, db)

    def cleanup(self):
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
