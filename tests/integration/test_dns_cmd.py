"""`postern dns DOMAIN` and `postern dns check DOMAIN` against a real DNS server.

A dnsmasq (Debian dnsmasq-base) started here on 127.0.0.1 serves the zone; the check
asks it through libunbound (`--resolver 127.0.0.1@PORT`).  The zone is either the one
`postern dns` printed, converted record by record into dnsmasq options (the round trip:
what `dns` prints is what `check` accepts), or that zone with one record removed or
changed, when the check must fail with the exact record to publish."""
import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_cli, write_config  # noqa: E402
from delivery_support import Dns  # noqa: E402

DOMAIN = "example.test"
HOST = "mail.example.test"
# The server's public address for the checks: not 127.0.0.1, whose reverse zone
# libunbound answers itself ("localhost"), nor a TEST-NET (also answered locally).
ADDR = "198.18.0.25"
REV = "25.0.18.198.in-addr.arpa"
LISTENERS = """
[listener mx]
address = 127.0.0.1
port = 25
role = mx
tls = starttls

[listener submission]
address = 127.0.0.1
port = 587
role = submission
tls = starttls

[listener submissions]
address = 127.0.0.1
port = 465
role = submission
tls = implicit

[listener pop3s]
address = 127.0.0.1
port = 995
role = pop3
tls = implicit
"""


def make_conf(root, keys=(("s1", "rsa"), ("e1", "ed25519"))):
    text = write_config(root / "p.conf", root / "var", server={"hostname": HOST}).read_text()
    # conftest's listener is on port 0 with no TLS: these are the listeners a real server has
    text = text[:text.index("[listener smtp]")] + LISTENERS
    (root / "p.conf").write_text(text)
    for selector, kind in keys:
        p = run_cli(["dkim", "keygen", DOMAIN, "--selector", selector, "--type", kind], conf=root / "p.conf")
        assert p.returncode == 0, p.stderr
    return root / "p.conf"


@pytest.fixture(scope="module")
def conf(tmp_path_factory):
    """A server with an rsa and an ed25519 DKIM key for DOMAIN (`postern dkim keygen`)."""
    return make_conf(tmp_path_factory.mktemp("dnscmd"))


def zone_lines(text):
    """The records of `postern dns` output, (name, type, rdata); the commented PTR too
    (the address's provider publishes it, here the test does)."""
    out = []
    for line in text.splitlines():
        if line.startswith("; ") and "\tIN\tPTR\t" in line:
            line = line[2:]
        if not line or line.startswith(";"):
            continue
        name, ttl, cls, rtype, rdata = line.split("\t", 4)
        assert cls == "IN" and ttl == "3600" and name.endswith("."), line
        out.append((name.rstrip("."), rtype, rdata))
    return out


def to_dnsmasq(records):
    """dnsmasq options serving exactly these records."""
    args = ["--local=/in-addr.arpa/"]
    for name, rtype, rdata in records:
        if rtype == "MX":
            pref, target = rdata.split()
            args.append("--mx-host=%s,%s,%s" % (name, target.rstrip("."), pref))
        elif rtype in ("A", "AAAA"):
            args.append("--host-record=%s,%s" % (name, rdata))
        elif rtype == "TXT":
            strings = re.findall(r'"((?:[^"\\]|\\.)*)"', rdata)
            strings = [re.sub(r"\\(.)", r"\1", s) for s in strings]
            assert strings and all(len(s) <= 255 and "," not in s for s in strings), rdata
            # on dnsmasq's command line quotes stay in the text: commas split the strings
            args.append("--txt-record=%s,%s" % (name, ",".join(strings)))
        elif rtype == "SRV":
            prio, weight, port, target = rdata.split()
            if target == ".":
                args.append("--srv-host=%s" % name)    # dnsmasq: no target = not offered
            else:
                args.append("--srv-host=%s,%s,%s,%s,%s" % (name, target.rstrip("."), port, prio, weight))
        elif rtype == "CNAME":
            args.append("--cname=%s,%s" % (name, rdata.rstrip(".")))
        elif rtype == "PTR":
            args.append("--ptr-record=%s,%s" % (name, rdata.rstrip(".")))
        else:
            pytest.fail("postern dns printed a record type the test does not know: %s" % rtype)
    return args


def printed_zone(conf, *extra):
    p = run_cli(["dns", DOMAIN] + list(extra), conf=conf)
    assert p.returncode == 0, p.stderr
    return p.stdout


def zone(conf):
    """The records `postern dns` prints for this server at ADDR."""
    return zone_lines(printed_zone(conf, "--address", ADDR))


def check(conf, tmp_path, records, *extra, json_out=False):
    d = Dns(tmp_path / "dns", to_dnsmasq(records)).start()
    try:
        args = ["dns", "check", DOMAIN, "--resolver", "127.0.0.1@%d" % d.port, "--address", ADDR] + list(extra)
        return run_cli(args + (["--json"] if json_out else []), conf=conf, timeout=120)
    finally:
        d.stop()


def status_lines(out):
    """{label: [marks]} of the checklist ("ok", "FAIL", "warn", "skip")."""
    marks = {}
    for line in out.splitlines():
        m = re.match(r"^(ok|FAIL|warn|skip)\s+(\S+(?: host)?)\s", line)
        if m:
            marks.setdefault(m.group(2), []).append(m.group(1))
    return marks


def test_printed_zone_has_every_record(conf):
    out = printed_zone(conf)
    recs = zone_lines(out)
    by_type = {}
    for name, rtype, rdata in recs:
        by_type.setdefault(rtype, []).append((name, rdata))
    assert by_type["MX"] == [(DOMAIN, "10 %s." % HOST)]
    # the listeners are on 127.0.0.1, which receivers never see: no A record, no PTR
    assert "A" not in by_type and "PTR" not in by_type, by_type
    assert "listener mx is on the private address 127.0.0.1" in out.replace("\n; ", " "), out
    out = printed_zone(conf, "--address", ADDR)
    recs = zone_lines(out)
    by_type = {}
    for name, rtype, rdata in recs:
        by_type.setdefault(rtype, []).append((name, rdata))
    assert by_type["A"] == [(HOST, ADDR)]
    txt = dict(by_type["TXT"])
    assert txt[DOMAIN] == '"v=spf1 mx -all"'
    assert txt["_dmarc." + DOMAIN] == '"v=DMARC1; p=none; rua=mailto:postmaster@%s"' % DOMAIN
    assert re.fullmatch(r'"v=STSv1; id=[0-9a-f]{1,32}"', txt["_mta-sts." + DOMAIN])
    assert txt["_smtp._tls." + DOMAIN] == '"v=TLSRPTv1; rua=mailto:postmaster@%s"' % DOMAIN
    srv = dict(by_type["SRV"])
    # ports from the listeners above, a null record for what is not offered
    assert srv["_submissions._tcp." + DOMAIN] == "0 1 465 %s." % HOST
    assert srv["_submission._tcp." + DOMAIN] == "0 1 587 %s." % HOST
    assert srv["_pop3s._tcp." + DOMAIN] == "0 1 995 %s." % HOST
    for null in ("_pop3._tcp", "_imap._tcp", "_imaps._tcp"):
        assert srv[null + "." + DOMAIN] == "0 0 0 .", null
    # Outlook's fallback when autodiscover.DOMAIN does not answer: https on 443
    assert srv["_autodiscover._tcp." + DOMAIN] == "0 0 443 %s." % HOST
    cname = dict(by_type["CNAME"])
    for alias in ("autoconfig", "autodiscover", "mta-sts"):
        assert cname["%s.%s" % (alias, DOMAIN)] == HOST + "."
    assert by_type["PTR"] == [(REV, HOST + ".")]
    # the MTA-STS policy file is said in comments
    assert ";     mode: testing" in out and ";     mx: %s" % HOST in out and ";     max_age: 604800" in out
    # one DKIM record per key, the one `postern dkim list` shows, in strings of at most 255 octets
    keys = run_cli(["dkim", "list", DOMAIN], conf=conf).stdout
    assert re.fullmatch(r'"v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{200,255}" "[A-Za-z0-9+/=]+"', txt["s1._domainkey." + DOMAIN])
    assert re.fullmatch(r'"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/=]{44}"', txt["e1._domainkey." + DOMAIN])
    for sel in ("s1", "e1"):
        p_value = txt["%s._domainkey.%s" % (sel, DOMAIN)].split("p=")[1].replace('" "', "").strip('"')
        assert p_value in keys.replace(" ", "").replace('"', ""), (sel, keys)
    assert "no DKIM key" not in out


def test_no_dkim_key_says_how_to_make_one(tmp_path):
    conf = make_conf(tmp_path, keys=())
    out = printed_zone(conf)
    assert "no DKIM key: run postern dkim keygen %s" % DOMAIN in out.replace("\n; ", " "), out
    assert "_domainkey" not in out
    p = check(conf, tmp_path, zone(conf))
    assert p.returncode == 1 and status_lines(p.stdout)["DKIM"] == ["FAIL"], p.stdout
    assert "no DKIM key: run postern dkim keygen %s" % DOMAIN in p.stdout, p.stdout


def test_ports_follow_the_listeners(tmp_path):
    text = write_config(tmp_path / "p.conf", tmp_path / "var", server={"hostname": HOST}).read_text()
    text = text[:text.index("[listener smtp]")] + (
        "[listener mx]\naddress = 0.0.0.0\nport = 2525\nrole = mx\n\n"
        "[listener sub]\naddress = 0.0.0.0\nport = 10587\nrole = submission\ntls = starttls\n\n"
        "[listener web]\naddress = 0.0.0.0\nport = 8443\nrole = http\ntls = implicit\n")
    (tmp_path / "p.conf").write_text(text)
    out = printed_zone(tmp_path / "p.conf")
    srv = {n: r for n, t, r in zone_lines(out) if t == "SRV"}
    assert srv["_submission._tcp." + DOMAIN] == "0 1 10587 %s." % HOST
    assert srv["_submissions._tcp." + DOMAIN] == "0 0 0 ."
    assert srv["_autodiscover._tcp." + DOMAIN] == "0 0 8443 %s." % HOST   # the https listener's port
    assert "port 2525: forward port 25 to it" in out.replace("\n; ", " ")
    # no STARTTLS on the mx listener: no MTA-STS; every address: the A record is the admin's
    assert "MTA-STS (RFC 8461) needs STARTTLS" in out.replace("\n; ", " ")
    assert not [1 for n, t, r in zone_lines(out) if t in ("A", "PTR")]
    out = printed_zone(tmp_path / "p.conf", "--address", "192.0.2.25")
    assert (HOST, "A", "192.0.2.25") in zone_lines(out)
    assert ("25.2.0.192.in-addr.arpa", "PTR", HOST + ".") in zone_lines(out)


def test_round_trip_printed_zone_passes(conf, tmp_path):
    p = check(conf, tmp_path, zone(conf))
    marks = status_lines(p.stdout)
    failing = {k: v for k, v in marks.items() if set(v) != {"ok"}}
    # every record printed is accepted: every line ok, exit 0
    assert failing == {}, p.stdout
    assert p.returncode == 0, p.stdout
    for label in ("MX", "A", "SPF", "DKIM", "DMARC", "MTA-STS", "MTA-STS host", "TLS-RPT", "SRV", "autoconfig",
                  "autodiscover", "PTR"):
        assert label in marks, (label, p.stdout)
    assert len(marks["SRV"]) == 7 and len(marks["DKIM"]) == 2
    assert "All records the big receivers require are right, and the recommended ones too." in p.stdout


def test_hand_written_zone_passes(conf, tmp_path):
    """Not postern's own text: other valid records are accepted too."""
    records = [
        (DOMAIN, "MX", "5 %s." % HOST), (DOMAIN, "MX", "20 backup.example.org."),
        (HOST, "A", ADDR), (HOST, "A", "198.18.0.26"),
        (DOMAIN, "TXT", '"v=spf1 ip4:198.18.0.0/15 ~all"'),
        ("_dmarc." + DOMAIN, "TXT", '"v=DMARC1; p=reject; rua=mailto:dmarc-reports@%s"' % DOMAIN),
        (REV, "PTR", HOST + "."),
    ] + [r for r in zone(conf) if "_domainkey." in r[0]]    # the keys are this server's
    p = check(conf, tmp_path, records)
    marks = status_lines(p.stdout)
    for label in ("MX", "A", "SPF", "DMARC", "PTR"):
        assert marks[label] == ["ok"], (label, p.stdout)
    assert marks["DKIM"] == ["ok", "ok"], p.stdout
    assert set(marks["SRV"]) == {"warn"} and marks["TLS-RPT"] == ["warn"], p.stdout
    assert p.returncode == 0, p.stdout     # only recommended records are missing


def drop(records, rtype, name):
    out = [r for r in records if not (r[1] == rtype and r[0] == name)]
    assert len(out) < len(records), (rtype, name)
    return out


def replace(records, rtype, name, rdata):
    return drop(records, rtype, name) + [(name, rtype, rdata)]


BROKEN = {
    "no MX": (lambda z: drop(z, "MX", DOMAIN), "MX", "missing",
              "publish: example.test.\t3600\tIN\tMX\t10 mail.example.test."),
    "MX elsewhere": (lambda z: replace(z, "MX", DOMAIN, "10 mx.elsewhere.test."), "MX", "wrong",
                     "publish: example.test.\t3600\tIN\tMX\t10 mail.example.test."),
    "no SPF": (lambda z: drop(z, "TXT", DOMAIN), "SPF", "missing",
               'publish: example.test.\t3600\tIN\tTXT\t"v=spf1 mx -all"'),
    "SPF names another server": (lambda z: replace(z, "TXT", DOMAIN, '"v=spf1 ip4:192.0.2.1 -all"'), "SPF",
                                 "wrong", 'publish: example.test.\t3600\tIN\tTXT\t"v=spf1 mx -all"'),
    "SPF +all": (lambda z: replace(z, "TXT", DOMAIN, '"v=spf1 +all"'), "SPF", "wrong",
                 'publish: example.test.\t3600\tIN\tTXT\t"v=spf1 mx -all"'),
    "two SPF records": (lambda z: z + [(DOMAIN, "TXT", '"v=spf1 a -all"')], "SPF", "wrong",
                        'publish: example.test.\t3600\tIN\tTXT\t"v=spf1 mx -all"'),
    "no DMARC": (lambda z: drop(z, "TXT", "_dmarc." + DOMAIN), "DMARC", "missing",
                 'publish: _dmarc.example.test.\t3600\tIN\tTXT\t"v=DMARC1; p=none; rua=mailto:postmaster@example.test"'),
    "DMARC without p=": (lambda z: replace(z, "TXT", "_dmarc." + DOMAIN, '"v=DMARC1; rua=mailto:x@example.test"'),
                         "DMARC", "wrong", "publish: _dmarc.example.test.\t3600\tIN\tTXT\t\"v=DMARC1; p=none;"),
    "no DKIM record": (lambda z: drop(z, "TXT", "s1._domainkey." + DOMAIN), "DKIM", "missing",
                       'publish: s1._domainkey.example.test.\t3600\tIN\tTXT\t"v=DKIM1; k=rsa; p='),
    "DKIM record of another key": (lambda z: replace(z, "TXT", "s1._domainkey." + DOMAIN,
                                   '"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwrong"'),
                                   "DKIM", "wrong", 'publish: s1._domainkey.example.test.\t3600\tIN\tTXT\t"v=DKIM1; k=rsa; p='),
    "no PTR": (lambda z: drop(z, "PTR", REV), "PTR", "missing",
               "ask the provider of %s to set: %s.\t3600\tIN\tPTR\tmail.example.test." % (ADDR, REV)),
    "PTR names another host": (lambda z: replace(z, "PTR", REV, "host-25.isp.test."), "PTR", "wrong",
                               "ask the provider of %s to set: %s.\t3600\tIN\tPTR\tmail.example.test." % (ADDR, REV)),
    "no address for the host": (lambda z: drop(z, "A", HOST), "A", "missing",
                                "publish: mail.example.test.\t3600\tIN\tA\t%s" % ADDR),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_zone_fails_with_the_fix(conf, tmp_path, case):
    change, label, status, fix = BROKEN[case]
    records = change(zone(conf))
    if label == "PTR":
        # dnsmasq's host-record makes a PTR too: give the host its address without one
        records = [r for r in records if r[1] != "A"]
    d_args = to_dnsmasq(records)
    if label == "PTR":
        d_args.append("--address=/%s/%s" % (HOST, ADDR))
    d = Dns(tmp_path / "dns", d_args).start()
    try:
        p = run_cli(["dns", "check", DOMAIN, "--resolver", "127.0.0.1@%d" % d.port, "--address", ADDR], conf=conf,
                    timeout=120)
    finally:
        d.stop()
    assert p.returncode == 1, p.stdout
    lines = p.stdout.splitlines()
    at = [i for i, line in enumerate(lines) if re.match(r"^FAIL\s+%s\s" % re.escape(label), line)]
    assert at, p.stdout
    block = "\n".join(lines[at[0]:at[0] + 3])
    if label == "DKIM":
        assert "selector s1" in block and len(at) == 1, p.stdout   # e1 stays ok
    assert ": " + status in lines[at[0]], block
    assert fix in block, block
    # the other required records stay ok ("mx" in SPF needs the MX and its address)
    marks = status_lines(p.stdout)
    for other in ("MX", "SPF", "DMARC"):
        if other != label and not (other == "SPF" and label in ("MX", "A")):
            assert marks[other] == ["ok"], (other, p.stdout)
    others = [k for k, v in marks.items() for m in v if m == "FAIL" and k != label]
    assert others == ([] if label not in ("MX", "A") else ["SPF"]), p.stdout


def test_recommended_records_warn_only(conf, tmp_path):
    records = [r for r in zone(conf) if r[1] not in ("SRV", "CNAME")]
    p = check(conf, tmp_path, records)
    marks = status_lines(p.stdout)
    assert set(marks["SRV"]) == {"warn"} and marks["autoconfig"] == ["warn"], p.stdout
    assert "publish: _submission._tcp.example.test.\t3600\tIN\tSRV\t0 1 587 mail.example.test." in p.stdout
    assert marks["MX"] == ["ok"] and marks["SPF"] == ["ok"], p.stdout


def test_json(conf, tmp_path):
    records = drop(zone(conf), "TXT", "_dmarc." + DOMAIN)
    p = check(conf, tmp_path, records, json_out=True)
    out = json.loads(p.stdout)
    assert p.returncode == 1
    assert out["domain"] == DOMAIN and out["hostname"] == HOST and out["address"] == ADDR
    assert out["ok"] is False and out["required_failed"] >= 1
    items = {(c["record"], c["name"]): c for c in out["checks"]}
    dmarc = items[("DMARC", "_dmarc." + DOMAIN)]
    assert dmarc["status"] == "missing" and dmarc["required"] is True
    assert dmarc["publish"].startswith("_dmarc.example.test.\t3600\tIN\tTXT\t\"v=DMARC1; p=none")
    mx = items[("MX", DOMAIN)]
    assert mx["status"] == "ok" and mx["found"] == "10 %s" % HOST and mx["publish"] is None
    for c in out["checks"]:
        assert set(c) == {"record", "name", "type", "required", "status", "found", "words", "publish"}, c


def test_not_a_local_domain(conf):
    p = run_cli(["dns", "elsewhere.test"], conf=conf)
    assert p.returncode == 1 and "elsewhere.test is not a local domain" in p.stderr, p.stderr
    p = run_cli(["dns", "check", DOMAIN, "--address", "not-an-address"], conf=conf)
    assert p.returncode == 2 and "--address not-an-address is not a numeric" in p.stderr, p.stderr
    p = run_cli(["dns"], conf=conf)
    assert p.returncode == 2


def test_spf_include_is_followed(conf, tmp_path):
    """SPF is judged by Postern's own SPF check (mailauth/spf.h): include: is followed."""
    base = [r for r in zone(conf) if not (r[1] == "TXT" and r[0] == DOMAIN)]
    ok = base + [(DOMAIN, "TXT", '"v=spf1 include:_spf.%s -all"' % DOMAIN),
                 ("_spf." + DOMAIN, "TXT", '"v=spf1 ip4:198.18.0.0/24 -all"')]
    p = check(conf, tmp_path / "ok", ok)
    assert status_lines(p.stdout)["SPF"] == ["ok"], p.stdout
    bad = base + [(DOMAIN, "TXT", '"v=spf1 include:_spf.%s -all"' % DOMAIN),
                  ("_spf." + DOMAIN, "TXT", '"v=spf1 ip4:192.0.2.0/24 -all"')]
    p = check(conf, tmp_path / "bad", bad)
    assert status_lines(p.stdout)["SPF"] == ["FAIL"] and p.returncode == 1, p.stdout
    assert "SPF fail for %s" % ADDR in p.stdout, p.stdout


def test_retired_key_stays_published_but_is_not_required(tmp_path):
    conf = make_conf(tmp_path, keys=(("old", "rsa"), ("new", "rsa")))
    p = run_cli(["dkim", "retire", DOMAIN, "old"], conf=conf)
    assert p.returncode == 0, p.stderr
    out = printed_zone(conf, "--address", ADDR)
    assert "old._domainkey.%s.\t3600\tIN\tTXT" % DOMAIN in out and "retired: it no longer signs" in out.replace("\n; ", " ")
    records = [r for r in zone_lines(out) if not r[0].startswith("old._domainkey.")]
    p = check(conf, tmp_path, records)
    lines = [line for line in p.stdout.splitlines() if re.match(r"^(ok|warn|FAIL) +DKIM ", line)]
    assert [line.split()[0] for line in lines] == ["ok", "warn"], p.stdout   # by selector: new, old
    assert p.returncode == 0, p.stdout


def test_spf_names_the_relay(tmp_path):
    """Mail that leaves through a smarthost comes from the smarthost's address: SPF names it."""
    conf = make_conf(tmp_path, keys=())
    conf.write_text(conf.read_text() + "\n[relay]\nhost = smtp.provider.test\nport = 587\n")
    out = printed_zone(conf)
    assert (DOMAIN, "TXT", '"v=spf1 mx a:smtp.provider.test -all"') in zone_lines(out), out
    assert "leaves through the relay smtp.provider.test" in out.replace("\n; ", " "), out


def _sts_id(out):
    txt = {n: r for n, t, r in zone_lines(out) if t == "TXT"}
    m = re.fullmatch(r'"v=STSv1; id=([0-9a-f]{1,32})"', txt.get("_mta-sts." + DOMAIN, ""))
    return m and m.group(1)


def test_mta_sts_policy_follows_the_settings(conf, tmp_path):
    """[mta-sts] mode, mx and max_age make the policy; its id is a digest, so a new policy
    is a new id (RFC 8461 §3.1), and mode = off publishes nothing."""
    default_id = _sts_id(printed_zone(conf))
    assert default_id
    text = conf.read_text()
    own = tmp_path / "sts.conf"
    own.write_text(text + "\n[mta-sts]\nmode = enforce\nmx = %s, *.backup.example.test\nmax_age = 30d\n" % HOST)
    out = printed_zone(own)
    assert ";     mode: enforce\n;     mx: %s\n;     mx: *.backup.example.test\n;     max_age: 2592000\n" % HOST in out, out
    new_id = _sts_id(out)
    assert new_id and new_id != default_id
    assert _sts_id(printed_zone(own)) == new_id, "the same policy keeps its id"
    own.write_text(text + "\n[mta-sts]\nmode = off\n")
    out = printed_zone(own)
    assert _sts_id(out) is None and "mode = off" in out, out
    assert "mta-sts.%s" % DOMAIN not in {n for n, t, r in zone_lines(out)}, out
    own.write_text(text + "\n[mta-sts]\nmx = not_a_host\n")
    p = run_cli(["dns", DOMAIN], conf=own)
    assert p.returncode != 0 and "[mta-sts] mx" in p.stderr, p.stderr


def test_stale_mta_sts_id_is_reported(conf, tmp_path):
    records = replace(zone(conf), "TXT", "_mta-sts." + DOMAIN, '"v=STSv1; id=0123abcd"')
    p = check(conf, tmp_path, records)
    marks = status_lines(p.stdout)
    assert marks["MTA-STS"] != ["ok"], p.stdout
    flat = " ".join(p.stdout.split())
    assert "id=0123abcd" in flat and "the policy this server serves now has id=%s" % _sts_id(printed_zone(conf)) in flat, \
        p.stdout
    assert p.returncode == 0, "MTA-STS is recommended, not required: " + p.stdout
