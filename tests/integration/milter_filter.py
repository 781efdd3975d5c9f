"""A pymilter content filter for the milter tests (libmilter underneath: a peer nobody
here wrote).  Usage: milter_filter.py SOCKET MODE LOG
  SOCKET  libmilter's spec: unix:/path or inet:PORT@127.0.0.1
  MODE    what the filter does (see MODES below)
  LOG     a JSON-lines file: one line per callback, with what the filter saw
The test starts it, waits for the socket, and stops it by pid."""
import json
import os
import sys
import time

import Milter

SOCKET, MODE, LOG = sys.argv[1], sys.argv[2], sys.argv[3]
MACROS = ("j", "{daemon_name}", "{client_addr}", "_", "{tls_version}", "{cipher}", "{auth_type}",
          "{auth_authen}", "{mail_addr}", "{rcpt_addr}", "i")


def record(event, **kw):
    kw["event"] = event
    with open(LOG, "a") as f:
        f.write(json.dumps(kw) + "\n")


def text(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


class Filter(Milter.Base):
    def __init__(self):
        self.body_len = 0
        self.chunks = 0

    def macros(self):
        out = {}
        for m in MACROS:
            v = self.getsymval(m)
            if v is not None:
                out[m] = text(v)
        return out

    def connect(self, hostname, family, hostaddr):
        record("connect", hostname=hostname, family=int(family), addr=list(hostaddr)
               if isinstance(hostaddr, tuple) else hostaddr, macros=self.macros())
        return Milter.CONTINUE

    def hello(self, name):
        record("helo", name=name, macros=self.macros())
        return Milter.CONTINUE

    def envfrom(self, f, *params):
        record("mail", addr=f, params=list(params), macros=self.macros())
        if MODE == "tempfail-mail":
            return Milter.TEMPFAIL
        if MODE == "replycode-mail":
            self.setreply("451", "4.7.1", "greylisted, try again in 5 minutes")
            return Milter.TEMPFAIL
        if MODE == "accept-mail":
            return Milter.ACCEPT
        return Milter.CONTINUE

    def envrcpt(self, to, *params):
        record("rcpt", addr=to, params=list(params), macros=self.macros())
        if MODE == "reject-rcpt" and "spamtrap" in to:
            self.setreply("550", "5.7.1", "spamtrap address")
            return Milter.REJECT
        return Milter.CONTINUE

    def data(self):
        record("data")
        return Milter.CONTINUE

    def header(self, name, value):
        record("header", name=name, value=value)
        return Milter.CONTINUE

    def eoh(self):
        record("eoh")
        return Milter.CONTINUE

    def body(self, chunk):
        self.chunks += 1
        self.body_len += len(chunk)
        record("body", n=len(chunk), chunk=self.chunks)
        if MODE == "close-body":
            os._exit(0)          # the filter dies mid-message: its socket closes
        if MODE == "skip" and self.chunks == 1:
            return Milter.SKIP
        return Milter.CONTINUE

    def eom(self):
        record("eom", body_len=self.body_len, chunks=self.chunks, macros=self.macros())
        self.body_len = self.chunks = 0
        return EOM[MODE](self) if MODE in EOM else Milter.CONTINUE

    def abort(self):
        record("abort")
        return Milter.CONTINUE

    def close(self):
        record("close")
        return Milter.CONTINUE


def eom_modify(f):
    f.addheader("X-Filter", "seen")
    f.addheader("X-Folded", "first\n\tsecond")
    f.addheader("X-Top", "inserted", 0)
    f.chgheader("Subject", 1, "changed subject")
    f.chgheader("To", 1, "")
    f.addrcpt("<added@example.net>")
    f.addrcpt("<added2@example.net>", "NOTIFY=NEVER")
    f.delrcpt("<bob@example.net>")
    f.chgfrom("<bounces@example.org>", "SIZE=200")
    f.replacebody(b"replaced body line 1\r\n")
    f.replacebody(b"replaced body line 2\r\n")
    return Milter.ACCEPT


def eom_reject_multiline(f):
    f.setreply("550", "5.7.1", "spam score 15.3 of 15", "GTUBE found", "see https://example.org/spam")
    return Milter.REJECT


def eom_quarantine(f):
    f.quarantine("held for review by the test filter")
    return Milter.ACCEPT


def eom_sleep(f):
    time.sleep(float(os.environ.get("FILTER_SLEEP", "3")))
    return Milter.CONTINUE


def eom_progress(f):
    # Each pause is shorter than the client's wait, all of them together longer.
    for _ in range(int(os.environ.get("FILTER_PROGRESS_N", "6"))):
        time.sleep(float(os.environ.get("FILTER_PROGRESS_S", "0.4")))
        f.progress()
    f.addheader("X-After-Progress", "yes")
    return Milter.CONTINUE


EOM = {
    "modify": eom_modify,
    "reject-eom": eom_reject_multiline,
    "quarantine": eom_quarantine,
    "sleep-eom": eom_sleep,
    "progress": eom_progress,
    "tempfail-eom": lambda f: Milter.TEMPFAIL,
    "discard": lambda f: Milter.DISCARD,
}


class Minimal(Filter):
    """Opts out of HELO and the headers, leaves RCPT unanswered, and names the
    macros it wants at MAIL: the negotiation the client must obey."""

    @Milter.nocallback
    def hello(self, name):
        return Milter.CONTINUE

    @Milter.nocallback
    def header(self, name, value):
        return Milter.CONTINUE

    @Milter.noreply
    def envrcpt(self, to, *params):
        record("rcpt", addr=to, params=list(params), macros=self.macros())
        return Milter.CONTINUE

    def envfrom(self, f, *params):
        return Filter.envfrom(self, f, *params)

    def negotiate(self, opts):
        # Base.negotiate with the macro list for MAIL: pymilter's own setsymlist passes
        # bytes where its C module wants str under Python 3, so it is called directly.
        self._actions, offered = opts[0], opts[1]
        self._ctx.setsymlist(Milter.M_ENVFROM, "{auth_authen} {mail_addr}")
        opts[1] = self._protocol = offered & ~self.protocol_mask()
        opts[2] = opts[3] = 0
        return Milter.CONTINUE


@Milter.header_leading_space
class LeadingSpace(Filter):
    pass


def main():
    Milter.factory = {"minimal": Minimal, "leadspc": LeadingSpace}.get(MODE, Filter)
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGBODY | Milter.ADDRCPT | Milter.ADDRCPT_PAR | Milter.DELRCPT |
                     Milter.CHGHDRS | Milter.QUARANTINE | Milter.CHGFROM | Milter.SETSYMLIST)
    record("start", mode=MODE, pid=os.getpid())
    Milter.runmilter("postern-test", SOCKET, timeout=30)


if __name__ == "__main__":
    main()
