"""The account pages (issue 14, service "account"): a real `postern serve` with an http
listener on loopback, a real browser (headless chromium through selenium) that signs in,
sees the overview, makes an app password that smtplib then logs in to submission with,
revokes it (the SMTP login then fails); screenshots of each page.  Each test has its
own account where the throttle could mix them up (bob: the browser, carol: the throttle).  And the security of
the pages with http.client: the CSRF token, the cookie's attributes, the
Content-Security-Policy and no inline script, hostile text shown as text, session
expiry, the login throttle shared with SMTP."""
import http.client
import re
import smtplib
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser_support import browser, click_and_wait, shot, web_login  # noqa: E402
from conftest import Server  # noqa: E402
from submission_support import listener_sections, smtplib_login, wait_ports  # noqa: E402

ALICE, BOB, CAROL, PASSWORD = "alice@example.test", "bob@example.test", "carol@example.test", "secret"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
COOKIE_RE = re.compile(r"^postern_session=([A-Za-z0-9_-]{43}); Path=/; HttpOnly; Secure; SameSite=Strict$")
CSRF_RE = re.compile(r'name="csrf" value="([A-Za-z0-9_-]+)"')
WEB = "\n[listener web]\naddress = 127.0.0.1\nport = 0\nrole = http\n"
AUTH = "\n[auth]\naccount_ip_failures = 3\n"


def start_server(root, extra=""):
    srv = Server(root, users=(ALICE, BOB, CAROL), extra=listener_sections() + WEB + AUTH + extra)
    srv.start()
    srv.ports = wait_ports(srv, ["smtp", "submission", "web"])
    return srv


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("webapp"))
    assert s.cli("user", "quota", BOB, "10M").returncode == 0   # the quota page with a limit
    yield s
    s.stop()
    problems = s.check_after()
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    with browser(tmp_path_factory.mktemp("browser")) as d:
        yield d


def request(srv, method, path, body=None, cookie=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", srv.ports["web"], timeout=15)
    h = dict(headers or {})
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


def sign_in(srv, user=ALICE, password=PASSWORD):
    """(session cookie value, csrf token) after a POST /login."""
    st, h, body = request(srv, "POST", "/login", {"address": user, "password": password})
    assert st == 303 and h["location"] == "/", (st, body)
    m = COOKIE_RE.match(h["set-cookie"])
    assert m, h["set-cookie"]
    st, _, page = request(srv, "GET", "/app-passwords", cookie=m.group(1))
    assert st == 200, page
    return m.group(1), CSRF_RE.search(page).group(1)


# -- the browser ---------------------------------------------------------------------

def test_browser_signs_in_makes_and_revokes_an_app_password(srv, driver):
    from selenium.webdriver.common.by import By
    base = "http://127.0.0.1:%d" % srv.ports["web"]
    driver.get(base + "/")
    assert driver.current_url.endswith("/login"), driver.current_url   # not signed in: to the form
    shot(driver, "web_login")
    web_login(driver, base, BOB, PASSWORD)
    assert driver.current_url == base + "/", driver.current_url
    main = driver.find_element(By.TAG_NAME, "main").text
    assert "signed in as " + BOB in main, main
    links = {a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "ul.pages a")}
    assert {base + "/app-passwords", base + "/quota"} <= links, links
    shot(driver, "web_overview")

    click_and_wait(driver, driver.find_element(By.LINK_TEXT, "App passwords"))
    driver.find_element(By.ID, "name").send_keys("Phone")
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form[action='/app-passwords'] button"))
    pw = driver.find_element(By.ID, "new-password").text.strip()
    assert re.fullmatch(r"[A-Za-z0-9]{4}(-[A-Za-z0-9]{4})+", pw), pw
    shot(driver, "web_app_password_made")

    s = smtplib_login(srv, BOB, pw)       # the device's password works for submission
    s.quit()
    # ... and does not open the web page (the account's own password only)
    st, _, body = request(srv, "POST", "/login", {"address": BOB, "password": pw})
    assert st == 401 and "app password" in body, (st, body)

    driver.get(base + "/app-passwords")
    row = driver.find_element(By.XPATH, "//tr[td[@data-label='Name' and normalize-space()='Phone']]")
    assert "UTC" in row.find_element(By.CSS_SELECTOR, "td[data-label='Last used']").text   # it was used
    click_and_wait(driver, row.find_element(By.CSS_SELECTOR, "button.danger"))
    assert 'App password "Phone" revoked' in driver.find_element(By.CSS_SELECTOR, "p.flash").text
    assert not driver.find_elements(By.XPATH, "//td[normalize-space()='Phone']")
    shot(driver, "web_app_password_revoked")
    with pytest.raises(smtplib.SMTPAuthenticationError):
        smtplib_login(srv, BOB, pw)

    click_and_wait(driver, driver.find_element(By.LINK_TEXT, "Quota"))
    assert "Your mailbox holds 0 bytes of 10.0 MB (0%)" in driver.find_element(By.TAG_NAME, "main").text
    shot(driver, "web_quota")
    size = driver.get_window_size()
    driver.set_window_size(390, 844)                    # a phone: one column, nothing cut off
    driver.get(base + "/app-passwords")
    assert driver.execute_script("return document.documentElement.scrollWidth") <= 390
    shot(driver, "web_app_passwords_phone")
    driver.set_window_size(size["width"], size["height"])
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form.signout button"))
    assert "You are signed out." in driver.find_element(By.TAG_NAME, "main").text
    driver.get(base + "/quota")
    assert driver.current_url.endswith("/login?next=/quota"), driver.current_url


# -- security -------------------------------------------------------------------------

def test_post_without_or_with_a_wrong_csrf_token_is_refused(srv):
    cookie, csrf = sign_in(srv)
    for form in ({"name": "Laptop"}, {"name": "Laptop", "csrf": "x" * 43}, {"name": "Laptop", "csrf": ""}):
        st, _, body = request(srv, "POST", "/app-passwords", form, cookie=cookie)
        assert st == 403 and "security token (CSRF token)" in body, (st, body)
    st, _, page = request(srv, "GET", "/app-passwords", cookie=cookie)
    assert "Laptop" not in page                       # nothing was made
    st, _, body = request(srv, "POST", "/app-passwords", {"name": "Laptop", "csrf": csrf}, cookie=cookie)
    assert st == 200 and 'id="new-password"' in body  # with the token it is


def test_cookie_has_exactly_the_attributes(srv):
    st, h, _ = request(srv, "POST", "/login", {"address": ALICE, "password": PASSWORD})
    assert st == 303 and COOKIE_RE.match(h["set-cookie"]), h
    first = COOKIE_RE.match(h["set-cookie"]).group(1)
    # a second sign-in with the old cookie gets a new id, and the old one is dead
    st, h, _ = request(srv, "POST", "/login", {"address": ALICE, "password": PASSWORD}, cookie=first)
    second = COOKIE_RE.match(h["set-cookie"]).group(1)
    assert second != first
    assert request(srv, "GET", "/", cookie=first)[0] == 303
    assert request(srv, "GET", "/", cookie=second)[0] == 200


def test_every_page_has_the_csp_and_no_inline_script(srv):
    cookie, _ = sign_in(srv)
    for path in ("/login", "/", "/app-passwords", "/quota"):
        st, h, body = request(srv, "GET", path, cookie=cookie if path != "/login" else None)
        assert st == 200, (path, st, body)
        assert h["content-security-policy"] == CSP, path
        assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"
        assert h["cache-control"] == "no-store"
        assert h["content-type"] == "text/html; charset=utf-8"
        for tag in re.findall(r"<script\b[^>]*>", body):
            assert re.search(r'\bsrc="/static/', tag), (path, tag)
        assert not re.search(r"<script\b[^>]*>[^<]", body), path
        assert not re.search(r"\son[a-z]+\s*=", body), path          # no inline handlers
        assert not re.search(r"\sstyle\s*=", body), path             # no inline style either
    st, h, css = request(srv, "GET", "/static/style.css")
    assert st == 200 and h["content-type"].startswith("text/css") and "@media" in css
    st, h, js = request(srv, "GET", "/static/app.js")
    assert st == 200 and h["content-type"].startswith("text/javascript") and "clipboard" in js


def test_hostile_text_is_shown_as_text(srv, driver):
    from selenium.webdriver.common.by import By
    cookie, csrf = sign_in(srv)
    name = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    st, _, body = request(srv, "POST", "/app-passwords", {"name": name, "csrf": csrf}, cookie=cookie)
    assert st == 200, body
    st, _, page = request(srv, "GET", "/app-passwords", cookie=cookie)
    assert name not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    # the browser shows the very characters, and ran nothing
    base = "http://127.0.0.1:%d" % srv.ports["web"]
    web_login(driver, base, ALICE, PASSWORD)
    driver.get(base + "/app-passwords")
    names = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "td[data-label='Name']")]
    assert name in names, names
    assert not driver.find_elements(By.CSS_SELECTOR, "main img")
    shot(driver, "web_hostile_name")
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form.signout button"))


def test_signing_in_leads_back_to_the_page_asked_for(srv):
    st, h, _ = request(srv, "GET", "/quota")
    assert st == 303 and h["location"] == "/login?next=/quota", h
    st, _, page = request(srv, "GET", "/login?next=/quota")
    assert '<input type="hidden" name="next" value="/quota">' in page
    form = {"address": ALICE, "password": PASSWORD, "next": "/quota"}
    st, h, _ = request(srv, "POST", "/login", form)
    assert st == 303 and h["location"] == "/quota", h
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example"):   # never another site
        st, h, _ = request(srv, "POST", "/login", dict(form, next=elsewhere))
        assert st == 303 and h["location"] == "/", (elsewhere, h)


def test_login_throttle_is_shared_with_smtp(srv):
    for _ in range(3):                                  # [auth] account_ip_failures = 3
        st, _, body = request(srv, "POST", "/login", {"address": CAROL, "password": "wrong"})
        assert st == 401, body
    st, h, body = request(srv, "POST", "/login", {"address": CAROL, "password": PASSWORD})
    assert st == 429 and "set-cookie" not in h, (st, body)
    assert re.search(r"Too many failed sign-ins to carol@example\.test from your address \(127\.0\.0\.1\): "
                     r"this account may not sign in from there until \d\d:\d\d UTC", body), body
    with pytest.raises(smtplib.SMTPException) as e:   # the same block for a mail program
        smtplib_login(srv, CAROL, PASSWORD)
    assert "until" in str(e.value), e.value


def test_session_ends_after_idle_time(tmp_path):
    srv = start_server(tmp_path / "idle", "\n[web]\nsession_idle = 2s\n")
    try:
        cookie, _ = sign_in(srv)
        assert request(srv, "GET", "/", cookie=cookie)[0] == 200
        time.sleep(2.5)                                 # longer than session_idle, once
        st, h, _ = request(srv, "GET", "/", cookie=cookie)
        assert st == 303 and h["location"] == "/login"
        st, _, body = request(srv, "POST", "/logout", {"csrf": "x"}, cookie=cookie)
        assert st == 401 and "not signed in" in body
    finally:
        srv.stop()
        assert not srv.check_after()


def test_a_broken_template_stops_the_start_with_file_and_line(tmp_path):
    import os
    import shutil
    import subprocess
    from conftest import postern_bin, write_config
    data = tmp_path / "data"
    shutil.copytree(Path(__file__).resolve().parents[2] / "data", data)
    (data / "web" / "quota.html").write_text("<p>\n{{#if limit}}\n<b>{{used}}</b>\n")
    conf = write_config(tmp_path / "p.conf", tmp_path / "var", extra=WEB)
    env = dict(os.environ, POSTERN_DATA_DIR=str(data))
    p = subprocess.run([postern_bin(), "check-config", "-c", str(conf)], env=env, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0, p.stdout + p.stderr
    assert "web/quota.html:2: {{#if limit}} is not closed: the file ends first" in p.stdout + p.stderr
    p = subprocess.run([postern_bin(), "serve", "-c", str(conf)], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "event=startup_error" in p.stderr and "web/quota.html:2:" in p.stderr, p.stderr
