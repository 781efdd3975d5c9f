"""Real mail clients nobody here wrote: swaks, curl, msmtp, Python smtplib."""
import smtplib
import subprocess


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=30, **kw)


def test_swaks_delivers(server):
    p = run(["swaks", "--server", "%s:%d" % (server.host, server.port), "--to", "alice@example.test",
             "--from", "x@y.example", "--helo", "client.example", "--header", "Subject: via swaks",
             "--timeout", "10"])
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode == 0, out
    assert "250 2.0.0 Ok: queued as" in out, out
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    data = msgs[0].read_bytes()
    assert data.startswith(b"Return-Path: <x@y.example>\n") and b"Subject: via swaks" in data


def test_swaks_pipelining(server):
    # --pipeline makes swaks send MAIL, RCPT, DATA in one write (PIPELINING)
    p = run(["swaks", "--server", "%s:%d" % (server.host, server.port), "--to", "alice@example.test",
             "--from", "x@y.example", "--pipeline", "--header", "Subject: swaks pipelined",
             "--timeout", "10"])
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode == 0, out
    assert len(server.wait_delivered("alice@example.test", 1)) == 1


def test_curl_delivers(server, tmp_path):
    f = tmp_path / "msg.txt"
    f.write_bytes(b"From: <x@y.example>\r\nTo: <alice@example.test>\r\nSubject: via curl\r\n\r\n"
                  b".starts with a dot\r\nbody\r\n")
    p = run(["curl", "-sS", "--max-time", "15", "smtp://%s:%d/client.example" % (server.host, server.port),
             "--mail-from", "x@y.example", "--mail-rcpt", "alice@example.test", "--upload-file", str(f)])
    assert p.returncode == 0, (p.stdout + p.stderr).decode("utf-8", "replace")
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    data = msgs[0].read_bytes()
    assert b"Subject: via curl" in data and b"\n.starts with a dot\nbody\n" in data, data


def test_msmtp_delivers(server, tmp_path):
    msg = b"From: <x@y.example>\nTo: <alice@example.test>\nSubject: via msmtp\n\nhello from msmtp\n"
    p = run(["msmtp", "--host=%s" % server.host, "--port=%d" % server.port, "--auth=off", "--tls=off",
             "--domain=client.example", "--from=x@y.example", "alice@example.test"],
            input=msg, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, (p.stdout + p.stderr).decode("utf-8", "replace")
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    assert b"hello from msmtp" in msgs[0].read_bytes()


def test_msmtp_relay_refusal_explained(server, tmp_path):
    msg = b"From: <x@y.example>\nTo: <x@remote.example>\nSubject: relay\n\nhi\n"
    p = run(["msmtp", "--host=%s" % server.host, "--port=%d" % server.port, "--auth=off", "--tls=off",
             "--from=x@y.example", "x@remote.example"],
            input=msg, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode != 0, out
    assert "relay" in out.lower(), out


def test_smtplib_send_message_with_8bit_and_utf8(server):
    body = "Subject: caf\u00e9\r\nFrom: <x@y.example>\r\n\r\nna\u00efve r\u00e9sum\u00e9\r\n".encode("utf-8")
    with smtplib.SMTP(server.host, server.port, timeout=10) as s:
        s.ehlo("client.example")
        assert s.has_extn("8bitmime") and s.has_extn("smtputf8") and s.has_extn("chunking")
        refused = s.sendmail("x@y.example", ["alice@example.test"], body, mail_options=["BODY=8BITMIME"])
        assert refused == {}
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    assert "na\u00efve r\u00e9sum\u00e9\n".encode("utf-8") in msgs[0].read_bytes()


def test_smtputf8_address(server):
    with server.connect() as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<j\u00f6rg@b\u00fccher.example> SMTPUTF8")
        assert r.is_(250, "2.1.0"), r
        assert c.cmd("RCPT TO:<alice@example.test>").is_(250, "2.1.5")
        assert c.data("Subject: utf8\r\n\r\nhi\r\n").is_(250, "2.0.0")
    msgs = server.wait_delivered("alice@example.test", 1)
    assert len(msgs) == 1
    assert msgs[0].read_bytes().startswith("Return-Path: <j\u00f6rg@b\u00fccher.example>\n".encode("utf-8"))
