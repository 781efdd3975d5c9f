"""check-config and serve refuse the same configurations, with the same words: each
error names file:line and the fix (issue 9).  Every case runs both commands."""
import re

import pytest

from conftest import run_cli, write_config


def both(conf):
    """Run check-config and serve on one file; both must refuse.  Returns the two stderrs."""
    c = run_cli(["check-config"], conf=conf)
    s = run_cli(["serve"], conf=conf, timeout=20)
    assert c.returncode != 0, "check-config said ok:\n%s%s" % (c.stdout, c.stderr)
    assert s.returncode != 0, "serve started:\n%s" % s.stderr
    return c.stderr, s.stderr


def line_of(conf, needle, nth=1):
    """1-based line number of the nth line of the file containing needle."""
    hits = [i + 1 for i, l in enumerate(conf.read_text().splitlines()) if needle in l]
    return hits[nth - 1]


def test_duplicate_listener_section_is_refused(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var",
                        extra="\n[listener smtp]\naddress = 127.0.0.1\nport = 0\nrole = submission\n")
    first, second = line_of(conf, "[listener smtp]"), line_of(conf, "[listener smtp]", 2)
    for err in both(conf):
        assert "postern.conf:%d:" % second in err, err
        assert "postern.conf:%d" % first in err, err
        assert "appears twice" in err and "own name" in err, err


def test_duplicate_key_is_refused(tmp_path):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var", extra="port = 2525\n")
    first, second = line_of(conf, "port = 0"), line_of(conf, "port = 2525")
    for err in both(conf):
        assert "postern.conf:%d:" % second in err and "postern.conf:%d" % first in err, err
        assert "set twice" in err and "delete one" in err, err


@pytest.mark.parametrize("networks", ["0.0.0.0/0", "::/0", "0.0.0.0/1, 128.0.0.0/1", "192.0.2.0/24 0.0.0.0/2"])
def test_trusted_networks_open_relay_is_refused(tmp_path, networks):
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var", server={"trusted_networks": networks})
    n = line_of(conf, "trusted_networks =")
    for err in both(conf):
        assert "postern.conf:%d: [server] trusted_networks" % n in err, err
        assert "open relay" in err and "allow_open_relay = yes" in err, err


def test_trusted_networks_open_relay_when_meant(server_factory):
    srv = server_factory(start=False)
    srv.config.write_text(srv.config.read_text().replace(
        "[server]\n", "[server]\ntrusted_networks = 0.0.0.0/0\nallow_open_relay = yes\n", 1))
    p = run_cli(["check-config"], conf=srv.config)
    assert p.returncode == 0, p.stderr
    srv.start()
