"""The outbound connection cache ([delivery] connection_cache_*, messages_per_connection)
and TLS session resumption, against a smarthost the test runs: a small asyncio SMTP
server written here (Python's smtpd is gone since 3.12; aiosmtpd hides the
connection-level facts), which records per connection when it opened, whether it
was TLS and whether the TLS session was resumed (the server's own SSL object), who
logged in, how many messages it carried, whether QUIT came, and who closed it.

Messages are handed to Postern one at a time, each waited for before the next: the
case where delivery threads go idle between messages, which used to close every
connection (424 connections for 500 relayed messages)."""
import asyncio
import base64
import ssl
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from delivery_support import (  # noqa: E402,F401
    SENDER, free_port, make_server, submit, events, wait_event, make_cert, write_credentials,
)

RELAY_ADDR = "127.0.0.6"
USER, PASSWORD = "postern-out", "s3cret pass"


class Sink:
    """An SMTP server on addr:port in its own thread and event loop.

    tls: None, "starttls" or "implicit"; auth: (user, password) required before MAIL;
    close_idle: seconds of silence after a transaction before the server hangs up;
    hangup_on_reuse: the server closes, without a word, a connection on which a second
    MAIL arrives (as if it had closed it just before)."""

    def __init__(self, addr, port, tls=None, ctx=None, auth=None, close_idle=None, hangup_on_reuse=False):
        self.addr, self.port, self.tls, self.ctx, self.auth = addr, port, tls, ctx, auth
        self.close_idle, self.hangup_on_reuse = close_idle, hangup_on_reuse
        self.lock = threading.Lock()
        self.conns = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(asyncio.start_server(
            self._session, self.addr, self.port, ssl=self.ctx if self.tls == "implicit" else None), self.loop)
        self.server = fut.result(10)
        return self

    def __exit__(self, *exc):
        async def stop():
            self.server.close()
            # sessions Postern still keeps open end here, not with the loop
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            if not self.thread.is_alive():
                self.loop.close()

    def snapshot(self):
        with self.lock:
            return [dict(c) for c in self.conns]

    def messages(self):
        return sum(c["messages"] for c in self.snapshot())

    def wait(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.snapshot()):
                return True
            time.sleep(0.02)
        return pred(self.snapshot())

    def _note_tls(self, c, writer):
        obj = writer.get_extra_info("ssl_object")
        with self.lock:
            c["tls"] = obj is not None
            c["resumed"] = bool(obj and obj.session_reused)

    def _ehlo(self, c):
        lines = ["sink.test", "PIPELINING", "8BITMIME", "SIZE 10000000"]
        if self.tls == "starttls" and not c["tls"]:
            lines.append("STARTTLS")
        if self.auth and (c["tls"] or not self.tls):
            lines.append("AUTH PLAIN LOGIN")
        return "".join("250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ", x) for i, x in enumerate(lines))

    def _login(self, c, arg):
        try:
            _z, user, pw = base64.b64decode(arg).split(b"\0")
        except ValueError:
            return "501 5.5.2 bad AUTH PLAIN"
        if (user.decode(), pw.decode()) != self.auth:
            return "535 5.7.8 wrong user or password"
        with self.lock:
            c["user"] = user.decode()
        return "235 2.7.0 ok"

    async def _data(self, c, reader):
        for _ in range(100000):
            line = await asyncio.wait_for(reader.readline(), 10)
            if not line:
                raise EOFError
            if line == b".\r\n":
                with self.lock:
                    c["messages"] += 1
                return
        raise EOFError

    async def _session(self, reader, writer):
        c = {"opened": time.monotonic(), "tls": False, "resumed": False, "user": None, "messages": 0,
             "quit": None, "mails": 0, "closed": None, "closed_by": None, "last_tx": None}
        with self.lock:
            self.conns.append(c)
        self._note_tls(c, writer)
        by = "client"
        try:
            writer.write(b"220 sink.test ESMTP\r\n")
            for _ in range(10000):
                idle = self.close_idle if c["last_tx"] else None
                try:
                    line = await asyncio.wait_for(reader.readline(), idle or 15)
                except asyncio.TimeoutError:
                    by = "sink"
                    break
                if not line:
                    break
                verb, _, arg = line.decode("latin-1").strip().partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    writer.write(self._ehlo(c).encode())
                elif verb == "STARTTLS" and self.tls == "starttls":
                    writer.write(b"220 2.0.0 go ahead\r\n")
                    await writer.drain()
                    await writer.start_tls(self.ctx)
                    self._note_tls(c, writer)
                elif verb == "AUTH" and arg.upper().startswith("PLAIN "):
                    writer.write((self._login(c, arg[6:].strip()) + "\r\n").encode())
                elif verb == "MAIL":
                    c["mails"] += 1
                    if self.hangup_on_reuse and c["mails"] > 1:
                        by = "sink"
                        break
                    ok = not self.auth or c["user"]
                    writer.write(b"250 2.1.0 ok\r\n" if ok else b"530 5.7.0 log in first\r\n")
                elif verb == "RCPT":
                    writer.write(b"250 2.1.5 ok\r\n")
                elif verb == "DATA":
                    writer.write(b"354 go on\r\n")
                    await writer.drain()
                    await self._data(c, reader)
                    c["last_tx"] = time.monotonic()
                    writer.write(b"250 2.0.0 queued\r\n")
                elif verb in ("RSET", "NOOP"):
                    writer.write(b"250 2.0.0 ok\r\n")
                elif verb == "QUIT":
                    with self.lock:
                        c["quit"] = time.monotonic()
                    writer.write(b"221 2.0.0 bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(b"502 5.5.1 not here\r\n")
                await writer.drain()
        except (EOFError, ConnectionError, asyncio.TimeoutError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            with self.lock:
                c["closed"] = time.monotonic()
                c["closed_by"] = by
            writer.close()


def relay_conf(port, tls="none", cred=None):
    r = {"host": RELAY_ADDR, "port": str(port), "tls": tls, "tls_verify": "no"}
    if cred:
        r["credentials"] = str(cred)
    return r


def one_by_one(srv, n, tag):
    """n messages, each delivered before the next is handed over."""
    qids = []
    for i in range(n):
        qid = submit(srv, "r%d@far-away.example" % i, subject="%s %d" % (tag, i))
        assert wait_event(srv, "delivered", qid=qid, timeout=15), srv.log()
        qids.append(qid)
    return qids


def test_messages_one_by_one_share_a_connection(server_factory):
    port = free_port((RELAY_ADDR,))
    with Sink(RELAY_ADDR, port) as sink:
        srv = make_server(server_factory, relay=relay_conf(port), delivery={"connection_cache_time": "5s"})
        qids = one_by_one(srv, 20, "one by one")
        conns = sink.snapshot()
        assert sink.messages() == 20, conns
        # 20 messages, one connection (a second only if a delivery ever met the cache empty)
        assert len(conns) <= 2, "20 messages over %d connections" % len(conns)
        reused = events(srv, "remote_reuse")
        assert len(reused) >= 18 and {r["qid"] for r in reused} <= set(qids), reused
        assert all(r["host"].startswith(RELAY_ADDR) for r in reused), reused
        assert not events(srv, "deferred")


def test_messages_per_connection_and_quit(server_factory):
    port = free_port((RELAY_ADDR,))
    with Sink(RELAY_ADDR, port) as sink:
        srv = make_server(server_factory, relay=relay_conf(port),
                          delivery={"connection_cache_time": "5s", "messages_per_connection": "3"})
        one_by_one(srv, 7, "per connection")
        assert sink.wait(lambda cs: sum(c["quit"] is not None for c in cs) >= 2), sink.snapshot()
        conns = sink.snapshot()
        assert [c["messages"] for c in conns] == [3, 3, 1], conns
        assert all(c["quit"] for c in conns[:2]), conns      # retired with QUIT, not dropped
        assert len(events(srv, "remote_retire")) == 2
        assert not events(srv, "deferred")


def test_quit_when_the_idle_time_passes(server_factory):
    port = free_port((RELAY_ADDR,))
    with Sink(RELAY_ADDR, port) as sink:
        srv = make_server(server_factory, relay=relay_conf(port), delivery={"connection_cache_time": "1s"})
        one_by_one(srv, 1, "idle")
        # "closed" too: the sink notes QUIT before it has answered it and closed its side.
        assert sink.wait(lambda cs: cs and cs[0]["quit"] and cs[0]["closed"], timeout=8), sink.snapshot()
        c = sink.snapshot()[0]
        idle = c["quit"] - c["last_tx"]
        assert 0.8 <= idle <= 5, "QUIT %.2fs after the transaction (connection_cache_time = 1s)" % idle
        assert c["closed_by"] == "client"


def test_peer_closing_idle_connections_never_defers(server_factory):
    """The smarthost hangs up idle connections after 0.2 s: the cache notices and
    drops them, and the next message goes on a new connection."""
    port = free_port((RELAY_ADDR,))
    with Sink(RELAY_ADDR, port, close_idle=0.2) as sink:
        srv = make_server(server_factory, relay=relay_conf(port), delivery={"connection_cache_time": "10s"})
        for i in range(3):
            one_by_one(srv, 1, "hung up %d" % i)
            assert sink.wait(lambda cs: all(c["closed"] for c in cs)), sink.snapshot()
        conns = sink.snapshot()
        assert len(conns) == 3 and all(c["closed_by"] == "sink" for c in conns), conns
        assert sink.messages() == 3
        assert not events(srv, "deferred"), srv.log()


def test_stale_connection_is_retried_at_once_without_an_attempt(server_factory):
    """The smarthost closes a kept connection only when MAIL arrives on it (as if it
    had closed it a moment before): the message goes on a fresh connection at once,
    no deferral, no attempt counted."""
    port = free_port((RELAY_ADDR,))
    with Sink(RELAY_ADDR, port, hangup_on_reuse=True) as sink:
        srv = make_server(server_factory, relay=relay_conf(port), delivery={"connection_cache_time": "10s"})
        qids = one_by_one(srv, 3, "stale")
        assert sink.messages() == 3
        failed = events(srv, "remote_reuse_failed")
        assert {f["qid"] for f in failed} == set(qids[1:]), failed
        assert not events(srv, "deferred"), srv.log()
        assert len(sink.snapshot()) == 3


def test_tls_session_resumed_and_login_per_connection(server_factory, tmp_path):
    """STARTTLS and AUTH to the smarthost, one message per connection: the second and
    third connections resume the first's TLS session (the server says so), log in
    again, and the log names the resumption."""
    port = free_port((RELAY_ADDR,))
    ctx, _cert, _key = make_cert(tmp_path)
    cred = write_credentials(tmp_path / "relay.cred", "%s %s\n" % (USER, PASSWORD))
    with Sink(RELAY_ADDR, port, tls="starttls", ctx=ctx, auth=(USER, PASSWORD)) as sink:
        srv = make_server(server_factory, relay=relay_conf(port, "starttls", cred),
                          delivery={"connection_cache_time": "5s", "messages_per_connection": "1"})
        one_by_one(srv, 3, "tls")
        conns = sink.snapshot()
        assert len(conns) == 3 and all(c["tls"] and c["user"] == USER and c["messages"] == 1 for c in conns), conns
        assert [c["resumed"] for c in conns] == [False, True, True], conns
        tls = [e["tls"] for e in events(srv, "remote_connect")]
        assert len(tls) == 3 and "session resumed" not in tls[0] and all("session resumed" in t for t in tls[1:]), tls
        # the first handshake's verdict rides along: tls_verify = no, so still "not verified"
        assert all("not verified" in t for t in tls), tls
