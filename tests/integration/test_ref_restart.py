"""Log references are unique across restarts (issue 9): connection numbers start again
at 1 on every start, so a reference is RUN.CONN.N with RUN the start counter kept in
the data directory (named by `event=started ... run=RUN`), and `postern explain --ref`
finds the refusal of the right run in a log that holds several."""
import re

from conftest import run_cli
from submission_support import connect, make_sub_server, wait_log, wait_ports

REF = re.compile(r"\(ref ([0-9.]+)\)")


def _refuse(srv, rcpt):
    with connect(srv, "smtp", source="127.0.0.2") as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@example.org>")
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r.code == 554, r
    ref = REF.search(r.text).group(1)
    assert wait_log(srv, r"event=refused\b[^\n]*ref=%s\b" % re.escape(ref))
    return ref


def test_refs_differ_across_restarts_and_explain_finds_each(server_factory, tmp_path):
    srv = make_sub_server(server_factory)
    first = _refuse(srv, "bob@first.example")
    srv.restart()
    srv.ports = wait_ports(srv, ["smtp", "submission", "submissions"])
    second = _refuse(srv, "carol@second.example")
    srv.stop()
    assert first != second, (first, second)
    # the same connection and refusal numbers: only the run tells them apart
    assert first.split(".")[1:] == second.split(".")[1:], (first, second)
    runs = re.findall(r"event=started\b[^\n]* run=(\d+)", srv.all_logs())
    assert len(runs) == 2 and runs[0] != runs[1], runs
    assert first.startswith(runs[0] + ".") and second.startswith(runs[1] + "."), (runs, first, second)
    # One log file with both runs, as syslog or a log file keeps them.
    combined = tmp_path / "postern.log"
    combined.write_text(srv.all_logs())
    p = run_cli(["explain", "--ref", first, "--log", str(combined)])
    assert p.returncode == 0, p.stderr
    assert "bob@first.example" in p.stdout and "carol@second.example" not in p.stdout, p.stdout
    p = run_cli(["explain", "--ref", second, "--log", str(combined)])
    assert p.returncode == 0, p.stderr
    assert "carol@second.example" in p.stdout and "bob@first.example" not in p.stdout, p.stdout
    # a reference of a run that is not in the log is not found
    p = run_cli(["explain", "--ref", "999." + ".".join(first.split(".")[1:]), "--log", str(combined)])
    assert p.returncode == 1 and "no refusal" in p.stderr, p.stdout
