"""The admin command: check-config, user and domain management."""
import pytest

from conftest import run_cli, write_config
from helpers import message


@pytest.fixture
def conf(tmp_path):
    return write_config(tmp_path / "postern.conf", tmp_path / "var", limits={"message_size": "64K"})


def test_check_config_good(conf):
    p = run_cli(["check-config"], conf=conf)
    assert p.returncode == 0, p.stderr


def lines_with(tmp_path, text):
    f = tmp_path / "bad.conf"
    f.write_text(text)
    n = [i + 1 for i, l in enumerate(text.splitlines()) if "@@" in l]
    f.write_text(text.replace("@@", ""))
    return f, (n[0] if n else None)


BASE = """[server]
hostname = mx.example.test
data_dir = {var}
local_domains = example.test

[limits]
recipients = 50
{line}

[listener smtp]
address = 127.0.0.1
port = 0
role = mx
"""


def test_check_config_bad_size_names_file_line_and_key(tmp_path):
    f, n = lines_with(tmp_path, BASE.format(var=tmp_path / "var", line="@@message_size = 12X"))
    assert n == 8
    p = run_cli(["check-config"], conf=f)
    assert p.returncode != 0
    assert "%s:%d" % (f.name, n) in p.stderr, p.stderr
    assert "message_size" in p.stderr, p.stderr


def test_check_config_out_of_bounds(tmp_path):
    f, n = lines_with(tmp_path, BASE.format(var=tmp_path / "var", line="@@idle_timeout = 5s"))
    p = run_cli(["check-config"], conf=f)
    assert p.returncode != 0
    assert "%s:%d" % (f.name, n) in p.stderr and "idle_timeout" in p.stderr, p.stderr


def test_check_config_unknown_key(tmp_path):
    f, n = lines_with(tmp_path, BASE.format(var=tmp_path / "var", line="@@frobnicate_level = 3"))
    p = run_cli(["check-config"], conf=f)
    assert p.returncode != 0
    assert "frobnicate_level" in p.stderr, p.stderr
    assert "%s:%d" % (f.name, n) in p.stderr, p.stderr


def test_check_config_unknown_section(tmp_path):
    f, n = lines_with(tmp_path, BASE.format(var=tmp_path / "var", line="@@[frobozz]\nx = 1"))
    p = run_cli(["check-config"], conf=f)
    assert p.returncode != 0
    assert "frobozz" in p.stderr, p.stderr


def test_serve_refuses_bad_config(tmp_path):
    f, _ = lines_with(tmp_path, BASE.format(var=tmp_path / "var", line="@@message_size = 12X"))
    p = run_cli(["serve"], conf=f, timeout=15)
    assert p.returncode != 0
    assert "message_size" in p.stderr, p.stderr


def test_user_add_list_del(conf):
    p = run_cli(["user", "add", "alice@example.test"], conf=conf, input="secret\n")
    assert p.returncode == 0, p.stderr
    p = run_cli(["user", "add", "bob@example.test"], conf=conf, input="hunter2\n")
    assert p.returncode == 0, p.stderr
    p = run_cli(["user", "list"], conf=conf)
    assert p.returncode == 0, p.stderr
    users = p.stdout.split()
    assert "alice@example.test" in users and "bob@example.test" in users, p.stdout
    p = run_cli(["user", "del", "bob@example.test"], conf=conf)
    assert p.returncode == 0, p.stderr
    p = run_cli(["user", "list"], conf=conf)
    assert p.stdout.split() == ["alice@example.test"], p.stdout


def test_user_add_twice_fails(conf):
    assert run_cli(["user", "add", "alice@example.test"], conf=conf, input="secret\n").returncode == 0
    p = run_cli(["user", "add", "alice@example.test"], conf=conf, input="secret\n")
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr.strip(), "no message on stderr"


def test_user_add_non_local_domain_fails(conf):
    p = run_cli(["user", "add", "carol@remote.example"], conf=conf, input="secret\n")
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr.strip()
    p = run_cli(["user", "list"], conf=conf)
    assert "carol@remote.example" not in p.stdout


def test_usage_error_exit_2(conf):
    p = run_cli(["user", "frobnicate"], conf=conf)
    assert p.returncode == 2, (p.returncode, p.stderr)
    p = run_cli(["no-such-command"])
    assert p.returncode == 2, (p.returncode, p.stderr)


def _commands_in_usage(text):
    return [line.split()[1] for line in text.splitlines() if line.startswith("  postern ")]


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"]])
def test_help_prints_the_usage_on_stdout_and_exits_0(args):
    p = run_cli(args)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert p.stdout.startswith("usage: postern COMMAND"), p.stdout
    assert "unknown command" not in p.stderr
    assert {"serve", "user", "queue", "explain", "doctor", "version"} <= set(_commands_in_usage(p.stdout))


def test_every_command_has_its_own_help():
    commands = _commands_in_usage(run_cli(["--help"]).stdout)
    assert len(commands) >= 10, commands
    for name in commands:
        for args in ([name, "--help"], [name, "-h"], ["help", name]):
            p = run_cli(args, timeout=10)
            assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
            assert p.stdout.startswith("usage: postern %s" % name), (args, p.stdout)
            assert len(p.stdout.splitlines()) <= 3, (args, p.stdout)   # that command alone


@pytest.mark.parametrize("args,shown,not_shown", [
    (["queue", "list", "--help"], "usage: postern queue list", "show ID"),
    (["queue", "hold", "-h"], "usage: postern queue retry|hold|release ID", "list"),
    (["queue", "delete", "--help"], "usage: postern queue delete ID [--bounce]", "flush"),
    (["user", "quota", "--help"], "usage: postern user quota ADDRESS SIZE|none", "add|del"),
    (["domain", "list", "--help"], "usage: postern domain list", "add|del"),
    (["alias", "del", "--help"], "usage: postern alias del ALIAS", "add ALIAS"),
    (["sender", "allow", "--help"], "usage: postern sender allow|deny USER ADDRESS", "list USER"),
    (["app-password", "revoke", "--help"], "usage: postern app-password revoke USER NAME", "--name"),
    (["help", "queue", "show"], "usage: postern queue show ID", "flush"),
])
def test_nested_command_help_shows_that_form(args, shown, not_shown):
    p = run_cli(args)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    first = p.stdout.splitlines()[0]
    assert first.startswith(shown), p.stdout
    assert not_shown not in first, p.stdout


def test_help_does_not_run_the_command(conf):
    p = run_cli(["user", "add", "zed@example.test", "--help"], conf=conf, input="secret\n")
    assert p.returncode == 0 and p.stdout.startswith("usage: postern user add|del ADDRESS"), p.stdout
    assert "zed@example.test" not in run_cli(["user", "list"], conf=conf).stdout
    p = run_cli(["serve", "--help"], conf=conf, timeout=10)   # returns at once, serves nothing
    assert p.returncode == 0 and p.stdout.startswith("usage: postern serve"), p.stdout


@pytest.mark.parametrize("args", [["no-such-command", "--help"], ["help", "no-such-command"],
                                  ["user", "frobnicate", "--help"], ["--no-such-option"]])
def test_help_for_what_does_not_exist_is_still_a_usage_error(args):
    p = run_cli(args)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    assert p.stdout == "", p.stdout
    assert "usage: postern" in p.stderr


def test_domain_add_list_del(conf):
    p = run_cli(["domain", "add", "other.test"], conf=conf)
    assert p.returncode == 0, p.stderr
    p = run_cli(["domain", "list"], conf=conf)
    assert p.returncode == 0 and "other.test" in p.stdout.split(), p.stdout
    p = run_cli(["user", "add", "carol@other.test"], conf=conf, input="secret\n")
    assert p.returncode == 0, p.stderr
    p = run_cli(["user", "del", "carol@other.test"], conf=conf)
    assert p.returncode == 0, p.stderr
    p = run_cli(["domain", "del", "other.test"], conf=conf)
    assert p.returncode == 0, p.stderr
    p = run_cli(["domain", "list"], conf=conf)
    assert "other.test" not in p.stdout.split(), p.stdout
    p = run_cli(["user", "add", "dave@other.test"], conf=conf, input="secret\n")
    assert p.returncode != 0, "user add succeeded for a deleted domain"


def test_directory_domain_receives_mail(server_factory):
    s = server_factory(start=False)
    assert s.cli("domain", "add", "other.test").returncode == 0
    s.add_user("carol@other.test")
    s.start()
    with s.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        assert c.cmd("RCPT TO:<carol@other.test>").is_(250, "2.1.5")
        assert c.cmd("RCPT TO:<nobody@other.test>").is_(550, "5.1.1")
        assert c.data(message("to carol", to="carol@other.test")).is_(250, "2.0.0")
    msgs = s.wait_delivered("carol@other.test", 1)
    assert len(msgs) == 1
    assert msgs[0].parent == s.data_dir / "mail" / "other.test" / "carol" / "new"


def test_user_added_while_serving(server):
    p = server.cli("user", "add", "erin@example.test", input="secret\n")
    assert p.returncode == 0, p.stderr
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        assert c.cmd("RCPT TO:<erin@example.test>").is_(250, "2.1.5")
    assert server.cli("user", "del", "erin@example.test").returncode == 0
    with server.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@b.example>")
        assert c.cmd("RCPT TO:<erin@example.test>").is_(550, "5.1.1")


def test_user_admin_flag(conf):
    assert run_cli(["user", "add", "alice@example.test"], conf=conf, input="secret\n").returncode == 0
    p = run_cli(["user", "show", "alice@example.test"], conf=conf)
    assert p.returncode == 0 and "admin: no" in p.stdout, p.stdout + p.stderr
    p = run_cli(["user", "admin", "Alice@example.test", "yes"], conf=conf)
    assert p.returncode == 0 and "alice@example.test is an administrator" in p.stdout, p.stdout + p.stderr
    p = run_cli(["user", "show", "alice@example.test"], conf=conf)
    assert "admin: yes" in p.stdout, p.stdout
    assert run_cli(["user", "list"], conf=conf).stdout.split() == ["alice@example.test", "admin"]
    p = run_cli(["user", "admin", "alice@example.test", "maybe"], conf=conf)
    assert p.returncode == 2 and "yes or no" in p.stderr, p.stderr
    p = run_cli(["user", "admin", "nobody@example.test", "yes"], conf=conf)
    assert p.returncode == 1 and "no user nobody@example.test" in p.stderr, p.stderr
    p = run_cli(["user", "admin", "alice@example.test", "no"], conf=conf)
    assert p.returncode == 0 and "no longer an administrator" in p.stdout, p.stdout
    assert "admin: no" in run_cli(["user", "show", "alice@example.test"], conf=conf).stdout


def test_user_unblock_without_server(conf):
    p = run_cli(["user", "unblock", "192.0.2.1"], conf=conf)
    assert p.returncode == 1 and "the server is not running" in p.stderr, p.stderr
