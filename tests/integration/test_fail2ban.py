"""The fail2ban filter (data/fail2ban/filter.d/postern.conf) against a log a real
server wrote: failed SMTP AUTH and POP3 logins and a relay attempt match, with the
client's address; successful logins and local submissions do not.  fail2ban-regex
is fail2ban's own tester (Debian package fail2ban)."""
import re
import shutil
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

from pop3_support import RawPOP3
from submission_support import wait_ports

FILTER = Path(__file__).resolve().parents[2] / "data" / "fail2ban" / "filter.d" / "postern.conf"
JAIL = Path(__file__).resolve().parents[2] / "data" / "fail2ban" / "jail.d" / "postern.conf"
EXTRA = ("\n[listener subplain]\naddress = 127.0.0.1\nport = 0\nrole = submission\ntls = none\n"
         "allow_plaintext_auth = yes\n"
         "\n[listener pop3plain]\naddress = 127.0.0.1\nport = 0\nrole = pop3\ntls = none\n"
         "allow_plaintext_auth = yes\n")


def smtp_login(port, source, password):
    c = smtplib.SMTP("127.0.0.1", port, timeout=15, source_address=(source, 0))
    try:
        c.ehlo("client.example")
        c.user, c.password = "alice@example.test", password
        c.auth("PLAIN", c.auth_plain)   # one mechanism: one attempt (login() would retry with LOGIN)
        return True
    except smtplib.SMTPAuthenticationError:
        return False
    finally:
        try:
            c.quit()
        except smtplib.SMTPException:
            pass


def pop3_login(port, source, password):
    p = RawPOP3(port, source=source, timeout=15)
    try:
        ok = p.cmd("USER alice@example.test").startswith("+OK") and p.cmd("PASS " + password).startswith("+OK")
    finally:
        p.close()
    return ok


def wait_count(srv, pattern, n, timeout=15.0):
    deadline = time.monotonic() + timeout
    while len(re.findall(pattern, srv.log())) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(re.findall(pattern, srv.log())) >= n, srv.log()[-4000:]


def test_fail2ban_filter_matches_real_log(server_factory, tmp_path):
    if not shutil.which("fail2ban-regex"):
        pytest.fail("fail2ban-regex is missing: apt-get install fail2ban (scripts/install-deps, profile test)")
    srv = server_factory(extra=EXTRA, start=False)
    srv.start()
    ports = wait_ports(srv, ["smtp", "subplain", "pop3plain"])
    assert not smtp_login(ports["subplain"], "127.0.0.2", "wrong-1")
    assert not smtp_login(ports["subplain"], "127.0.0.2", "wrong-2")
    assert not pop3_login(ports["pop3plain"], "127.0.0.3", "wrong-3")
    assert smtp_login(ports["subplain"], "127.0.0.5", "secret")
    assert pop3_login(ports["pop3plain"], "127.0.0.5", "secret")
    c = smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=15, source_address=("127.0.0.4", 0))
    c.ehlo("relay.example")
    c.mail("someone@example.org")
    code, _ = c.rcpt("victim@example.net")
    assert code == 554
    c.quit()
    wait_count(srv, r"event=login_failed", 3)
    wait_count(srv, r"event=login conn=", 2)
    log = tmp_path / "postern.log"
    log.write_text(srv.log())
    p = subprocess.run(["fail2ban-regex", "-o", "ip", str(log), str(FILTER)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    ips = p.stdout.split()
    assert sorted(ips) == ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.4"], p.stdout + p.stderr
    p = subprocess.run(["fail2ban-regex", str(log), str(FILTER)], capture_output=True, text=True, timeout=60)
    m = re.search(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched", p.stdout)
    assert m and int(m.group(3)) == 4, p.stdout
    # The jail example names the filter and parses as fail2ban configuration.
    assert "filter   = postern" in JAIL.read_text()
