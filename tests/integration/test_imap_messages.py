"""IMAP's message commands against a real `postern serve`, with clients nobody here wrote:
Python imaplib (FETCH of every item, SEARCH keys, STORE forms, COPY/MOVE with COPYUID,
EXPUNGE), python3-imaplib2 (IDLE sees a message another session moved in), mbsync
(isync) syncing both ways, interimap (QRESYNC, once the server
advertises LIST-EXTENDED, which it requires) between two accounts, curl imaps://.../Folder;UID=n, fetchmail over
IMAP (one shot, --mda to a file), mutt reading a folder on a terminal of its own, and the
multi-session checker (imap_checker.py).  One server for the module: each
test works in folders of its own (or its own account) so that order does not matter."""
import imaplib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Server  # noqa: E402
from imap_checker import run_checker  # noqa: E402
from submission_support import tls_context, wait_ports  # noqa: E402

PASSWORD = "secret"
USERS = ["alice@example.test", "bob@example.test", "carol@example.test", "dave@example.test",
         "erin@example.test", "frank@example.test", "gina@example.test", "hank@example.test",
         "ivan@example.test"]
LISTENERS = ("\n[listener imap]\naddress = 127.0.0.1\nport = 0\nrole = imap\ntls = starttls\n"
             "\n[listener imaps]\naddress = 127.0.0.1\nport = 0\nrole = imap\ntls = implicit\n"
             "\n[listener imapplain]\naddress = 127.0.0.1\nport = 0\nrole = imap\ntls = none\n"
             "allow_plaintext_auth = yes\n")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("imapmsg"), users=USERS, extra=LISTENERS)
    s.start()
    s.ports = wait_ports(s, ["imap", "imaps", "imapplain"])
    yield s
    s.stop()
    problems = s.check_after()
    assert not problems, "\n".join(problems)


def login(srv, user):
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.ports["imaps"], ssl_context=tls_context(), timeout=10)
    m.login(user, PASSWORD)
    return m


def msg(subject, body="Hello there.\r\n", frm="Alice <alice@example.test>", extra=""):
    return ("From: %s\r\nTo: bob@example.test\r\nSubject: %s\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s@example.test>\r\n%s\r\n%s" % (frm, subject, abs(hash(subject)), extra, body)).encode()


MULTI = ("From: carol@example.test\r\nTo: alice@example.test\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n"
         "Date: Tue, 10 Mar 2026 12:00:00 +0100\r\nMIME-Version: 1.0\r\n"
         "Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
         "--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
         "Un caf=C3=A9 au lait.\r\n--XX\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\n"
         "Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--XX--\r\n").encode()


def literals(data):
    """The literal payloads of an imaplib FETCH answer, in order."""
    return [d[1] for d in data if isinstance(d, tuple)]


def ok(res):
    typ, data = res
    assert typ == "OK", (typ, data)
    return data


def test_fetch_every_item(srv):
    m = login(srv, "alice@example.test")
    try:
        ok(m.create("FetchBox"))
        ok(m.append("FetchBox", None, None, msg("plain one")))
        ok(m.append("FetchBox", "(\\Flagged)", None, MULTI))
        ok(m.select("FetchBox"))
        data = ok(m.fetch("1:2", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY UID)"))
        text = b" ".join(d if isinstance(d, bytes) else b"".join(d) for d in data)
        assert b"RFC822.SIZE %d" % len(msg("plain one")) in text, text
        assert b'"plain one"' in text and b"INTERNALDATE \"" in text, text
        assert re.search(rb'BODYSTRUCTURE \(\("text" "plain"', text), text
        assert b"\\Flagged" in text, text
        # BODY.PEEK leaves \Seen alone; BODY[] sets it and reports FLAGS
        data = ok(m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
        assert data[0][1] == b"Subject: plain one\r\n\r\n", data
        assert b"\\Seen" not in b"".join(ok(m.fetch("1", "FLAGS"))), "PEEK set \\Seen"
        data = ok(m.fetch("1", "(BODY[]<0.5>)"))
        assert data[0][1] == b"From:" and b"BODY[]<0>" in data[0][0], data
        assert b"\\Seen" in b"".join(ok(m.fetch("1", "FLAGS")))
        data = ok(m.fetch("1", "(RFC822)"))
        assert data[0][1] == msg("plain one"), data
        lits = literals(ok(m.fetch("1", "(RFC822.HEADER RFC822.TEXT)")))
        assert lits[0].endswith(b"\r\n\r\n") and lits[1] == b"Hello there.\r\n", lits
        lits = literals(ok(m.fetch("2", "(BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[TEXT]<0.4>)")))
        assert lits[0] == b"Un caf=C3=A9 au lait.", lits
        assert b"Content-Type: application/octet-stream" in lits[1], lits
        assert lits[2] == b"--XX", lits
        # UID FETCH always includes UID; a missing sequence number is refused
        typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
        assert typ == "OK" and all(b"UID " in d for d in data), data
        with pytest.raises(imaplib.IMAP4.error):
            m.fetch("9", "FLAGS")
    finally:
        m.logout()


def test_search_keys(srv):
    m = login(srv, "bob@example.test")
    try:
        ok(m.create("SearchBox"))
        ok(m.append("SearchBox", "(\\Seen)", None, msg("alpha report", frm="carol@example.test")))
        ok(m.append("SearchBox", "(\\Answered $Work)", None, MULTI))
        ok(m.append("SearchBox", None, None, msg("gamma", body="x" * 5000 + "\r\n", extra="X-Tag: blue\r\n")))
        ok(m.select("SearchBox"))

        def search(*keys, charset=None):
            return ok(m.search(charset, *keys))[0].split()

        assert search("SUBJECT", "alpha") == [b"1"]
        assert search("FROM", "carol") == [b"1", b"2"]
        assert search("SEEN") == [b"1"] and search("UNSEEN") == [b"2", b"3"]
        assert search("ANSWERED") == [b"2"] and search("KEYWORD", "$Work") == [b"2"]
        assert search("LARGER", "4000") == [b"3"] and search("SMALLER", "4000") == [b"1", b"2"]
        assert search("OR", "1", "3") == [b"1", b"3"] and search("NOT", "2") == [b"1", b"3"]
        assert search("HEADER", "X-Tag", "blue") == [b"3"]
        m.literal = "café".encode()    # imaplib sends it as a literal after CHARSET UTF-8 BODY
        assert search("BODY", charset="UTF-8") == [b"2"]
        assert search("SENTON", "10-Mar-2026") == [b"2"]
        assert search("SINCE", "1-Jan-2020") == [b"1", b"2", b"3"]
        assert search("UID", "2:*") == [b"2", b"3"]
        typ, data = m.search("KOI8-R", "ALL")
        assert typ == "NO" and b"BADCHARSET" in data[0], data
        typ, data = m.uid("SEARCH", "RETURN", "(MIN MAX COUNT)", "ALL")
        assert typ == "OK", data
        data = m.response("ESEARCH")[1]
        assert re.search(rb"\(TAG \"\w+\"\) UID MIN \d+ MAX \d+ COUNT 3", data[0]), data
    finally:
        m.logout()


def test_store_forms(srv):
    m = login(srv, "carol@example.test")
    try:
        ok(m.enable("CONDSTORE"))
        ok(m.create("StoreBox"))
        for k in range(3):
            ok(m.append("StoreBox", None, None, msg("store %d" % k)))
        ok(m.select("StoreBox"))
        data = ok(m.store("1:2", "+FLAGS", "(\\Flagged $Later)"))
        assert all(b"\\Flagged" in d and b"$Later" in d for d in data), data
        data = ok(m.store("2", "-FLAGS", "($Later)"))
        assert b"$Later" not in data[0], data
        data = ok(m.store("3", "FLAGS.SILENT", "(\\Seen)"))
        # .SILENT: no FLAGS; with CONDSTORE on, the new MODSEQ still (RFC 7162 §3.1.3)
        assert len(data) == 1 and b"FLAGS" not in data[0] and b"MODSEQ" in data[0], data
        assert ok(m.search(None, "KEYWORD", "$Later"))[0] == b"1"
        assert ok(m.search(None, "SEEN"))[0] == b"3"
        # CONDSTORE: UNCHANGEDSINCE on a changed message: MODIFIED, not stored
        data = ok(m.fetch("1", "(MODSEQ)"))
        modseq = int(re.search(rb"MODSEQ \((\d+)\)", data[0]).group(1))
        typ, data = m._simple_command("STORE", "1", "(UNCHANGEDSINCE %d)" % (modseq - 1), "+FLAGS", "(\\Draft)")
        assert typ == "OK" and b"[MODIFIED 1]" in data[0], (typ, data)
        assert b"\\Draft" not in b"".join(ok(m.fetch("1", "FLAGS")))
        typ, data = m._simple_command("STORE", "1", "(UNCHANGEDSINCE %d)" % modseq, "+FLAGS", "(\\Draft)")
        assert typ == "OK", data
        assert b"\\Draft" in b"".join(ok(m.fetch("1", "FLAGS")))
        # read-only after EXAMINE
        ok(m.select("StoreBox", readonly=True))
        typ, data = m.store("1", "+FLAGS", "(\\Seen)")
        assert typ == "NO", data
    finally:
        m.logout()


def test_copy_move_expunge(srv):
    m = login(srv, "dave@example.test")
    try:
        ok(m.create("Src"))
        for k in range(4):
            ok(m.append("Src", None, None, msg("copy %d" % k)))
        ok(m.select("Src"))
        typ, data = m.copy("1", "DoesNotExist")
        assert typ == "NO" and b"[TRYCREATE]" in data[0], data
        ok(m.create("Dst"))
        typ, data = m.copy("1:2", "Dst")
        assert typ == "OK" and re.match(rb"\[COPYUID \d+ 1:2 1:2\]", data[0]), data
        typ, data = m._simple_command("UID", "MOVE", "3", "Dst")
        assert typ == "OK", data
        assert re.search(rb"\[COPYUID \d+ 3 3\]", b" ".join(m.untagged_responses.get("OK", []))), \
            m.untagged_responses
        assert m.response("EXPUNGE")[1] == [b"3"], m.untagged_responses
        ok(m.store("1", "+FLAGS", "(\\Deleted)"))
        data = ok(m.expunge())
        assert data == [b"1"], data
        status = ok(m.status("Dst", "(MESSAGES)"))
        assert b"MESSAGES 3" in status[0], status
        # UID EXPUNGE removes only the UIDs named
        ok(m.store("1:2", "+FLAGS", "(\\Deleted)"))
        typ, data = m._simple_command("UID", "EXPUNGE", "4")
        assert typ == "OK", data
        assert ok(m.search(None, "ALL"))[0] == b"1"
        # CLOSE expunges silently
        ok(m.close())
        ok(m.select("Src"))
        assert ok(m.search(None, "ALL"))[0] == b""
    finally:
        m.logout()


def test_idle_sees_message_moved_in(srv):
    import imaplib2
    user = "erin@example.test"
    mover = login(srv, user)
    ok(mover.create("Staging"))
    ok(mover.append("Staging", None, None, msg("moved in")))
    # imaplib2's IMAP4_SSL uses socket.sslerror, gone from Python 3: the plaintext listener
    idler = imaplib2.IMAP4("127.0.0.1", srv.ports["imapplain"], timeout=10)
    try:
        idler.login(user, PASSWORD)
        typ, data = idler.select("INBOX")
        assert typ == "OK"
        before = int(data[0])
        result = {}

        def done(args):
            result["args"] = args
        idler.idle(timeout=10, callback=done)
        time.sleep(0.2)     # IDLE's "+ idling" has been answered (imaplib2 runs it in its thread)
        ok(mover.select("Staging"))
        t0 = time.monotonic()
        typ, data = mover._simple_command("MOVE", "1", "INBOX")
        assert typ == "OK", data
        deadline = time.monotonic() + 5
        while "args" not in result and time.monotonic() < deadline:
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        assert "args" in result, "IDLE saw nothing"
        typ, data = idler.response("EXISTS")
        assert data and int(data[-1]) == before + 1, data
        assert elapsed < 1.5, "the IDLE session saw the move after %.2fs" % elapsed
    finally:
        try:
            idler.logout()
        except Exception:
            pass
        mover.logout()


def _run(cmd, timeout=30, **kw):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    return p


def test_mbsync_both_ways(srv, tmp_path):
    user = "frank@example.test"
    m = login(srv, user)
    ok(m.append("INBOX", None, None, msg("from the server")))
    local = tmp_path / "Mail"
    local.mkdir()
    crt = srv.data_dir / "tls" / "selfsigned.crt"
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        "IMAPAccount postern\nHost 127.0.0.1\nPort %d\nUser %s\nPass %s\nSSLType IMAPS\n"
        "CertificateFile %s\nSystemCertificates no\n\n"
        "IMAPStore remote\nAccount postern\n\n"
        "MaildirStore local\nPath %s/\nInbox %s/INBOX\nSubFolders Verbatim\n\n"
        "Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nExpunge Both\n"
        "SyncState *\nSync All\n" % (srv.ports["imaps"], user, PASSWORD, crt, local, local))
    p = _run(["mbsync", "-c", str(rc), "-a"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr.decode()
    got = list((local / "INBOX" / "new").iterdir()) + list((local / "INBOX" / "cur").iterdir())
    assert len(got) == 1 and b"from the server" in got[0].read_bytes(), got
    # the other way: a local message goes up, a local flag goes up
    cur = local / "INBOX" / "cur"
    for f in got:       # flag the downloaded message locally (Maildir info "F")
        f.rename(cur / (f.name.split(":2,")[0] + ":2,F"))
    (local / "INBOX" / "new" / "1700000000.1.local").write_bytes(msg("from the laptop").replace(b"\r\n", b"\n"))
    p = _run(["mbsync", "-c", str(rc), "-a"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr.decode()
    ok(m.select("INBOX"))
    subjects = ok(m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    text = b" ".join(d[1] if isinstance(d, tuple) else d for d in subjects)
    assert b"from the laptop" in text and b"from the server" in text, subjects
    assert ok(m.search(None, "FLAGGED"))[0] == b"1", subjects
    m.logout()


def test_interimap_qresync(srv, tmp_path):
    """interimap keeps two accounts of this server in step (it requires QRESYNC on both)."""
    remote, local = "gina@example.test", "hank@example.test"
    r = login(srv, remote)
    if b"LIST-EXTENDED" not in ok(r.capability())[0].split():
        r.logout()
        pytest.skip("the server does not advertise LIST-EXTENDED (RFC 5258), which interimap requires")
    ok(r.append("INBOX", "(\\Flagged)", None, msg("interimap one")))
    conf = tmp_path / "interimap.conf"
    db = tmp_path / "interimap.db"
    section = ("type = imaps\nhost = 127.0.0.1\nport = %d\nusername = %%s\npassword = %s\nSSL_verify = NO\n"
               % (srv.ports["imaps"], PASSWORD))
    conf.write_text("database = %s\nlist-mailbox = INBOX\n\n[local]\n%s\n[remote]\n%s" %
                    (db, section % local, section % remote))
    env = dict(os.environ, HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    p = _run(["interimap", "--config", str(conf)], env=env, timeout=60)
    assert p.returncode == 0, (p.stdout.decode(), p.stderr.decode())
    # interimap compresses its remote side (COMPRESS=DEFLATE, RFC 4978) and says how much
    assert re.search(r"remote: IMAP traffic \(bytes\): recv .*\(compr\. \d+", p.stderr.decode()), p.stderr.decode()
    lm = login(srv, local)
    ok(lm.select("INBOX"))
    data = ok(lm.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    assert b"interimap one" in data[0][1] and b"\\Flagged" in data[0][0], data
    # a flag changed locally goes to the remote on the next run (CONDSTORE/QRESYNC)
    ok(lm.store("1", "+FLAGS", "(\\Answered)"))
    p = _run(["interimap", "--config", str(conf)], env=env, timeout=60)
    assert p.returncode == 0, (p.stdout.decode(), p.stderr.decode())
    ok(r.select("INBOX"))
    assert ok(r.search(None, "ANSWERED"))[0] == b"1"
    lm.logout()
    r.logout()


def test_curl_uid(srv):
    user = "alice@example.test"
    m = login(srv, user)
    ok(m.create("CurlBox"))
    ok(m.append("CurlBox", None, None, msg("curl fetch")))
    m.logout()
    url = "imaps://127.0.0.1:%d/CurlBox;UID=1" % srv.ports["imaps"]
    p = _run(["curl", "-sS", "-k", "--max-time", "20", "--user", "%s:%s" % (user, PASSWORD), url])
    assert p.returncode == 0, p.stderr
    assert p.stdout == msg("curl fetch"), p.stdout


def test_fetchmail_imap(srv, tmp_path):
    user = "bob@example.test"
    m = login(srv, user)
    ok(m.create("Fm"))
    ok(m.append("INBOX", None, None, msg("fetchmail me")))
    m.logout()
    out = tmp_path / "delivered"
    rc = tmp_path / "fetchmailrc"
    rc.write_text("poll 127.0.0.1 protocol IMAP port %d\n  user \"%s\" password \"%s\" is root here\n"
                  "  folder INBOX\n  keep\n  mda \"/bin/sh -c 'cat >> %s'\"\n"
                  % (srv.ports["imapplain"], user, PASSWORD, out))
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    p = _run(["fetchmail", "-f", str(rc), "--nodetach", "--sslproto", "", "--idfile", str(tmp_path / "ids")],
             env=env, timeout=60)
    assert p.returncode == 0, (p.stdout.decode(), p.stderr.decode())
    assert b"fetchmail me" in out.read_bytes()


def _run_on_pty(cmd, env, timeout):
    """Run an interactive program on a pseudo-terminal (mutt wants one), bounded in time."""
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(cmd[0], cmd, env)
    out = b""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            out += chunk
            if not chunk:
                break
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
    if status is None:
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            status = -9
    os.close(fd)
    return status, out


def test_mutt_batch_reads_folder(srv, tmp_path):
    user = "carol@example.test"
    m = login(srv, user)
    ok(m.create("MuttBox"))
    ok(m.append("MuttBox", None, None, msg("mutt reads this")))
    m.logout()
    muttrc = tmp_path / "muttrc"
    muttrc.write_text(
        'set folder="imap://%s@127.0.0.1:%d/"\nset imap_pass="%s"\nset ssl_starttls=no\nset ssl_force_tls=no\n'
        'set header_cache=""\nset message_cachedir=""\nset imap_check_subscribed=no\nset delete=yes\n'
        'set quit=yes\nset confirmappend=no\nset confirmcreate=no\nset move=no\nset mbox_type=mbox\n'
        % (user.replace("@", "%40"), srv.ports["imapplain"], PASSWORD))
    env = dict(os.environ, HOME=str(tmp_path), TERM="vt100")
    out = tmp_path / "saved"
    # open the folder, save message 1 to a file (which marks it deleted there), quit (expunges)
    status, screen = _run_on_pty(["mutt", "-n", "-F", str(muttrc), "-f", "=MuttBox", "-e",
                                  "push '<save-message>%s<enter><sync-mailbox><quit>'" % out], env, 30)
    assert out.exists() and b"mutt reads this" in out.read_bytes(), screen[-2000:]
    m = login(srv, user)
    ok(m.select("MuttBox"))
    assert ok(m.search(None, "ALL"))[0] == b"", "mutt's save did not expunge the original"
    m.logout()


def test_checker_multi_session(srv):
    figures = run_checker("127.0.0.1", srv.ports["imaps"], "ivan@example.test", PASSWORD,
                          sessions=4, ops=25, checkpoints=3, seed=7, deadline=20.0)
    assert figures["checkpoints"] >= 1 and figures["operations"] >= 50, figures
