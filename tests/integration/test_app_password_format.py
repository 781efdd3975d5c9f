"""App passwords carry a selector (their first group) that picks the one hash a login is
checked against (issue 9: the work per attempt no longer tells which accounts have app
passwords; tests/unit/test_credentials.c counts the hash checks).  New ones log in over
SMTP AUTH and POP3; ones made before selectors (legacy) still do while
[auth] legacy_app_passwords = yes, and the database migrates in place."""
import re
import sqlite3
import time

from pop3_support import make_pop3_server, raw_tls
from submission_support import app_password_from, auth_plain, connect_tls, wait_log, wait_ports

from conftest import sqlite_directory_only  # noqa: E402

pytestmark = sqlite_directory_only("the app passwords' rows, and a version-2 database it migrates")


ALICE = "alice@example.test"
NEW_FORM = re.compile(r"^[a-km-np-z2-9]{4}(-[a-km-np-z2-9]{4}){6}$")
LEGACY = "abcd-efgh-ijkm-npqr-stuv-wxyz"


def test_new_app_password_has_a_selector_and_logs_in(server_factory):
    srv = make_pop3_server(server_factory, submission=True)
    p = srv.cli("app-password", "add", ALICE, "--name", "phone")
    assert p.returncode == 0, p.stderr
    pw = app_password_from(p.stdout)
    assert pw and NEW_FORM.match(pw), p.stdout
    db = sqlite3.connect(str(srv.data_dir / "directory.db"))
    (sel,) = db.execute("SELECT selector FROM app_passwords WHERE name = 'phone'").fetchone()
    db.close()
    assert sel == pw[:4]
    with connect_tls(srv, "submission") as c:
        assert auth_plain(c, ALICE, pw).is_(235, "2.7.0")
    with raw_tls(srv, user=None) as c:
        assert c.login(ALICE, pw).startswith("+OK")
        c.cmd("QUIT")
    assert wait_log(srv, r"event=login\b[^\n]*password=app:phone tls=yes")
    # the selector alone is not enough
    with connect_tls(srv, "submission") as c:
        assert auth_plain(c, ALICE, pw[:5] + "aaaa-bbbb-cccc-dddd-eeee-ffff").is_(535, "5.7.8")


def _make_legacy_database(srv):
    """Turn the directory into what a version without selectors left: app_passwords
    without the selector column, one app password of the old six-group form."""
    srv.add_user("tmp@example.test", password=LEGACY)   # borrow a hash of the legacy password
    db = sqlite3.connect(str(srv.data_dir / "directory.db"))
    (h,) = db.execute("SELECT password_hash FROM users WHERE address = 'tmp@example.test'").fetchone()
    db.execute("DELETE FROM users WHERE address = 'tmp@example.test'")
    db.execute("DROP INDEX IF EXISTS app_passwords_selector")
    db.execute("DROP TABLE app_passwords")
    db.execute("CREATE TABLE app_passwords (user TEXT NOT NULL, name TEXT NOT NULL, password_hash TEXT NOT NULL,"
               " created INTEGER NOT NULL, last_used INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (user, name))")
    db.execute("INSERT INTO app_passwords(user, name, password_hash, created) VALUES (?, 'old-phone', ?, ?)",
               (ALICE, h, int(time.time())))
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()


def test_legacy_app_password_still_logs_in_and_is_flagged(server_factory):
    srv = make_pop3_server(server_factory, submission=True)
    srv.stop()
    _make_legacy_database(srv)
    srv.start()
    srv.ports = wait_ports(srv, srv.pop3_names)
    assert wait_log(srv, r"event=legacy_app_passwords count=1 accepted=yes"), srv.log()[-2000:]
    with connect_tls(srv, "submission") as c:
        assert auth_plain(c, ALICE, LEGACY).is_(235, "2.7.0")
    assert wait_log(srv, r"event=login\b[^\n]*password=app:old-phone legacy=yes")
    p = srv.cli("app-password", "list", ALICE)
    assert "old-phone" in p.stdout and "old format" in p.stdout, p.stdout
    # a new one next to it, in the migrated database
    p = srv.cli("app-password", "add", ALICE, "--name", "new-phone")
    pw = app_password_from(p.stdout)
    assert pw and NEW_FORM.match(pw), p.stdout + p.stderr
    with raw_tls(srv, user=None) as c:
        assert c.login(ALICE, pw).startswith("+OK")
        c.cmd("QUIT")


def test_legacy_app_passwords_can_be_switched_off(server_factory):
    srv = make_pop3_server(server_factory, submission=True, auth={"legacy_app_passwords": "no"})
    srv.stop()
    _make_legacy_database(srv)
    srv.start()
    srv.ports = wait_ports(srv, srv.pop3_names)
    assert wait_log(srv, r"event=legacy_app_passwords count=1 accepted=no"), srv.log()[-2000:]
    with connect_tls(srv, "submission") as c:
        assert auth_plain(c, ALICE, LEGACY).is_(535, "5.7.8")
    with connect_tls(srv, "submission") as c:
        assert auth_plain(c, ALICE, "secret").is_(235, "2.7.0")
