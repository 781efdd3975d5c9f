"""`postern doctor` against a real Postfix (Debian's postfix package), so the causes are
proven on a server nobody here wrote (issue 6): a private Postfix instance on a loopback
port, with its own config directory, queue and log (as bench/run starts one), set up like
a submission server: STARTTLS with a certificate from the test CA, AUTH only after TLS,
relaying only for logged-in clients (smtpd_relay_restrictions = permit_sasl_authenticated,
reject_unauth_destination) and sender ownership (smtpd_sender_login_maps +
reject_sender_login_mismatch).  Postfix's SASL is Dovecot's: a private Dovecot instance
that runs only its auth service (passwd-file) on a socket in the test's directory.

Causes checked: not logged in (Postfix: "554 5.7.1 ... Relay access denied"), wrong
password ("535 5.7.8"), sender mismatch ("553 5.7.1 ... not owned by user", at RCPT
because of Postfix's smtpd_delay_reject), and the all-good case.  Needs root (postfix
start) and the postfix and dovecot-core packages; skipped otherwise.  Every process
started here is stopped, and every wait is bounded."""
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_cli  # noqa: E402

from test_doctor import NAME, PASSWORD, assert_cause, make_certs  # noqa: E402

POSTFIX = "/usr/sbin/postfix"
DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
START_TIMEOUT = 20
USERS = ("alice@example.test", "bob@example.test")

MASTER_CF = """\
# written by tests/integration/test_doctor_postfix.py: no chroot
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

DOVECOT_CONF = """\
# private Dovecot: only the auth service, for Postfix's SASL
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener {d}/auth-postfix {{
    mode = 0666
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0600
  }}
}}
"""


def tail(path, n=3000):
    try:
        return Path(path).read_bytes()[-n:].decode("utf-8", "replace")
    except OSError:
        return "(no %s)" % path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_banner(port, deadline):
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.settimeout(3)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def wait_gone(pid, seconds):
    deadline = time.monotonic() + seconds
    while pid and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.1)
    return not pid


def read_pid(path):
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


class PrivateDovecotAuth:
    def __init__(self, d):
        self.dir = d
        self.conf = d / "dovecot.conf"
        self.socket = d / "auth-postfix"
        self.started = False

    def start(self):
        for sub in ("run", "state"):
            (self.dir / sub).mkdir(parents=True)
        (self.dir / "passwd").write_text("".join("%s:{PLAIN}%s::::::\n" % (u, PASSWORD) for u in USERS))
        os.chmod(self.dir / "passwd", 0o644)   # read by the auth process (user dovecot)
        self.conf.write_text(DOVECOT_CONF.format(d=self.dir))
        self.started = True
        with open(self.dir / "start.out", "wb") as out:
            p = subprocess.run([DOVECOT, "-c", str(self.conf)], stdin=subprocess.DEVNULL, stdout=out,
                               stderr=out, timeout=30)
        if p.returncode != 0:
            raise RuntimeError("dovecot did not start: %s %s" % (tail(self.dir / "start.out"),
                                                               tail(self.dir / "dovecot.log")))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and not self.socket.exists():
            time.sleep(0.05)
        if not self.socket.exists():
            raise RuntimeError("dovecot made no auth socket: %s" % tail(self.dir / "dovecot.log"))

    def stop(self):
        if not self.started:
            return
        self.started = False
        pid = read_pid(self.dir / "run" / "master.pid")
        if pid:
            os.kill(pid, signal.SIGTERM)      # what `doveadm stop` does, without its wait
        else:
            try:
                subprocess.run([DOVEADM, "-c", str(self.conf), "stop"], capture_output=True, timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if pid and not wait_gone(pid, 10):
            os.kill(pid, signal.SIGKILL)


class PrivatePostfix:
    def __init__(self, d, auth_socket, cert, key):
        self.dir = d
        self.etc, self.spool, self.data = d / "etc", d / "spool", d / "data"
        self.logpath = d / "maillog"
        self.auth_socket, self.cert, self.key = auth_socket, cert, key
        self.started = False
        self.port = None

    def cmd(self, action, timeout=60):
        r = subprocess.run([POSTFIX, "-c", str(self.etc), action], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        return r.returncode, r.stdout.decode(errors="replace")

    def start(self):
        pw = pwd.getpwnam("postfix")
        for x in (self.etc, self.spool, self.data):
            x.mkdir(parents=True)
        os.chown(self.data, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.spool,
            "data_directory": self.data,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": NAME,
            "mydomain": "example.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "maillog_file": self.logpath,
            "maillog_file_prefixes": self.dir,
            "virtual_mailbox_domains": "example.test",
            "virtual_mailbox_maps": "texthash:%s" % (self.etc / "vmailbox"),
            "virtual_transport": "discard:",
            "default_transport": "discard:",
            "local_transport": "discard:",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "smtpd_error_sleep_time": "0s",     # no pause after each refusal: the test stays short
            # a submission server: STARTTLS, AUTH only inside TLS, relaying only after login
            "smtpd_tls_security_level": "may",
            "smtpd_tls_cert_file": self.cert,
            "smtpd_tls_key_file": self.key,
            "smtpd_tls_auth_only": "yes",
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": self.auth_socket,
            "smtpd_relay_restrictions": "permit_sasl_authenticated, reject_unauth_destination",
            "smtpd_sender_login_maps": "texthash:%s" % (self.etc / "senders"),
            "smtpd_sender_restrictions": "reject_sender_login_mismatch",
        }
        with open(self.etc / "main.cf", "w") as f:
            f.write("# written by tests/integration/test_doctor_postfix.py\n")
            f.writelines("%s = %s\n" % kv for kv in main.items())
        (self.etc / "master.cf").write_text(MASTER_CF.format(listen="127.0.0.1:%d" % self.port))
        (self.etc / "vmailbox").write_text("".join("%s example.test/%s/\n" % (u, u.split("@")[0]) for u in USERS))
        (self.etc / "senders").write_text("".join("%s %s\n" % (u, u) for u in USERS))
        rc, out = self.cmd("check")
        if rc != 0:
            raise RuntimeError("postfix check failed: %s %s" % (out, tail(self.logpath)))
        self.started = True
        rc, out = self.cmd("start")
        if rc != 0:
            raise RuntimeError("postfix start failed: %s %s" % (out, tail(self.logpath)))
        if not wait_banner(self.port, time.monotonic() + START_TIMEOUT):
            raise RuntimeError("private Postfix does not answer on port %d: %s" % (self.port, tail(self.logpath)))

    def stop(self):
        if not self.started:
            return
        self.started = False
        pid = read_pid(self.spool / "pid" / "master.pid")
        try:
            rc, _ = self.cmd("stop", timeout=30)
        except subprocess.TimeoutExpired:
            rc = -1
        if rc != 0:
            try:
                self.cmd("abort", timeout=30)
            except subprocess.TimeoutExpired:
                pass
        if pid and not wait_gone(pid, 15):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def postfix(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a private Postfix instance needs root (postfix start)")
    # scripts/install-deps test installs postfix and dovecot-core: missing means broken
    for path in (POSTFIX, DOVECOT, DOVEADM):
        if not os.access(path, os.X_OK):
            pytest.fail("%s missing (Debian packages postfix, dovecot-core; scripts/install-deps test)" % path)
    try:
        pwd.getpwnam("postfix"), pwd.getpwnam("dovecot"), pwd.getpwnam("dovenull"), grp.getgrnam("postdrop")
    except KeyError as e:
        pytest.fail("system user or group missing: %s (created by the postfix and dovecot-core packages)" % e)
    root = tmp_path_factory.mktemp("pf")
    # the Postfix daemons (user postfix) and Dovecot's auth (user dovecot) must reach their files
    for p in [root] + list(root.parents):
        if str(p).startswith(("/tmp/", "/var/tmp/")) or p == root:
            os.chmod(p, os.stat(p).st_mode | 0o755)
    ca, cert, key = make_certs(root / "pki")
    os.chmod(key, 0o644)
    auth = PrivateDovecotAuth(root / "dovecot")
    pf = PrivatePostfix(root / "postfix", auth.socket, cert, key)
    try:
        auth.start()
        pf.start()
        pf.ca = ca
        yield pf
    except RuntimeError as e:
        pytest.fail(str(e))
    finally:
        pf.stop()
        auth.stop()
        shutil.rmtree(root / "postfix" / "spool", ignore_errors=True)


def doctor(pf, *args, password=None):
    cmd = ["doctor", "--server", "127.0.0.1", "--json", "--connect-timeout", "3", "--timeout", "8",
           "--ports", "587=%d" % pf.port, "--tls-name", NAME, "--ca-file", str(pf.ca)] + list(args)
    if password is not None:
        cmd.append("--password-stdin")
    p = run_cli(cmd, input=(password + "\n") if password is not None else None, timeout=60)
    try:
        out = json.loads(p.stdout)
    except ValueError:
        pytest.fail("doctor printed no JSON (rc=%d):\n%s\n%s\nmaillog:\n%s"
                    % (p.returncode, p.stdout, p.stderr, tail(pf.logpath)))
    return p, out


def test_postfix_all_good(postfix):
    p, out = doctor(postfix, "--user", "alice@example.test", password=PASSWORD)
    assert p.returncode == 0, json.dumps(out, indent=1) + tail(postfix.logpath)
    assert out["ports"][0]["security"] == "STARTTLS" and "PLAIN" in out["ports"][0]["auth"], out["ports"]
    assert out["settings"]["security"] == "STARTTLS", out["settings"]


def test_postfix_not_logged_in(postfix):
    p, out = doctor(postfix)
    assert_cause(p, out, "not_authenticated", 7)
    msg = out["verdict"]["message"]
    assert "Relay access denied" in msg and "503 valid RCPT command must precede DATA" in msg, msg


def test_postfix_sender_mismatch(postfix):
    p, out = doctor(postfix, "--user", "alice@example.test", "--from", "bob@example.test", password=PASSWORD)
    # Postfix checks smtpd_sender_restrictions at RCPT (smtpd_delay_reject = yes, the default)
    assert_cause(p, out, "sender_not_owned", 7)
    msg = out["verdict"]["message"]
    assert "not owned by user alice@example.test" in msg and "bob@example.test" in msg, msg


def test_postfix_wrong_password(postfix):
    # last: Dovecot delays the next logins from an address after a failed one (auth penalty)
    p, out = doctor(postfix, "--user", "alice@example.test", password="wrong")
    assert_cause(p, out, "wrong_credentials", 5)
    assert "535 5.7.8" in out["verdict"]["message"], out["verdict"]
