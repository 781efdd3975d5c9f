"""postern import dovecot-passwd and postfix-virtual: a Dovecot passwd-file whose
hashes were made by Dovecot's own `doveadm pw` (and `mkpasswd` for traditional DES)
logs in over SMTP AUTH and POP3 after import; {ARGON2ID} (which libxcrypt cannot
check) and users of other domains are refused in words; {PLAIN} is hashed with a
warning.  A Postfix virtual(5) map becomes aliases where one address goes to one
user, and every other form is listed."""
import smtplib
import subprocess

import pytest

from pop3_support import RawPOP3
from submission_support import wait_ports

EXTRA = ("\n[listener subplain]\naddress = 127.0.0.1\nport = 0\nrole = submission\ntls = none\n"
         "allow_plaintext_auth = yes\n"
         "\n[listener pop3plain]\naddress = 127.0.0.1\nport = 0\nrole = pop3\ntls = none\n"
         "allow_plaintext_auth = yes\n")
SCHEMES = ("SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "MD5-CRYPT", "CRYPT")


def doveadm_pw(scheme, password):
    p = subprocess.run(["doveadm", "pw", "-s", scheme, "-p", password], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def smtp_auth(port, user, password):
    c = smtplib.SMTP("127.0.0.1", port, timeout=15)
    try:
        c.ehlo("client.example")
        c.user, c.password = user, password
        c.auth("PLAIN", c.auth_plain)
        return True
    except smtplib.SMTPAuthenticationError:
        return False
    finally:
        c.quit()


def pop3_auth(port, user, password):
    p = RawPOP3(port, timeout=15)
    try:
        return p.cmd("USER " + user).startswith("+OK") and p.cmd("PASS " + password).startswith("+OK")
    finally:
        p.close()


@pytest.fixture
def srv(server_factory):
    s = server_factory(extra=EXTRA, users=(), start=False)
    s.start()
    s.ports = wait_ports(s, ["subplain", "pop3plain"])
    return s


def test_import_dovecot_passwd_logs_in(srv, tmp_path):
    lines, users = [], {}
    for scheme in SCHEMES:
        user = "u-%s@example.test" % scheme.lower()
        users[user] = "pw-" + scheme
        lines.append("%s:%s:1000:1000::/home/x::userdb_quota_rule=*:storage=1G" % (user, doveadm_pw(scheme, users[user])))
    des = subprocess.run(["mkpasswd", "-m", "descrypt", "pw-des"], capture_output=True, text=True, timeout=30)
    assert des.returncode == 0, des.stderr
    users["u-des@example.test"] = "pw-des"
    lines.append("u-des@example.test:{CRYPT}%s:::" % des.stdout.strip())
    users["u-plain@example.test"] = "pw-plain"
    lines.append("u-plain@example.test:{PLAIN}pw-plain::")
    lines.append("u-argon@example.test:%s::" % doveadm_pw("ARGON2ID", "pw-argon"))
    lines.append("someone@elsewhere.example:%s::" % doveadm_pw("SHA512-CRYPT", "x"))
    lines.append("# a comment")
    lines.append("bare:%s::" % doveadm_pw("SHA512-CRYPT", "x"))
    f = tmp_path / "users"
    f.write_text("\n".join(lines) + "\n")
    p = srv.cli("import", "dovecot-passwd", str(f))
    assert p.returncode == 1, p.stdout + p.stderr   # three lines not imported
    out = p.stdout
    assert "7 imported, 0 already there, 3 not imported" in out, out
    assert "u-argon@example.test not imported: libxcrypt on this machine cannot verify this {ARGON2ID} hash" in out
    assert "someone@elsewhere.example not imported: elsewhere.example is not a local domain" in out
    assert "bare not imported: no domain" in out
    assert "u-plain@example.test imported; warning: its password was in clear text" in out
    for user, password in users.items():
        assert smtp_auth(srv.ports["subplain"], user, password), user
        assert pop3_auth(srv.ports["pop3plain"], user, password), user
    assert not smtp_auth(srv.ports["subplain"], "u-sha512-crypt@example.test", "wrong")
    # Again: nothing changes, each user is kept as it is.
    p = srv.cli("import", "dovecot-passwd", str(f))
    assert "0 imported, 7 already there, 3 not imported" in p.stdout, p.stdout


def test_import_postfix_virtual(srv, tmp_path):
    srv.add_user("alice@example.test")
    srv.add_user("bob@example.test")
    f = tmp_path / "virtual"
    f.write_text("# Postfix virtual alias map\n"
                 "sales@example.test   alice@example.test\n"
                 "info@example.test\n"
                 "    bob@example.test\n"
                 "team@example.test    alice@example.test, bob@example.test\n"
                 "@example.test        alice@example.test\n"
                 "fwd@example.test     someone@elsewhere.example\n"
                 "alice@example.test   alice@example.test\n"
                 "\n"
                 "x@other.example      alice@example.test\n")
    p = srv.cli("import", "postfix-virtual", str(f))
    out = p.stdout
    assert p.returncode == 1, out + p.stderr
    assert "alias sales@example.test -> alice@example.test imported" in out
    assert "alias info@example.test -> bob@example.test imported" in out   # a continuation line
    assert "team@example.test not imported: several results" in out
    assert "@example.test not imported: a catch-all" in out
    assert "fwd@example.test not imported" in out and "forwarding elsewhere is not an alias" in out
    assert "x@other.example not imported: the address's domain is not local" in out
    assert "2 imported, 1 already there, 4 not imported" in out, out
    listed = srv.cli("alias", "list").stdout
    assert "sales@example.test -> alice@example.test" in listed and "info@example.test -> bob@example.test" in listed
