"""Dovecot as the oracle of the IMAP store (src/store/folder.h).

A Maildir written by Postern's store (through build/test_folder, the unit-test program
that doubles as a test-only hand on the store API) is read by `doveadm fetch` with the
same UIDs, flags and keywords; a Maildir that Dovecot changed (flags add, save,
expunge) is read by Postern the same way.  doveadm runs with a private minimal
configuration (`doveadm -c`), no Dovecot service, as uid 65534 (Dovecot refuses mail
access as root), on a private directory the test removes.
"""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import POSTERN_BIN

HELPER = POSTERN_BIN.parent / "test_folder"
NOBODY = 65534
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"


@pytest.fixture
def maildir():
    if not os.access(DOVEADM, os.X_OK):
        pytest.fail("doveadm not installed (dovecot-core: run scripts/install-deps test)")
    if not os.access(HELPER, os.X_OK):
        pytest.fail("%s not built (meson -Dtests=enabled)" % HELPER)
    # Not under tmp_path: pytest makes that 0700 and Dovecot's uid must reach it.
    top = Path(tempfile.mkdtemp(prefix="postern-imap-store-"))
    os.chmod(top, 0o755)
    root = top / "mail"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    conf = top / "dovecot.conf"
    conf.write_text(
        "mail_location = maildir:%s\n"
        "base_dir = %s/run\nstate_dir = %s/state\n"
        "mail_uid = %d\nmail_gid = %d\nfirst_valid_uid = 1\nfirst_valid_gid = 1\n"
        "ssl = no\nlog_path = %s/dovecot.log\n"
        "namespace inbox {\n  inbox = yes\n  separator = /\n}\n"
        % (root, top, top, NOBODY, NOBODY, top))
    yield root, conf
    shutil.rmtree(top, ignore_errors=True)


def chown_tree(root):
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, NOBODY, NOBODY)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), NOBODY, NOBODY)


def doveadm(conf, root, *args, input=None):
    chown_tree(root)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "USER": "nobody", "HOME": str(conf.parent)}
    p = subprocess.run([DOVEADM, "-c", str(conf)] + list(args), env=env, input=input,
                       capture_output=True, timeout=30)
    assert p.returncode == 0, "doveadm %s: %s" % (" ".join(args), p.stderr.decode(errors="replace"))
    return p.stdout.decode()


def dovecot_view(conf, root, mailbox="INBOX"):
    """{uid: set of flags} as Dovecot sees the folder (\\Recent left out)."""
    out = doveadm(conf, root, "fetch", "uid flags", "mailbox", mailbox, "ALL")
    view, uid = {}, None
    for line in out.splitlines():
        if line.startswith("uid: "):
            uid = int(line[5:])
        elif line.startswith("flags:") and uid is not None:
            view[uid] = set(line[6:].split()) - {"\\Recent"}
    return view


def helper(root, *args, input=None):
    p = subprocess.run([str(HELPER), str(root)] + list(args), input=input, capture_output=True, timeout=30)
    assert p.returncode == 0, "test_folder %s: rc %d %s" % (" ".join(args), p.returncode, p.stderr.decode())
    return p.stdout.decode()


def postern_view(root, mailbox="INBOX"):
    lines = helper(root, "dump", mailbox).splitlines()
    head = lines[0].split()
    view = {}
    for line in lines[1:]:
        parts = line.split()
        view[int(parts[0])] = set(parts[1:])
    return {"uidvalidity": int(head[1]), "uidnext": int(head[3])}, view


def deliver(root, name, body):
    (root / "new" / name).write_bytes(body)


def status(conf, root, mailbox="INBOX"):
    out = doveadm(conf, root, "-f", "flow", "mailbox", "status", "uidvalidity uidnext", mailbox)
    return dict(kv.split("=") for kv in out.split() if "=" in kv)


def test_dovecot_reads_what_postern_wrote(maildir):
    root, conf = maildir
    for i in range(4):
        deliver(root, "17000000%02d.M%dP1.host,S=20,W=22" % (i, i), b"Subject: %d\n\nbody\n" % i)
    helper(root, "store", "1", "\\Seen", "work")
    helper(root, "store", "2", "\\Flagged", "\\Deleted", "$Forwarded")
    helper(root, "store", "3", "\\Answered", "\\Draft", "work")
    helper(root, "create", "Entw\u00fcrfe")
    out = helper(root, "append", "Entw\u00fcrfe", "\\Seen", "later", input=b"Subject: draft\r\n\r\nx\r\n")
    assert out.split()[1] == "1"
    info, ours = postern_view(root)
    assert ours == {1: {"\\Seen", "work"}, 2: {"\\Flagged", "\\Deleted", "$Forwarded"},
                    3: {"\\Answered", "\\Draft", "work"}, 4: set()}
    assert dovecot_view(conf, root) == ours
    st = status(conf, root)
    assert int(st["uidvalidity"]) == info["uidvalidity"]
    assert int(st["uidnext"]) == info["uidnext"] == 5
    # The folder's name: modified UTF-7 on disk, the same folder to Dovecot.
    assert "Entw\u00fcrfe" in doveadm(conf, root, "mailbox", "list").splitlines()
    assert dovecot_view(conf, root, "Entw\u00fcrfe") == {1: {"\\Seen", "later"}}
    # Expunge (\Deleted only) and a new delivery: Dovecot agrees, UID 2 is not reused.
    helper(root, "expunge")
    deliver(root, "1700000100.M9P1.host,S=20,W=22", b"Subject: n\n\nbody\n")
    info, ours = postern_view(root)
    assert sorted(ours) == [1, 3, 4, 5]
    assert dovecot_view(conf, root) == ours


def test_postern_reads_what_dovecot_changed(maildir):
    root, conf = maildir
    for i in range(3):
        deliver(root, "17000000%02d.M%dP1.host,S=20,W=22" % (i, i), b"Subject: %d\n\nbody\n" % i)
    before = dovecot_view(conf, root)                 # Dovecot gives the UIDs first
    assert sorted(before) == [1, 2, 3]
    doveadm(conf, root, "flags", "add", "\\Seen kwdove", "mailbox", "INBOX", "uid", "2")
    doveadm(conf, root, "flags", "add", "\\Flagged", "mailbox", "INBOX", "uid", "3")
    doveadm(conf, root, "save", "-m", "INBOX", input=b"Subject: saved\n\nby dovecot\n")
    doveadm(conf, root, "expunge", "mailbox", "INBOX", "uid", "1")
    theirs = dovecot_view(conf, root)
    assert sorted(theirs) == [2, 3, 4]
    info, ours = postern_view(root)
    assert ours == theirs
    assert ours[2] == {"\\Seen", "kwdove"}
    st = status(conf, root)
    assert int(st["uidvalidity"]) == info["uidvalidity"]
    assert info["uidnext"] == int(st["uidnext"]) == 5
    # Folders Dovecot made (modified UTF-7 names, a parent implied by its child).
    doveadm(conf, root, "mailbox", "create", "-s", "Entw\u00fcrfe/Sub")
    folders = helper(root, "list").splitlines()
    assert folders == ["INBOX", "Entw\u00fcrfe noselect children", "Entw\u00fcrfe/Sub sub"]
    # And back: Postern stores on a message Dovecot saved; Dovecot sees it.
    helper(root, "store", "4", "\\Answered", "kwdove")
    assert dovecot_view(conf, root)[4] == {"\\Answered", "kwdove"}
