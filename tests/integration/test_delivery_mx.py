"""Outbound delivery by MX: preference order, fallback to the next MX, implicit MX,
null MX, NXDOMAIN, 4xx then success, 5xx bounces and their content, no bounce for <>,
SIZE and 8BITMIME, PIPELINING / BDAT / DSN parameters, connection reuse.

Real peers on loopback: dnsmasq, aiosmtpd, smtp-sink and a raw SMTP receiver
(delivery_support.py)."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from delivery_support import (  # noqa: E402,F401
    dns, AioReceiver, RawReceiver, SmtpSink, REMOTE_ADDRS, SENDER, SENDER2, free_port, make_server, submit,
    msg, events, wait_event, reports, wait_reports, queue_json, queue_cli,
)


# -- 1. MX preference and fallback -------------------------------------------------------

def test_mx_preference_lowest_first(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2", "127.0.0.3"], port) as rx:
        srv = make_server(server_factory, dns, port)
        qid = submit(srv, "bob@remote.test")
        ev = wait_event(srv, "delivered", qid=qid, to="bob@remote.test")
        assert ev, srv.log()
        assert ev[0]["remote"].startswith("127.0.0.2 said: 250"), ev
        got = rx.wait_messages(1)
        assert [m["addr"] for m in got] == ["127.0.0.2"], got
        assert got[0]["rcpt_tos"] == ["bob@remote.test"]
        assert got[0]["mail_from"] == SENDER
        assert rx.sessions_by_addr.get("127.0.0.3", 0) == 0
        assert not events(srv, "remote_try_next")
        conn = events(srv, "remote_connect", host="mx1.remote.test")
        assert conn and conn[0]["address"] == "127.0.0.2" and conn[0]["port"] == str(port), conn
        # the message is gone from the queue
        assert wait_event(srv, "removed", qid=qid)
        assert queue_json(srv) == []


def test_mx_fallback_to_second_when_first_down(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.3"], port) as rx:      # nothing listens on 127.0.0.2
        srv = make_server(server_factory, dns, port)
        qid = submit(srv, "bob@remote.test")
        ev = wait_event(srv, "delivered", qid=qid)
        assert ev, srv.log()
        assert ev[0]["remote"].startswith("127.0.0.3 said: 250"), ev
        tn = events(srv, "remote_try_next", qid=qid)
        assert tn and "mx1.remote.test[127.0.0.2]" in tn[0]["host"], srv.log()
        assert [m["addr"] for m in rx.wait_messages(1)] == ["127.0.0.3"]
        assert not events(srv, "deferred")


# -- 2. no MX: the domain's own address ----------------------------------------------------

def test_implicit_mx_a_record_only(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2"], port) as rx:
        srv = make_server(server_factory, dns, port)
        qid = submit(srv, "carol@plain.test")
        ev = wait_event(srv, "delivered", qid=qid)
        assert ev and ev[0]["remote"].startswith("127.0.0.2 said: 250"), srv.log()
        got = rx.wait_messages(1)
        assert got and got[0]["rcpt_tos"] == ["carol@plain.test"]
        conn = events(srv, "remote_connect", qid="")
        assert any(c.get("host") == "plain.test" for c in conn), conn


# -- 3. null MX and NXDOMAIN: returned at once ------------------------------------------------

def _one_failure_report(srv, timeout=10):
    rs = wait_reports(srv, 1, timeout=timeout)
    assert len(rs) == 1, "expected one report to the sender, got %d; log:\n%s" % (len(rs), srv.log())
    r = rs[0]
    assert r.is_failure, r
    assert "MAILER-DAEMON" in r.from_, r.from_
    assert r.content_type == "multipart/report" and r.report_type == "delivery-status", r
    assert r.types[:2] == ["text/plain", "message/delivery-status"], r.types
    return r


def test_null_mx_bounces_at_once(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    srv = make_server(server_factory, dns, port)
    t0 = time.monotonic()
    qid = submit(srv, "dave@nullmx.test")
    r = _one_failure_report(srv)
    assert time.monotonic() - t0 < 8
    assert "null MX" in r.text, r.text
    rc = r.recipients[0]
    assert rc["Action"] == "failed" and rc["Status"].startswith("5."), rc
    assert "dave@nullmx.test" in rc["Final-Recipient"]
    b = events(srv, "bounced", qid=qid)
    assert b and "null MX" in b[0]["reason"], srv.log()
    assert not events(srv, "deferred", qid=qid), "a null MX must not be retried"
    assert not events(srv, "remote_connect")
    assert wait_event(srv, "removed", qid=qid)
    # RFC 7505 §4.2: "5.1.10 Recipient address has null MX"
    assert rc["Status"] == "5.1.10", rc


def test_nxdomain_bounces_does_not_exist(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    srv = make_server(server_factory, dns, port)
    qid = submit(srv, "erin@nx.test")
    r = _one_failure_report(srv)
    assert "does not exist" in r.text, r.text
    rc = r.recipients[0]
    assert not events(srv, "deferred", qid=qid)
    assert rc["Action"] == "failed", rc
    # RFC 3463: 5.1.2 bad destination system address (remote.c sets it; it must reach the report)
    assert rc["Status"] == "5.1.2", rc


# -- 4. 4xx, then success -----------------------------------------------------------------------

import pytest  # noqa: E402


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_4xx_then_delivered_once(server_factory, dns, stage):
    port = free_port(REMOTE_ADDRS)
    first = "451 4.3.0 busy, come back later"
    kw = ({"rcpt_reply": lambda a, o, n: first if n == 1 else None} if stage == "RCPT"
          else {"data_reply": lambda e, n: first if n == 1 else None})
    with AioReceiver(["127.0.0.2"], port, **kw) as rx:
        srv = make_server(server_factory, dns, port)
        qid = submit(srv, "frank@d2.test")
        d = wait_event(srv, "delivered", qid=qid, timeout=15)
        assert d, srv.log()
        de = events(srv, "deferred", qid=qid)
        assert len(de) == 1, de
        assert de[0]["attempt"] == "1" and int(de[0]["retry_in"]) in (1, 2), de
        assert "451 4.3.0 busy" in de[0]["reason"], de
        log = srv.log()
        assert log.index("event=deferred") < log.index("event=delivered")
        time.sleep(2.5)     # longer than retry_max: a second delivery would show
        assert len(rx.messages) == 1, rx.messages
        assert len(events(srv, "delivered", qid=qid)) == 1
        assert queue_json(srv) == []
        assert reports(srv) == [], "no report for a message delivered on retry"


# -- 5. 5xx: the bounce and what it says ------------------------------------------------------------

USER_UNKNOWN = "550 5.1.1 <ghost@d2.test>: Recipient address rejected: User unknown in virtual mailbox table"


def test_5xx_bounce_content(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2"], port,
                     rcpt_reply=lambda a, o, n: USER_UNKNOWN if a.startswith("ghost") else None) as rx:
        srv = make_server(server_factory, dns, port)
        body = msg(subject="Quarterly figures 5xx", to="ghost@d2.test", body="the body line 5xx\r\n")
        qid = submit(srv, ["ghost@d2.test", "ok@d2.test"], body=body, mail_params=" ENVID=env-5xx-1",
                     rcpt_params=[" ORCPT=rfc822;ghost@d2.test", ""])
        r = _one_failure_report(srv)
        # the good recipient got it; the bad one did not
        got = rx.wait_messages(1)
        assert [m["rcpt_tos"] for m in got] == [["ok@d2.test"]]
        assert "Undelivered Mail Returned to Sender" in r.subject
        assert "<ghost@d2.test>" in r.text and "User unknown in virtual mailbox table" in r.text, r.text
        assert "127.0.0.2 said: 550 5.1.1" in r.text, r.text
        assert "does not exist" in r.text, "plain-words meaning missing: " + r.text
        assert "ok@d2.test" not in r.text, "the delivered recipient must not be in the failure report"
        pm = r.per_message
        assert pm.get("Reporting-MTA", "").startswith("dns;") and "mx.example.test" in pm["Reporting-MTA"], pm
        assert pm.get("Original-Envelope-Id") == "env-5xx-1", pm
        assert len(r.recipients) == 1, r.status_fields
        rc = r.recipients[0]
        assert rc["Final-Recipient"].replace(" ", "") == "rfc822;ghost@d2.test", rc
        assert rc["Original-Recipient"].replace(" ", "") == "rfc822;ghost@d2.test", rc
        assert rc["Action"] == "failed" and rc["Status"] == "5.1.1", rc
        assert rc["Diagnostic-Code"].startswith("smtp;") and "550 5.1.1" in rc["Diagnostic-Code"], rc
        assert r.types == ["text/plain", "message/delivery-status", "message/rfc822"], r.types
        assert b"Subject: Quarterly figures 5xx" in r.returned and b"the body line 5xx" in r.returned
        assert events(srv, "bounced", qid=qid, to="ghost@d2.test")
        bs = events(srv, "bounce_sent", qid=qid)
        assert len(bs) == 1 and bs[0]["report_qid"] and bs[0]["to"] == "<%s>" % SENDER, bs
        assert events(srv, "delivered", qid=bs[0]["report_qid"], to=SENDER), "report not delivered locally"
        assert wait_event(srv, "removed", qid=qid)


def test_5xx_ret_hdrs_returns_headers_only(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2"], port, rcpt_reply=lambda a, o, n: USER_UNKNOWN):
        srv = make_server(server_factory, dns, port)
        body = msg(subject="headers only please", to="ghost@d2.test", body="SECRET-BODY-TEXT\r\n")
        submit(srv, "ghost@d2.test", body=body, mail_params=" RET=HDRS")
        r = _one_failure_report(srv)
        assert r.types[2] == "text/rfc822-headers", r.types
        assert b"Subject: headers only please" in r.returned
        assert b"SECRET-BODY-TEXT" not in r.raw


def test_5xx_notify_never_no_bounce(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2"], port, rcpt_reply=lambda a, o, n: USER_UNKNOWN):
        srv = make_server(server_factory, dns, port)
        qid = submit(srv, "ghost@d2.test", rcpt_params=" NOTIFY=NEVER")
        assert wait_event(srv, "bounced", qid=qid), srv.log()
        assert wait_event(srv, "removed", qid=qid)
        time.sleep(1.0)
        assert reports(srv) == []
        assert not events(srv, "bounce_sent")


def test_5xx_null_sender_no_bounce_kept_in_failed(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2"], port, rcpt_reply=lambda a, o, n: USER_UNKNOWN):
        srv = make_server(server_factory, dns, port)
        qid = submit(srv, "ghost@d2.test", sender="")
        assert wait_event(srv, "bounced", qid=qid), srv.log()
        kept = wait_event(srv, "kept", qid=qid)
        assert kept and "queue/failed" in kept[0].get("where", ""), srv.log()
        failed_dir = srv.data_dir / "queue" / "failed"
        assert failed_dir.is_dir() and any(qid in p.name for p in failed_dir.rglob("*")), \
            list(failed_dir.rglob("*")) if failed_dir.is_dir() else "no queue/failed"
        time.sleep(0.5)
        assert not events(srv, "bounce_sent")
        assert reports(srv) == [] and reports(srv, SENDER2) == []
        assert queue_json(srv) == []


# -- 11. SIZE and 8BITMIME: refused before sending ------------------------------------------------------

def test_size_limit_bounce_without_sending(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2"], port, data_size_limit=2000) as rx:
        srv = make_server(server_factory, dns, port)
        body = msg(subject="too big", to="big@d2.test", body=("x" * 70 + "\r\n") * 80)
        qid = submit(srv, "big@d2.test", body=body)
        r = _one_failure_report(srv)
        assert events(srv, "bounced", qid=qid)
        assert rx.mail_count == 0, "the message must not be offered (MAIL) to a server whose SIZE is smaller"
        assert rx.messages == []
        assert "2000" in r.text, r.text
        assert "too big" in r.text.lower(), "plain-words meaning for a size refusal missing: " + r.text
        assert r.recipients[0]["Status"] == "5.3.4", r.recipients


def test_8bit_to_7bit_server_bounces_5_6_3(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    # decode_data=True: aiosmtpd does not announce 8BITMIME
    with AioReceiver(["127.0.0.2"], port, decode_data=True) as rx:
        srv = make_server(server_factory, dns, port)
        body = msg(subject="8bit", to="u@d2.test", body="Gr\u00fc\u00dfe aus K\u00f6ln\r\n")
        qid = submit(srv, "u@d2.test", body=body, mail_params=" BODY=8BITMIME")
        r = _one_failure_report(srv)
        assert events(srv, "bounced", qid=qid)
        assert rx.mail_count == 0 and rx.messages == []
        assert "8BITMIME" in r.text or "8-bit" in r.text, r.text
        assert r.recipients[0]["Status"] == "5.6.3", r.recipients


def test_8bit_to_8bitmime_server_says_body_8bitmime(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with AioReceiver(["127.0.0.2"], port) as rx:
        srv = make_server(server_factory, dns, port)
        body = msg(subject="8bit ok", to="u@d2.test", body="Gr\u00fc\u00dfe\r\n")
        qid = submit(srv, "u@d2.test", body=body, mail_params=" BODY=8BITMIME")
        assert wait_event(srv, "delivered", qid=qid), srv.log()
        got = rx.wait_messages(1)
        assert "BODY=8BITMIME" in got[0]["mail_options"], got[0]["mail_options"]
        assert "Gr\u00fc\u00dfe".encode() in got[0]["content"]


# -- 12. PIPELINING (smtp-sink and the raw receiver), BDAT ------------------------------------------------

def test_pipelining_three_recipients_smtp_sink(server_factory, dns, tmp_path):
    port = free_port(REMOTE_ADDRS)
    with SmtpSink(tmp_path / "sink", "127.0.0.4", port) as sink:
        srv = make_server(server_factory, dns, port)
        rcpts = ["r1@d4.test", "r2@d4.test", "r3@d4.test"]
        qid = submit(srv, rcpts)
        ev = wait_event(srv, "delivered", n=3, qid=qid)
        assert sorted(e["to"] for e in ev) == ["<%s>" % r for r in rcpts], srv.log()
        sess, quits, mesg = sink.wait_messages(1)
        assert mesg == 1, (sess, quits, mesg)      # one transaction for three recipients
        assert all("127.0.0.4 said: 250" in e["remote"] for e in ev), ev


def test_pipelining_batches_mail_rcpt_data(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with RawReceiver(["127.0.0.5"], port, ext=("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES")) as rx:
        srv = make_server(server_factory, dns, port)
        rcpts = ["r1@d5.test", "r2@d5.test", "r3@d5.test"]
        body = msg(subject="pipelined", to=rcpts[0], body="line one\r\n.leading dot\r\n..two dots\r\nend\r\n")
        qid = submit(srv, rcpts, body=body)
        assert wait_event(srv, "delivered", n=3, qid=qid), srv.log()
        tx = rx.wait_transactions(1)
        assert len(tx) == 1 and tx[0]["via"] == "DATA" and len(tx[0]["rcpts"]) == 3, tx
        batch = next(b for b in rx.batches if b and b[0].upper().startswith("MAIL"))
        assert [x.split(":")[0].split(" ")[0].upper() for x in batch] == ["MAIL", "RCPT", "RCPT", "RCPT", "DATA"], \
            "with PIPELINING, MAIL, the RCPTs and DATA go in one write: %r" % rx.batches
        b = tx[0]["body"]
        assert b"\r\n.leading dot\r\n..two dots\r\nend\r\n" in b, b   # dot-stuffing undone by the receiver


def test_bdat_when_chunking_offered(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    ext = ("PIPELINING", "CHUNKING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 1000000")
    with RawReceiver(["127.0.0.5"], port, ext=ext) as rx:
        srv = make_server(server_factory, dns, port)
        body = msg(subject="chunked", to="c@d5.test", body="alpha\r\n.dot line\r\nomega\r\n")
        qid = submit(srv, "c@d5.test", body=body)
        assert wait_event(srv, "delivered", qid=qid), srv.log()
        tx = rx.wait_transactions(1)
        assert tx and tx[0]["via"] == "BDAT", (tx, rx.commands)
        assert not any(c.upper() == "DATA" for c in rx.commands), rx.commands
        b = tx[0]["body"]
        # BDAT carries the message as is: no dot-stuffing, CRLF line ends, exact size
        assert b"\r\n.dot line\r\nomega\r\n" in b and b"\r\n..dot" not in b, b
        assert b"\n" not in b.replace(b"\r\n", b""), "bare LF in the BDAT body"
        assert sum(tx[0]["chunks"]) == len(b)
        assert b.endswith(b"omega\r\n")


# -- 7. DSN parameters passed on to a server that offers DSN ------------------------------------------------

def test_dsn_parameters_relayed(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with RawReceiver(["127.0.0.6"], port) as rx:       # PIPELINING SIZE 8BITMIME DSN
        srv = make_server(server_factory, dns, port)
        qid = submit(srv, ["a@d6.test", "b@d6.test"], mail_params=" RET=HDRS ENVID=ENV-42.x",
                     rcpt_params=[" NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;first@orig.example", " NOTIFY=NEVER"])
        assert wait_event(srv, "delivered", n=2, qid=qid), srv.log()
        tx = rx.wait_transactions(1)
        mail = tx[0]["mail"]
        assert "RET=HDRS" in mail and "ENVID=ENV-42.x" in mail, mail
        assert mail.upper().startswith("MAIL FROM:<%s>" % SENDER.upper()), mail
        r1, r2 = tx[0]["rcpts"]
        assert r1.startswith("RCPT TO:<a@d6.test>") and "NOTIFY=SUCCESS,FAILURE" in r1, r1
        assert "ORCPT=rfc822;first@orig.example" in r1, r1
        assert "NOTIFY=NEVER" in r2 and "ORCPT" not in r2, r2


def test_dsn_xtext_not_double_encoded(server_factory, dns):
    """ENVID and ORCPT are xtext (RFC 3461 §4): "+2B" is "+".  Passed on, they must
    still mean the same thing (not "+2B2B")."""
    port = free_port(REMOTE_ADDRS)
    with RawReceiver(["127.0.0.6"], port) as rx:
        srv = make_server(server_factory, dns, port)
        qid = submit(srv, "a@d6.test", mail_params=" ENVID=id+2Bplus",
                     rcpt_params=" ORCPT=rfc822;x+2By@orig.example")
        assert wait_event(srv, "delivered", qid=qid), srv.log()
        tx = rx.wait_transactions(1)
        assert "ENVID=id+2Bplus" in tx[0]["mail"], tx[0]["mail"]
        assert "ORCPT=rfc822;x+2By@orig.example" in tx[0]["rcpts"][0], tx[0]["rcpts"]


def test_no_dsn_parameters_to_server_without_dsn(server_factory, dns):
    port = free_port(REMOTE_ADDRS)
    with RawReceiver(["127.0.0.6"], port, ext=("PIPELINING", "8BITMIME")) as rx:
        srv = make_server(server_factory, dns, port)
        qid = submit(srv, "a@d6.test", mail_params=" RET=FULL ENVID=E1",
                     rcpt_params=" NOTIFY=FAILURE ORCPT=rfc822;a@d6.test")
        assert wait_event(srv, "delivered", qid=qid), srv.log()
        tx = rx.wait_transactions(1)
        assert "RET=" not in tx[0]["mail"] and "ENVID" not in tx[0]["mail"], tx[0]["mail"]
        assert "NOTIFY" not in tx[0]["rcpts"][0] and "ORCPT" not in tx[0]["rcpts"][0], tx[0]["rcpts"]


# -- 13. connection reuse ----------------------------------------------------------------------------------

def test_connection_reuse_for_queued_messages(server_factory, dns):
    """Five messages queued for one domain while its server is down; when it comes up
    and the queue is flushed, one delivery thread sends them over fewer connections."""
    port = free_port(REMOTE_ADDRS)
    srv = make_server(server_factory, dns, port, queue={"delivery_threads": "1", "retry_min": "30s",
                                                        "retry_max": "30s"})
    qids = [submit(srv, "r%d@d7.test" % i, subject="reuse %d" % i) for i in range(5)]
    assert wait_event(srv, "deferred", n=5, timeout=15), srv.log()
    with AioReceiver(["127.0.0.7"], port) as rx:
        p = queue_cli(srv, "flush")
        assert p.returncode == 0 and "flushing" in p.stdout, (p.stdout, p.stderr)
        ev = wait_event(srv, "delivered", n=5, timeout=15)
        assert len(ev) == 5, srv.log()
        assert len(rx.wait_messages(5)) == 5
        assert set(e["qid"] for e in ev) == set(qids)
        assert rx.sessions < 5, "5 messages over %d connections: no reuse" % rx.sessions
        assert rx.sessions == 1, rx.sessions
