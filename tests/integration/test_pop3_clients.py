"""POP3 with real clients other than poplib: curl (pop3:// with STLS, pop3s://: list,
retrieve, delete) and fetchmail --keep (a copy stays on the server, a second run fetches
nothing new, a new message is fetched alone: UIDL tracking in fetchmail's .fetchids)."""
import os
import re
import stat
import subprocess

import pytest

from pop3_support import ALICE, PASSWORD, crlf, lf_message, make_pop3_server, poplib_ssl, put_message, uidl_map



@pytest.fixture
def srv(server_factory):
    return make_pop3_server(server_factory)


def _curl(url, *args, timeout=30):
    cmd = ["curl", "-sS", "--max-time", "20", "-k", "--user", "%s:%s" % (ALICE, PASSWORD)] + list(args) + [url]
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    return p


def _files(srv):
    return sorted(p.name for p in srv.maildir_messages(ALICE))


@pytest.mark.parametrize("scheme", ["pop3", "pop3s"])
def test_curl_list_retrieve_delete(srv, scheme):
    msgs = [lf_message("curl %d" % i, ["body %d" % i, ".dotted %d" % i]) for i in range(3)]
    for i, m in enumerate(msgs):
        put_message(srv, ALICE, m, t=1700000300 + i)
    if scheme == "pop3":
        base = "pop3://127.0.0.1:%d" % srv.ports["pop3"]
        tls = ["--ssl-reqd"]          # STLS; fails if the upgrade does not happen
    else:
        base = "pop3s://127.0.0.1:%d" % srv.ports["pop3s"]
        tls = []

    # list: "N octets" per message, exact CRLF sizes
    p = _curl(base + "/", *tls)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().split("\r\n")
    listing = dict(l.split() for l in lines if l.strip())
    assert listing == {str(i + 1): str(len(crlf(m))) for i, m in enumerate(msgs)}, (listing, p.stdout)

    # retrieve: exactly the message as stored, in CRLF form (libcurl unstuffs "..dotted")
    p = _curl(base + "/2", *tls)
    assert p.returncode == 0, p.stderr
    assert b"Subject: curl 1" in p.stdout, p.stdout
    assert p.stdout == crlf(msgs[1]), (p.stdout, crlf(msgs[1]))

    # delete message 1 (DELE then QUIT)
    p = _curl(base + "/1", "-X", "DELE", "-I", *tls)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert len(_files(srv)) == 2, _files(srv)
    p = _curl(base + "/", *tls)
    assert p.returncode == 0, p.stderr
    lines = [l for l in p.stdout.decode().split("\r\n") if l.strip()]
    assert [l.split()[1] for l in lines] == [str(len(crlf(m))) for m in msgs[1:]], lines

    # UIDL with a custom request
    p = _curl(base + "/", "-X", "UIDL", *tls)
    assert p.returncode == 0, p.stderr
    uids = [l.split()[1] for l in p.stdout.decode().split("\r\n") if l.strip()]
    pp = poplib_ssl(srv)
    try:
        assert uids == [uidl_map(pp)[i] for i in (1, 2)], uids
    finally:
        pp.quit()

    # wrong password: curl reports a login failure
    p = subprocess.run(["curl", "-sS", "--max-time", "20", "-k", "--user", ALICE + ":wrong"] + tls + [base + "/"],
                       capture_output=True, timeout=30)
    assert p.returncode == 67, (p.returncode, p.stderr)      # CURLE_LOGIN_DENIED


def test_curl_without_tls_is_refused_login(srv):
    """curl without --ssl-reqd logs in in plaintext: the server refuses (login denied)."""
    p = subprocess.run(["curl", "-sS", "--max-time", "20", "--user", "%s:%s" % (ALICE, PASSWORD),
                        "pop3://127.0.0.1:%d/" % srv.ports["pop3"]], capture_output=True, timeout=30)
    assert p.returncode != 0, p.stdout
    assert p.returncode == 67, (p.returncode, p.stderr)


# -- fetchmail ------------------------------------------------------------------------------

def _fetchmail(tmp_path, srv, mode):
    """Run fetchmail once (--keep, UIDL tracking); returns (rc, output, delivered files)."""
    home = tmp_path / "fmhome"
    out = tmp_path / "fetched"
    home.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    mda = home / "deliver.sh"
    mda.write_text('#!/bin/sh\nexec cat > "%s/msg.$(date +%%s%%N).$$"\n' % out)
    mda.chmod(0o755)
    if mode == "ssl":
        port, tls = srv.ports["pop3s"], "ssl no sslcertck"
    else:
        port, tls = srv.ports["pop3"], "sslproto 'tls1.2+' no sslcertck"
    rc = home / "fetchmailrc"
    rc.write_text(
        'set no syslog\n'
        'set idfile "%s/.fetchids"\n'
        'poll 127.0.0.1 service %d protocol pop3 uidl timeout 20\n'
        '  user "%s" there with password "%s" is "%s" here\n'
        '  options keep %s\n'
        '  mda "%s"\n' % (home, port, ALICE, PASSWORD, os.environ.get("USER", "root"), tls, mda))
    rc.chmod(stat.S_IRUSR | stat.S_IWUSR)
    env = dict(os.environ, HOME=str(home), FETCHMAILHOME=str(home), LC_ALL="C")
    p = subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "--nosyslog", "-v",
                        "--pidfile", str(home / "fetchmail.pid")],
                       capture_output=True, timeout=60, env=env)
    text = (p.stdout + p.stderr).decode("utf-8", "replace")
    return p.returncode, text, sorted(out.iterdir())


@pytest.mark.parametrize("mode", ["stls", "ssl"])
def test_fetchmail_keep_fetches_each_message_once(srv, tmp_path, mode):
    for i in range(2):
        put_message(srv, ALICE, lf_message("fm %d" % i, ["fetched %d" % i]), t=1700000400 + i)

    rc, text, got = _fetchmail(tmp_path, srv, mode)
    assert rc == 0, text                       # 0: mail retrieved
    assert len(got) == 2, (got, text)
    subjects = sorted(re.search(rb"Subject: (fm \d)", f.read_bytes()).group(1) for f in got)
    assert subjects == [b"fm 0", b"fm 1"], subjects
    if mode == "stls":
        assert "> STLS" in text, text              # fetchmail -v shows the dialogue
    # every fetchmail login was over TLS
    logins = re.findall(r"event=login\b[^\n]*proto=pop3\b[^\n]*", srv.log())
    assert logins and all("tls=yes" in l for l in logins), logins
    # --keep: the copies stay on the server
    assert len(_files(srv)) == 2
    assert (tmp_path / "fmhome" / ".fetchids").exists(), text

    # a second run fetches nothing new (fetchmail exit status 1: no mail)
    rc, text, got2 = _fetchmail(tmp_path, srv, mode)
    assert rc == 1, text
    assert got2 == got, (got2, text)

    # a new message is fetched alone
    put_message(srv, ALICE, lf_message("fm new", ["only this"]))
    rc, text, got3 = _fetchmail(tmp_path, srv, mode)
    assert rc == 0, text
    new = [f for f in got3 if f not in got]
    assert len(new) == 1, (got3, text)
    assert b"Subject: fm new" in new[0].read_bytes()
    assert len(_files(srv)) == 3
    assert "LOGIN-DELAY" not in text and "-ERR" not in text, text
