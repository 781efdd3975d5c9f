"""The big receivers' refusals of unauthenticated mail (issue 11, diagnostics):
`postern explain` knows their real reply texts and names the record to publish and
`postern dns check`; the failure report and the delay notice for a message refused that
way say the same in words the user can forward to the administrator (a real Postern
delivering to an aiosmtpd receiver that answers as Gmail does)."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_cli  # noqa: E402
from delivery_support import (  # noqa: E402,F401
    dns, AioReceiver, REMOTE_ADDRS, SENDER, free_port, make_server, submit, wait_reports, events,
)

# (reply as the receiver words it, the first cause, words the meaning must have)
REPLIES = [
    ("550-5.7.26 This mail has been blocked because the sender is unauthenticated.\n"
     "550-5.7.26 Gmail requires all senders to authenticate with either SPF or DKIM.\n"
     "550 5.7.26  Authentication results: DKIM = did not pass SPF [example.org] with ip: [192.0.2.7] = did not pass",
     "sender_authentication_failed", "v=spf1 mx -all"),
    ("550 5.7.1 Unauthenticated email from example.org is not accepted due to domain's DMARC policy. "
     "Please contact administrator of example.org domain if this was a legitimate mail.",
     "dmarc_failed", "_dmarc.DOMAIN"),
    ("550-5.7.27 The sender's SPF authentication did not pass.", "spf_failed", "v=spf1"),
    ("550-5.7.25 The IP address sending this message does not have a PTR record setup, or the\n"
     "550 5.7.25 corresponding forward DNS entry does not point to the sending IP.",
     "reverse_dns_missing", "--address ADDRESS"),
    ("421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating from your IP address.",
     "throttled", "retries by itself"),
    ("550 5.7.515 Access denied, sending domain [EXAMPLE.ORG] does not meet the required authentication level.",
     "dmarc_failed", "_dmarc.DOMAIN"),
    ("550 5.7.509 Access denied, sending domain [example.org] does not pass DMARC verification and has a DMARC "
     "policy of reject.", "dmarc_failed", "DKIM for the From: domain"),
    ("550 5.7.23 The message was rejected because of Sender Policy Framework violation", "spf_failed", "v=spf1"),
    ("554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes",
     "dmarc_failed", "Yahoo"),
    ("421 4.7.0 [TSS04] Messages from 192.0.2.7 temporarily deferred due to unexpected volume or user complaints "
     "- 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", "throttled", "Yahoo"),
    ("550 5.7.1 [CS01] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137",
     "spam_or_policy", "iCloud"),
    ("554 5.7.1 [HM08] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137",
     "spam_or_policy", "iCloud"),
]


@pytest.mark.parametrize("reply,cause,words", REPLIES, ids=[r[0][:16] for r in REPLIES])
def test_explain_names_the_record_and_dns_check(reply, cause, words):
    p = run_cli(["explain", "--json", reply])
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["causes"][0]["id"] == cause, out
    assert words in out["meaning"] and "postern dns check DOMAIN" in out["meaning"], out["meaning"]
    # every authentication cause tells the administrator what Postern checks it with
    ids = [c["id"] for c in out["causes"]]
    for c in out["causes"]:
        if c["id"] in ("sender_authentication_failed", "spf_failed", "dmarc_failed", "reverse_dns_missing"):
            assert any("postern dns" in f for f in c["fixes"]), c
    assert set(ids) & {"sender_authentication_failed", "spf_failed", "dmarc_failed", "reverse_dns_missing"}, ids


def plain(text):
    return " ".join(text.split())


GMAIL_5726 = ("550 5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all "
              "senders to authenticate with either SPF or DKIM. - gsmtp")


def test_failure_report_says_what_to_forward(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2"], port, data_reply=lambda env, n: GMAIL_5726):
        srv = make_server(server_factory, dns, port)
        qid = submit(srv, "friend@d2.test", subject="to a Gmail user")
        rs = wait_reports(srv, 1, timeout=20, kind="failure")
        assert len(rs) == 1, srv.log()
        text = plain(rs[0].text)
        assert "550 5.7.26 This mail has been blocked because the sender is unauthenticated" in text, text
        domain = SENDER.split("@")[1]
        assert ("Gmail refused the message because it could not confirm that it really comes from %s" % domain
                in text), text
        assert "forward this report to your mail administrator" in text, text
        assert "run `postern dns check %s` on mx.example.test" % domain in text, text
        assert rs[0].recipients[0]["Status"] == "5.7.26", rs[0].recipients
        assert max(len(line) for line in rs[0].text.splitlines()) < 200, rs[0].text
        assert events(srv, "bounced", qid=qid)


def test_delay_notice_for_a_rate_limit(server_factory, dns):
    reply = ("421 4.7.28 Gmail has detected an unusual rate of unsolicited mail originating from your IP "
             "address. To protect our users from spam, mail sent from your IP address has been temporarily "
             "rate limited. - gsmtp")
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2"], port, data_reply=lambda env, n: reply):
        srv = make_server(server_factory, dns, port, delivery={"delay_notice": "1s", "max_lifetime": "1h"})
        submit(srv, "friend@d2.test", subject="slowed down")
        rs = wait_reports(srv, 1, timeout=20, kind="delay")
        assert rs, srv.log()
        text = plain(rs[0].text)
        assert "Gmail is slowing down mail from this server for now" in text, text
        assert "Postern keeps trying by itself" in text and "postern dns check example.test" in text, text
        assert rs[0].recipients[0]["Action"] == "delayed", rs[0].recipients


def test_other_refusals_keep_their_words(server_factory, dns):
    """A refusal that is not about authentication gets no DNS advice."""
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2"], port, data_reply=lambda env, n: "554 5.7.1 Message rejected as spam"):
        srv = make_server(server_factory, dns, port)
        submit(srv, "friend@d2.test")
        rs = wait_reports(srv, 1, timeout=20, kind="failure")
        assert rs, srv.log()
        text = plain(rs[0].text)
        assert "postern dns check" not in text and "as a matter of policy" in text, text
