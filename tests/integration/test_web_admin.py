"""The administrator's pages (issue 14, contracts14.md §C): a real `postern serve` with an
http listener on loopback and a smarthost that is down (so mail stays in the queue), a
real browser (headless chromium through selenium) signed in as an administrator
(`postern user admin`) that holds, releases, deletes and bounces queued messages on
/admin/queue, sees the refusals this test provokes (an unknown user, a relay attempt)
by cause on /admin/refusals with each cause's explanation, and unblocks a throttled
account on /admin/throttled, after which smtplib logs in again.  With http.client: a
signed-in account that is not an administrator gets 403 in words on every admin page,
a signed-out browser is sent to /login, and a POST without the CSRF token is refused.
Screenshots of each page go to the artefacts."""
import http.client
import json
import re
import smtplib
import socket
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser_support import PAGE_TIMEOUT, browser, click_and_wait, shot, web_login  # noqa: E402
from conftest import Server  # noqa: E402
from submission_support import listener_sections, simple_msg, smtplib_login, wait_ports  # noqa: E402

ADMIN, BOB, CAROL, DAVE = ("%s@example.test" % n for n in ("alice", "bob", "carol", "dave"))
PASSWORD = "secret"
COOKIE_RE = re.compile(r"^postern_session=([A-Za-z0-9_-]{43});")
CSRF_RE = re.compile(r'name="csrf" value="([A-Za-z0-9_-]+)"')
WEB = "\n[listener web]\naddress = 127.0.0.1\nport = 0\nrole = http\n"
AUTH = "\n[auth]\naccount_ip_failures = 3\n"
ADMIN_PAGES = ("/admin/queue", "/admin/queue/0123456789ABCDEF", "/admin/refusals", "/admin/throttled",
               "/admin/explain/unknown_recipient")
HOSTILE_SUBJECT = "<script>alert('queue')</script> & more"


def closed_port():
    """A loopback port nothing listens on: the smarthost that is down."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    relay = "\n[relay]\nhost = 127.0.0.1\nport = %d\ntls = none\n" % closed_port()
    s = Server(tmp_path_factory.mktemp("webadmin"), users=(ADMIN, BOB, CAROL, DAVE),
               queue={"retry_min": "10m"}, extra=listener_sections() + WEB + AUTH + relay)
    p = s.cli("user", "admin", ADMIN, "yes")
    assert p.returncode == 0, p.stderr
    s.start()
    s.ports = wait_ports(s, ["smtp", "submission", "web"])
    yield s
    s.stop()
    problems = s.check_after()
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    with browser(tmp_path_factory.mktemp("browser")) as d:
        yield d


def request(srv, method, path, body=None, cookie=None):
    c = http.client.HTTPConnection("127.0.0.1", srv.ports["web"], timeout=15)
    h = {}
    if cookie:
        h["Cookie"] = "postern_session=" + cookie
    if body is not None:
        body = urllib.parse.urlencode(body)
        h["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode("utf-8", "replace")
    finally:
        c.close()


def sign_in(srv, user):
    """(session cookie, csrf token) of a new session of user."""
    st, h, body = request(srv, "POST", "/login", {"address": user, "password": PASSWORD})
    assert st == 303, (st, body)
    cookie = COOKIE_RE.match(h["set-cookie"]).group(1)
    st, _, page = request(srv, "GET", "/app-passwords", cookie=cookie)
    assert st == 200, page
    return cookie, CSRF_RE.search(page).group(1)


def browse(driver, srv, path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get("http://127.0.0.1:%d%s" % (srv.ports["web"], path))
    WebDriverWait(driver, PAGE_TIMEOUT).until(EC.presence_of_element_located((By.TAG_NAME, "main")))
    return driver.find_element(By.TAG_NAME, "main").text


def sign_in_browser(driver, srv):
    driver.delete_all_cookies()
    web_login(driver, "http://127.0.0.1:%d" % srv.ports["web"], ADMIN, PASSWORD)


def click(driver, css):
    from selenium.webdriver.common.by import By
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, css))
    return driver.find_element(By.TAG_NAME, "main").text


def queue_json(srv):
    p = srv.cli("queue", "list", "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def wait_for(what, fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    for _ in range(400):
        v = fn()
        if v or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert v, "timed out waiting for " + what
    return v


def submit(srv, user, to, subject):
    s = smtplib_login(srv, user, PASSWORD)
    try:
        s.sendmail(user, [to], simple_msg(sender=user, to=to, subject=subject))
    finally:
        s.quit()


def deferred_from(srv, sender, n):
    def ids():
        got = [m["id"] for m in queue_json(srv) if m.get("sender") == sender and m["state"] == "deferred"]
        return got if len(got) >= n else None
    return wait_for("%d deferred message(s) from %s" % (n, sender), ids)


# --- who may see the pages ------------------------------------------------------------

def test_non_admin_and_signed_out_are_refused(srv):
    cookie, csrf = sign_in(srv, DAVE)
    for path in ADMIN_PAGES:
        st, h, body = request(srv, "GET", path, cookie=cookie)
        assert st == 403, (path, st, body)
        assert "Administrators only" in body and "is not an administrator" in body, (path, body)
        assert "postern user admin" in body, body
        st, h, _ = request(srv, "GET", path)
        assert st == 303 and h["location"].startswith("/login"), (path, st, h)
    for path, form in (("/admin/queue/action", {"action": "flush"}), ("/admin/throttled/unblock", {"key": "x"})):
        st, _, body = request(srv, "POST", path, dict(form, csrf=csrf), cookie=cookie)
        assert st == 403 and "not an administrator" in body, (path, st, body)
    # the nav of a non-admin has no admin pages
    _, _, page = request(srv, "GET", "/", cookie=cookie)
    assert "/admin/queue" not in page, page


def test_post_without_csrf_is_refused(srv):
    cookie, csrf = sign_in(srv, ADMIN)
    for form in ({"action": "flush"}, {"action": "flush", "csrf": "x" + csrf[1:]}):
        st, _, body = request(srv, "POST", "/admin/queue/action", form, cookie=cookie)
        assert st == 403, (form, st, body)
    st, _, body = request(srv, "POST", "/admin/throttled/unblock", {"key": "127.0.0.9"}, cookie=cookie)
    assert st == 403, (st, body)
    assert "event=admin_action by=alice@example.test action=flush" not in srv.log()
    # with the token it runs, and says so on the next page
    st, h, _ = request(srv, "POST", "/admin/queue/action", {"action": "flush", "csrf": csrf}, cookie=cookie)
    assert st == 303 and h["location"] == "/admin/queue", (st, h)
    _, _, page = request(srv, "GET", "/admin/queue", cookie=cookie)
    assert "Flushing the queue: flushing:" in page, page
    assert "event=admin_action by=alice@example.test action=flush qid=- status=done" in srv.log()


# --- the queue -------------------------------------------------------------------------

def test_admin_holds_releases_deletes_and_bounces(srv, driver):
    submit(srv, BOB, "one@remote.example", HOSTILE_SUBJECT)
    submit(srv, BOB, "two@remote.example", "second")
    first, second = deferred_from(srv, BOB, 2)[:2]
    sign_in_browser(driver, srv)
    text = browse(driver, srv, "/admin/queue?" + urllib.parse.urlencode({"sender": BOB, "state": "deferred"}))
    assert first in text and second in text and "<%s>" % BOB in text, text
    assert "one@remote.example" in text and "last:" in text, text
    shot(driver, "admin_queue")
    text = browse(driver, srv, "/admin/queue/" + first)
    assert "deferred" in text and "one@remote.example" in text, text
    # the hostile subject is shown as text in the header block, never run
    assert HOSTILE_SUBJECT in text, text
    assert "<script>alert" not in driver.page_source, "the subject reached the page unescaped"
    shot(driver, "admin_message")
    text = click(driver, "button[value=hold]")
    assert "%s is held: it will not be delivered until you release it." % first in text, text
    assert next(m for m in queue_json(srv) if m["id"] == first)["state"] == "held"
    text = browse(driver, srv, "/admin/queue?state=held")
    assert first in text and second not in text, text
    shot(driver, "admin_queue_held")
    browse(driver, srv, "/admin/queue/" + first)
    text = click(driver, "button[value=release]")
    assert "%s is released" % first in text, text
    assert next(m for m in queue_json(srv) if m["id"] == first)["state"] != "held"
    text = click(driver, "button[value=delete]")
    assert "%s is deleted" % first in text, text
    assert first not in [m["id"] for m in queue_json(srv)]
    browse(driver, srv, "/admin/queue/" + second)
    text = click(driver, "button[value=bounce]")
    assert "%s is bounced: it was returned to its sender" % second in text, text
    assert second not in [m["id"] for m in queue_json(srv)]
    shot(driver, "admin_queue_after_bounce")
    # the message gone: its page says so in words
    text = browse(driver, srv, "/admin/queue/" + second)
    assert "There is no message %s in the queue" % second in text, text
    log = srv.log()
    for action, qid in (("hold", first), ("release", first), ("delete", first), ("bounce", second)):
        assert "event=admin_action by=alice@example.test action=%s qid=%s status=done" % (action, qid) in log, action
    # bob got his message back (the bounce is delivered locally)
    assert wait_for("the bounce in bob's mailbox",
                    lambda: list((srv.data_dir / "mail" / "example.test" / "bob").rglob("new/*")) or
                    list(srv.data_dir.rglob("bob/new/*")))


# --- refusals ---------------------------------------------------------------------------

def provoke_refusals(srv):
    s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10)
    try:
        s.ehlo("refused.example")
        s.mail("someone@outside.example")
        code, _ = s.rcpt("nosuchuser@example.test")
        assert code == 550, code
        code, _ = s.rcpt("victim@elsewhere.example")   # a relay attempt without login
        assert code == 554, code
    finally:
        s.close()


def test_refusals_by_cause_with_explanations(srv, driver):
    provoke_refusals(srv)
    sign_in_browser(driver, srv)

    def page_with_causes():
        t = browse(driver, srv, "/admin/refusals")
        # a relay attempt on port 25 is the port-25 trap's cause (a mail program on the wrong port)
        return t if "unknown_recipient" in t and ("wrong_port" in t or "not_authenticated" in t) else None
    text = wait_for("the refusals on /admin/refusals", page_with_causes)
    assert "127.0.0.1" in text, text   # the client address among the top ones
    shot(driver, "admin_refusals")
    text = click(driver, "a[href='/admin/explain/unknown_recipient']")
    assert "What to change" in text, text
    shot(driver, "admin_explain")


# --- the throttle -----------------------------------------------------------------------

def test_throttled_account_unblocked(srv, driver):
    source = "127.0.0.6"
    for i in range(3):
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtplib_login(srv, CAROL, "old-password", source=source)
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        smtplib_login(srv, CAROL, PASSWORD, source=source)
    assert e.value.smtp_code == 454, e.value
    sign_in_browser(driver, srv)
    text = browse(driver, srv, "/admin/throttled")
    assert source in text and CAROL in text and "too many failed logins of its own" in text, text
    shot(driver, "admin_throttled")
    text = click(driver, "form[action='/admin/throttled/unblock'] button")
    assert "%s is unblocked: it may log in again now" % CAROL in text, text
    assert "Nothing is blocked" in text, text
    s = smtplib_login(srv, CAROL, PASSWORD, source=source)
    s.quit()
    assert "event=admin_action by=alice@example.test action=unblock key=\"%s\" status=done" % CAROL in srv.log()
