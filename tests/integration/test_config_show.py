"""`postern config show`, `postern check-config` with every error, and the manual pages
written from the settings and subcommand tables (issue 17): a setting added to the
table is in postern.conf(5) as man renders it, with its section, type and default."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import postern_bin, run_cli, write_config


def sections_of(ini):
    """{section: {key: value}} of an INI text (the output of config show)."""
    out, cur = {}, None
    for line in ini.splitlines():
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        m = re.fullmatch(r"\[(.+)\]", line)
        if m:
            cur = out.setdefault(m.group(1), {})
            continue
        k, _, v = line.partition("=")
        cur[k.strip()] = v.strip()
    return out


def test_config_show_prints_what_differs_and_reads_back(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var",
                        limits={"message_size": "10M", "idle_timeout": "90"},
                        server={"trusted_networks": "192.0.2.0/24, 2001:db8::/32"})
    p = run_cli(["config", "show"], conf=conf)
    assert p.returncode == 0, p.stderr
    s = sections_of(p.stdout)
    assert s["limits"] == {"message_size": "10M", "idle_timeout": "90s"}, p.stdout
    assert s["server"]["trusted_networks"] == "192.0.2.0/24, 2001:db8::/32", p.stdout
    assert "recipients" not in s["limits"] and "shutdown_timeout" not in s["server"], p.stdout
    assert s["listener smtp"]["port"] == "0" and s["listener smtp"]["role"] == "mx", p.stdout
    # --all says every setting; read back, it is the same configuration
    full = run_cli(["config", "show", "--all"], conf=conf)
    assert full.returncode == 0, full.stderr
    assert sections_of(full.stdout)["limits"]["recipients"] == "100", full.stdout
    again = tmp_path / "again.conf"
    again.write_text(full.stdout)
    p2 = run_cli(["config", "show"], conf=again)
    assert p2.returncode == 0, p2.stderr
    assert sections_of(p2.stdout) == s, (p.stdout, p2.stdout)


def test_config_show_masks_passwords(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var",
                        extra="\n[directory]\nconnection = host=db.example password=hunter2 dbname=postern\n")
    p = run_cli(["config", "show"], conf=conf)
    assert p.returncode == 0, p.stderr
    assert "hunter2" not in p.stdout, p.stdout
    assert "connection = host=db.example password=******** dbname=postern" in p.stdout, p.stdout


def test_check_config_names_every_error(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("[server]\nhostname = mx.example.test\ndata_dir = %s\nfrobnicate = 1\n\n"
                    "[limits]\nidle_timeout = soon\nrecipients = 0\n\n"
                    "[listener smtp]\nport = 0\nrole = relay\n" % (tmp_path / "var"))
    p = run_cli(["check-config"], conf=conf)
    assert p.returncode == 1, p.stdout + p.stderr
    err = p.stderr
    for line, words in ((4, "frobnicate: unknown setting"), (7, "idle_timeout: \"soon\" is not a duration"),
                        (8, "recipients: \"0\" is out of range"), (12, "role: \"relay\" is not mx")):
        assert "bad.conf:%d: " % line in err and words in err, err
    assert "4 errors: serve would refuse to start" in err, err
    good = write_config(tmp_path / "good.conf", tmp_path / "var")
    p = run_cli(["check-config"], conf=good)
    assert p.returncode == 0 and "good.conf: ok" in p.stdout, p.stdout + p.stderr


def rendered(page):
    """The page as man(1) renders it (plain text), and what it warned."""
    if not shutil.which("man"):
        pytest.fail("man is not installed (package man-db: scripts/install-deps)")
    env = dict(os.environ, MANWIDTH="200", MAN_KEEP_FORMATTING="0", LC_ALL="C.UTF-8")
    p = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    return re.sub(r".\x08", "", p.stdout), p.stderr


def built_page(name, number):
    """The page meson built beside the binary (custom_target), else the binary's own."""
    page = os.path.join(os.path.dirname(postern_bin()), name)
    if not os.path.exists(page):
        pytest.fail("%s was not built (meson custom_target in meson.build)" % page)
    own = run_cli(["config", "man", number])
    assert own.returncode == 0, own.stderr
    with open(page) as f:
        assert f.read() == own.stdout, "%s is older than the binary: rebuild" % page
    return page


def test_postern_conf_5_has_every_setting_of_the_table(tmp_path):
    text, warnings = rendered(built_page("postern.conf.5", "5"))
    assert not warnings.strip(), warnings
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var")
    every = sections_of(run_cli(["config", "show", "--all"], conf=conf).stdout)
    table = {sec: keys for sec, keys in every.items() if " " not in sec}   # not [listener NAME]
    assert len(table) >= 10 and sum(map(len, table.values())) >= 90, table.keys()
    flat = re.sub(r"\s+", " ", text)
    flat = flat[flat.index(" SETTINGS "):]
    for sec, keys in table.items():
        head = flat.index("[%s]" % sec)   # each section has its heading
        nxt = re.search(r" \[[a-z-]+\] (?=[a-z_]+ )", flat[head + 3:])
        body = flat[head: head + 3 + nxt.start()] if nxt else flat[head:]
        for key in keys:
            assert re.search(r"\b%s\b" % re.escape(key), body), "[%s] %s missing from postern.conf(5)" % (sec, key)
    # type, default and range are told: e.g. [limits] message_size
    assert re.search(r"message_size .{0,200}Type: size .{0,80}default: 25M; range: 1K to 2G", flat), flat[:2000]
    assert "log_level" in flat and "debug|info|warn|error" in flat


def test_postern_8_lists_every_subcommand():
    text, warnings = rendered(built_page("postern.8", "8"))
    assert not warnings.strip(), warnings
    usage = run_cli(["--help"]).stdout
    commands = re.findall(r"^  postern (\S+)", usage, re.M)
    assert "config" in commands and "check-config" in commands, usage
    for c in commands:
        assert re.search(r"postern %s\b" % re.escape(c), text), "postern %s missing from postern(8)" % c
    assert "SIGHUP" in text and "NOTIFY_SOCKET" in text and "LISTEN_FDNAMES" in text
