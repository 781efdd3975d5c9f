"""IMAP on large folders (bench/imap measures it; these prove the limits it found are gone):

- SELECT and UID FETCH 1:* (UID FLAGS) of a 3,000-message folder whose file names carry no
  S=/W= sizes (as Postfix or procmail deliver) open and stat no message file, with no
  index (first SELECT) and with one (strace on the server counts the calls under cur/);
  a second session's SELECT while another holds the folder does not even list cur/ or
  read dovecot-uidlist (the first one's snapshot is shared).
- A long BODY search in one session does not keep another session's NOOP waiting: with
  [imap] threads = 1 the NOOP is answered while the search still runs (it yields).
- The untagged FETCH FLAGS that a session owes after another one's STORE 1:* of a
  20,000-message folder (more than a megabyte of them) arrive whole, then the tagged OK.

One server for the module ([imap] threads = 1), each test in a folder of its own."""
import imaplib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Server  # noqa: E402
from submission_support import wait_ports  # noqa: E402

USER = "alice@example.test"
PASSWORD = "secret"
EXTRA = ("\n[listener imap]\naddress = 127.0.0.1\nport = 0\nrole = imap\ntls = none\n"
         "allow_plaintext_auth = yes\n\n[imap]\nthreads = 1\n")
STRACE = shutil.which("strace") or "/usr/bin/strace"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("imapscale"), users=(USER,), extra=EXTRA)
    s.start()
    s.ports = wait_ports(s, ["imap"])
    yield s
    s.stop()
    problems = s.check_after()
    assert not problems, "\n".join(problems)


def make_folder(srv, name, n, body_size=200, sized_names=False):
    """A Maildir++ folder .name of n messages written straight to disk; returns its path."""
    root = srv.maildir(USER)
    root.mkdir(parents=True, exist_ok=True)
    d = root / ("." + name)
    for sub in ("cur", "new", "tmp"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "maildirfolder").write_bytes(b"")
    line = b"All work and no play makes a dull message body, line after line.\n"
    body = line * (body_size // len(line) + 1)
    t0 = 1767268800
    for i in range(n):
        data = (b"From: Bob <bob@example.test>\nTo: %s\nSubject: message %d\nDate: Thu, 01 Jan 2026 12:00:00 +0000\n"
                b"Message-ID: <%d@example.test>\n\n" % (USER.encode(), i, i)) + body
        base = "%d.V801I%dM%d.host" % (t0 + i, i, i)
        if sized_names:
            base += ",S=%d,W=%d" % (len(data), len(data) + data.count(b"\n"))
        (d / "cur" / (base + ":2,")).write_bytes(data)
    return d


def login(srv):
    m = imaplib.IMAP4("127.0.0.1", srv.ports["imap"], timeout=30)
    m.login(USER, PASSWORD)
    return m


def ok(res):
    typ, data = res
    assert typ == "OK", (typ, data)
    return data


class Strace:
    """strace -f on the running server, the file calls it makes until stop()."""

    def __init__(self, pid, out):
        self.out = out
        self.p = subprocess.Popen([STRACE, "-f", "-e", "trace=open,openat,stat,lstat,newfstatat,statx",
                                   "-o", str(out), "-p", str(pid)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        seen = b""
        while b"attached" not in seen and time.monotonic() < deadline:
            r, _, _ = select.select([self.p.stderr], [], [], 0.5)
            if r:
                seen += os.read(self.p.stderr.fileno(), 4096)
        assert b"attached" in seen, "strace did not attach: %r" % seen

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        self.p.wait(10)
        return self.out.read_text(errors="replace").splitlines()


def test_select_touches_no_message_file(srv, tmp_path):
    if not os.access(STRACE, os.X_OK):
        pytest.fail("strace not installed (scripts/install-deps test)")
    folder = make_folder(srv, "Unsized", 3000)
    for attempt in ("no index", "with index"):
        if attempt == "no index":
            assert not (folder / "postern-index").exists()
        tr = Strace(srv.proc.pid, tmp_path / ("strace-%s.txt" % attempt.replace(" ", "-")))
        try:
            m = login(srv)
            typ, data = m.select("Unsized")
            assert typ == "OK" and data == [b"3000"], (typ, data)
            typ, data = m.uid("FETCH", "1:*", "(UID FLAGS)")
            assert typ == "OK" and len([d for d in data if b"FLAGS" in d]) == 3000
            m.logout()
        finally:
            calls = tr.stop()
        touched = [c for c in calls if "/.Unsized/cur/" in c]
        assert touched == [], "%s: %d message files opened or stat'ed, e.g. %s" % (
            attempt, len(touched), touched[:3])
        # the index exists once the last view closed
        deadline = time.monotonic() + 5
        while not (folder / "postern-index").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (folder / "postern-index").exists()
    # a second session's SELECT of a folder another session holds, unchanged since: built
    # from what the first one found (no listing of cur/, no uidlist read), names shared
    t = time.time() - 10
    for p in (folder / "cur", folder / "new", folder / "dovecot-uidlist"):
        os.utime(p, (t, t))      # not too fresh to be trusted
    holder = login(srv)
    ok(holder.select("Unsized"))
    tr = Strace(srv.proc.pid, tmp_path / "strace-shared.txt")
    try:
        m = login(srv)
        typ, data = m.select("Unsized")
        assert typ == "OK" and data == [b"3000"], (typ, data)
        m.logout()
    finally:
        calls = tr.stop()
    # (the three stats of the stamps remain: uidlist, cur/, new/)
    looked = [c for c in calls if "/.Unsized/cur/" in c or
              (re.match(r"\d+\s+open(at)?\(", c) and ("/.Unsized/cur\"" in c or "dovecot-uidlist\"" in c))]
    assert looked == [], "the second SELECT looked again: %s" % looked[:3]
    holder.logout()
    # the dates and sizes the client did not ask for are still right when it does
    m = login(srv)
    m.select("Unsized")
    data = ok(m.uid("FETCH", "3000", "(RFC822.SIZE INTERNALDATE)"))
    raw = (folder / "cur").iterdir()
    last = max(raw, key=lambda p: int(p.name.split(".")[0]))
    size = len(last.read_bytes()) + last.read_bytes().count(b"\n")
    assert b"RFC822.SIZE %d" % size in data[0], data
    assert b'INTERNALDATE "' in data[0]
    m.logout()


def read_until(sock, marker, deadline):
    buf = b""
    while marker not in buf:
        left = deadline - time.monotonic()
        assert left > 0, "no %r within the deadline; got %r" % (marker, buf[-200:])
        r, _, _ = select.select([sock], [], [], left)
        if r:
            chunk = sock.recv(1 << 16)
            assert chunk, "connection closed; got %r" % buf[-200:]
            buf += chunk
    return buf


def test_long_search_does_not_hold_the_worker(srv):
    # one worker thread: before searches yielded, B's NOOP waited for A's whole search
    make_folder(srv, "Long", 600, body_size=32 * 1024, sized_names=True)   # 20 MB: seconds to search
    make_folder(srv, "Small", 3, sized_names=True)
    b = login(srv)
    ok(b.select("Small"))
    a = socket.create_connection(("127.0.0.1", srv.ports["imap"]), timeout=30)
    deadline = time.monotonic() + 150   # an ASan build on a loaded machine
    read_until(a, b"\r\n", deadline)
    a.sendall(b"a1 LOGIN %s %s\r\na2 SELECT Long\r\n" % (USER.encode(), PASSWORD.encode()))
    read_until(a, b"a2 OK", deadline)
    t0 = time.monotonic()
    a.sendall(b"a3 UID SEARCH BODY nowhereinthesemessages\r\n")
    time.sleep(0.05)           # let the search take the worker first
    t1 = time.monotonic()
    ok(b.noop())
    noop_s = time.monotonic() - t1
    r, _, _ = select.select([a], [], [], 0)
    still_searching = not r
    got = read_until(a, b"a3 OK", deadline)
    search_s = time.monotonic() - t0
    assert b"* SEARCH\r\n" in got
    b.logout()
    a.close()
    assert still_searching, "the search (%.2f s) ended before the NOOP (%.2f s) was answered" % (search_s, noop_s)
    assert noop_s < search_s / 2, (noop_s, search_s)


def test_megabytes_of_updates_arrive_whole(srv):
    n = 20000
    make_folder(srv, "Flags", n, body_size=50, sized_names=True)
    a = login(srv)
    ok(a.enable("QRESYNC"))          # each update carries UID and MODSEQ: ~70 octets
    ok(a.select("Flags"))
    b = login(srv)
    ok(b.select("Flags"))
    ok(b.store("1:*", "+FLAGS.SILENT", "(\\Flagged)"))
    b.logout()
    typ, data = a.noop()
    assert typ == "OK", (typ, data)
    fetches = a.untagged_responses.pop("FETCH", [])
    assert len(fetches) == n, "%d of %d updates" % (len(fetches), n)
    assert all(b"\\Flagged" in f for f in fetches[:10] + fetches[-10:]), fetches[:2]
    a.logout()
