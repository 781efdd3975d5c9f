"""DKIM keys and verification (RFC 6376, RFC 8463) against oracles nobody here wrote.

* `postern dkim keygen | list | retire`: the key file (PKCS#8 PEM, 0600, never
  overwritten), the record printed ready to paste (strings of at most 255 octets) whose
  public key is the private key's own (checked with python3-cryptography), the local-
  domain rule and --force, retired keys staying listed.  With the PostgreSQL directory
  (POSTERN_TEST_DIRECTORY=postgresql) the key is a row of postern_dkim_keys instead of a
  file, and the same checks run on the row's PEM.
* Postern's verifier on messages signed by python3-dkim (`dkim.sign`), rsa-sha256 and
  ed25519-sha256, with the key records served by dnsmasq on loopback (the rsa record
  split into several strings, as a zone file holds it): pass, a changed body fails with
  words saying so, an unknown selector is a permerror naming the missing record, and a
  DNS server that does not answer is a temperror."""
import base64
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).parent))
import conftest  # noqa: E402
from conftest import DIRECTORY_BACKEND, postern_bin, run_cli, write_config  # noqa: E402
from delivery_support import Dns  # noqa: E402

MSG = (b"From: Alice <alice@example.test>\r\nTo: bob@d2.test\r\nSubject: signed  by dkimpy\r\n"
       b"Date: Tue, 01 Dec 2026 12:00:00 +0000\r\nMessage-ID: <x1@example.test>\r\n\r\n"
       b"Hello Bob,\r\n  this is  signed.\r\n\r\n")


@pytest.fixture
def conf(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    path = tmp_path / "postern.conf"
    write_config(path, data)
    return path, data


def stored_pem(conf, selector_like):
    """The PEM of the key whose selector matches (a glob with * / SQL LIKE with %): the
    file (0600, the data directory's owner) or, with PostgreSQL, the row."""
    if DIRECTORY_BACKEND == "sqlite":
        pem = next((conf[1] / "dkim" / "example.test").glob(selector_like.replace("%", "*") + ".pem"))
        st = os.stat(pem)
        assert st.st_mode & 0o777 == 0o600
        assert st.st_uid == os.stat(conf[1]).st_uid
        return pem.read_bytes()
    db = re.search(r"dbname=(\w+)", Path(conf[0]).read_text()).group(1)
    assert not (conf[1] / "dkim").exists(), "with PostgreSQL no key file is written"
    out = conftest._pg_cluster.psql("SELECT private_key FROM postern_dkim_keys WHERE domain = 'example.test' AND "
                                    "selector LIKE '%s'" % selector_like, db=db)
    return out.strip().encode() + b"\n"


def keygen(conf, *args):
    return run_cli(["dkim", "keygen"] + list(args), conf=conf[0])


def record_of(stdout):
    """The TXT strings of the printed record, joined (RFC 6376 §3.6.2.2)."""
    line = [l for l in stdout.splitlines() if "._domainkey." in l][0]
    strings = re.findall(r'"([^"]*)"', line)
    assert strings and all(len(s) <= 255 for s in strings), line
    return line.split()[0], "".join(strings)


def test_keygen_list_retire(conf):
    r = keygen(conf, "example.test", "--selector", "sel1")
    assert r.returncode == 0, r.stderr
    name, rec = record_of(r.stdout)
    assert name == "sel1._domainkey.example.test."
    assert rec.startswith("v=DKIM1; k=rsa; p=")
    text = stored_pem(conf, "sel1")
    assert text.startswith(b"-----BEGIN PRIVATE KEY-----")        # PKCS#8
    key = serialization.load_pem_private_key(text, None)
    assert key.key_size == 2048
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert rec.split("p=")[1] == base64.b64encode(spki).decode()
    assert len(rec) > 255        # the 2048-bit record needs two strings

    again = keygen(conf, "example.test", "--selector", "sel1")
    assert again.returncode != 0 and "never overwritten" in again.stderr
    assert stored_pem(conf, "sel1") == text

    ed = keygen(conf, "example.test", "--type", "ed25519")
    assert ed.returncode == 0, ed.stderr
    ename, erec = record_of(ed.stdout)
    assert re.match(r"e\d{6}\._domainkey\.example\.test\.$", ename)
    ekey = serialization.load_pem_private_key(stored_pem(conf, "e%"), None)
    raw = ekey.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert erec == "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()

    other = keygen(conf, "elsewhere.test")
    assert other.returncode != 0 and "not a local domain" in other.stderr
    assert keygen(conf, "elsewhere.test", "--force", "--selector", "x1").returncode == 0
    bad = keygen(conf, "example.test", "--selector", "../../etc")
    assert bad.returncode != 0

    lst = run_cli(["dkim", "list"], conf=conf[0])
    assert lst.returncode == 0
    rows = [l.split() for l in lst.stdout.splitlines() if l.startswith(("example.test", "elsewhere.test"))]
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        ("elsewhere.test", "x1", "rsa", "2048", "active"),
        ("example.test", ename.split(".")[0], "ed25519", "256", "active"),
        ("example.test", "sel1", "rsa", "2048", "active")]
    assert rec.split("p=")[1][:200] in lst.stdout

    ret = run_cli(["dkim", "retire", "example.test", "sel1"], conf=conf[0])
    assert ret.returncode == 0, ret.stderr
    lst = run_cli(["dkim", "list", "example.test"], conf=conf[0])
    assert re.search(r"^example\.test\s+sel1\s+rsa\s+2048\s+retired", lst.stdout, re.M), lst.stdout
    assert "elsewhere.test" not in lst.stdout
    assert run_cli(["dkim", "retire", "example.test", "nosuch"], conf=conf[0]).returncode != 0


def zone_strings(rec):
    """dnsmasq --txt-record value: the record cut into 255-octet strings (dnsmasq
    splits at commas and keeps quotes literally)."""
    assert "," not in rec
    return ",".join(rec[i:i + 255] for i in range(0, len(rec), 255))


@pytest.fixture
def signed_world(conf, tmp_path):
    """Keys made by OpenSSL through python3-cryptography, records served by dnsmasq."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    rkey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rpem = rkey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    rrec = "v=DKIM1; k=rsa; p=" + base64.b64encode(rkey.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    ekey = ed25519.Ed25519PrivateKey.generate()
    eseed = base64.b64encode(ekey.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                serialization.NoEncryption()))
    erec = "v=DKIM1; k=ed25519; p=" + base64.b64encode(ekey.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    d = Dns(tmp_path / "dns", ["--txt-record=r1._domainkey.example.test," + zone_strings(rrec),
                               "--txt-record=e1._domainkey.example.test," + zone_strings(erec)]).start()
    write_config(conf[0], conf[1], extra="\n[delivery]\nresolver = 127.0.0.1@%d\n" % d.port)
    yield {"conf": conf, "rsa": rpem, "ed": eseed, "tmp": tmp_path}
    d.stop()


def verify(world, data, name="m.eml"):
    p = world["tmp"] / name
    p.write_bytes(data)
    return run_cli(["dkim", "verify", str(p)], conf=world["conf"][0])


@pytest.mark.parametrize("alg", ["rsa", "ed25519"])
def test_dkimpy_signed_verified_by_postern(signed_world, alg):
    sel, key, a = (b"r1", signed_world["rsa"], b"rsa-sha256") if alg == "rsa" else \
        (b"e1", signed_world["ed"], b"ed25519-sha256")
    for canon in ((b"relaxed", b"relaxed"), (b"simple", b"simple"), (b"relaxed", b"simple")):
        sig = dkim.sign(MSG, sel, b"example.test", key, canonicalize=canon, signature_algorithm=a,
                        include_headers=[b"from", b"to", b"subject", b"date", b"message-id", b"from"])
        r = verify(signed_world, sig + MSG)
        assert r.returncode == 0, (canon, r.stdout, r.stderr)
        assert re.search(r"^dkim=pass header\.d=example\.test header\.s=%s header\.a=%s header\.b=\S{8,}"
                         % (sel.decode(), a.decode()), r.stdout, re.M), r.stdout
    changed = verify(signed_world, sig + MSG.replace(b"Hello Bob", b"Hello Eve"))
    assert changed.returncode == 1 and "dkim=fail" in changed.stdout
    assert "the body was changed after signing" in changed.stdout
    unknown = dkim.sign(MSG, b"gone", b"example.test", key, signature_algorithm=a)
    r = verify(signed_world, unknown + MSG)
    assert "dkim=permerror" in r.stdout and "gone._domainkey.example.test was not found" in r.stdout


def test_unsigned_and_dns_silent(signed_world, tmp_path):
    r = verify(signed_world, MSG)
    assert r.returncode == 1 and "dkim=none" in r.stdout
    # a DNS server that never answers: temperror, never a permanent verdict
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        conf = signed_world["conf"]
        write_config(conf[0], conf[1], extra="\n[delivery]\nresolver = 127.0.0.1@%d\n" % silent.getsockname()[1])
        sig = dkim.sign(MSG, b"r1", b"example.test", signed_world["rsa"])
        r = verify(signed_world, sig + MSG)
        assert "dkim=temperror" in r.stdout, r.stdout
    finally:
        silent.close()


def published(conf):
    """The records `postern dkim list` shows, as a dnsfunc for dkimpy."""
    lst = run_cli(["dkim", "list"], conf=conf[0]).stdout
    recs = {}
    for line in lst.splitlines():
        if "._domainkey." in line:
            name, rec = record_of(line)
            recs[name.encode()] = rec.encode()
    return lambda name, timeout=5: recs.get(name)


def test_postern_signed_verified_by_dkimpy(conf, tmp_path):
    assert keygen(conf, "example.test", "--selector", "r1").returncode == 0
    assert keygen(conf, "example.test", "--selector", "e1", "--type", "ed25519").returncode == 0
    src = tmp_path / "in.eml"
    body = MSG.replace(b"Subject:", b"Cc: carol@d2.test\r\nReply-To: a@example.test\r\nSubject:") + b"tail  \r\n\r\n"
    src.write_bytes(body)
    r = subprocess.run([postern_bin(), "dkim", "sign", str(src), "-c", str(conf[0])], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    signed = r.stdout
    assert signed.endswith(body)
    sigs = re.findall(rb"^DKIM-Signature:.*?(?=^\S)", signed, re.M | re.S)
    assert len(sigs) == 2
    assert b"a=ed25519-sha256" in sigs[0] and b"a=rsa-sha256" in sigs[1]
    for s in sigs:
        flat = re.sub(rb"\s+", b"", s)
        assert b"c=relaxed/relaxed" in flat and b";t=" in flat and b";l=" not in flat
        assert b"h=from:from:to:cc:subject:date:message-id:reply-to;" in flat, flat
    d = dkim.DKIM(signed)
    dnsfunc = published(conf)
    assert d.verify(idx=0, dnsfunc=dnsfunc) and d.verify(idx=1, dnsfunc=dnsfunc)
    # a second From: added below the signatures breaks them (From is over-signed)
    forged = signed.replace(b"From: Alice", b"From: Mallory <m@evil.test>\r\nFrom: Alice", 1)
    assert not dkim.DKIM(forged).verify(idx=1, dnsfunc=dnsfunc)
    # retired: no longer signs, the other key still does
    assert run_cli(["dkim", "retire", "example.test", "e1"], conf=conf[0]).returncode == 0
    r = run_cli(["dkim", "sign", str(src)], conf=conf[0])
    assert r.stdout.count("DKIM-Signature:") == 1 and "s=r1;" in r.stdout
    # rotation: a new rsa key waits until the old one is retired
    assert keygen(conf, "example.test", "--selector", "r2").returncode == 0
    r = run_cli(["dkim", "sign", str(src)], conf=conf[0])
    assert "s=r1;" in r.stdout and "s=r2;" not in r.stdout
    assert run_cli(["dkim", "retire", "example.test", "r1"], conf=conf[0]).returncode == 0
    r = run_cli(["dkim", "sign", str(src)], conf=conf[0])
    assert r.stdout.count("DKIM-Signature:") == 1 and "s=r2;" in r.stdout
    # a From: domain without a key is not signed
    src.write_bytes(MSG.replace(b"alice@example.test", b"alice@d2.test"))
    r = run_cli(["dkim", "sign", str(src)], conf=conf[0])
    assert r.returncode == 1 and "has no active DKIM key" in r.stderr
