"""The header fields the end-of-data stages add (policy_facts_add_header), as every
reader of a queued message emits them: before the message, in the order added.

The queue keeps them after the message, in an "ADDED" record before the end record
(src/queue/queue.h), written by the commit under the same fsync.  No stage in the
product adds a field yet (DKIM signing and Authentication-Results will), and the
product has no way to add one for a test; so these tests put the block into a queued
file while the server is stopped, exactly as the commit writes it (as a restart after
a crash finds it), and check what leaves: remote delivery by DATA and by BDAT (SIZE=
and the chunk size count the fields), the Maildir, the original attached to a bounce,
and `postern queue show`.  A damaged block is refused like a missing end record."""
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from delivery_support import (  # noqa: E402
    RawReceiver, SENDER, SENDER2, free_port, make_server, msg, queue_cli, submit, wait_event, wait_reports,
)

RELAY_ADDR = "127.0.0.9"
REMOTE = "far@far-away.example"
EXT_DATA = ("PIPELINING", "SIZE 10000000", "8BITMIME", "ENHANCEDSTATUSCODES")
EXT_BDAT = EXT_DATA + ("CHUNKING",)
TRAILER_LEN = 34

BLOCK = (b"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.test;\r\n"
         b"\ts=sel; h=from:to:subject; bh=AAAA; b=BBBB\r\n"
         b"Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=example.test\r\n")


def add_fields(qf, block=BLOCK):
    """Insert the block and its record before the end record, as queue_writer_commit
    writes them; the message itself is not touched.  Returns the message's size."""
    data = qf.read_bytes()
    trailer = data[-TRAILER_LEN:]
    m = re.fullmatch(rb"\nEND (\d{20}) POSTERN\n", trailer)
    assert m, trailer
    qf.write_bytes(data[:-TRAILER_LEN] + block + b"\nADDED %020d POSTERN\n" % len(block) + trailer)
    return int(m.group(1))


def _queued_for_relay(server_factory, port, to=REMOTE):
    """A message for the relay queued while nothing listens there, then the server
    stopped and the fields added to its queue file."""
    srv = make_server(server_factory, relay={"host": RELAY_ADDR, "port": str(port), "tls": "none"})
    qid = submit(srv, [to], body=msg(to=to, subject="with added fields"))
    assert wait_event(srv, "deferred", qid=qid, timeout=15), srv.log()
    srv.stop()
    size = add_fields(srv.data_dir / "queue" / "active" / qid)
    return srv, qid, size


def _fields_first(body):
    """The message as it arrived starts with the block, then our own Received:."""
    assert body.startswith(BLOCK), body[:300]
    assert body[len(BLOCK):].startswith(b"Received: from "), body[:400]


def _remote_case(server_factory, ext):
    port = free_port((RELAY_ADDR,))
    srv, qid, size = _queued_for_relay(server_factory, port)
    with RawReceiver([RELAY_ADDR], port, ext=ext) as rx:
        srv.start()
        (tx,) = rx.wait_transactions(1, timeout=20)
        assert wait_event(srv, "delivered", qid=qid, timeout=15), srv.log()
    _fields_first(tx["body"])
    m = re.search(r"SIZE=(\d+)", tx["mail"])
    assert m and int(m.group(1)) == size + len(BLOCK), (tx["mail"], size, len(BLOCK))
    return tx


def test_remote_data_sends_fields_first(server_factory):
    tx = _remote_case(server_factory, EXT_DATA)
    assert tx["via"] == "DATA"


def test_remote_bdat_counts_fields_in_the_chunk(server_factory):
    tx = _remote_case(server_factory, EXT_BDAT)
    assert tx["via"] == "BDAT"
    assert tx["chunks"] == [len(tx["body"])], (tx["chunks"], len(tx["body"]))


def test_bounce_attaches_the_original_with_its_fields(server_factory):
    port = free_port((RELAY_ADDR,))
    srv, qid, _ = _queued_for_relay(server_factory, port)
    script = lambda verb, line, n: "550 5.1.1 no such user here" if verb == "RCPT" else None  # noqa: E731
    with RawReceiver([RELAY_ADDR], port, ext=EXT_DATA, script=script):
        srv.start()
        assert wait_event(srv, "bounced", qid=qid, timeout=20), srv.log()
        (rep,) = [r for r in wait_reports(srv, 1, kind="failure", timeout=20) if REMOTE in r.raw.decode("latin-1")]
    raw = rep.raw.replace(b"\r\n", b"\n")
    block = BLOCK.replace(b"\r\n", b"\n")
    at = raw.find(block)
    assert at > 0, raw[-2000:]
    assert raw[at + len(block):].startswith(b"Received: from "), raw[at:at + 400]


def test_maildir_and_queue_show_put_fields_first(server_factory):
    # Queue the message for a relay that does not answer, so it stays in the queue;
    # then point the same file at a local user: the readers are the same whoever the
    # recipient is, and this is the file the commit writes.
    port = free_port((RELAY_ADDR,))
    srv, qid, _ = _queued_for_relay(server_factory, port)
    qf = srv.data_dir / "queue" / "active" / qid
    p = queue_cli(srv, "show", qid)
    assert p.returncode == 0, p.stderr
    out = p.stdout.replace("\r\n", "\n")
    assert BLOCK.decode().replace("\r\n", "\n") in out, out
    assert out.index("DKIM-Signature:") < out.index("Received: from "), out
    data = qf.read_bytes()
    assert data.count(b"rcpt %s\n" % REMOTE.encode()) == 1
    qf.write_bytes(data.replace(b"rcpt %s\n" % REMOTE.encode(), b"rcpt %s\n" % SENDER2.encode()))
    state = srv.data_dir / "queue" / "state" / qid
    if state.exists():
        state.unlink()   # a fresh state: the recipient is pending
    srv.start()
    (path,) = srv.wait_delivered(SENDER2, 1, timeout=20)
    stored = path.read_bytes()
    assert stored.startswith(b"Return-Path: <%s>\nDelivered-To: %s\n" % (SENDER.encode(), SENDER2.encode())), stored[:200]
    rest = stored[stored.index(b"\n", stored.index(b"Delivered-To:")) + 1:]
    assert rest.startswith(BLOCK.replace(b"\r\n", b"\n")), rest[:300]
    assert b"\r" not in stored, "the Maildir copy keeps LF line ends"
    # the S= size in the file name is the size stored, fields included
    m = re.search(r",S=(\d+)", path.name)
    assert m and int(m.group(1)) == len(stored), (path.name, len(stored))


def test_damaged_block_is_not_delivered(server_factory):
    port = free_port((RELAY_ADDR,))
    srv, qid, _ = _queued_for_relay(server_factory, port)
    qf = srv.data_dir / "queue" / "active" / qid
    data = qf.read_bytes()
    rec = re.search(rb"\nADDED (\d{20}) POSTERN\n", data)
    assert rec
    # the record says one octet more than the block holds
    bad = b"\nADDED %020d POSTERN\n" % (len(BLOCK) + 1)
    qf.write_bytes(data[:rec.start()] + bad + data[rec.end():])
    with RawReceiver([RELAY_ADDR], port, ext=EXT_DATA) as rx:
        srv.start()
        assert wait_event(srv, "queue_corrupt", qid=qid, timeout=20), srv.log()
        time.sleep(0.5)
        assert rx.transactions == [], "a queue file with a damaged block was delivered"
    assert (srv.data_dir / "queue" / "failed" / qid).exists()
