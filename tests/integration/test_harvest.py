"""Directory harvesting: a client that guesses addresses (RCPT after RCPT to users that do
not exist) is answered more and more slowly, then cut off with 421 4.7.0 — with small
configured limits here.  The wait is a timer: other clients are served meanwhile.
Only lower bounds on time are checked (the machine may be slow, never fast)."""
import select
import time

from helpers import message

LIMITS = {"refused_recipients": "6", "refused_recipients_delay_after": "2",
          "refused_recipient_delay_ms": "400"}


def _rcpts(n):
    return "".join("RCPT TO:<guess%d@example.test>\r\n" % i for i in range(n))


def test_unknown_recipients_slowed_then_session_closed(server_factory):
    srv = server_factory(limits=LIMITS)
    with srv.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
        # a known recipient and the allowance: answered without waiting
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        c.send(_rcpts(10))            # pipelined, as a harvester sends them
        times = []
        t0 = time.monotonic()
        for i in range(6):            # the 6th refusal is answered, then the session ends
            r = c.reply(timeout=30)
            assert r.is_(550, "5.1.1") and ("guess%d" % i) in r.text, (i, r)
            times.append(time.monotonic() - t0)
        r = c.reply(timeout=30)
        assert r.is_(421, "4.7.0"), r
        assert "Too many unknown recipients (6)" in r.text, r
        assert "refused_recipients" in r.text, r
        assert c.wait_closed(10)
    # guesses 3, 4, 5 waited 400, 800, 1200 ms: at least 2.4 s in all
    assert times[-1] >= 2.3, times
    assert times[4] - times[3] >= 1.1, times
    log = srv.log()
    assert "event=harvest_limit" in log and "action=delay" in log and "action=close" in log, log[-3000:]


def test_held_reply_does_not_stop_other_clients(server_factory):
    # one client held for seconds; another is served from start to 250 meanwhile
    srv = server_factory(limits={"refused_recipients": "100", "refused_recipients_delay_after": "0",
                                 "refused_recipient_delay_ms": "5000"})
    with srv.connect() as held:
        held.ehlo()
        assert held.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
        held.send("RCPT TO:<nobody@example.test>\r\n")   # answered after 5 s
        t0 = time.monotonic()
        with srv.connect() as other:
            other.start_mail()
            r = other.data(message("while another waits"))
            assert r.is_(250, "2.0.0"), r
        if time.monotonic() - t0 < 4.5:       # (only meaningful if the machine kept up)
            ready, _, _ = select.select([held.sock], [], [], 0)
            assert not ready and not held.buf, "the held reply came early"
        r = held.reply(timeout=30)
        assert r.is_(550, "5.1.1"), r
        assert time.monotonic() - t0 >= 4.5
        # the session goes on normally after the wait
        assert held.cmd("NOOP").is_(250, "2.0.0")
    assert len(srv.wait_delivered("alice@example.test", 1)) == 1


def test_refusals_count_across_messages_not_temporary_ones(server_factory):
    srv = server_factory(limits={"refused_recipients": "3", "refused_recipients_delay_after": "10",
                                 "refused_recipient_delay_ms": "0"})
    with srv.connect() as c:
        c.ehlo()
        for i in range(2):
            assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
            assert c.cmd("RCPT TO:<nobody%d@example.test>" % i).is_(550, "5.1.1")
            assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
            assert c.cmd("RSET").is_(250, "2.0.0")
        assert c.cmd("MAIL FROM:<a@b.example>").is_(250, "2.1.0")
        r = c.cmd("RCPT TO:<someone@elsewhere.example>")   # relaying denied counts too
        assert r.is_(554, "5.7.1"), r
        r = c.reply(timeout=10)
        assert r.is_(421, "4.7.0"), r
        assert c.wait_closed(10)
