"""check-config and serve refuse the same configurations, with the same words: each
error names file:line and the fix (issue 9).  Every case runs both commands."""
import re

import pytest

from conftest import run_cli, write_config


def both(conf):
    """Run check-config and serve on one file; both must refuse.  Returns the two stderrs."""
    c = run_cli(["check-config"], conf=conf)
    s = run_cli(["serve"], conf=conf, timeout=20)
    assert c.returncode != 0, "check-config said ok:\n%s%s" % (c.stdout, c.stderr)
    assert s.returncode != 0, "serve started:\n%s" % s.stderr
    return c.stderr, s.stderr


def line_of(conf, needle, nth=1):
    """1-based line number of the nth line of the file containing needle."""
    hits = [i + 1 for i, l in enumerate(conf.read_text().splitlines()) if needle in l]
    return hits[nth - 1]


def test_duplicate_listener_section_is_refused(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var",
                        extra="\n[listener smtp]\naddress = 127.0.0.1\nport = 0\nrole = submission\n")
    first, second = line_of(conf, "[listener smtp]"), line_of(conf, "[listener smtp]", 2)
    for err in both(conf):
        assert "postern.conf:%d:" % second in err, err
        assert "postern.conf:%d" % first in err, err
        assert "appears twice" in err and "own name" in err, err


def test_duplicate_key_is_refused(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var", extra="port = 2525\n")
    first, second = line_of(conf, "port = 0"), line_of(conf, "port = 2525")
    for err in both(conf):
        assert "postern.conf:%d:" % second in err and "postern.conf:%d" % first in err, err
        assert "set twice" in err and "delete one" in err, err


@pytest.mark.parametrize("networks", ["0.0.0.0/0", "::/0", "0.0.0.0/1, 128.0.0.0/1", "192.0.2.0/24 0.0.0.0/2"])
def test_trusted_networks_open_relay_is_refused(tmp_path, networks):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var", server={"trusted_networks": networks})
    n = line_of(conf, "trusted_networks =")
    for err in both(conf):
        assert "postern.conf:%d: [server] trusted_networks" % n in err, err
        assert "open relay" in err and "allow_open_relay = yes" in err, err


def test_trusted_networks_open_relay_when_meant(server_factory):
    srv = server_factory(start=False)
    srv.config.write_text(srv.config.read_text().replace(
        "[server]\n", "[server]\ntrusted_networks = 0.0.0.0/0\nallow_open_relay = yes\n", 1))
    p = run_cli(["check-config"], conf=srv.config)
    assert p.returncode == 0, p.stderr
    srv.start()


# --- check-config runs the checks serve runs (serve/startup.c) ----------------------

import os
import socket
import subprocess


def unescape_log(text):
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


def same_refusal(conf, *want):
    """check-config and serve refuse, with the same message; returns it."""
    c, s = both(conf)
    msg = c.strip().splitlines()[0]
    assert msg.startswith("postern: "), c
    msg = msg[len("postern: "):]
    assert msg in unescape_log(s), "serve said otherwise:\n%s\ncheck-config said:\n%s" % (s, msg)
    for w in want:
        assert w in msg, msg
    return msg


def tls_conf(tmp_path, tls="", server=None):
    extra = "tls = starttls\n" + ("\n[tls]\n" + tls if tls else "")
    return write_config(tmp_path / "postern.conf", tmp_path / "var", server=server, extra=extra)


def make_pair(tmp_path, name, kind="ec", encrypt=False):
    key, crt = tmp_path / (name + ".key"), tmp_path / (name + ".crt")
    alg = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec" else ["-newkey", "rsa:2048"]
    subprocess.run(["openssl", "req", "-x509"] + alg + ["-nodes", "-subj", "/CN=mx.example.test", "-days", "2",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    if encrypt:
        plain = key.with_suffix(".plain")
        key.rename(plain)
        subprocess.run(["openssl", "pkey", "-in", str(plain), "-out", str(key), "-aes256", "-passout", "pass:x"],
                       check=True, capture_output=True)
    key.chmod(0o600)
    return crt, key


def test_certificate_missing(tmp_path):
    conf = tls_conf(tmp_path, "certificate = %s/nope.crt\nkey = %s/nope.key\n" % (tmp_path, tmp_path))
    same_refusal(conf, "postern.conf:%d: [tls] certificate" % line_of(conf, "certificate ="), "nope.crt",
                 "no such file: correct the path")


def test_certificate_not_pem(tmp_path):
    crt, key = make_pair(tmp_path, "a")
    crt.write_text("this is not a certificate\n")
    conf = tls_conf(tmp_path, "certificate = %s\nkey = %s\n" % (crt, key))
    msg = same_refusal(conf, "postern.conf:%d: [tls] certificate" % line_of(conf, "certificate ="), "not a PEM certificate")
    assert "no PEM block" in msg and "system lib" not in msg, msg


def test_key_is_a_directory(tmp_path):
    crt, _ = make_pair(tmp_path, "a")
    conf = tls_conf(tmp_path, "certificate = %s\nkey = %s\n" % (crt, tmp_path))
    same_refusal(conf, "postern.conf:%d: [tls] key" % line_of(conf, "key ="), "is a directory")


def test_key_encrypted(tmp_path):
    crt, key = make_pair(tmp_path, "a", encrypt=True)
    conf = tls_conf(tmp_path, "certificate = %s\nkey = %s\n" % (crt, key))
    same_refusal(conf, "postern.conf:%d: [tls] key" % line_of(conf, "key ="), "passphrase", "openssl pkey")


def test_key_does_not_match_certificate(tmp_path):
    crt, _ = make_pair(tmp_path, "a")
    _, other = make_pair(tmp_path, "b")
    conf = tls_conf(tmp_path, "certificate = %s\nkey = %s\n" % (crt, other))
    same_refusal(conf, "postern.conf:%d: [tls] key" % line_of(conf, "key ="), "does not belong to the certificate")


def test_sni_certificate_missing(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var", extra="tls = starttls\n\n[certificate other]\n"
                        "certificate = /nonexistent/o.crt\nkey = /nonexistent/o.key\nnames = other.example\n")
    same_refusal(conf, "postern.conf:%d: [certificate other] certificate" % line_of(conf, "[certificate other]"),
                 "no such file")


def test_relay_credentials_missing(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var",
                        extra="\n[relay]\nhost = 127.0.0.1\ncredentials = %s/creds\n" % tmp_path)
    same_refusal(conf, "postern.conf:%d: [relay] credentials" % line_of(conf, "credentials ="), "cannot read")


def test_relay_credentials_readable_by_others(tmp_path):
    creds = tmp_path / "creds"
    creds.write_text("user secret\n")
    creds.chmod(0o644)
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var",
                        extra="\n[relay]\nhost = 127.0.0.1\ncredentials = %s\n" % creds)
    same_refusal(conf, "postern.conf:%d: [relay] credentials" % line_of(conf, "credentials ="), "chmod 600")


def test_user_does_not_exist(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var", server={"user": "no-such-postern-user"})
    same_refusal(conf, "postern.conf:%d: [server] user" % line_of(conf, "user ="), "no user", "useradd")


def test_data_dir_cannot_be_created(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "missing" / "deeper" / "var")
    same_refusal(conf, "postern.conf:%d: [server] data_dir" % line_of(conf, "data_dir ="), "cannot be created",
                 "mkdir -p")


def test_data_dir_is_a_file(tmp_path):
    (tmp_path / "var").write_text("")
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var")
    same_refusal(conf, "postern.conf:%d: [server] data_dir" % line_of(conf, "data_dir ="), "not a directory")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start as root and own files")
def test_data_dir_not_owned_by_user(tmp_path):
    (tmp_path / "var").mkdir()
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var", server={"user": "nobody", "run_as_root": "no"})
    same_refusal(conf, "postern.conf:%d: [server] data_dir" % line_of(conf, "data_dir ="), "chown -R nobody")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start as root and own files")
def test_data_dir_not_writable_by_user(tmp_path):
    (tmp_path / "var").mkdir()
    os.chown(tmp_path / "var", 65534, 65534)
    (tmp_path / "var").chmod(0o500)
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var", server={"user": "nobody", "run_as_root": "no"})
    same_refusal(conf, "postern.conf:%d: [server] data_dir" % line_of(conf, "data_dir ="), "not writable by nobody",
                 "chmod u+rwx")


def test_port_in_use(tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        conf = write_config(tmp_path / "postern.conf", tmp_path / "var")
        conf.write_text(conf.read_text().replace("port = 0", "port = %d" % port))
        same_refusal(conf, "postern.conf:%d: [listener smtp]" % line_of(conf, "[listener smtp]"), str(port),
                     "in use", "another program")
    finally:
        blocker.close()


def test_port_of_own_running_server_is_fine(server):
    """check-config before a restart: the port is taken by this very server."""
    import time
    deadline = time.monotonic() + 10   # the control socket opens after the ports
    while "event=started" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    text = server.config.read_text().replace("port = 0", "port = %d" % server.port)
    server.config.write_text(text)
    p = run_cli(["check-config"], conf=server.config)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("ciphers", ["NULL:eNULL", "aNULL", "ECDHE-ECDSA-NULL-SHA"])
def test_ciphers_without_encryption_refused(tmp_path, ciphers):
    conf = tls_conf(tmp_path, "ciphers = %s\n" % ciphers)
    same_refusal(conf, "postern.conf:%d: [tls] ciphers" % line_of(conf, "ciphers ="), "no TLS 1.2 cipher",
                 "remove the setting")


def test_ciphers_for_another_key_type_refused(tmp_path):
    crt, key = make_pair(tmp_path, "r", kind="rsa")
    conf = tls_conf(tmp_path, "certificate = %s\nkey = %s\nciphers = ECDHE-ECDSA-AES128-GCM-SHA256\n" % (crt, key))
    same_refusal(conf, "postern.conf:%d: [tls] ciphers" % line_of(conf, "ciphers ="), "RSA certificate")


def test_ciphers_unknown_refused(tmp_path):
    conf = tls_conf(tmp_path, "ciphers = NO-SUCH-CIPHER\n")
    same_refusal(conf, "postern.conf:%d: [tls] ciphers" % line_of(conf, "ciphers ="), "no cipher OpenSSL knows")


def test_good_tls_config_checks_and_serves(server_factory, tmp_path):
    crt, key = make_pair(tmp_path, "good", kind="rsa")
    srv = server_factory(start=False, extra="tls = starttls\n\n[tls]\ncertificate = %s\nkey = %s\n"
                         "ciphers = ECDHE+AESGCM\n" % (crt, key))
    p = run_cli(["check-config"], conf=srv.config)
    assert p.returncode == 0, p.stderr
    srv.start()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a file only root can read")
def test_key_unreadable(tmp_path):
    """Run both commands as nobody with a key only root may read: the reason is the
    permission, said as such (not OpenSSL's "system lib")."""
    import shutil
    import tempfile
    from conftest import postern_bin
    d = tempfile.mkdtemp(prefix="postern-perm-")
    try:
        os.chmod(d, 0o755)
        base = __import__("pathlib").Path(d)
        crt, key = make_pair(base, "a")
        crt.chmod(0o644)
        var = base / "var"
        var.mkdir()
        os.chown(var, 65534, 65534)
        conf = tls_conf(base, "certificate = %s\nkey = %s\n" % (crt, key))
        conf.chmod(0o644)
        out = []
        for cmd in ("check-config", "serve"):
            p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", postern_bin(), cmd,
                                "-c", str(conf)], capture_output=True, text=True, timeout=20, cwd=d)
            assert p.returncode != 0, (cmd, p.stderr)
            out.append(unescape_log(p.stderr))
        msg = out[0].strip().splitlines()[0][len("postern: "):]
        assert "postern.conf:%d: [tls] key" % line_of(conf, "key =") in msg, msg
        assert "permission denied" in msg and "readable by root" in msg, msg
        assert msg in out[1], out[1]
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("key", ["dnssec_trust_anchor", "tls_ca_file"])
def test_delivery_file_missing_is_refused(tmp_path, key):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var",
                        extra="\n[delivery]\n%s = %s\n" % (key, tmp_path / "absent.pem"))
    n = line_of(conf, "%s =" % key)
    for err in both(conf):
        assert "postern.conf:%d: [delivery] %s: cannot read %s" % (n, key, tmp_path / "absent.pem") in err, err


def test_dnssec_trust_anchor_none_is_accepted(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var", extra="\n[delivery]\ndnssec_trust_anchor = none\n")
    p = run_cli(["check-config"], conf=conf)
    assert p.returncode == 0, p.stderr


def test_skip_networks_bad_network_is_refused(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var",
                        extra="\n[mailauth]\nskip_networks = 127.0.0.0/8 not-a-network\n")
    n = line_of(conf, "skip_networks =")
    for err in both(conf):
        assert "postern.conf:%d" % n in err and "skip_networks" in err, err
        assert "not an address or address/prefix" in err, err


@pytest.mark.parametrize("extra,needle,words", [
    ("milters = rspamd, clamav\n\n[milter rspamd]\nsocket = inet:127.0.0.1:11332\n", "milters =",
     "[listener smtp] milters: no [milter clamav] section"),
    ("milters = rspamd\n\n[milter rspamd]\nsocket = tcp:127.0.0.1\n", "socket =",
     "[milter rspamd] socket: \"tcp:127.0.0.1\" is not unix:/path, inet:host:port or inet6:[address]:port"),
    ("milters = rspamd\n\n[milter rspamd]\nsocket = inet:127.0.0.1:11332\ndefault_action = maybe\n",
     "default_action", "[milter rspamd] default_action: \"maybe\" is not tempfail, accept or reject"),
    ("milters = rspamd\n\n[milter rspamd]\nsocket = inet:127.0.0.1:11332\ncommand_timeout = 0\n",
     "command_timeout", "[milter rspamd] command_timeout"),
    ("milters = rspamd\n\n[milter rspamd]\nsocket = unix:relative\n", "socket =", "unix: needs an absolute path"),
    ("milters = a, a\n\n[milter a]\nsocket = inet:127.0.0.1:1\n", "milters =", "a is listed twice"),
])
def test_milter_settings_are_checked(tmp_path, extra, needle, words):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var", extra=extra)
    n = line_of(conf, needle)
    for err in both(conf):
        assert "postern.conf:%d: " % n in err and words in err, err


def test_milter_section_without_socket(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var", extra="\n[milter rspamd]\ncommand_timeout = 5s\n")
    n = line_of(conf, "[milter rspamd]")
    for err in both(conf):
        assert "postern.conf:%d: [milter rspamd] socket: missing" % n in err, err


def test_milter_settings_accepted(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var", extra=(
        "milters = rspamd, opendkim\n\n[milter rspamd]\nsocket = inet:127.0.0.1:11332\nconnect_timeout = 2s\n"
        "command_timeout = 5s\ncontent_timeout = 2m\ndefault_action = accept\ndisplay_name = Spam filter\n"
        "\n[milter opendkim]\nsocket = unix:/run/opendkim/opendkim.sock\n"
        "\n[milter v6]\nsocket = inet6:[::1]:8891\n\n[milter sendmail_form]\nsocket = inet:8891@127.0.0.1\n"))
    p = run_cli(["check-config"], conf=conf)
    assert p.returncode == 0, p.stderr
