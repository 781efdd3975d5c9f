"""`postern explain`: plain text, --json with exactly the issue's fields, standard input,
the honest "unknown", and `--ref REF --log FILE` on a real server's log."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_cli  # noqa: E402
from submission_support import connect, make_sub_server, wait_log  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_plain_text_names_cause_and_fixes():
    p = run_cli(["explain", "503 valid RCPT command must precede DATA"])
    assert p.returncode == 0, p.stderr
    assert "1. not_authenticated" in p.stdout and "Outlook" in p.stdout and "Thunderbird" in p.stdout, p.stdout


def test_json_fields():
    p = run_cli(["explain", "--json", "554 5.7.1 <bob@example.org>: Relay access denied"])
    out = json.loads(p.stdout)
    assert set(out) == {"code", "enhanced", "meaning", "causes"}, out
    assert out["code"] == 554 and out["enhanced"] == "5.7.1"
    assert [c["id"] for c in out["causes"]][:2] == ["not_authenticated", "untrusted_network"]
    for c in out["causes"]:
        assert set(c) == {"id", "words", "fixes"} and c["words"] and c["fixes"], c


def test_stdin_pasted_dialog():
    dialog = ("Cannot send the message.\nThe server responded:\n"
              "535-5.7.8 Username and Password not accepted. For more information, go to\n"
              "535 5.7.8  https://support.google.com/mail/?p=BadCredentials\n")
    p = run_cli(["explain", "--json"], input=dialog)
    out = json.loads(p.stdout)
    assert out["code"] == 535 and out["causes"][0]["id"] == "wrong_credentials", out


def test_unknown_is_honest():
    p = run_cli(["explain", "--json", "299 something nobody has seen"])
    out = json.loads(p.stdout)
    assert p.returncode == 3 and [c["id"] for c in out["causes"]] == ["unknown"], out


def test_data_dir_from_environment(tmp_path):
    (tmp_path / "explain.ini").write_text("[cause throttled]\nwords = custom words\nfix.a = custom fix\n"
                                          "[rule r]\ntext = zebra\ncauses = throttled\n")
    import os
    import subprocess
    from conftest import postern_bin
    env = dict(os.environ, POSTERN_DATA_DIR=str(tmp_path))
    p = subprocess.run([postern_bin(), "explain", "--json", "a zebra"], capture_output=True, text=True,
                       env=env, timeout=30)
    out = json.loads(p.stdout)
    assert out["causes"][0]["words"] == "custom words", out


def test_bad_data_file_names_line(tmp_path):
    bad = tmp_path / "bad.ini"
    bad.write_text("[rule r]\ncode = 550\ncauses = nonsense\n")
    p = run_cli(["explain", "--data", str(bad), "550 x"])
    assert p.returncode == 1 and "nonsense" in p.stderr, p.stderr


def test_ref_from_server_log(server_factory):
    srv = make_sub_server(server_factory)
    with connect(srv, "smtp", source="127.0.0.2") as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@example.org>")
        r = c.cmd("RCPT TO:<bob@example.org>")
        assert r.code == 554, r
    import re
    ref = re.search(r"\(ref ([0-9.]+)\)", r.text).group(1)
    assert wait_log(srv, r"event=refused\b[^\n]*ref=%s\b" % re.escape(ref))
    p = run_cli(["explain", "--ref", ref, "--log", str(srv.log_path)])
    assert p.returncode == 0, p.stderr
    assert "client:    127.0.0.2" in p.stdout and "listener:  smtp" in p.stdout, p.stdout
    # on the mx listener the refusal is the port-25 trap (test_wrong_port.py): the wrong
    # port comes first, not logging in second
    assert "not logged in" in p.stdout and "RCPT" in p.stdout and "wrong_port" in p.stdout, p.stdout
    p = run_cli(["explain", "--json", "--ref", ref, "--log", str(srv.log_path)])
    out = json.loads(p.stdout)
    assert out["client"] == "127.0.0.2" and out["code"] == 554 and out["causes"][0]["id"] == "wrong_port"
    assert [c["id"] for c in out["causes"]][:2] == ["wrong_port", "not_authenticated"], out
    p = run_cli(["explain", "--ref", "99.9", "--log", str(srv.log_path)])
    assert p.returncode == 1 and "no refusal" in p.stderr
