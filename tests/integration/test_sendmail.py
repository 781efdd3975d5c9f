"""sendmail, mailq and newaliases (postern run by those names): the local submission
socket (SO_PEERCRED: the envelope sender is the calling user), each option, and the
maildrop while the server is down (delivered exactly once when it starts)."""
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import postern_bin, sanitizer_report


@pytest.fixture
def public_dir():
    # The socket and the maildrop where another user can reach them (pytest's own
    # directories are 0700): a private directory of this test under /tmp.
    d = Path(tempfile.mkdtemp(prefix="pt-sendmail-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def make_server(server_factory, public_dir, users=("alice@example.test", "bob@example.test")):
    s = server_factory(users=users, start=False)
    text = s.config.read_text() if hasattr(s.config, "read_text") else Path(s.config).read_text()
    text = text.replace("[server]\n", "[server]\nlocal_domain = example.test\nlocal_socket = %s/submit.sock\n"
                        "maildrop_dir = %s/maildrop\n" % (public_dir, public_dir), 1)
    Path(s.config).write_text(text)
    conf = public_dir / "postern.conf"
    conf.write_text(text)
    conf.chmod(0o644)
    for name in ("sendmail", "mailq", "newaliases"):
        (public_dir / name).symlink_to(postern_bin())
    s.public = public_dir
    return s


def run(s, name, *args, input="", user=None, timeout=30):
    cmd = [str(s.public / name), "-C", str(s.public / "postern.conf")] + list(args)
    if name == "newaliases":
        cmd = [str(s.public / name)]
    if user:
        cmd = ["setpriv", "--reuid=" + user, "--regid=nogroup", "--clear-groups"] + cmd
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, errors="replace")
    rep = sanitizer_report(p.stderr)
    assert not rep, "sanitizer report from %s:\n%s" % (cmd, p.stderr)
    return p


def bodies(s, address, n, settle=0.0):
    msgs = s.wait_delivered(address, n, timeout=15, settle=settle)
    return [m.read_bytes().decode("utf-8", "replace") for m in msgs]


def header(msg):
    return msg.split("\n\n", 1)[0]


def test_sendmail_options(server_factory, public_dir):
    s = make_server(server_factory, public_dir).start()
    # A lone dot ends the input without -i, not with -i; -F names the From: added.
    p = run(s, "sendmail", "-F", "Cron Daemon", "-oem", "-odi", "-B8BITMIME", "alice@example.test",
            input="Subject: one\n\nfirst line\n.\nafter the dot\n")
    assert p.returncode == 0, p.stderr
    p = run(s, "sendmail", "-oi", "alice@example.test", input="Subject: two\n\nline\n.\nafter the dot\n")
    assert p.returncode == 0, p.stderr
    # -t: To: and Cc: and Bcc: are the recipients; the Bcc: field is gone; -f sets the sender (root may).
    p = run(s, "sendmail", "-t", "-i", "-f", "postmaster@example.test",
            input="To: Alice <alice@example.test>\nBcc: bob@example.test\nSubject: three\n\nbody\n")
    assert p.returncode == 0, p.stderr
    got = bodies(s, "alice@example.test", 3)
    assert len(got) == 3, got
    by_subject = {m.split("Subject: ", 1)[1].split("\n", 1)[0]: m for m in got}
    one, two, three = by_subject["one"], by_subject["two"], by_subject["three"]
    assert "From: Cron Daemon <root@example.test>" in header(one)
    assert "Return-Path: <root@example.test>" in one
    assert "Received: from local user root (uid 0)" in one
    assert "Date: " in header(one) and "Message-ID: <" in header(one)
    assert "first line" in one and "after the dot" not in one
    assert "after the dot" in two
    assert "Return-Path: <postmaster@example.test>" in three and "Bcc" not in three
    bob = bodies(s, "bob@example.test", 1)
    assert len(bob) == 1 and "Subject: three" in bob[0] and "Bcc" not in bob[0]
    # Unknown options are named; newaliases says what Postern uses and succeeds.
    p = run(s, "sendmail", "-X", "alice@example.test")
    assert p.returncode == 64 and "unknown option -X" in p.stderr
    p = run(s, "sendmail", "-oZ", "alice@example.test")
    assert p.returncode == 64 and "unknown option -oZ" in p.stderr
    p = run(s, "newaliases")
    assert p.returncode == 0 and "postern alias" in p.stdout
    # -bs: the server's own SMTP session on standard input and output.
    p = run(s, "sendmail", "-bs", input="EHLO me\r\nMAIL FROM:<root@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
            "DATA\r\nSubject: bs\r\n\r\nvia -bs\r\n.\r\nQUIT\r\n")
    assert p.returncode == 0 and p.stdout.startswith("220 ") and "queued as" in p.stdout and "221 " in p.stdout, p.stdout
    assert any("via -bs" in m for m in bodies(s, "bob@example.test", 2))
    # -bp (= mailq) lists the queue; -q asks the running server to retry it now.
    p = run(s, "mailq")
    assert p.returncode == 0 and "message(s)" in p.stdout, p.stdout + p.stderr
    p = run(s, "sendmail", "-bp")
    assert p.returncode == 0 and "message(s)" in p.stdout
    p = run(s, "sendmail", "-q")
    assert p.returncode == 0 and "flushing" in p.stdout, p.stdout + p.stderr
    # A refused recipient: the reply on stderr, exit status EX_NOUSER.
    p = run(s, "sendmail", "nobody-here@example.test", input="Subject: x\n\nx\n")
    assert p.returncode == 67 and "5.1.1" in p.stderr


def test_non_root_sender_is_that_user(server_factory, public_dir):
    s = make_server(server_factory, public_dir).start()
    p = run(s, "sendmail", "alice@example.test", input="Subject: from nobody\n\nhello\n", user="nobody")
    assert p.returncode == 0, p.stderr
    got = bodies(s, "alice@example.test", 1)
    assert "Return-Path: <nobody@example.test>" in got[0]
    assert "Received: from local user nobody (uid %d)" % 65534 in got[0]
    # Another's address is refused with the words; nothing is queued.
    p = run(s, "sendmail", "-f", "alice@example.test", "bob@example.test", input="Subject: forged\n\nx\n", user="nobody")
    assert p.returncode == 77, p.stderr
    assert "5.7.1" in p.stderr and "local user nobody" in p.stderr and "nobody@example.test" in p.stderr
    assert s.wait_delivered("bob@example.test", 1, timeout=1.0) == []


def test_maildrop_while_down_delivered_once(server_factory, public_dir):
    s = make_server(server_factory, public_dir)
    s.start()
    s.stop()   # the server made the maildrop (1733) and is down now
    assert (public_dir / "maildrop").stat().st_mode & 0o7777 == 0o1733
    p = run(s, "sendmail", "alice@example.test", input="Subject: dropped\n\nwhile down\n", user="nobody")
    assert p.returncode == 0 and "queued in maildrop" in p.stderr, p.stderr
    p = run(s, "sendmail", "-f", "bob@example.test", "alice@example.test", input="Subject: forged\n\nx\n", user="nobody")
    assert p.returncode == 0
    broken = public_dir / "maildrop" / "0.broken"
    broken.write_text("not an envelope\n")
    files = [f for f in (public_dir / "maildrop").iterdir() if f.is_file()]
    assert len(files) == 3 and sum(f.stat().st_uid == 65534 for f in files) == 2
    s.start()
    got = bodies(s, "alice@example.test", 1, settle=1.0)
    assert len(got) == 1 and "while down" in got[0], got
    assert "Return-Path: <nobody@example.test>" in got[0]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(list((public_dir / "maildrop" / "failed").iterdir())) < 2:
        time.sleep(0.05)
    assert [f for f in (public_dir / "maildrop").iterdir() if f.is_file()] == []
    assert len(list((public_dir / "maildrop" / "failed").iterdir())) == 2
    log = s.log()
    assert "event=maildrop_picked" in log and log.count("event=maildrop_failed") == 2
    assert "5.7.1" in log and "POSTERN-MAILDROP" in log


def test_maildrop_partly_refused_for_now_goes_to_the_rest_later(server_factory, public_dir):
    """A dropped message whose recipients are taken only in part (carol's mailbox is
    full: 452 4.2.2, temporary) stays in the maildrop with a record of who has it;
    once carol has room, the next pickup sends it to her alone: alice gets it once."""
    from pop3_support import lf_message, put_message
    s = make_server(server_factory, public_dir, users=("alice@example.test", "carol@example.test"))
    put_message(s, "carol@example.test", lf_message("filler", ["y" * 100] * 40))
    assert s.cli("user", "quota", "carol@example.test", "1K").returncode == 0
    s.start()
    s.stop()
    p = run(s, "sendmail", "alice@example.test", "carol@example.test", input="Subject: to both\n\nhello\n",
            user="nobody")
    assert p.returncode == 0 and "queued in maildrop" in p.stderr, p.stderr
    s.start()
    got = bodies(s, "alice@example.test", 1)
    assert len(got) == 1 and "to both" in got[0]
    maildrop = public_dir / "maildrop"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "event=maildrop_deferred" not in s.log():
        time.sleep(0.05)
    records = [f for f in maildrop.iterdir() if f.name.startswith(".done.")]
    assert len(records) == 1 and records[0].read_text() == "0\n", [f.name for f in maildrop.iterdir()]
    assert "452" in s.log() and "4.2.2" in s.log()
    assert s.cli("user", "quota", "carol@example.test", "none").returncode == 0
    carol = s.wait_delivered("carol@example.test", 2, timeout=15)       # the filler and the dropped one
    assert len(carol) == 2 and any("to both" in m.read_text(errors="replace") for m in carol)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and list(maildrop.glob("*")) != [maildrop / "failed"]:
        time.sleep(0.05)
    assert sorted(f.name for f in maildrop.iterdir()) == ["failed"]   # the file and its record are gone
    assert len(bodies(s, "alice@example.test", 1, settle=1.0)) == 1   # not sent to alice again
