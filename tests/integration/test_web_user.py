"""The user's own pages of the account service (contracts14.md §C), in a real browser
(Debian's chromium through python3-selenium, browser_support.py), against one server
for the module:

* "My outgoing mail" (/mail): messages refused before they were accepted — no login on
  the mx port (the port-25 trap), an unknown local user, a full mailbox — and one
  returned by a remote server's 550 (an aiosmtpd receiver on 127.0.0.2, found through
  dnsmasq's MX), each found with its cause and the fix; a Subject holding <script> is
  shown as text; another account's event id is a 404;
* "Set up a device" (/setup): the settings are the listeners' real (bound) ports; an app
  password made for a device is shown once with a QR code that zbarimg (Debian
  zbar-tools) decodes from the browser's screenshot to the same password, which logs in;
  the Apple profile made with an app password verifies with `openssl cms -verify`;
* "Test my settings" (/test): the doctor's checks pass with the right password and name
  the login step with a wrong one.
Screenshots of each page go to the artefacts directory."""
import http.client
import io
import plistlib
import re
import smtplib
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser_support import PAGE_TIMEOUT, browser, click_and_wait, shot, web_login  # noqa: E402
from conftest import Server, write_config  # noqa: E402
from delivery_support import AioReceiver, Dns, delivery_config_text, free_port  # noqa: E402
from helpers import SMTPConn  # noqa: E402
from pop3_support import lf_message, put_message  # noqa: E402
from submission_support import auth_plain, connect, connect_tls, listener_sections, tls_context, wait_ports  # noqa: E402

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
PASSWORD = "secret"
ZBARIMG = "/usr/bin/zbarimg"
NAMES = ["smtp", "submission", "submissions", "pop3s", "web"]
MORE = """
[listener pop3s]
address = 127.0.0.1
port = 0
role = pop3
tls = implicit

[listener web]
address = 127.0.0.1
port = 0
role = http
services = account, autoconfig

[events]
enabled = yes
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """dnsmasq (d2.test's MX is 127.0.0.2), a receiver there that refuses one
    recipient with 550, and Postern with mx, submission, POP3 and web listeners."""
    root = tmp_path_factory.mktemp("webuser")
    dns = Dns(root / "dns").start()
    remote_port = free_port(("127.0.0.2",))
    rx = AioReceiver(["127.0.0.2"], remote_port,
                     rcpt_reply=lambda a, o, n: "550 5.1.1 <%s>: Recipient address rejected: User unknown" % a
                     if a.startswith("gone@") else None).start()
    srv = Server(root / "srv", users=(ALICE, BOB, CAROL), extra="")
    extra = listener_sections() + MORE + delivery_config_text(dns.port, remote_port)
    write_config(srv.config, srv.data_dir, queue={"retry_min": "1s", "retry_max": "2s"}, extra=extra)
    # carol's mailbox is over its quota before the server starts
    put_message(srv, CAROL, lf_message("filler", ["y" * 100] * 40))
    assert srv.cli("user", "quota", CAROL, "1K").returncode == 0
    srv.start()
    srv.ports = wait_ports(srv, NAMES)
    srv.base = "http://127.0.0.1:%d" % srv.ports["web"]
    try:
        yield srv, rx
    finally:
        srv.stop()
        rx.stop()
        dns.stop()
        problems = srv.check_after()
        assert not problems, problems


@pytest.fixture(scope="module")
def driver(env, tmp_path_factory):
    with browser(tmp_path_factory.mktemp("browser")) as d:
        yield d


def _signed_in(driver, srv, address):
    """The browser signed in as address (signing out whoever was)."""
    from selenium.webdriver.common.by import By
    driver.get(srv.base + "/")
    who = driver.find_elements(By.CSS_SELECTOR, ".who")
    if who and who[0].text.strip() == address:
        return
    if who:
        click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form.signout button"))
    web_login(driver, srv.base, address, PASSWORD)


def _page_text(driver, srv, path):
    from selenium.webdriver.common.by import By
    driver.get(srv.base + path)
    return driver.find_element(By.TAG_NAME, "main").text


def _poll_page(driver, srv, path, want, timeout=15.0):
    """Reload path until every string of want is on it (the event store writes in the
    background); returns the text."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = _page_text(driver, srv, path)
        if all(w in text for w in want):
            return text
        time.sleep(0.3)
    pytest.fail("%s never showed %r; it shows:\n%s" % (path, want, text))


def _refuse_port25(srv):
    """A mail program set up on the mx port without login: relaying denied."""
    with connect(srv, "smtp") as c:
        c.ehlo("laptop.example")
        assert c.cmd("MAIL FROM:<%s>" % ALICE).code == 250
        r = c.cmd("RCPT TO:<friend@other.example>")
        assert r.code == 554, r
        c.cmd("QUIT")


def _submit(srv, rcpts, subject, user=ALICE):
    """Logged in on the submission port; returns the RCPT replies and the qid (or None)."""
    with connect_tls(srv, "submission") as c:
        auth_plain(c, user, PASSWORD)
        assert c.cmd("MAIL FROM:<%s>" % user).code == 250
        replies = [c.cmd("RCPT TO:<%s>" % r) for r in rcpts]
        qid = None
        if any(r.code == 250 for r in replies):
            body = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nhello\r\n" % (user, rcpts[0], subject)).encode()
            r = c.data(body)
            assert r.code == 250, r
            qid = r.qid
        c.cmd("QUIT")
        return replies, qid


def test_outgoing_mail_shows_each_refusal_with_cause_and_fix(env, driver):
    srv, rx = env
    _refuse_port25(srv)
    replies, _ = _submit(srv, ["nobody@example.test"], "unknown user")
    assert replies[0].code == 550, replies
    replies, _ = _submit(srv, [CAROL], "to a full mailbox")
    assert replies[0].code in (452, 552), replies
    _, qid = _submit(srv, ["gone@d2.test"], "to a remote that refuses")
    assert qid
    _signed_in(driver, srv, ALICE)
    text = _poll_page(driver, srv, "/mail", ["Refused at RCPT", "friend@other.example", "nobody@example.test",
                                             CAROL, "to a remote that refuses", "returned"])
    shot(driver, "web_user_outgoing")
    from selenium.webdriver.common.by import By
    links = {a.text: a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "table.outgoing a")}
    rows = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "table.outgoing tbody tr")]

    def detail_of(needle):
        for row, a in zip(rows, driver.find_elements(By.CSS_SELECTOR, "table.outgoing tbody tr a")):
            if needle in row:
                return a.get_attribute("href")
        pytest.fail("no row with %r in %s" % (needle, rows))

    port25, unknown, full = detail_of("friend@other.example"), detail_of("nobody@example.test"), detail_of(CAROL)
    returned = links["to a remote that refuses"]
    # the port-25 trap: not logged in, cause not_authenticated, the fix for Thunderbird marked
    driver.get(port25 + "?program=thunderbird")
    t = driver.find_element(By.TAG_NAME, "main").text
    assert "not logged in" in t and "554" in t, t
    assert "wrong_port" in t or "not_authenticated" in t, t
    mine = driver.find_elements(By.CSS_SELECTOR, "li.mine")
    assert mine and "Thunderbird" in mine[0].text, t
    assert re.search(r"Reference\s+\S+", t), t
    shot(driver, "web_user_refusal_port25")
    driver.get(unknown)
    t = driver.find_element(By.TAG_NAME, "main").text
    assert "550" in t and "5.1.1" in t and "nobody@example.test" in t and "What to change" in t, t
    driver.get(full)
    t = driver.find_element(By.TAG_NAME, "main").text
    assert "mailbox_full" in t or "quota" in t.lower(), t
    assert "What to change" in t, t
    shot(driver, "web_user_refusal_full")
    # the remote's 550: returned, its words and what they mean
    driver.get(returned)
    t = _poll_page(driver, srv, urllib.parse.urlparse(returned).path, ["returned", "User unknown"])
    assert "gone@d2.test" in t and "5.1.1" in t and "Cause" in t, t
    shot(driver, "web_user_returned")
    assert text.index("to a remote that refuses") < text.index("friend@other.example"), "newest first"


def test_hostile_subject_is_text_and_others_events_are_404(env, driver):
    srv, _ = env
    from selenium.webdriver.common.by import By
    hostile = "<script>document.title='owned'</script><b>bold</b>"
    _, qid = _submit(srv, ["someone@d2.test"], hostile)
    # bob's own refusal: its event id must not open for alice
    _submit(srv, ["nobody2@example.test"], "bob's", user=BOB)
    _signed_in(driver, srv, BOB)
    _poll_page(driver, srv, "/mail", ["nobody2@example.test"])
    bob_href = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "table.outgoing a")][0]
    bob_id = bob_href.rsplit("/", 1)[1].split("?")[0]
    assert bob_id.isdigit(), bob_href
    _signed_in(driver, srv, ALICE)
    _poll_page(driver, srv, "/mail", [hostile])
    assert driver.title != "owned"
    assert "&lt;script&gt;" in driver.page_source and "<b>bold</b>" not in driver.page_source
    assert not driver.find_elements(By.CSS_SELECTOR, "main b"), "the <b> of the subject became markup"
    driver.get(srv.base + "/mail/" + bob_id)
    t = driver.find_element(By.TAG_NAME, "main").text
    assert "Not found" in t and "nobody2" not in t, t
    shot(driver, "web_user_not_yours")
    # the status is 404 too (the page's words say so to a person; a script sees it here)
    cookie = driver.get_cookie("postern_session")["value"]
    for path in ("/mail/" + bob_id, "/mail/" + qid[:-1] + ("0" if qid[-1] != "0" else "1")):
        c = http.client.HTTPConnection("127.0.0.1", srv.ports["web"], timeout=10)
        c.request("GET", path, headers={"Cookie": "postern_session=" + cookie})
        r = c.getresponse()
        assert r.status == 404, (path, r.status)
        assert b"nobody2" not in r.read()
        c.close()


def test_setup_settings_are_the_bound_ports_and_qr_decodes(env, driver):
    srv, _ = env
    from selenium.webdriver.common.by import By
    _signed_in(driver, srv, ALICE)
    driver.get(srv.base + "/setup")
    ports = {(r.get_attribute("class").split()[0], int(r.get_attribute("data-port")))
             for r in driver.find_elements(By.CSS_SELECTOR, "table.settings-table tbody tr")}
    assert ports == {("incoming", srv.ports["pop3s"]), ("outgoing", srv.ports["submissions"]),
                     ("outgoing", srv.ports["submission"])}, ports
    assert str(srv.ports["smtp"]) not in driver.find_element(By.CSS_SELECTOR, "table.settings-table").text
    shot(driver, "web_user_setup")
    driver.get(srv.base + "/setup/android")
    steps = driver.find_element(By.CSS_SELECTOR, "ol.steps").text
    assert str(srv.ports["pop3s"]) in steps and str(srv.ports["submissions"]) in steps, steps
    driver.find_element(By.ID, "device").send_keys("Test phone")
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form[action='/setup/android'] button"))
    pw = driver.find_element(By.ID, "new-password").text.strip()
    assert len(pw) > 20, pw
    qr = driver.find_element(By.CSS_SELECTOR, "figure.qr-code svg")
    png = qr.screenshot_as_png
    shot(driver, "web_user_setup_qr")
    out = subprocess.run([ZBARIMG, "--raw", "-q", "-"], input=png, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().strip() == pw
    # the app password is real: it logs in on the submission port
    with smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], context=tls_context(), timeout=10) as s:
        s.login(ALICE, pw)


def _form_csrf(driver):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")


def test_apple_profile_with_app_password_verifies(env, driver, tmp_path):
    srv, _ = env
    _signed_in(driver, srv, ALICE)
    driver.get(srv.base + "/setup/iphone")
    shot(driver, "web_user_setup_iphone")
    csrf, cookie = _form_csrf(driver), driver.get_cookie("postern_session")["value"]
    c = http.client.HTTPConnection("127.0.0.1", srv.ports["web"], timeout=10)
    c.request("POST", "/setup/apple/profile", body=urllib.parse.urlencode({"csrf": csrf, "with_password": "yes"}),
              headers={"Cookie": "postern_session=" + cookie, "Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    der = r.read()
    c.close()
    assert r.status == 200 and r.getheader("Content-Type") == "application/x-apple-aspen-config", (r.status, der[:300])
    (tmp_path / "p.der").write_bytes(der)
    cert = srv.data_dir / "tls" / "selfsigned.crt"
    p = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "p.der"),
                        "-CAfile", str(cert), "-out", str(tmp_path / "p.plist")], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0 and "Verification successful" in p.stderr, p.stderr
    mail = plistlib.loads((tmp_path / "p.plist").read_bytes())["PayloadContent"][0]
    assert mail["OutgoingMailServerPortNumber"] == srv.ports["submissions"], mail
    assert mail["IncomingMailServerPortNumber"] == srv.ports["pop3s"], mail
    pw = mail["IncomingPassword"]
    assert pw == mail["OutgoingPassword"] and pw != PASSWORD
    with smtplib.SMTP_SSL("127.0.0.1", srv.ports["submissions"], context=tls_context(), timeout=10) as s:
        s.login(ALICE, pw)


def _run_test(driver, srv, port, security, password):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    driver.get(srv.base + "/test")
    Select(driver.find_element(By.ID, "port")).select_by_value(str(port))
    Select(driver.find_element(By.ID, "security")).select_by_value(security)
    Select(driver.find_element(By.ID, "pop3_port")).select_by_value(str(srv.ports["pop3s"]))
    driver.find_element(By.ID, "password").send_keys(password)
    # The doctor's run takes seconds: read the page only once the answer replaced the form
    # (reading at once met the old page going away: a stale element).
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form[action='/test'] button"), timeout=45)
    return driver.find_element(By.TAG_NAME, "main").text


def test_test_my_settings_passes_and_names_the_failing_step(env, driver):
    srv, _ = env
    _signed_in(driver, srv, ALICE)
    t0 = time.monotonic()
    t = _run_test(driver, srv, srv.ports["submissions"], "tls", PASSWORD)
    assert "Everything works" in t, t
    assert re.search(r"ok\s+login", t) and "POP3" in t, t
    shot(driver, "web_user_test_ok")
    t = _run_test(driver, srv, srv.ports["submission"], "starttls", "Wr0ng-Pa55-9x")
    assert "Failed at: login" in t and "wrong_credentials" in t, t
    shot(driver, "web_user_test_wrong_password")
    t = _run_test(driver, srv, srv.ports["submission"], "tls", PASSWORD)   # STARTTLS port, told SSL/TLS
    assert "Failed at: TLS and certificate" in t and "tls_mode_mismatch" in t, t
    assert time.monotonic() - t0 < 60
    assert "Wr0ng-Pa55-9x" not in srv.all_logs()
