"""The delivery side's system calls, counted by strace(1) attached to a running server
while local and relayed messages go through (issue 16):

* no call that fails by design: no open of the state file of a message just accepted
  (it has none), no open of maildirsize in a mailbox without a quota, no unlink of a
  state file that was never written, no mkdir of directories that exist;
* removal costs no fsync: a relayed message costs the commit's fsyncs only, a local one
  the commit's, its copy's file and at most one of its Maildir's new/ (shared with
  copies delivered at the same moment).

Skipped when strace is missing or may not trace (no ptrace in this container)."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from delivery_support import SmtpSink, free_port, make_server, submit, wait_event  # noqa: E402

STRACE = "/usr/bin/strace"
SINK_ADDR = "127.0.0.9"
LOCAL = "bob@example.test"
REMOTE = "someone@far-away.example"
MESSAGES = 10   # of each kind


def _attached(pid, tracer):
    """Is every thread of pid traced by tracer (strace -f -p attaches them all)?"""
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
        for t in tasks:
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                m = re.search(r"^TracerPid:\s+(\d+)", f.read(), re.M)
            if not m or int(m.group(1)) != tracer:
                return False
        return bool(tasks)
    except OSError:
        return False


def _removed(srv, qids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(wait_event(srv, "removed", qid=q, timeout=0) for q in qids):
            return True
        time.sleep(0.05)
    return False


def test_delivery_probes_nothing_and_removal_costs_no_fsync(server_factory, tmp_path):
    if not os.access(STRACE, os.X_OK):
        pytest.skip("strace is not installed (scripts/install-deps test installs it)")
    port = free_port((SINK_ADDR,))
    with SmtpSink(tmp_path / "sink", SINK_ADDR, port) as sink:
        srv = make_server(server_factory, relay={"host": SINK_ADDR, "port": str(port), "tls": "none"})
        # warm-up: the mailbox is made, the relay known
        warm = [submit(srv, [LOCAL]), submit(srv, [REMOTE])]
        assert _removed(srv, warm, 15), srv.log()
        # The quota's "no maildirsize here" is remembered only for a Maildir that has been
        # still for 2 s (quota.c: coarse timestamps); age it rather than wait, and let one
        # more message find the file missing (once per process and mailbox).
        old = time.time() - 60
        os.utime(srv.maildir(LOCAL), (old, old))
        assert _removed(srv, [submit(srv, [LOCAL])], 15), srv.log()
        out = tmp_path / "strace.out"
        tracer = subprocess.Popen([STRACE, "-f", "-qq", "-e", "trace=openat,open,unlink,unlinkat,mkdir,mkdirat,"
                                   "fsync,fdatasync", "-o", str(out), "-p", str(srv.proc.pid)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while not _attached(srv.proc.pid, tracer.pid) and tracer.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _attached(srv.proc.pid, tracer.pid):
                tracer.kill()
                pytest.skip("strace cannot attach here: %s" % tracer.communicate(timeout=5)[1][-300:])
            qids = []
            for _ in range(MESSAGES):
                qids += [submit(srv, [LOCAL]), submit(srv, [REMOTE])]
            assert _removed(srv, qids, 30), srv.log()
            assert sink.wait_messages(MESSAGES + 1, timeout=10)[2] >= MESSAGES + 1, sink.counters()
        finally:
            if tracer.poll() is None:
                tracer.send_signal(signal.SIGINT)   # detaches from every thread
                try:
                    tracer.wait(10)
                except subprocess.TimeoutExpired:
                    tracer.kill()
                    tracer.wait(5)
        lines = out.read_text(errors="replace").splitlines()
    # strace -f writes "PID call(...) = -1 ENOENT (...)", or "<unfinished ...>" and "<... resumed>" halves
    failed = [ln for ln in lines if re.search(r"= -1 E[A-Z]+", ln)]
    assert failed == [], "calls that failed while %d messages were delivered:\n%s" % (2 * MESSAGES,
                                                                                    "\n".join(failed[:20]))
    fsyncs = sum(1 for ln in lines if re.search(r"\b(fsync|fdatasync)\(", ln))
    # per message: 2 for the commit (file, active/) at most; a local copy adds its file and
    # at most one new/; removal adds nothing (it was 2 more: active/ and state/)
    assert fsyncs <= 2 * (2 * MESSAGES) + 2 * MESSAGES, "%d fsyncs for %d messages:\n%s" % (
        fsyncs, 2 * MESSAGES, "\n".join(ln for ln in lines if "fsync" in ln)[:3000])
    assert os.listdir(srv.data_dir / "queue" / "state") == []
