"""A real browser for the tests of the account pages: Debian's chromium, headless,
driven through Debian's chromium-driver by python3-selenium (contracts14.md §D).

    with browser(tmp_path) as driver:
        web_login(driver, base_url, "alice@example.test", "secret")
        shot(driver, "overview")

The browser has its own profile under tmp_path, reaches nothing but loopback (every
other host name resolves to nothing, background networking is off), and its
chromedriver listens on 127.0.0.1 on a port the kernel picks; both are stopped by
pid when the block ends.  Screenshots go to $POSTERN_ARTIFACTS, or
tests/integration/artifacts/ (gitignored), named after the test.  Keep browsers few:
one per test module (a module-scoped fixture), not one per test."""
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
START_TIMEOUT = 20.0
PAGE_TIMEOUT = 15.0

ARTIFACTS = Path(os.environ.get("POSTERN_ARTIFACTS") or Path(__file__).resolve().parent / "artifacts")


def _need_browser():
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("python3-selenium is missing: scripts/install-deps test installs it")
    for p in (CHROMIUM, CHROMEDRIVER):
        if not os.access(p, os.X_OK):
            pytest.fail("%s is missing: scripts/install-deps test installs chromium and chromium-driver" % p)


def _start_driver(log_path):
    """chromedriver on 127.0.0.1, port 0 (it prints the one it got); (process, port)."""
    logf = open(log_path, "wb")
    proc = subprocess.Popen([CHROMEDRIVER, "--port=0", "--allowed-ips=127.0.0.1", "--log-level=WARNING"],
                            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                            start_new_session=True)
    logf.close()
    deadline = time.monotonic() + START_TIMEOUT
    pat = re.compile(rb"started successfully on port (\d+)")
    while time.monotonic() < deadline:
        m = pat.search(Path(log_path).read_bytes())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    _stop_pid(proc)
    pytest.fail("chromedriver did not start within %.0fs:\n%s" % (START_TIMEOUT, Path(log_path).read_text(errors="replace")))


def _stop_pid(proc):
    """SIGTERM to chromedriver's process group (it started chromium in it), then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _options(profile):
    from selenium.webdriver.chrome.options import Options
    o = Options()
    o.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--user-data-dir=%s" % profile, "--window-size=1100,900", "--no-first-run",
              "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--disable-default-apps", "--disable-extensions", "--disable-breakpad",
              "--disable-client-side-phishing-detection", "--disable-domain-reliability",
              "--metrics-recording-only", "--password-store=basic", "--use-mock-keychain",
              # Nothing but this machine: every name but the loopback ones resolves to nothing.
              "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"):
        o.add_argument(a)
    return o


@contextlib.contextmanager
def browser(tmp_path):
    """A selenium webdriver for a headless chromium with its own profile under tmp_path."""
    _need_browser()
    from selenium import webdriver
    base = Path(tmp_path) / "browser"
    shutil.rmtree(base, ignore_errors=True)
    (base / "profile").mkdir(parents=True)
    proc, port = _start_driver(base / "chromedriver.log")
    driver = None
    try:
        driver = webdriver.Remote(command_executor="http://127.0.0.1:%d" % port, options=_options(base / "profile"))
        driver.set_page_load_timeout(PAGE_TIMEOUT)
        yield driver
    finally:
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.quit()
        _stop_pid(proc)


def shot(driver, name):
    """Save a PNG of the page as it is now; returns its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    path = ARTIFACTS / ("%s.png" % safe)
    # The whole page, not just the window: as tall as the document.
    height = driver.execute_script("return Math.max(document.body.scrollHeight, 400)")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(int(height) + 120, 4000))
    driver.save_screenshot(str(path))
    return path


def click_and_wait(driver, element, timeout=PAGE_TIMEOUT):
    """Click a link or a submit button and return once the next page has replaced this one
    (selenium's click does not wait for the navigation it starts)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def replaced(_):
        # While the page changes chromium may say "stale element" or "node does not
        # belong to the document": both mean the old page is gone.
        try:
            old.is_enabled()
            return False
        except WebDriverException:
            return True

    def loaded(d):
        try:
            return d.execute_script("return document.readyState") == "complete"
        except WebDriverException:
            return False

    WebDriverWait(driver, timeout).until(replaced)
    WebDriverWait(driver, timeout).until(loaded)


def web_login(driver, base_url, address, password):
    """Open /login, fill in the form and send it; returns once the next page loaded."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(base_url.rstrip("/") + "/login")
    form = WebDriverWait(driver, PAGE_TIMEOUT).until(EC.presence_of_element_located((By.CSS_SELECTOR, "form[action='/login']")))
    form.find_element(By.NAME, "address").clear()
    form.find_element(By.NAME, "address").send_keys(address)
    form.find_element(By.NAME, "password").send_keys(password)
    click_and_wait(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
