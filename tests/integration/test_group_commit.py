"""Group commit on a real `postern serve` (queue/commit.c): messages whose DATA ends at
about the same moment share one fsync of queue/active/.  Counted from /metrics
(postern_fsyncs_total, postern_commit_batch_size), never timed: 20 sessions sending at
once cost fewer fsyncs per message than the same server's messages sent one by one,
and every message is delivered once."""
import smtplib
import threading

from submission_support import simple_msg, wait_ports
from test_metrics import HTTP_LISTENERS, delta, scrape, value, wait_for

SESSIONS = 20
PER_SESSION = 4


def send(srv, n, errors):
    try:
        with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30) as s:
            s.ehlo("client.example")
            for _ in range(n):
                refused = s.sendmail("someone@sender.example", ["alice@example.test"],
                                     simple_msg("someone@sender.example", "alice@example.test"))
                if refused:
                    errors.append(refused)
    except Exception as e:   # noqa: BLE001 - reported by the assertion below
        errors.append(repr(e))


def drained(before, n):
    return lambda s: (delta(before, s, "postern_recipients_delivered_total", route="local") >= n
                      and value(s, "postern_queue_messages") == 0)


def test_concurrent_sessions_share_directory_fsyncs(server_factory):
    s = server_factory(extra=HTTP_LISTENERS, start=False)
    s.start()
    s.ports = wait_ports(s, ["smtp", "metrics"])

    # one by one: every commit is alone, so it is its own batch (and never waits)
    n_seq = 10
    before, _, _ = scrape(s)
    errors = []
    send(s, n_seq, errors)
    assert not errors, errors
    after = wait_for(s, drained(before, n_seq), timeout=30)
    assert delta(before, after, "postern_commit_batch_size_count") == n_seq
    assert delta(before, after, "postern_commit_batch_size_sum") == n_seq
    seq_per_msg = delta(before, after, "postern_fsyncs_total") / n_seq

    # 20 sessions at once
    n_conc = SESSIONS * PER_SESSION
    before = after
    threads = [threading.Thread(target=send, args=(s, PER_SESSION, errors)) for _ in range(SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "senders did not finish"
    assert not errors, errors[:5]
    after = wait_for(s, drained(before, n_conc), timeout=60)
    assert delta(before, after, "postern_recipients_delivered_total", route="local") == n_conc
    batches = delta(before, after, "postern_commit_batch_size_count")
    assert delta(before, after, "postern_commit_batch_size_sum") == n_conc   # every commit covered once
    assert 1 <= batches < n_conc, "%d directory fsyncs for %d concurrent commits: none shared" % (batches, n_conc)
    conc_per_msg = delta(before, after, "postern_fsyncs_total") / n_conc
    print("group commit: %d messages in %d directory fsyncs; fsyncs per message %.2f at %d sessions, "
          "%.2f one by one" % (n_conc, batches, conc_per_msg, SESSIONS, seq_per_msg))
    assert conc_per_msg < seq_per_msg, (conc_per_msg, seq_per_msg)
    assert len(s.maildir_messages("alice@example.test")) == n_seq + n_conc
