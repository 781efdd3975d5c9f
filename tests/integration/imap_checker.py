"""A multi-session IMAP checker in the style of Dovecot's imaptest (which Debian does not
package): N sessions on one mailbox doing random STORE / COPY / MOVE / EXPUNGE / APPEND
at the same time (one thread each), every session keeping a model of its view from the
untagged responses it is sent (EXISTS, EXPUNGE, VANISHED, FETCH), and at checkpoints:

  * each session's model agrees with a fresh UID FETCH 1:* of its own view (a sequence
    number never silently changes meaning: RFC 3501 §7.4.1, §2.3.1.2);
  * every session sees the same UIDs, the same flags (\\Recent aside) and the same
    MODSEQs (RFC 7162);
  * \\Recent is seen by exactly one session for every message (RFC 3501 §2.3.2);
  * MODSEQ only grows, and HIGHESTMODSEQ is at least every message's.

Bounded in operations and in time; every socket read has a timeout.  A raw client of
its own (not imaplib) because the order of untagged responses matters to the model."""
import random
import re
import socket
import ssl
import threading
import time

FETCH_RE = re.compile(rb"^\* (\d+) FETCH \((.*)\)$")
UID_RE = re.compile(rb"\bUID (\d+)")
FLAGS_RE = re.compile(rb"\bFLAGS \(([^)]*)\)")
MODSEQ_RE = re.compile(rb"\bMODSEQ \((\d+)\)")


class CheckFailure(AssertionError):
    pass


def _uidset(text):
    out = []
    for part in text.split(b","):
        if b":" in part:
            a, b = (int(x) for x in part.split(b":"))
            out.extend(range(min(a, b), max(a, b) + 1))
        else:
            out.append(int(part))
    return out


class Session:
    """One IMAP connection with a model of its selected folder's view."""

    def __init__(self, host, port, user, password, name, tls=True, timeout=10.0):
        raw = socket.create_connection((host, port), timeout=timeout)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            raw = ctx.wrap_socket(raw)
        self.sock = raw
        self.sock.settimeout(timeout)
        self.rbuf = b""
        self.name = name
        self.n = 0
        self.seq = []          # seq - 1 -> uid (None until learned)
        self.flags = {}        # uid -> set of flags
        self.modseq = {}       # uid -> modseq
        self.errors = []
        greeting = self._line()
        if not greeting.startswith(b"* OK"):
            raise CheckFailure("%s: greeting %r" % (name, greeting))
        self.command("LOGIN %s %s" % (self._quote(user), self._quote(password)))
        self.command("ENABLE CONDSTORE")
        self.command("SELECT INBOX")

    @staticmethod
    def _quote(s):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def _line(self):
        for _ in range(100000):
            i = self.rbuf.find(b"\r\n")
            if i >= 0:
                line, self.rbuf = self.rbuf[:i], self.rbuf[i + 2:]
                return line
            chunk = self.sock.recv(65536)
            if not chunk:
                raise CheckFailure("%s: connection closed" % self.name)
            self.rbuf += chunk
        raise CheckFailure("%s: line too long" % self.name)

    def _read_response_line(self):
        """A line with its literals inlined (bounded)."""
        line = self._line()
        for _ in range(1000):
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                return line
            n = int(m.group(1))
            while len(self.rbuf) < n:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise CheckFailure("%s: closed in a literal" % self.name)
                self.rbuf += chunk
            lit, self.rbuf = self.rbuf[:n], self.rbuf[n:]
            line = line + lit.replace(b"\r\n", b" ") + self._line()
        return line

    def command(self, text, literal=None, ok=("OK",)):
        """Send a command (a literal is sent as LITERAL+ {n+}); apply untagged responses;
        return (status, tagged line, untagged lines)."""
        self.n += 1
        tag = "%s%d" % (self.name, self.n)
        data = ("%s %s" % (tag, text)).encode()
        if literal is not None:
            data += b" {%d+}\r\n" % len(literal) + literal
        self.sock.sendall(data + b"\r\n")
        untagged = []
        for _ in range(1000000):
            line = self._read_response_line()
            if line.startswith(tag.encode() + b" "):
                status = line.split(b" ", 2)[1].decode()
                if status not in ok:
                    raise CheckFailure("%s: %s -> %r" % (self.name, text, line))
                return status, line, untagged
            if line.startswith(b"* "):
                untagged.append(line)
                self._apply(line)
        raise CheckFailure("%s: no tagged reply to %s" % (self.name, text))

    def _apply(self, line):
        parts = line.split(b" ")
        if len(parts) >= 3 and parts[2] == b"EXISTS":
            n = int(parts[1])
            if n < len(self.seq):
                self.errors.append("%s: EXISTS %d shrank the view from %d" % (self.name, n, len(self.seq)))
            self.seq.extend([None] * (n - len(self.seq)))
        elif len(parts) >= 3 and parts[2] == b"EXPUNGE":
            n = int(parts[1])
            if not 1 <= n <= len(self.seq):
                self.errors.append("%s: EXPUNGE %d of a view of %d" % (self.name, n, len(self.seq)))
            else:
                uid = self.seq.pop(n - 1)
                self.flags.pop(uid, None)
                self.modseq.pop(uid, None)
        elif parts[1] == b"VANISHED":
            if parts[2] == b"(EARLIER)":
                return
            gone = set(_uidset(parts[2]))
            self.seq = [u for u in self.seq if u not in gone]
        else:
            m = FETCH_RE.match(line)
            if m:
                self._apply_fetch(int(m.group(1)), m.group(2))

    def _apply_fetch(self, n, body):
        if not 1 <= n <= len(self.seq):
            self.errors.append("%s: FETCH %d of a view of %d" % (self.name, n, len(self.seq)))
            return
        u = UID_RE.search(body)
        uid = self.seq[n - 1]
        if u:
            got = int(u.group(1))
            if uid is not None and uid != got:
                self.errors.append("%s: sequence %d was UID %d, FETCH says %d" % (self.name, n, uid, got))
            uid = self.seq[n - 1] = got
        if uid is None:
            return
        f = FLAGS_RE.search(body)
        if f:
            self.flags[uid] = set(f.group(1).split())
        ms = MODSEQ_RE.search(body)
        if ms:
            new = int(ms.group(1))
            if new < self.modseq.get(uid, 0):
                self.errors.append("%s: MODSEQ of UID %d went down %d -> %d" % (self.name, uid,
                                                                               self.modseq[uid], new))
            self.modseq[uid] = new

    def known_uids(self):
        return [u for u in self.seq if u is not None]

    def snapshot(self):
        """NOOP, then UID FETCH 1:* of the view: {uid: (flags, modseq)} and the uid order;
        checks the model against it."""
        self.command("NOOP")
        before = list(self.seq)
        known_flags = {u: set(f) - {b"\\Recent"} for u, f in self.flags.items()}
        known_modseq = dict(self.modseq)
        _, _, lines = self.command("UID FETCH 1:* (FLAGS MODSEQ)")
        view = {}
        order = []
        for line in lines:
            m = FETCH_RE.match(line)
            if not m:
                continue
            u = UID_RE.search(m.group(2))
            f = FLAGS_RE.search(m.group(2))
            ms = MODSEQ_RE.search(m.group(2))
            uid = int(u.group(1))
            order.append(uid)
            view[uid] = (set(f.group(1).split()), int(ms.group(1)) if ms else None)
        if len(order) != len(before):
            self.errors.append("%s: model has %d messages, the view %d" % (self.name, len(before), len(order)))
        for k, (a, b) in enumerate(zip(before, order)):
            if a is not None and a != b:
                self.errors.append("%s: model says sequence %d is UID %s, the view %s" % (self.name, k + 1, a, b))
        for uid, (flags, modseq) in view.items():
            # what the untagged updates told this session must be what its view holds
            if uid in known_flags and known_flags[uid] != flags - {b"\\Recent"}:
                self.errors.append("%s: UID %d: the updates said flags %s, the view has %s"
                                   % (self.name, uid, sorted(known_flags[uid]), sorted(flags)))
            # a MODSEQ told may lag when the flags came back to what they were between two
            # syncs (nothing to report); it can never be ahead of the view
            if uid in known_modseq and modseq is not None and known_modseq[uid] > modseq:
                self.errors.append("%s: UID %d: the updates said MODSEQ %d, the view has only %d"
                                   % (self.name, uid, known_modseq[uid], modseq))
        if order != sorted(order):
            self.errors.append("%s: UIDs not ascending: %s" % (self.name, order))
        return order, view

    def close(self):
        try:
            self.command("LOGOUT", ok=("OK", "BAD", "NO"))
        except (OSError, CheckFailure):
            pass
        self.sock.close()


def _message(rng, k):
    return ("From: checker@example.test\r\nTo: alice@example.test\r\nSubject: checker %d\r\n\r\n"
            "body %d %s\r\n" % (k, k, "x" * rng.randrange(0, 400))).encode()


def _random_op(s, rng, counter):
    uids = s.known_uids()
    op = rng.choice(["store", "store", "store", "delete", "copy", "move", "append", "expunge"])
    if op in ("store", "delete", "copy", "move") and not uids:
        op = "append"
    if op == "store":
        flag = rng.choice(["\\Seen", "\\Flagged", "\\Answered", "$Work", "$Later"])
        s.command("UID STORE %d %sFLAGS (%s)" % (rng.choice(uids), rng.choice("+-"), flag))
    elif op == "delete":
        uid = rng.choice(uids)
        s.command("UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid)
        if uid in s.flags:      # .SILENT: the client knows what it asked for
            s.flags[uid].add(b"\\Deleted")
    elif op == "copy":
        s.command("UID COPY %d INBOX" % rng.choice(uids))
    elif op == "move":
        s.command("UID MOVE %d Other" % rng.choice(uids))
    elif op == "append":
        counter[0] += 1
        s.command("APPEND INBOX (\\Seen)", literal=_message(rng, counter[0]))
    else:
        s.command("EXPUNGE")


def compare(sessions):
    """Every session's snapshot must agree; \\Recent in exactly one.  Returns problems."""
    problems = []
    snaps = [s.snapshot() for s in sessions]
    ref_order, ref_view = snaps[0]
    for s, (order, view) in zip(sessions[1:], snaps[1:]):
        if order != ref_order:
            problems.append("%s sees UIDs %s, %s sees %s" % (sessions[0].name, ref_order, s.name, order))
            continue
        for uid in order:
            fa = ref_view[uid][0] - {b"\\Recent"}
            fb = view[uid][0] - {b"\\Recent"}
            if fa != fb:
                problems.append("UID %d: %s flags %s, %s flags %s" % (uid, sessions[0].name, sorted(fa), s.name,
                                                                      sorted(fb)))
            if ref_view[uid][1] != view[uid][1]:
                problems.append("UID %d: %s MODSEQ %s, %s MODSEQ %s" % (uid, sessions[0].name, ref_view[uid][1],
                                                                        s.name, view[uid][1]))
    for uid in ref_order:
        seen = [s.name for s, (order, view) in zip(sessions, snaps) if uid in view and b"\\Recent" in view[uid][0]]
        if len(seen) != 1:
            problems.append("UID %d is \\Recent in %d sessions (%s), not exactly one" % (uid, len(seen), seen))
    for s in sessions:
        problems += s.errors
        s.errors = []
    return problems, len(ref_order)


def run_checker(host, port, user, password, sessions=4, ops=40, checkpoints=3, seed=1, deadline=20.0, tls=True):
    """Run the checker; returns a dict of figures; raises CheckFailure listing problems."""
    rng = random.Random(seed)
    end = time.monotonic() + deadline
    conns = [Session(host, port, user, password, "s%d" % k, tls=tls) for k in range(sessions)]
    counter = [0]
    figures = {"operations": 0, "checkpoints": 0, "messages": 0}
    try:
        conns[0].command('CREATE "Other"', ok=("OK", "NO"))
        for c in conns:
            c.command("UID FETCH 1:* (FLAGS MODSEQ)")
        for _ in range(checkpoints):
            failures = []

            def worker(s, r):
                try:
                    for _ in range(ops):
                        if time.monotonic() > end:
                            break
                        _random_op(s, r, counter)
                        figures["operations"] += 1
                except (CheckFailure, OSError) as e:
                    failures.append(str(e))

            threads = [threading.Thread(target=worker, args=(s, random.Random(rng.random()))) for s in conns]
            for t in threads:
                t.start()
            for t in threads:
                t.join(max(1.0, end - time.monotonic() + 5))
            if any(t.is_alive() for t in threads):
                raise CheckFailure("a session did not finish its operations in time")
            if failures:
                raise CheckFailure("; ".join(failures))
            problems, n = compare(conns)
            figures["checkpoints"] += 1
            figures["messages"] = n
            if problems:
                raise CheckFailure("checkpoint %d:\n  %s" % (figures["checkpoints"], "\n  ".join(problems[:40])))
            if time.monotonic() > end:
                break
    finally:
        for c in conns:
            c.close()
    return figures
