"""Privileges after start (invariant 7): started as root, postern serves as the
configured unprivileged user with no_new_privs set and an empty capability bounding
set; without `user =` it refuses to serve as root unless run_as_root = yes."""
import os
import re
import shutil
import tempfile
import time

import pytest

from conftest import run_cli, write_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starts postern as root")


def proc_status(pid):
    text = open("/proc/%d/status" % pid).read()
    return dict(re.findall(r"^(\w+):\s*(.*)$", text, re.M))


def test_refuses_root_without_user(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var", server={"run_as_root": "no"})
    for cmd in (["check-config"], ["serve"]):
        p = run_cli(cmd, conf=conf, timeout=20)
        assert p.returncode != 0, (cmd, p.stderr)
        assert "[server] user" in p.stderr and "refuses to serve as root" in p.stderr, p.stderr
        assert "run_as_root = yes" in p.stderr, p.stderr


@pytest.fixture
def open_dir():
    """A directory the unprivileged user can reach (pytest's tmp_path is under a 0700
    directory of root's, and SQLite opens files by their absolute path)."""
    d = tempfile.mkdtemp(prefix="postern-priv-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_serves_as_user_without_privileges(server_factory, open_dir):
    srv = server_factory(start=False, users=())
    write_config(srv.config, os.path.join(open_dir, "var"), server={"user": "nobody", "run_as_root": "no"})
    p = run_cli(["check-config"], conf=srv.config)
    assert p.returncode == 0, p.stderr
    srv.start()
    # start() returns once the listeners are up; the server drops root right after binding.
    deadline = time.monotonic() + 10
    while "event=privileges_dropped" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    st = proc_status(srv.proc.pid)
    uids = st["Uid"].split()
    assert "0" not in uids, st["Uid"]
    assert "0" not in st["Gid"].split(), st["Gid"]
    assert st["NoNewPrivs"] == "1", st
    assert int(st["CapBnd"], 16) == 0, st["CapBnd"]
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0, st
    assert int(st["CapAmb"], 16) == 0, st
    assert "event=privileges_dropped user=nobody" in srv.log(), srv.log()
    assert os.stat(os.path.join(open_dir, "var")).st_uid == int(uids[0])
    with srv.connect() as c:
        assert c.ehlo().code == 250


def test_run_as_root_when_meant_still_drops_bounding_set(server_factory):
    srv = server_factory()   # conftest sets run_as_root = yes as root
    st = proc_status(srv.proc.pid)
    assert st["Uid"].split()[0] == "0"
    assert st["NoNewPrivs"] == "1", st
    assert int(st["CapBnd"], 16) == 0, st["CapBnd"]
    assert "event=running_as_root" in srv.log()
