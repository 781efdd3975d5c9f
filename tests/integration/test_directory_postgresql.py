"""The PostgreSQL directory ([directory] backend = postgresql), against a real PostgreSQL
server this module starts (pg_support.py: initdb, pg_ctl, loopback, its own directory):

* `postern directory migrate` creates the versioned schema once (postern_schema), and
  every admin command works on it;
* a user added while the server runs logs in at once over SMTP AUTH and POP3, and mail
  to an alias of theirs is accepted, with no restart and no cache to wait for;
* the database stopped: RCPT gets 451 4.3.0 (temporary, never 5xx) at once, the log
  names PostgreSQL and why, and service resumes when the database is back;
* the database slow (a table lock held by psql): the lookup gives up at [directory]
  timeout with a temporary refusal and the log says it did not answer in time."""
import poplib
import re
import smtplib
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Server, write_config  # noqa: E402
from pg_support import PostgreSQL, pg_bindir  # noqa: E402
from submission_support import listener_sections, tls_context, wait_ports  # noqa: E402

pytestmark = pytest.mark.skipif(pg_bindir() is None, reason="PostgreSQL is not installed (scripts/install-deps test)")

ALICE = "alice@example.test"


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    p = PostgreSQL(tmp_path_factory.mktemp("pg") / "cluster").init().start()
    yield p
    p.cleanup()


def directory_section(pg, db, timeout="2s", pool=2):
    return ("\n[directory]\nbackend = postgresql\nconnection = %s\ntimeout = %s\npool = %d\n"
            % (pg.connection(db), timeout, pool))


def pg_server(server_factory, pg, db, timeout="2s", pool=2, users=(ALICE,)):
    """A server on database db (not started); server_factory stops it whatever happens."""
    pg.create_database(db)
    extra = listener_sections() + ("\n[listener pop3]\naddress = 127.0.0.1\nport = 0\nrole = pop3\n"
                                   "tls = starttls\n") + directory_section(pg, db, timeout, pool)
    srv = server_factory(users=(), extra=extra, start=False)
    assert srv.cli("domain", "add", "example.test").returncode == 0
    for u in users:
        srv.add_user(u)
    return srv


def rcpt(srv, address):
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
        s.ehlo("client.example")
        s.mail("someone@elsewhere.example")
        t0 = time.monotonic()
        code, text = s.rcpt(address)
        return code, text.decode(errors="replace"), time.monotonic() - t0


def test_migrate_creates_the_versioned_schema_once(tmp_path, pg):
    pg.create_database("migrate_once")
    conf = write_config(tmp_path / "p.conf", tmp_path / "var", extra=directory_section(pg, "migrate_once"))
    srv = Server.__new__(Server)     # only the CLI: no users, no listener started
    srv.config = conf
    first = srv.cli("directory", "migrate")
    m = re.search(r"from version 0 to (\d+)", first.stdout)
    assert first.returncode == 0 and m and int(m.group(1)) >= 2, first.stdout + first.stderr
    again = srv.cli("directory", "migrate")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout
    assert pg.psql("SELECT max(version) FROM postern_schema", db="migrate_once").strip() == m.group(1)
    tables = set(pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", db="migrate_once").split())
    assert {"domains", "users", "aliases", "sender_grants", "app_passwords", "postern_schema",
            "postern_nodes", "postern_events", "postern_state_feed"} <= tables, tables
    status = srv.cli("directory", "status")
    assert status.returncode == 0 and "backend postgresql: answers, 0 domains" in status.stdout, status.stdout


def test_users_added_while_running_log_in_at_once(tmp_path, pg, server_factory):
    srv = pg_server(server_factory, pg, "live_users", users=())
    srv.start()
    ports = wait_ports(srv, ["submission", "pop3"])
    code, text, _ = rcpt(srv, ALICE)
    assert code == 550 and "5.1.1" in text, text
    srv.add_user(ALICE, "first-password")          # while the server runs
    assert srv.cli("alias", "add", "info@example.test", ALICE).returncode == 0
    assert pg.psql("SELECT address FROM users", db="live_users").split() == [ALICE]
    code, text, _ = rcpt(srv, "info@example.test")
    assert code == 250, text
    with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=10) as s:
        s.starttls(context=tls_context())
        s.login(ALICE, "first-password")
        s.sendmail(ALICE, [ALICE], b"Subject: via postgresql\r\n\r\nhello\r\n")
    p = poplib.POP3("127.0.0.1", ports["pop3"], timeout=10)
    p.stls(context=tls_context())
    p.user(ALICE)
    p.pass_("first-password")
    p.quit()
    with pytest.raises(smtplib.SMTPAuthenticationError):
        with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=10) as s:
            s.starttls(context=tls_context())
            s.login(ALICE, "wrong-password")
    srv.stop()


def test_database_down_refuses_for_now_and_service_resumes(tmp_path, pg, server_factory):
    srv = pg_server(server_factory, pg, "down_db", timeout="3s")
    srv.start()
    assert rcpt(srv, ALICE)[0] == 250
    pg.stop()
    try:
        code, text, took = rcpt(srv, ALICE)
        assert code == 451 and "4.3.0" in text and "directory" in text, text
        assert took < 5, took
        m = re.search(r"event=directory_error .*PostgreSQL[^\n]*", srv.log())
        assert m, srv.log()[-2000:]
        assert "cannot connect" in m.group(0) or "connection failed" in m.group(0), m.group(0)
    finally:
        pg.start()
    code, text, _ = rcpt(srv, ALICE)          # the broken connection is replaced, no restart
    assert code == 250, text
    srv.stop()


def test_slow_database_times_out_with_a_temporary_refusal(tmp_path, pg, server_factory):
    srv = pg_server(server_factory, pg, "slow_db", timeout="2s")
    srv.start()
    assert rcpt(srv, ALICE)[0] == 250
    locker = pg.psql_session(db="slow_db")
    try:
        locker.stdin.write("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
        locker.stdin.flush()
        assert locker.stdout.readline().strip() == "locked", "psql did not take the lock"
        code, text, took = rcpt(srv, ALICE)
        assert code == 451 and "4.3.0" in text, text
        assert 1.5 < took < 6, took
        assert re.search(r"event=directory_error .*(did not answer within 2000 ms|did not answer in time)", srv.log()), \
            srv.log()[-2000:]
    finally:
        locker.stdin.write("ROLLBACK;\n\\q\n")
        locker.stdin.flush()
        locker.wait(10)
    code, text, _ = rcpt(srv, ALICE)
    assert code == 250, text
    srv.stop()


def test_export_from_sqlite_import_into_postgresql_and_back(tmp_path, pg, server_factory):
    # a SQLite directory with one of each kind of record
    lite = write_config(tmp_path / "lite.conf", tmp_path / "lite")
    cli = Server.__new__(Server)
    cli.config = lite
    for args in (("domain", "add", "example.test"), ("alias", "add", "info@example.test", ALICE),
                 ("sender", "allow", ALICE, "@other.example"), ("user", "quota", ALICE, "10M"),
                 ("user", "admin", ALICE, "yes"), ("user", "limit", ALICE, "--messages-per-hour", "7")):
        if args[0] == "alias":
            cli.add_user(ALICE, "the-password")
        p = cli.cli(*args)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
    # a name with a space and a percent sign: both are escaped in the file (%20, %25)
    app = cli.cli("app-password", "add", ALICE, "--name", "my phone 100%41")
    app_pw = re.search(r"^\s+(\S+-\S+)\s*$", app.stdout, re.M).group(1)
    first = tmp_path / "lite.export"
    p = cli.cli("directory", "export", str(first))
    assert p.returncode == 0 and "1 domains, 1 users, 1 aliases, 1 sender grants, 1 app passwords" in p.stdout, \
        p.stdout + p.stderr
    assert first.stat().st_mode & 0o777 == 0o600
    assert cli.cli("directory", "export", str(first)).returncode == 1      # never over a file
    # into PostgreSQL: the same password and app password log in there
    srv = pg_server(server_factory, pg, "imported", users=())
    p = srv.cli("directory", "import", str(first))
    # pg_server made the domain already: it is counted as there, the rest is new
    assert p.returncode == 0 and "imported 0 domains, 1 users, 1 aliases, 1 sender grants, 1 app passwords " \
        "(1 already there" in p.stdout, p.stdout + p.stderr
    again = srv.cli("directory", "import", str(first))
    assert again.returncode == 0 and "(5 already there" in again.stdout, again.stdout
    srv.start()
    ports = wait_ports(srv, ["submission", "pop3"])
    for password in ("the-password", app_pw):
        with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=10) as s:
            s.starttls(context=tls_context())
            s.login(ALICE, password)
    srv.stop()
    shown = srv.cli("user", "show", ALICE).stdout
    assert "admin: yes" in shown and "messages/hour 7" in shown, shown
    # and back into a new SQLite directory: the export is the same, record for record
    second = tmp_path / "pg.export"
    assert srv.cli("directory", "export", str(second)).returncode == 0
    back = write_config(tmp_path / "back.conf", tmp_path / "back")
    cli.config = back
    assert cli.cli("directory", "import", str(second)).returncode == 0
    third = tmp_path / "back.export"
    assert cli.cli("directory", "export", str(third)).returncode == 0
    assert first.read_text() == second.read_text() == third.read_text()
    # a file cut short is refused, saying so
    cut = tmp_path / "cut.export"
    cut.write_text("\n".join(first.read_text().splitlines()[:-1]) + "\n")
    p = cli.cli("directory", "import", str(cut))
    assert p.returncode == 1 and "cut short" in p.stderr, p.stderr
