#!/usr/bin/python3
"""make_vectors.py - the fixed DKIM test vectors of tests/unit/test_dkim.c, made once
with python3-dkim (dkimpy) and OpenSSL, then checked in: keys.txt (the key records,
"NAME TXT-VALUE" per line) and one message per case (NAME.eml, CRLF line ends).
Rerunning makes new keys and signatures; the unit test only needs the files."""
import base64, subprocess, dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

def rsa_key(bits):
    pem = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=pem,
                         check=True, capture_output=True).stdout
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()

def ed_key():
    k = ed25519.Ed25519PrivateKey.generate()
    seed = k.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pub = k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(seed), "v=DKIM1; k=ed25519; p=" + base64.b64encode(pub).decode()

MSG = (b"From: Alice Example <alice@example.test>\r\n"
       b"To: bob@example.org\r\n"
       b"Subject: a  folded\r\n   subject line \r\n"
       b"Date: Tue, 01 Dec 2026 12:00:00 +0000\r\n"
       b"Message-ID: <v1@example.test>\r\n"
       b"\r\n"
       b"Hello  Bob,\t \r\n\r\n  indented line\r\nlast line\r\n\r\n\r\n")
EMPTY = b"From: alice@example.test\r\nSubject: empty\r\n\r\n"
TWICE = (b"From: alice@example.test\r\nReceived: one\r\nX-Two: first\r\nX-Two: second\r\n"
         b"Subject: twice\r\n\r\nbody\r\n")

def sign(msg, sel, key, canon=(b"relaxed", b"relaxed"), heads=None, **kw):
    h = heads or [b"from", b"to", b"subject", b"date", b"message-id", b"from"]
    sig = dkim.sign(msg, sel, b"example.test", key, canonicalize=canon, include_headers=h, **kw)
    return sig + msg

rsa_pem, rsa_rec = rsa_key(2048)
small_pem, small_rec = rsa_key(768)
ed_seed, ed_rec = ed_key()
cases = {
    "rsa-relaxed": sign(MSG, b"rsa", rsa_pem),
    "rsa-simple": sign(MSG, b"rsa", rsa_pem, canon=(b"simple", b"simple")),
    "rsa-relaxed-simple": sign(MSG, b"rsa", rsa_pem, canon=(b"relaxed", b"simple")),
    "ed25519-relaxed": sign(MSG, b"ed", ed_seed, signature_algorithm=b"ed25519-sha256"),
    "empty-simple": sign(EMPTY, b"rsa", rsa_pem, canon=(b"simple", b"simple"), heads=[b"from", b"subject"]),
    "empty-relaxed": sign(EMPTY, b"rsa", rsa_pem, heads=[b"from", b"subject"]),
    "twice": sign(TWICE, b"rsa", rsa_pem, heads=[b"from", b"x-two", b"x-two", b"x-two", b"subject"]),
    "rsa-sha1": sign(MSG, b"rsa", rsa_pem, signature_algorithm=b"rsa-sha1"),
    "small-key": sign(MSG, b"small", small_pem),
    "no-key": sign(MSG, b"missing", rsa_pem),
    "revoked": sign(MSG, b"revoked", rsa_pem),
    "length": sign(MSG, b"rsa", rsa_pem, length=True) + b"appended after signing\r\n",
}
body_changed = cases["rsa-relaxed"].replace(b"last line", b"last lime")
header_changed = cases["rsa-relaxed"].replace(b"Subject: a  folded", b"Subject: A  folded")
cases["body-changed"] = body_changed
cases["header-changed"] = header_changed
for name, data in cases.items():
    open(name + ".eml", "wb").write(data)
with open("keys.txt", "w") as f:
    f.write("rsa._domainkey.example.test " + rsa_rec + "\n")
    f.write("ed._domainkey.example.test " + ed_rec + "\n")
    f.write("small._domainkey.example.test " + small_rec + "\n")
    f.write("revoked._domainkey.example.test v=DKIM1; k=rsa; p=\n")
# OpenDKIM's own signer (opendkim-testmsg signs rsa-sha1, relaxed/simple): Postern must
# refuse it by RFC 8301, naming the algorithm.
import os, tempfile
with tempfile.TemporaryDirectory() as d:
    subprocess.run(["opendkim-genkey", "-b", "2048", "-d", "example.test", "-s", "odk", "-D", d], check=True)
    signed = subprocess.run(["opendkim-testmsg", "-C", "-d", "example.test", "-k", os.path.join(d, "odk.private"),
                             "-s", "odk"], input=MSG, check=True, capture_output=True).stdout
    open("opendkim-sha1.eml", "wb").write(signed)
    zone = open(os.path.join(d, "odk.txt")).read()
    rec = "".join(__import__("re").findall(r'"([^"]*)"', zone))
    with open("keys.txt", "a") as f:
        f.write("odk._domainkey.example.test " + rec + "\n")
# the cross-check: every passing case verifies with dkimpy against the same records
recs = {l.split(" ", 1)[0].encode() + b".": l.split(" ", 1)[1].strip().encode() for l in open("keys.txt")}
for name in ("rsa-relaxed", "rsa-simple", "rsa-relaxed-simple", "ed25519-relaxed", "empty-simple",
             "empty-relaxed", "twice", "length"):
    assert dkim.verify(cases[name], dnsfunc=lambda n, timeout=5: recs.get(n)), name
