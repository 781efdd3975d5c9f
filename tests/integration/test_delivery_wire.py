"""What Postern puts on another server's wire (RFC 5321 §4.5.3.1.6, §2.3.8, §4.5.2),
recorded byte for byte by a raw SMTP peer:

* no line over 1000 octets with its CR LF: a long header line is folded (RFC 5322
  §2.2.3), a message with a body line over 998 octets is returned to the sender saying
  which line and what to change, and nothing of it is sent;
* CR and LF only as CR LF, and "." stuffed after every line end, also for content that
  reached the queue with a bare CR or LF (the queue file is edited while the server is
  stopped, as content from before the receive side's check would be), by DATA and BDAT."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from delivery_support import (  # noqa: E402
    RawReceiver, SENDER, free_port, make_server, msg, submit, wait_event, wait_reports,
)

RELAY_ADDR = "127.0.0.8"
REMOTE = "far@far-away.example"
EXT_DATA = ("PIPELINING", "SIZE 10000000", "8BITMIME", "ENHANCEDSTATUSCODES")
EXT_BDAT = EXT_DATA + ("CHUNKING",)


def _server(server_factory, port):
    relay = {"host": RELAY_ADDR, "port": str(port), "tls": "none"}
    return make_server(server_factory, relay=relay)


def check_wire(data):
    """Every CR is followed by LF, every LF preceded by CR, no line over 1000 octets."""
    bare_cr = [i for i in range(len(data)) if data[i:i + 1] == b"\r" and data[i + 1:i + 2] != b"\n"]
    bare_lf = [i for i in range(len(data)) if data[i:i + 1] == b"\n" and (i == 0 or data[i - 1:i] != b"\r")]
    assert not bare_cr, "bare CR on the wire at %r: %r" % (bare_cr[:5], data[bare_cr[0] - 20:bare_cr[0] + 20])
    assert not bare_lf, "bare LF on the wire at %r: %r" % (bare_lf[:5], data[bare_lf[0] - 20:bare_lf[0] + 20])
    longest = max(len(line) + 2 for line in data.split(b"\r\n"))
    assert longest <= 1000, "a line of %d octets (with CR LF) on the wire" % longest


def _unfold(data):
    return data.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t")


def test_long_header_folded_on_the_wire(server_factory):
    port = free_port((RELAY_ADDR,))
    with RawReceiver([RELAY_ADDR], port, ext=EXT_DATA) as rx:
        srv = _server(server_factory, port)
        refs = " ".join("<%030d@refs.example>" % i for i in range(80))    # ~2,900 octets
        body = msg(to=REMOTE, extra_headers="References: %s\r\n" % refs,
                   body="short line\r\n" + "word " * 190 + "\r\n")     # 950 octets: fits
        qid = submit(srv, [REMOTE], body=body)
        (tx,) = rx.wait_transactions(1, timeout=15)
        assert wait_event(srv, "delivered", qid=qid), srv.log()
        wire = b"".join(rx.wire.values())
        check_wire(wire)
        assert b"References: " + refs.encode() in _unfold(tx["body"]), "the folded header does not unfold to the original"


def test_long_body_line_returned_with_explanation(server_factory):
    port = free_port((RELAY_ADDR,))
    with RawReceiver([RELAY_ADDR], port, ext=EXT_DATA) as rx:
        srv = _server(server_factory, port)
        body = msg(to=REMOTE, body="first\r\n" + "x" * 1500 + "\r\nlast\r\n")
        qid = submit(srv, [REMOTE], body=body)
        ev = wait_event(srv, "bounced", qid=qid, timeout=15)
        assert ev, srv.log()
        assert "1500 octets long" in ev[0]["reason"] and "998" in ev[0]["reason"], ev
        (rep,) = [r for r in wait_reports(srv, 1, kind="failure", timeout=15) if REMOTE in r.raw.decode("latin-1")]
        assert "1500 octets long" in rep.text.replace("\n", " ") or b"1500 octets long" in rep.raw, rep
        assert rep.recipients and rep.recipients[0].get("Status", "").startswith("5.6."), rep.recipients
        assert rx.transactions == [], "a message with a 1500-octet line went to the next hop"
        for data in rx.wire.values():
            check_wire(data)


def _deferred_then_edited(server_factory, port, replace):
    """Queue a message while nothing listens on the relay port, stop the server, and
    replace bytes in the queued copy (same length: the end record stays valid)."""
    srv = _server(server_factory, port)
    body = msg(to=REMOTE, body="one\r\nQQ.\r\nLFLF two\r\nend\r\n")
    qid = submit(srv, [REMOTE], body=body)
    assert wait_event(srv, "deferred", qid=qid, timeout=15), srv.log()
    srv.stop()
    qf = srv.data_dir / "queue" / "active" / qid
    data = qf.read_bytes()
    for old, new in replace:
        assert len(old) == len(new) and data.count(old) == 1
        data = data.replace(old, new)
    qf.write_bytes(data)
    return srv, qid


def _bare_crlf_case(server_factory, ext):
    port = free_port((RELAY_ADDR,))
    srv, qid = _deferred_then_edited(server_factory, port, [(b"QQ.", b"Q\r."), (b"LFLF", b"LF\nL")])
    with RawReceiver([RELAY_ADDR], port, ext=ext) as rx:
        srv.start()
        (tx,) = rx.wait_transactions(1, timeout=20)
        assert wait_event(srv, "delivered", qid=qid), srv.log()
        for data in rx.wire.values():
            check_wire(data)
        # the bare CR and LF became line ends; the "." after the CR was stuffed (DATA)
        assert b"one\r\nQ\r\n.\r\nLF\r\nL two\r\nend\r\n" in tx["body"], tx["body"][-200:]
        return tx


def test_bare_cr_lf_normalised_and_stuffed_by_data(server_factory):
    tx = _bare_crlf_case(server_factory, EXT_DATA)
    assert tx["via"] == "DATA"


def test_bare_cr_lf_normalised_by_bdat(server_factory):
    tx = _bare_crlf_case(server_factory, EXT_BDAT)
    assert tx["via"] == "BDAT"
