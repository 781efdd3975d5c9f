"""The directory database holds password hashes: directory.db and its -wal/-shm files
are created mode 0600 (by `postern user add` and by `postern serve`), older files are
narrowed to 0600, and a data directory that others can enter or list is reported at
serve start and by check-config."""
import os
import stat

from conftest import Server, run_cli, sqlite_directory_only


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _db_files(data_dir):
    return [data_dir / n for n in ("directory.db", "directory.db-wal", "directory.db-shm")
            if (data_dir / n).exists()]


@sqlite_directory_only("the modes of directory.db and its -wal/-shm files")
def test_user_add_creates_database_0600(tmp_path):
    srv = Server(tmp_path / "s", users=())
    old = os.umask(0o022)          # an administrator's usual umask
    try:
        srv.add_user("alice@example.test")
    finally:
        os.umask(old)
    files = _db_files(srv.data_dir)
    assert srv.data_dir / "directory.db" in files
    for f in files:
        assert _mode(f) == 0o600, (f, oct(_mode(f)))


@sqlite_directory_only("the modes of directory.db and its -wal/-shm files")
def test_serve_narrows_existing_files_and_warns_about_data_dir(tmp_path):
    srv = Server(tmp_path / "s", users=("alice@example.test",))
    for f in _db_files(srv.data_dir):
        os.chmod(f, 0o644)         # as versions before this one left them
    os.chmod(srv.data_dir, 0o755)  # as `mkdir` with umask 022 makes it
    old = os.umask(0o022)
    try:
        srv.start()
        # a login makes the server open (and write) the database
        with srv.connect() as c:
            c.ehlo()
    finally:
        os.umask(old)
    files = _db_files(srv.data_dir)
    assert files
    for f in files:
        assert _mode(f) == 0o600, (f, oct(_mode(f)))
    log = srv.log()
    assert "event=data_dir_exposed" in log, log
    assert "chmod o-rwx" in log
    p = run_cli(["check-config"], conf=srv.config)
    assert p.returncode == 0, p.stderr
    assert "warning: the data directory" in p.stdout and "0755" in p.stdout, p.stdout
    srv.stop()
    # Fixed as the warning says: no warning any more.
    os.chmod(srv.data_dir, 0o750)
    srv.start()
    assert "event=data_dir_exposed" not in srv.log()
    p = run_cli(["check-config"], conf=srv.config)
    assert "warning: the data directory" not in p.stdout
    srv.stop()
