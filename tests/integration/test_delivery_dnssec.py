"""The start-up DNSSEC probe of outbound delivery (src/dns/probe.c, src/delivery/dnssec.c).

With a trust anchor Postern's resolver validates every answer.  Behind a resolver that
serves no DNSSEC (dnsmasq here, like many home routers and container resolvers) every
answer would be bogus and no mail would leave: the probe finds that at start, turns
validation off for the run and says so in one log line; mail is delivered.  Behind a
path that validates (NSD's signed zone with its own anchor) validation stays on: the
log says status=on and a bogus answer still defers (the DANE tests prove the rest).
A resolver that does not answer at all leaves it undecided (validation stays on).
Peers: dnsmasq (delivery_support.py), nsd + ldnsutils (transport_support.py)."""
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from delivery_support import (  # noqa: E402
    dns, AioReceiver, REMOTE_ADDRS, free_port, make_server, submit, wait_event, events,
)
from conftest import write_config  # noqa: E402
from transport_support import TransportEnv  # noqa: E402

# The root zone's key-signing key (KSK-2017, key tag 20326) as a DS record: what
# Debian's dns-root-data installs, written here so the test does not depend on it.
ROOT_DS = ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n"
FIX = "point [delivery] resolver at a validating resolver"


def root_anchor(tmp_path):
    p = tmp_path / "root.ds"
    p.write_text(ROOT_DS)
    return p


def test_resolver_without_dnssec_turns_validation_off_and_mail_is_delivered(server_factory, dns, tmp_path):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2", "127.0.0.3"], port) as rx:
        srv = make_server(server_factory, dns, port, delivery={"dnssec_trust_anchor": str(root_anchor(tmp_path))})
        ev = wait_event(srv, "dnssec", timeout=20)
        assert ev, srv.log()
        assert ev[0]["status"] == "unavailable", ev
        assert ev[0]["zone"] == ".", ev
        assert "DNSKEY records of ." in ev[0]["reason"], ev
        assert "DANE is unavailable" in ev[0]["effect"], ev
        assert FIX in ev[0]["fix"] and "dnssec_trust_anchor = none" in ev[0]["fix"], ev
        qid = submit(srv, "bob@remote.test")
        assert wait_event(srv, "delivered", qid=qid, to="bob@remote.test"), srv.log()
        assert rx.wait_messages(1)
        assert len(events(srv, "dnssec")) == 1, srv.log()   # one line, not one per thread


def test_default_anchor_behind_dnsmasq_still_delivers(server_factory, dns):
    # what an administrator gets without touching dnssec_trust_anchor (Debian's root key)
    if not Path("/usr/share/dns/root.key").exists():
        pytest.skip("dns-root-data is not installed: the default anchor is skipped anyway")
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2"], port):
        srv = make_server(server_factory, dns, port)
        ev = wait_event(srv, "dnssec", timeout=20)
        assert ev and ev[0]["status"] == "unavailable", srv.log()
        assert ev[0]["anchor"] == "/usr/share/dns/root.key", ev
        qid = submit(srv, "bob@remote.test")
        assert wait_event(srv, "delivered", qid=qid), srv.log()


def test_anchor_none_probes_nothing(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2"], port):
        srv = make_server(server_factory, dns, port, delivery={"dnssec_trust_anchor": "none"})
        qid = submit(srv, "bob@remote.test")
        assert wait_event(srv, "delivered", qid=qid), srv.log()
        assert not events(srv, "dnssec"), srv.log()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = TransportEnv(tmp_path_factory.mktemp("transport")).start()
    yield e
    e.stop()


def test_validating_path_keeps_validation_on_and_bogus_still_defers(server_factory, env):
    srv = env.server(server_factory)
    ev = wait_event(srv, "dnssec", timeout=20)
    assert ev and ev[0]["status"] == "on", srv.log()
    qid = submit(srv, "carol@bogus.sec.test")
    dv = wait_event(srv, "deferred", qid=qid, timeout=20)
    assert dv, srv.log()
    assert "failed DNSSEC validation" in dv[0]["reason"], dv


def check_config(tmp_path, delivery):
    tmp_path.mkdir(parents=True, exist_ok=True)
    conf = write_config(tmp_path / "postern.conf", tmp_path / "var",
                        extra="\n[delivery]\n" + "".join("%s = %s\n" % kv for kv in delivery.items()))
    p = subprocess.run([sys_postern(), "check-config", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def sys_postern():
    import os
    return os.environ["POSTERN_BIN"]


def test_check_config_reports_the_same(tmp_path, dns, env):
    out = check_config(tmp_path / "a", {"resolver": "127.0.0.1@%d" % dns.port,
                                        "dnssec_trust_anchor": str(root_anchor(tmp_path))})
    assert "warning: dnssec unavailable through 127.0.0.1@%d" % dns.port in out, out
    assert FIX in out, out
    out = check_config(tmp_path / "b", {"resolver": "127.0.0.1@%d" % env.nsd.port,
                                        "dnssec_trust_anchor": str(env.anchor)})
    assert "dnssec: on (the DNSKEY records of sec.test" in out, out
    out = check_config(tmp_path / "c", {"dnssec_trust_anchor": "none"})
    assert "dnssec: off" in out, out


def test_silent_resolver_is_undecided_and_keeps_validation(tmp_path):
    # nothing listens on the port: no answer is not proof that DNSSEC cannot work
    out = check_config(tmp_path / "d", {"resolver": "127.0.0.1@%d" % free_port(("127.0.0.1",), udp=True),
                                        "dnssec_trust_anchor": str(root_anchor(tmp_path))})
    assert "dnssec: undecided" in out and "keeps validating" in out, out
