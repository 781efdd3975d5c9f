"""`postern explain` on Postern's own words when outbound transport security holds a
message: DANE mismatch (4.7.5), TLSA without STARTTLS, DNSSEC-bogus answers, MTA-STS
enforce failures (4.7.10: no STARTTLS, MX not in the policy, certificate not valid) and
the failure report after max_lifetime.  The texts are the ones delivery/secure.c, dane.c,
mx.c and attempt.c write (test_delivery_dane.py and test_delivery_mta_sts.py run explain
on the words of a real delivery too)."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_cli  # noqa: E402

CASES = [
    ("4.7.5 mx.example.com's certificate does not match its DANE TLSA record (usage 3, SHA-256 of the public key)",
     "dane_mismatch", "TLSA record matching the current certificate"),
    ("4.7.10 mx.example.com publishes DANE TLSA records, so TLS is required; mx.example.com offered no STARTTLS",
     "dane_tls_failed", "turn STARTTLS back on"),
    ("4.7.5 the DANE TLSA records at _25._tcp.mx.example.com failed DNSSEC validation (signature expired): "
     "Postern does not deliver to mx.example.com until they validate", "dnssec_bogus", "re-sign the zone"),
    ("4.4.3 the DNS answer for example.com (MX) failed DNSSEC validation (validation failure): it was tampered "
     "with or the domain's DNSSEC signatures are broken", "dnssec_bogus", "dnssec: on"),
    ("4.7.10 example.com publishes an MTA-STS policy in enforce mode; mx.example.com offered no STARTTLS",
     "mta_sts_failed", "offer STARTTLS"),
    ("4.7.5 example.com publishes an MTA-STS policy in enforce mode that names its mail servers as "
     "mx.elsewhere.test, *.other.test; mx.example.com is not one of them, so Postern does not deliver to it "
     "(RFC 8461 §4.1)", "mta_sts_failed", "mx: lines"),
    ("4.7.5 example.com publishes an MTA-STS policy in enforce mode; mx.example.com's certificate is not valid "
     "for that name (certificate verify failed)", "mta_sts_failed", "public CA"),
]


@pytest.mark.parametrize("text,cause,fix", CASES)
def test_each_transport_deferral_is_explained(text, cause, fix):
    p = run_cli(["explain", "--json", text])
    assert p.returncode == 0, (p.stdout, p.stderr)
    out = json.loads(p.stdout)
    ids = [c["id"] for c in out["causes"]]
    assert ids[0] == cause, out
    assert "Postern did not deliver" in out["meaning"], out
    first = out["causes"][0]
    fixes = " ".join(f for f in first["fixes"])
    assert fix in fixes, first
    # each says what the recipient's admin and ours must change
    assert "receiving domain's administrator" in fixes and "Administrator here" in fixes, first


def test_failure_report_after_max_lifetime():
    text = ("Diagnostic-Code: smtp; 5.7.10 gave up after 5 days of trying; last: example.com publishes an MTA-STS "
            "policy in enforce mode; mx.example.com offered no STARTTLS")
    p = run_cli(["explain", "--json", text])
    out = json.loads(p.stdout)
    ids = [c["id"] for c in out["causes"]]
    assert ids[:2] == ["delivery_expired", "mta_sts_failed"], out
    assert "max_lifetime" in out["meaning"] and "returned" in out["meaning"], out


def test_plain_text_names_both_sides():
    p = run_cli(["explain", "4.7.5 mx.example.com's certificate does not match its DANE TLSA record "
                 "(usage 3, SHA-256 of the public key)"])
    assert p.returncode == 0, p.stderr
    assert "1. dane_mismatch" in p.stdout and "postern queue show ID" in p.stdout, p.stdout
