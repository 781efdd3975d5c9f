"""msg/mime against Dovecot as the oracle: for a corpus of tricky messages, the
ENVELOPE, BODYSTRUCTURE and BODY that build/mime_dump (tests/unit/mime_dump.c)
renders must equal what `doveadm fetch imap.envelope imap.bodystructure
imap.body` answers for the same Maildir, byte for byte (doveadm leaves out the
outermost parentheses; the test puts them back), and so must the BODY[section]
and BINARY[section] bytes of SECTIONS (doveadm's body.<section>, binary.<section>).

Dovecot runs only as doveadm with a private configuration (-c): no service, no
auth process (mail_uid = nobody, the Maildir owned by nobody in a directory of
the test's own).  Where Postern differs on purpose the message is not here;
see DIFFERENCES."""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import POSTERN_BIN

DUMP_BIN = Path(POSTERN_BIN).parent / "mime_dump"
DOVEADM = "/usr/bin/doveadm"

# Where Postern and Dovecot part ways on purpose (so none of it is in CORPUS).
DIFFERENCES = (
    "more than 32 nested parts or 10,000 parts: Postern stops there (msg/mime.h); Dovecot's limits are higher",
)

# In doveadm's spelling (one field per list: doveadm splits its argument at spaces).
SECTIONS = ("body.header", "body.text", "body.1", "body.1.mime", "body.2", "body.2.mime", "body.2.header",
            "body.2.text", "body.1.1", "body.1.2", "body.2.1", "body.2.1.mime", "body.3",
            "body.header.fields(subject)", "body.header.fields.not(subject)", "body.2.header.fields(from)",
            "binary.1", "binary.2", "binary.1.1")
FIELDS = ("uid", "imap.envelope", "imap.bodystructure", "imap.body") + SECTIONS

# SEARCH keys: doveadm search's arguments, and mime_dump's -q for the same.
QUERIES = (
    (["subject", "nested"], "subject:nested"),
    (["subject", "k\u00f6ln"], "subject:k\u00f6ln"),
    (["from", "M\u00dcLLER"], "from:M\u00dcLLER"),
    (["to", "ren\u00e9"], "to:ren\u00e9"),
    (["body", "caf\u00e9 au"], "body:caf\u00e9 au"),
    (["body", "SECOND LINE"], "body:SECOND LINE"),
    (["text", "alice@example"], "text:alice@example"),
    (["body", "alice@example"], "body:alice@example"),
    (["body", "original"], "body:original"),
    (["text", "original"], "text:original"),
    (["body", "iVBOR"], "body:iVBOR"),
    (["header", "message-id", "nested"], "header:message-id:nested"),
    (["header", "x-nothing", ""], "header:x-nothing:"),
    (["header", "content-type", ""], "header:content-type:"),
    (["body", "sch\u00f6ne gr\u00fc\u00dfe"], "body:sch\u00f6ne gr\u00fc\u00dfe"),
    (["text", "deep@x"], "text:deep@x"),
    (["sentbefore", "2026-12-01"], "sentbefore:2026-12-01"),
    (["senton", "2026-12-01"], "senton:2026-12-01"),
    (["sentsince", "2026-12-02"], "sentsince:2026-12-02"),
)

CRLF_NESTED = (
    "From: Alice Example <alice@example.test>\r\n"
    "To: Bob <bob@example.test>\r\n"
    "Subject: nested alternative in mixed\r\n"
    "Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
    "Message-ID: <nested@example.test>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n"
    "This is a multi-part message in MIME format.\r\n"
    "--outer\r\n"
    "Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Caf=C3=A9 au lait\r\n"
    "second line\r\n"
    "--inner\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    "<p>Caf&eacute;</p>\r\n"
    "--inner--\r\n"
    "\r\n"
    "--outer\r\n"
    "Content-Type: image/png; name=\"dot.png\"\r\n"
    "Content-Disposition: inline; filename=\"dot.png\"\r\n"
    "Content-ID: <dot@example.test>\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "iVBORw0KGgo=\r\n"
    "--outer--\r\n"
    "epilogue\r\n"
)

CORPUS = {
    "nested_crlf": CRLF_NESTED.encode(),
    "nested_lf": CRLF_NESTED.replace("\r\n", "\n").encode(),
    "rfc822_attachment": (
        b"From: a@example.test\nTo: b@example.test\nSubject: fwd\n"
        b"Content-Type: multipart/mixed; boundary=b1\n\n"
        b"--b1\nContent-Type: text/plain\n\nsee attached\n"
        b"--b1\nContent-Type: message/rfc822\nContent-Disposition: attachment; filename=orig.eml\n"
        b"Content-Description: the original\n\n"
        b"From: \"Orig Sender\" <orig@example.test>\nSubject: original\nDate: 1 Dec 2026 09:00 -0500\n"
        b"Reply-To: list@example.test\nSender: bounce@example.test\n"
        b"Content-Type: multipart/alternative; boundary=b2\n\n"
        b"--b2\n\nplain\n--b2\nContent-Type: text/html\n\n<b>html</b>\n--b2--\n"
        b"--b1--\n"),
    "rfc2231_filename": (
        b"Subject: rfc 2231\nContent-Type: multipart/mixed; boundary=z\n\n--z\n"
        b"Content-Type: application/pdf; name*0*=utf-8''%C3%A9t; name*1*=%C3%A9.pdf\n"
        b"Content-Disposition: attachment;\n filename*0=\"very long \"; filename*1=\"name.pdf\"; size=123\n"
        b"Content-Transfer-Encoding: base64\nContent-Language: en, de\nContent-Location: http://example.test/x\n"
        b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n\nJVBERi0=\n--z--\n"),
    "missing_final_boundary": (
        b"Subject: cut\nContent-Type: multipart/mixed; boundary=cut\n\npre\n--cut\n\none\n--cut\n"
        b"Content-Type: text/plain; charset=us-ascii\n\ntwo\nlast line without end"),
    "no_content_type": b"From: x@example.test\nSubject: plain\n\nline one\nline two\n",
    "eight_bit_headers": (
        "From: J\u00fcrgen M\u00fcller <j@example.test>\nSubject: Gr\u00fc\u00dfe aus K\u00f6ln\n"
        "To: =?UTF-8?Q?Ren=C3=A9?= <r@example.test>\n\nbody\n").encode(),
    "group_addresses": (
        b"From: Team: a@example.test, \"B, b\" <b@example.test>;, c@example.test (Cee)\n"
        b"To: undisclosed-recipients:;\nCc: <@route.test,@two.test:r@example.test>, nodomain, \"\" <e@x.test>\n"
        b"Bcc: \"quote \\\" inside\" <q@example.test>\n\nx\n"),
    "empty_subject": b"Subject:\nFrom: <>\nIn-Reply-To:  <a@b>\n  <c@d>\nMessage-ID: <m@x>\n\n",
    "broken_mixed": (
        b"Content-Type: multipart/mixed\n\n--nothing\n\nx\n"),
    "preamble_only": b"Content-Type: multipart/related; boundary=q; type=\"text/html\"\n\nno parts at all\n",
    "header_at_boundary": (
        b"Content-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: application/x-foo\n--q\n"
        b"Content-Type: image/png\n\n--q--\n"),
    "digest": (
        b"Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nfirst\n--d\n\nSubject: two\n\nsecond\n--d--\n"),
    "encoded_rfc822": (
        b"Content-Type: multipart/mixed; boundary=e\n\n--e\nContent-Type: message/rfc822\n"
        b"Content-Transfer-Encoding: base64\n\nU3ViamVjdDogeAoKeQo=\n--e--\n"),
    "uppercase": (
        b"Content-Type: TEXT/Plain; Charset=\"UTF-8\"; FOO=\"a b\" (comment)\nContent-Transfer-Encoding: QUOTED-PRINTABLE\n"
        b"Content-Disposition: INLINE\n\nx=\n"),
    "duplicate_fields": b"Subject: one\nSubject: two\nContent-Type: text/html\nContent-Type: text/plain\n\nx",
    "prefix_boundaries": (
        b"Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: multipart/mixed; boundary=ab\n\n"
        b"--ab\n\nin\n--a\n\nout\n--a--\n"),
    "boundary_junk": (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b \t\n\none\n--bjunk\n\ntwo\n--b-- trailing\nepi\n--b\n\nthree\n"),
    "odd_addresses": (
        b"From: Mary Smith <@a.test:mary@x.test>, John (the man) Doe <jdoe@one.test>\n"
        b"To: \"a b\"@quoted.test, <>, @, a.b.c@[192.0.2.1], =?utf-8?B?w4k=?= <e@x.test>\n"
        b"Cc: one two three\nBcc: ;;, ,\nSender:\nReply-To: (only a comment)\n\n"),
    "eight_bit_params": (
        "Content-Type: text/plain; name=\"caf\u00e9.txt\"; charset=iso-8859-1\n"
        "Content-Description: d\u00e9j\u00e0 vu\n\ncaf\u00e9\n").encode(),
    "bare_cr_and_nul": b"Subject: a\rb\x00c\nContent-Type: text/plain\n\nx\ry\x00z\n",
    "quotes_in_strings": (
        b"Subject: \"quoted\" subject \\ here\nMessage-ID: <\"a\"\"b\"\"c\"@x>\nIn-Reply-To: <\"a\"\"b\"@x>\n\n"),
    "mixed_line_ends": (
        b"Subject: mixed\r\nContent-Type: multipart/mixed; boundary=m\n\r\n--m\r\n\nlf body\r\nline\n--m\n"
        b"Content-Type: text/plain; charset=windows-1252\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"U2No9m5lIEdy/N9lIQ==\r\n--m--\r\n"),
    "nested_messages": (
        b"Subject: outer\nContent-Type: message/rfc822\n\nSubject: middle\nContent-Type: multipart/mixed; boundary=n\n\n"
        b"--n\nContent-Type: message/rfc822\n\nSubject: inner\nFrom: Deep <deep@x.test>\n\ndeepest\n--n--\n"),
    "content_type_forms": (
        b"Content-Type: multipart/mixed; boundary=f\n\n--f\nContent-Type: text/plain junk\n\na\n"
        b"--f\nContent-Type: /plain\n\nb\n--f\nContent-Type: text; charset=x\n\nc\n"
        b"--f\nContent-Type: Message/RFC822\nContent-Language: en, de junk, fr\n\nSubject: s\n\nd\n"
        b"--f\nContent-Type: text/plain\nContent-Transfer-Encoding: 7bit junk\n"
        b"Content-Disposition: attachment junk; filename=x\n\ne\n--f--\n"),
    "not_mime": b"Content-Transfer-Encoding: quoted-printable\nContent-ID: <x>\n\nCaf=C3=A9 au lait=\n\n",
    "address_oddities": (
        b"From: a@example.test\nReply-To: one@example.test\nReply-To: two@example.test\n"
        b"To: x <a@.b>, y@z.test\nCc: \"q\x00r\" <a@b.test>, list@example.\nBcc: x <unclosed@b.test\n\n"),
}


def dovecot_view(tmp_path, corpus):
    """doveadm fetch over a Maildir holding the corpus, in order: a list of dicts."""
    base = Path(tempfile.mkdtemp(prefix="mime-oracle-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        md = base / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (md / sub).mkdir(parents=True)
        for i, raw in enumerate(corpus.values(), 1):
            (md / "cur" / f"{1000 + i}.M1P1.oracle:2,").write_bytes(raw)
        conf = base / "dovecot.conf"
        conf.write_text(
            f"mail_location = maildir:{md}\nbase_dir = {base}/run\nstate_dir = {base}/state\n"
            f"log_path = {base}/dovecot.log\nssl = no\nmail_uid = nobody\nmail_gid = nogroup\n"
            "first_valid_uid = 0\nfirst_valid_gid = 0\n")
        shutil.chown(md, "nobody", "nogroup")
        for p in md.rglob("*"):
            shutil.chown(p, "nobody", "nogroup")
        env = {"PATH": "/usr/bin:/bin", "USER": "nobody", "HOME": str(base)}
        p = subprocess.run([DOVEADM, "-c", str(conf), "-f", "json", "fetch", " ".join(FIELDS), "all"],
                           env=env, capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        views = json.loads(p.stdout.decode("utf-8", "surrogateescape"))
        uids = [v["uid"] for v in views]
        for args, query in QUERIES:
            q = subprocess.run([DOVEADM, "-c", str(conf), "search"] + args, env=env, capture_output=True,
                               timeout=30)
            assert q.returncode == 0, q.stderr.decode(errors="replace")
            hits = {line.split()[1] for line in q.stdout.decode().splitlines() if line.strip()}
            for v, uid in zip(views, uids):
                v[query] = "1" if uid in hits else "0"
        return views
    finally:
        shutil.rmtree(base, ignore_errors=True)


def postern_view(tmp_path, corpus):
    """mime_dump over the same messages: a list of dicts with the same keys."""
    files = []
    for i, (name, raw) in enumerate(corpus.items()):
        f = tmp_path / f"{i}-{name}.eml"
        f.write_bytes(raw)
        files.append(str(f))
    args = [a for spec in SECTIONS for a in ("-s", spec)] + [a for _, q in QUERIES for a in ("-q", q)]
    p = subprocess.run([str(DUMP_BIN)] + args + files, capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    out, pos, views = p.stdout, 0, []
    keys = {"ENVELOPE": "imap.envelope", "BODYSTRUCTURE": "imap.bodystructure", "BODY": "imap.body"}
    while pos < len(out):
        nl = out.index(b"\n", pos)
        name, length = out[pos:nl].decode().rsplit(" ", 1)
        value = out[nl + 1:nl + 1 + int(length)]
        pos = nl + 1 + int(length) + 1
        if name == "ENVELOPE":
            views.append({})
        # doveadm's JSON shows bytes that are not UTF-8 as U+FFFD; so must we.
        views[-1][keys.get(name, name)] = value.decode("utf-8", "replace")
    return views


@pytest.fixture(scope="module")
def views(tmp_path_factory):
    assert DUMP_BIN.exists(), f"{DUMP_BIN} not built"
    tmp = tmp_path_factory.mktemp("mime-oracle")
    return dovecot_view(tmp, CORPUS), postern_view(tmp, CORPUS)


@pytest.mark.parametrize("name", list(CORPUS))
def test_same_as_dovecot(views, name):
    dovecot, postern = views
    i = list(CORPUS).index(name)
    assert len(dovecot) == len(CORPUS) and len(postern) == len(CORPUS)
    for key in ("imap.envelope", "imap.bodystructure", "imap.body"):
        # doveadm leaves out the outermost parentheses of each.
        want = "(" + dovecot[i][key] + ")"
        assert postern[i][key] == want, f"{name} {key}"


@pytest.mark.parametrize("name", list(CORPUS))
def test_sections_same_as_dovecot(views, name):
    dovecot, postern = views
    i = list(CORPUS).index(name)
    wrong = [spec for spec in SECTIONS if postern[i][spec] != dovecot[i][spec]]
    assert not wrong, "\n".join(f"{name} {spec}:\n  dovecot {dovecot[i][spec]!r}\n  postern {postern[i][spec]!r}"
                                for spec in wrong)


def test_search_same_as_dovecot(views):
    dovecot, postern = views
    wrong = []
    for _, query in QUERIES:
        want = [n for i, n in enumerate(CORPUS) if dovecot[i][query] == "1"]
        got = [n for i, n in enumerate(CORPUS) if postern[i][query] == "1"]
        assert want or query.startswith(("body:alice", "body:iVBOR", "body:original", "header:x-nothing", "sentsince")), query
        if want != got:
            wrong.append(f"{query}: dovecot {want} postern {got}")
    assert not wrong, "\n".join(wrong)
