"""milter/conv.c against real filters: pymilter (libmilter underneath, nobody here wrote
it) on a unix socket and on 127.0.0.1:PORT, and raw sockets that misbehave in ways
libmilter never would (garbage, oversized packets, silence).

The C side is build/test_milter_conv (tests/unit/test_milter_conv.c): one session
through the driver, each step's outcome on a line.  The filter side records every
callback in a JSON-lines log, so each test checks both what the client concluded and
what the filter actually received."""
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import POSTERN_BIN

HERE = Path(__file__).resolve().parent
FILTER = HERE / "milter_filter.py"
CONV_BIN = Path(POSTERN_BIN).parent / "test_milter_conv"
PYTHON = "/usr/bin/python3"


def free_port(family=socket.AF_INET):
    with socket.socket(family) as s:
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        return s.getsockname()[1]


def have_ipv6_loopback():
    try:
        free_port(socket.AF_INET6)
        return True
    except OSError:
        return False


class Filter:
    def __init__(self, tmp, mode, transport, env=None):
        self.log = tmp / f"filter-{mode}.jsonl"
        if transport == "unix":
            self.path = tmp / "f.sock"
            spec, self.client_spec = f"unix:{self.path}", f"unix:{self.path}"
        elif transport == "inet6":
            self.port = free_port(socket.AF_INET6)
            spec, self.client_spec = f"inet6:{self.port}@::1", f"inet6:[::1]:{self.port}"
        else:
            self.port = free_port()
            spec, self.client_spec = f"inet:{self.port}@127.0.0.1", f"inet:127.0.0.1:{self.port}"
        self.transport = transport
        self.proc = subprocess.Popen([PYTHON, str(FILTER), spec, mode, str(self.log)],
                                     env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                                     stderr=open(tmp / "filter.err", "w"))
        self.wait_ready()

    def wait_ready(self):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the filter exited at start"
            try:
                if self.transport == "unix":
                    if self.path.exists():
                        with socket.socket(socket.AF_UNIX) as s:
                            s.connect(str(self.path))
                        return
                else:
                    host = "::1" if self.transport == "inet6" else "127.0.0.1"
                    with socket.create_connection((host, self.port), timeout=1):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail("the pymilter filter did not start listening within 15 s")

    def events(self, name=None):
        if not self.log.exists():
            return []
        evs = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [e for e in evs if name is None or e["event"] == name]

    def wait_event(self, name, timeout=5):
        """The filter records some callbacks after the client has gone (close, abort)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.events(name):
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            # libmilter waits out its worker threads on SIGTERM (seconds): the filter keeps no
            # state worth a clean stop (its log is written line by line), so do not wait long.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def start_filter(tmp_path):
    started = []

    def start(mode, transport="unix", env=None):
        f = Filter(tmp_path, mode, transport, env)
        started.append(f)
        return f

    yield start
    for f in started:
        f.stop()


def converse(spec, tmp_path, timeout=30, **env):
    """Run the driver; returns (lines, {step: [parsed fields]})."""
    assert CONV_BIN.exists(), f"{CONV_BIN} not built"
    e = {**os.environ, "MILTER_SOCKET": spec}
    e.update({k: str(v) for k, v in env.items()})
    p = subprocess.run([str(CONV_BIN)], env=e, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    assert "AddressSanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
    lines = p.stdout.splitlines()
    steps = {}
    for line in lines:
        if line.startswith("step="):
            steps.setdefault(line.split()[0][5:], []).append(parse(line))
    return lines, steps


def parse(line):
    """key=value fields; reply= and failure= run to the next known key."""
    out = {}
    keys = ("step", "verdict", "ms", "reply", "code", "enh", "failure", "chunks")
    toks = line.split(" ")
    cur = None
    for t in toks:
        k, sep, v = t.partition("=")
        if sep and k in keys:
            out[k], cur = v, k
        elif cur:
            out[cur] += " " + t
    return out


def mods(lines):
    return [l for l in lines if l.startswith("mod ")]


# --- a whole conversation -------------------------------------------------------------

@pytest.mark.parametrize("transport", ["unix", "inet", "inet6"])
def test_every_step_reaches_the_filter(start_filter, tmp_path, transport):
    if transport == "inet6" and not have_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1)")
    f = start_filter("record", transport)
    lines, steps = converse(f.client_spec, tmp_path, MILTER_RCPTS="<bob@example.net>,<carol@example.net>")
    assert lines[0].startswith("open version=6 "), lines
    for s in ("connect", "helo", "mail", "rcpt", "data", "eoh", "eom"):
        assert s in steps and all(x["verdict"] == "continue" for x in steps[s]), (s, lines)
    assert lines[-1] == "closed"
    # every step the filter answered (those printed, each header, each body chunk) is one
    # observation of postern_milter_duration_seconds
    answered = sum(len(v) for v in steps.values()) + len(f.events("header")) + len(f.events("body"))
    assert lines[-2] == "metrics observations=%d" % answered, lines
    conn = f.events("connect")[0]
    assert conn["hostname"] == "client.example"
    assert conn["addr"] == ["192.0.2.1", 40000]          # port in network order, read back by libmilter
    assert conn["macros"]["j"] == "mx.example.org" and conn["macros"]["{daemon_name}"] == "postern"
    assert f.events("helo")[0]["name"] == "client.example"
    assert f.events("helo")[0]["macros"]["{tls_version}"] == "TLSv1.3"
    mail = f.events("mail")[0]
    assert mail["addr"] == "<alice@example.org>" and mail["params"] == ["SIZE=100"]
    assert mail["macros"]["{auth_authen}"] == "alice"    # scored as outbound
    assert [r["addr"] for r in f.events("rcpt")] == ["<bob@example.net>", "<carol@example.net>"]
    assert f.events("rcpt")[1]["macros"]["{rcpt_addr}"] == "<carol@example.net>"
    hdrs = [(h["name"], h["value"]) for h in f.events("header")]
    # leading space dropped (no SMFIP_HDR_LEADSPC), CR LF inside a fold sent as LF
    assert hdrs == [("Received", "from client.example ([192.0.2.1])\n\tby mx.example.org with ESMTPS id 1A2B3C"),
                    ("From", "Alice <alice@example.org>"), ("To", "Bob <bob@example.net>"),
                    ("Subject", "milter test")]
    eom = f.events("eom")[0]
    assert eom["body_len"] == len(b"Hello Bob,\r\nthis is the body.\r\n")
    assert eom["macros"]["i"] == "1A2B3C"
    assert f.wait_event("close"), "QUIT reached the filter"


def test_two_transactions_and_a_large_body(start_filter, tmp_path):
    f = start_filter("record")
    body = b"".join(b"line %06d of a long body\r\n" % i for i in range(8000))   # about 208 KB
    msg = tmp_path / "big.eml"
    msg.write_bytes(b"From: a@example.org\r\nSubject: big\r\n\r\n" + body)
    lines, steps = converse(f.client_spec, tmp_path, MILTER_MESSAGE=msg, MILTER_TRANSACTIONS=2)
    assert [x["verdict"] for x in steps["eom"]] == ["continue", "continue"]
    assert "body_chunks=4" in lines                       # 65535-octet chunks
    eoms = f.events("eom")
    assert [e["body_len"] for e in eoms] == [len(body), len(body)]
    assert max(b["n"] for b in f.events("body")) == 65535


# --- the filter's answers -----------------------------------------------------------------

def test_every_modification_is_collected(start_filter, tmp_path):
    f = start_filter("modify")
    out = tmp_path / "newbody"
    lines, steps = converse(f.client_spec, tmp_path, MILTER_BODY_OUT=out)
    assert steps["eom"][0]["verdict"] == "accept"
    assert mods(lines) == [
        "mod kind=add_header index=0 name=X-Filter value=seen",
        "mod kind=add_header index=0 name=X-Folded value=first\\n\\tsecond",
        "mod kind=insert_header index=0 name=X-Top value=inserted",
        "mod kind=change_header index=1 name=Subject value=changed subject",
        "mod kind=change_header index=1 name=To value=",
        "mod kind=add_rcpt index=0 name=<added@example.net> value=(none)",
        "mod kind=add_rcpt index=0 name=<added2@example.net> value=NOTIFY=NEVER",
        "mod kind=del_rcpt index=0 name=<bob@example.net> value=(none)",
        "mod kind=change_from index=0 name=<bounces@example.org> value=SIZE=200",
    ], lines
    assert "body_replaced=yes" in lines
    assert out.read_bytes() == b"replaced body line 1\r\nreplaced body line 2\r\n"


def test_recipient_refused_with_its_words(start_filter, tmp_path):
    f = start_filter("reject-rcpt")
    lines, steps = converse(f.client_spec, tmp_path, MILTER_RCPTS="<spamtrap@example.net>,<bob@example.net>")
    first, second = steps["rcpt"]
    assert first["verdict"] == "replycode" and first["reply"] == "550 5.7.1 spamtrap address", lines
    assert first["code"] == "550" and first["enh"] == "5.7.1"
    assert second["verdict"] == "continue"
    assert steps["eom"][0]["verdict"] == "continue"       # the transaction went on for bob


def test_mail_replycode_and_tempfail(start_filter, tmp_path):
    f = start_filter("replycode-mail")
    lines, steps = converse(f.client_spec, tmp_path)
    m = steps["mail"][0]
    assert m["verdict"] == "replycode" and m["reply"] == "451 4.7.1 greylisted, try again in 5 minutes", lines
    assert "rcpt" not in steps and not f.events("rcpt")
    f.stop()
    g = start_filter("tempfail-mail", "inet")
    lines, steps = converse(g.client_spec, tmp_path)
    assert steps["mail"][0]["verdict"] == "tempfail", lines


def test_multiline_reply_at_end_of_message(start_filter, tmp_path):
    f = start_filter("reject-eom")
    lines, steps = converse(f.client_spec, tmp_path)
    e = steps["eom"][0]
    assert e["verdict"] == "replycode", lines
    assert e["reply"] == "550 5.7.1 spam score 15.3 of 15 GTUBE found see https://example.org/spam"
    assert e["code"] == "550" and e["enh"] == "5.7.1"


@pytest.mark.parametrize("mode,verdict", [("quarantine", "quarantine"), ("discard", "discard"),
                                          ("tempfail-eom", "tempfail")])
def test_end_of_message_verdicts(start_filter, tmp_path, mode, verdict):
    f = start_filter(mode)
    lines, steps = converse(f.client_spec, tmp_path)
    assert steps["eom"][0]["verdict"] == verdict, lines
    if mode == "quarantine":
        assert "quarantine=held for review by the test filter" in lines


def test_accept_at_mail_asks_nothing_more(start_filter, tmp_path):
    f = start_filter("accept-mail")
    lines, steps = converse(f.client_spec, tmp_path)
    assert steps["mail"][0]["verdict"] == "accept"
    assert steps["rcpt"][0]["verdict"] == "accept" and steps["eom"][0]["verdict"] == "accept", lines
    assert not f.events("rcpt") and not f.events("header") and not f.events("eom")


def test_skip_stops_the_body(start_filter, tmp_path):
    f = start_filter("skip")
    msg = tmp_path / "m.eml"
    msg.write_bytes(b"Subject: s\r\n\r\n" + b"x" * 95 + b"\r\n")
    lines, steps = converse(f.client_spec, tmp_path, MILTER_MESSAGE=msg, MILTER_CHUNK=10)
    assert "step=body verdict=skip chunks=1" in lines, lines
    assert len(f.events("body")) == 1
    assert steps["eom"][0]["verdict"] == "continue"


# --- the negotiation obeyed -----------------------------------------------------------------

def test_steps_opted_out_are_not_sent(start_filter, tmp_path):
    f = start_filter("minimal")
    lines, steps = converse(f.client_spec, tmp_path)
    proto = int(lines[0].split("protocol=")[1].split()[0], 16)
    assert proto & 0x2 and proto & 0x20 and proto & 0x8000, hex(proto)   # NOHELO, NOHDRS, NR_RCPT
    assert steps["helo"][0]["verdict"] == "continue" and steps["eom"][0]["verdict"] == "continue"
    assert not f.events("helo") and not f.events("header")
    assert f.events("rcpt") and f.events("eom")
    macros = f.events("mail")[0]["macros"]
    # the macro list for MAIL names {auth_authen} and {mail_addr} only
    assert macros.get("{auth_authen}") == "alice" and "{auth_type}" not in macros, macros


def test_leading_space_kept_when_negotiated(start_filter, tmp_path):
    f = start_filter("leadspc")
    converse(f.client_spec, tmp_path)
    assert [h["value"] for h in f.events("header")][1:] == [" Alice <alice@example.org>", " Bob <bob@example.net>",
                                                            " milter test"]


# --- slow, dying and broken filters ----------------------------------------------------------

def test_filter_sleeping_past_the_timeout(start_filter, tmp_path):
    f = start_filter("sleep-eom", env={"FILTER_SLEEP": "4"})
    t0 = time.monotonic()
    lines, steps = converse(f.client_spec, tmp_path, MILTER_CONTENT_MS=1000)
    e = steps["eom"][0]
    assert e["verdict"] == "failed", lines
    assert e["failure"] == "did not answer within 1 second (reply to the end of the message)"
    assert 900 <= int(e["ms"]) < 2500
    assert time.monotonic() - t0 < 4, "the client did not wait for the filter"


def test_progress_resets_the_wait_but_not_forever(start_filter, tmp_path):
    f = start_filter("progress", env={"FILTER_PROGRESS_N": "5", "FILTER_PROGRESS_S": "0.4"})
    lines, steps = converse(f.client_spec, tmp_path, MILTER_CONTENT_MS=1000)
    assert steps["eom"][0]["verdict"] == "continue", lines       # 2 s of work, 0.4 s between reports
    assert "mod kind=add_header index=0 name=X-After-Progress value=yes" in lines
    f.stop()
    # 12 s of work reported every 0.2 s: the wait ends at ten times 800 ms
    g = start_filter("progress", env={"FILTER_PROGRESS_N": "60", "FILTER_PROGRESS_S": "0.2"})
    t0 = time.monotonic()
    lines, steps = converse(g.client_spec, tmp_path, MILTER_CONTENT_MS=800)
    e = steps["eom"][0]
    assert e["verdict"] == "failed", lines
    assert e["failure"] == "did not answer within 8 seconds (reply to the end of the message, progress reports included)"
    assert 7.5 < time.monotonic() - t0 < 11


def test_filter_closing_mid_message(start_filter, tmp_path):
    f = start_filter("close-body")
    lines, steps = converse(f.client_spec, tmp_path)
    b = steps["body"][0]
    assert b["verdict"] == "failed", lines
    assert b["failure"].startswith("closed the connection"), b
    assert "eom" not in steps and lines[-1] == "closed"


def test_connect_refused(tmp_path):
    lines, steps = converse(f"unix:{tmp_path}/nobody.sock", tmp_path)
    assert steps["open"][0]["verdict"] == "failed"
    assert steps["open"][0]["failure"].startswith("connect refused (unix:"), lines
    lines, steps = converse(f"inet:127.0.0.1:{free_port()}", tmp_path)
    assert steps["open"][0]["failure"].startswith("connect refused (inet:127.0.0.1:"), lines


def pkt(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


class RawFilter:
    """A listening socket that negotiates like a v6 filter (or not), then answers
    each later command with `answer` (bytes), or stays silent when answer is None."""

    OPTNEG = struct.pack(">IcIII", 13, b"O", 6, 0x1ff, 0)

    def __init__(self, optneg, answer):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.optneg, self.answer = optneg, answer
        self.conns = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def read_packet(self, c):
        head = b""
        while len(head) < 4:
            more = c.recv(4 - len(head))
            if not more:
                return None
            head += more
        n = struct.unpack(">I", head)[0]
        data = b""
        while len(data) < n:
            more = c.recv(n - len(data))
            if not more:
                return None
            data += more
        return data

    def serve(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        self.conns.append(c)
        c.settimeout(10)
        try:
            pkt = self.read_packet(c)
            if pkt is None or self.optneg is None:
                time.sleep(5)
                return
            c.sendall(self.optneg)
            while True:
                pkt = self.read_packet(c)
                if pkt is None:
                    return
                if pkt[:1] == b"D":
                    continue          # macros get no reply
                if self.answer is None:
                    time.sleep(5)
                    return
                c.sendall(self.answer)
        except OSError:
            return

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.mark.parametrize("optneg,answer,words", [
    (RawFilter.OPTNEG, pkt(b"Z"), "answered garbage (unknown reply 'Z')"),
    (RawFilter.OPTNEG, struct.pack(">I", 0x100000) + b"c", "answered garbage (a packet of 1048576 octets (over the 64 KiB limit))"),
    (RawFilter.OPTNEG, pkt(b"y", b"250 ok\0"), "answered garbage (reply code ('y'): code 250 is not 4xx or 5xx)"),
    (RawFilter.OPTNEG, pkt(b"h", b"X-Spam\0yes\0"), "answered garbage (add header in reply to CONNECT)"),
    (struct.pack(">IcIII", 13, b"O", 1, 0, 0), None, "answered garbage (option negotiation ('O'): speaks milter version 1; version 2 or later is needed)"),
    (pkt(b"c"), None, "answered garbage (continue in reply to option negotiation)"),
])
def test_broken_filter_gives_words(tmp_path, optneg, answer, words):
    raw = RawFilter(optneg, answer)
    try:
        lines, steps = converse(f"inet:127.0.0.1:{raw.port}", tmp_path, MILTER_COMMAND_MS=2000)
    finally:
        raw.close()
    failed = [s for ss in steps.values() for s in ss if s["verdict"] == "failed"]
    assert failed and failed[0]["failure"] == words, lines
    assert lines[-1] == "closed" or lines[-1].startswith("step=open verdict=failed")


def test_silent_filter_bounded_by_the_command_timeout(tmp_path):
    for optneg, step in ((None, "open"), (RawFilter.OPTNEG, "connect")):
        raw = RawFilter(optneg, None)
        t0 = time.monotonic()
        try:
            lines, steps = converse(f"inet:127.0.0.1:{raw.port}", tmp_path, MILTER_COMMAND_MS=700)
        finally:
            raw.close()
        assert time.monotonic() - t0 < 3
        s = steps[step][0]
        assert s["verdict"] == "failed", lines
        assert s["failure"].startswith("did not answer within 700 ms (reply to "), s
