"""The structure rules of docs/architecture.md and issue 10, checked on src/ as text.

Rooms are the first directories under src/ (src/main.c is the room "main", the top).
  (a) the rooms' include graph (`#include "room/x.h"`) has no circle;
  (b) src/net/ includes only src/util/ and src/conf/ headers (and system headers);
  (c) only src/main.c and src/cli/ include src/serve/ headers (the composition root);
  (d) no .c/.h file is longer than MAX_FILE_LINES lines;
  (e) no function is longer than MAX_FUNCTION_LINES lines, counted from the first line
      of its definition to its closing brace.  The tree's style is relied on: a
      definition starts at column 0, its body opens with `{` alone at column 0 and ends
      with `}` at column 0 (test_function_style checks that this style holds);
  (f) only src/auth/ and src/directory/ name the identifiers that carry password hashes
      (HASH_IDENTIFIERS, matched in code with comments and string literals removed);
  (g) the newer rooms keep their place in the room order (ROOM_ORDER_BELOW): milter/
      includes only net/, wire/, util/ and conf/.
  (h) the web room's place in the room order: below serve/ (only serve/ includes web/
      headers), above directory/, queue/, conf/, net/'s HTTP types (net/http.h, and
      nothing else of net/), wire/ and util/ (WEB_MAY_INCLUDE).

Work in progress is listed in EXCEPTIONS below, each with its reason.  The table only
shrinks: a listed exception that is no longer needed fails the test too, so when you
mend one, delete its line.  Pure Python; builds and runs nothing."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"

MAX_FILE_LINES = 800
MAX_FUNCTION_LINES = 80

# Identifiers through which a password hash is made, held or checked (auth/password.h,
# auth/credentials.h, directory/directory.h).  Bare words such as "hash" are not
# listed: message hashes (DKIM, uidlists) are no secret.
HASH_IDENTIFIERS = (
    "PASSWORD_HASH_MAX",
    "password_hash",
    "password_verify",
    "password_verify_cached",
    "dummy_hash",
    "dir_login_hash",
    "directory_login_hash",
    "directory_legacy_app_hashes",
)
HASH_ROOMS = {"auth", "directory"}

# (g) The rooms src/web/ may include, and the one header of net/ it may.
WEB_MAY_INCLUDE = {"web", "directory", "queue", "conf", "wire", "util", "auth", "events", "store", "diag", "msg"}
WEB_NET_HEADERS = {"net/http.h"}

# ---------------------------------------------------------------------------------------
# EXCEPTIONS: what breaks each rule on main today, and why.  Keys are paths under the
# repository (src/...); for "circle" a room edge "from -> to"; for "function"
# "path:function".  Delete a line when you mend it (the test fails while it stays).
EXCEPTIONS = {
    # (a) room edges that close a circle
    "circle": {
    },
    # (b) files of src/net/ that include a header outside util/ and conf/
    "net_imports": {
    },
    # (c) files outside main.c and src/cli/ that include a src/serve/ header
    "serve_imports": {
    },
    # (d) files over MAX_FILE_LINES lines
    "file_size": {
    },
    # (e) functions over MAX_FUNCTION_LINES lines
    "function": {
    },
    # (f) files outside auth/ and directory/ that name password-hash identifiers
    "hash": {
    },
    # (g) files of src/web/ that include a room above or beside it, and files outside
    #     serve/ and web/ that include a src/web/ header
    "web_imports": {
    },
}
# ---------------------------------------------------------------------------------------


def sources():
    return sorted(p for p in SRC.rglob("*") if p.suffix in (".c", ".h") and p.is_file())


def rel(path):
    return path.relative_to(REPO).as_posix()


def room_of(path):
    parts = path.relative_to(SRC).parts
    return "main" if len(parts) == 1 else parts[0]


INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def project_includes(path):
    """The "room/x.h" headers a file includes (rooms that exist under src/)."""
    out = []
    for inc in INCLUDE_RE.findall(path.read_text(errors="replace")):
        if "/" in inc and (SRC / inc.split("/")[0]).is_dir():
            out.append(inc)
    return out


def room_edges():
    edges = {}
    for p in sources():
        src_room = room_of(p)
        for inc in project_includes(p):
            dst = inc.split("/")[0]
            if dst != src_room:
                edges.setdefault((src_room, dst), []).append(f"{rel(p)} -> {inc}")
    return edges


def find_circle(edges):
    """One circle of rooms as a list, or None."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def parse_edge(key):
    a, b = (s.strip() for s in key.split("->"))
    return a, b


def strip_comments_and_strings(text):
    """C text with comments and string/char literals blanked (newlines kept)."""
    pattern = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
    return pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


DEF_NAME_RE = re.compile(r"([A-Za-z_]\w*)\s*\(")


def functions(path):
    """(name, first line, last line) of each function definition, 1-based."""
    lines = path.read_text(errors="replace").split("\n")
    out = []
    i = 0
    while i < len(lines):
        if lines[i].rstrip() == "{":
            start = i - 1
            # The signature: back over indented continuation lines to column 0.
            while start > 0 and lines[start][:1] in (" ", "\t"):
                start -= 1
            sig = " ".join(lines[start:i])
            m = DEF_NAME_RE.search(sig)
            name = m.group(1) if m else f"line{start + 1}"
            end = i + 1
            while end < len(lines) and not lines[end].startswith("}"):
                end += 1
            out.append((name, start + 1, end + 1))
            i = end
        i += 1
    return out


def check_shrinking(rule, violations):
    """violations: {key: detail}. Fails on a violation not excepted, and on an
    exception that no longer matches a violation."""
    allowed = EXCEPTIONS[rule]
    new = {k: v for k, v in violations.items() if k not in allowed}
    stale = sorted(k for k in allowed if k not in violations)
    msgs = []
    if new:
        msgs.append(f"rule {rule!r} broken (mend it, or add it to EXCEPTIONS[{rule!r}] with a reason):")
        msgs += [f"  {k}: {v}" for k, v in sorted(new.items())]
    if stale:
        msgs.append(f"EXCEPTIONS[{rule!r}] lists what no longer breaks the rule (delete these lines):")
        msgs += [f"  {k}" for k in stale]
    assert not msgs, "\n".join(msgs)


def test_rooms_have_no_circle():
    edges = room_edges()
    allowed = {parse_edge(k) for k in EXCEPTIONS["circle"]}
    circle = find_circle({e: v for e, v in edges.items() if e not in allowed})
    msgs = []
    if circle:
        ties = [f"    {x}" for a, b in zip(circle, circle[1:]) for x in edges[(a, b)][:3]]
        msgs.append("rooms include each other in a circle: " + " -> ".join(circle))
        msgs += ties
    for e in sorted(allowed):
        others = {k: v for k, v in edges.items() if k not in allowed or k == e}
        if e not in edges or not find_circle(others):
            msgs.append(f"EXCEPTIONS['circle'] lists {e[0]} -> {e[1]}, which closes no circle now (delete it)")
    assert not msgs, "\n".join(msgs)


def test_net_imports_only_util_and_conf():
    violations = {}
    for p in sources():
        if room_of(p) != "net":
            continue
        bad = [inc for inc in project_includes(p) if inc.split("/")[0] not in ("net", "util", "conf")]
        if bad:
            violations[rel(p)] = ", ".join(bad)
    check_shrinking("net_imports", violations)


# The room order of the newer rooms: each includes only the rooms below it (and itself).
# milter/ sits below policy/ (its one user) and above net/ (the client connection),
# wire/ (reply codes) and util/; nothing below it may include it (no circle, above).
ROOM_ORDER_BELOW = {
    "milter": ("net", "wire", "util", "conf"),
    "events": ("util", "conf"),   # below serve/, delivery/, web/, cli/
    "web": ("directory", "queue", "conf", "net", "wire", "util", "auth", "events", "store", "diag", "msg"),   # net: net/http.h only (test_web_sits_below_serve...)
    "imap": ("auth", "store", "msg", "util", "wire"),                # like pop3/; only serve/ includes imap/
}


@pytest.mark.parametrize("room", sorted(ROOM_ORDER_BELOW))
def test_room_order(room):
    below = ROOM_ORDER_BELOW[room]
    bad = {}
    for p in sources():
        if room_of(p) != room:
            continue
        wrong = [inc for inc in project_includes(p) if inc.split("/")[0] not in (room, *below)]
        if wrong:
            bad[rel(p)] = ", ".join(wrong)
    for low in below:
        for p in sources():
            if room_of(p) == low and any(inc.startswith(room + "/") for inc in project_includes(p)):
                bad[rel(p)] = f"{low}/ is below {room}/ and may not include it"
    assert not bad, "\n".join(f"{k}: {v}" for k, v in sorted(bad.items()))


def test_only_main_and_cli_include_serve():
    violations = {}
    for p in sources():
        if room_of(p) in ("main", "cli", "serve"):
            continue
        bad = [inc for inc in project_includes(p) if inc.startswith("serve/")]
        if bad:
            violations[rel(p)] = ", ".join(bad)
    check_shrinking("serve_imports", violations)


def test_only_serve_includes_imap():
    bad = {rel(p): ", ".join(i for i in project_includes(p) if i.startswith("imap/"))
           for p in sources() if room_of(p) not in ("imap", "serve")
           and any(i.startswith("imap/") for i in project_includes(p))}
    assert not bad, "\n".join(f"{k}: {v}" for k, v in sorted(bad.items()))


def test_web_sits_below_serve_and_above_the_rooms_it_reads():
    violations = {}
    for p in sources():
        room = room_of(p)
        incs = project_includes(p)
        if room == "web":
            bad = [inc for inc in incs if inc.split("/")[0] not in WEB_MAY_INCLUDE and inc not in WEB_NET_HEADERS]
        elif room != "serve":
            bad = [inc for inc in incs if inc.startswith("web/")]
        else:
            bad = []
        if bad:
            violations[rel(p)] = ", ".join(bad)
    check_shrinking("web_imports", violations)


def test_no_file_too_long():
    violations = {}
    for p in sources():
        n = len(p.read_text(errors="replace").splitlines())
        if n > MAX_FILE_LINES:
            violations[rel(p)] = f"{n} lines (limit {MAX_FILE_LINES})"
    check_shrinking("file_size", violations)


def test_no_function_too_long():
    violations = {}
    for p in sources():
        for name, first, last in functions(p):
            n = last - first + 1
            if n > MAX_FUNCTION_LINES:
                violations[f"{rel(p)}:{name}"] = f"{n} lines at {first}-{last} (limit {MAX_FUNCTION_LINES})"
    check_shrinking("function", violations)


def test_function_style():
    """The function finder above relies on this style: every `{` alone at column 0
    follows a signature ending in `)`, and is closed by a `}` at column 0 before the
    next one opens."""
    bad = []
    for p in sources():
        lines = p.read_text(errors="replace").split("\n")
        open_at = None
        for i, line in enumerate(lines):
            if line.rstrip() == "{":
                if open_at is not None:
                    bad.append(f"{rel(p)}:{i + 1}: a body opens before the one at {open_at} closed")
                if i == 0 or not lines[i - 1].rstrip().endswith(")"):
                    bad.append(f"{rel(p)}:{i + 1}: '{{' at column 0 not after a signature ending in ')'")
                open_at = i + 1
            elif line.startswith("}") and open_at is not None:
                open_at = None
        if open_at is not None:
            bad.append(f"{rel(p)}:{open_at}: body never closed at column 0")
    assert not bad, "\n".join(bad)


def test_only_auth_and_directory_name_password_hashes():
    word = re.compile(r"\b(" + "|".join(HASH_IDENTIFIERS) + r")\b")
    violations = {}
    for p in sources():
        if room_of(p) in HASH_ROOMS:
            continue
        found = sorted(set(word.findall(strip_comments_and_strings(p.read_text(errors="replace")))))
        if found:
            violations[rel(p)] = ", ".join(found)
    check_shrinking("hash", violations)


@pytest.mark.parametrize("rule", sorted(EXCEPTIONS))
def test_every_exception_has_a_reason(rule):
    assert all(isinstance(v, str) and v.strip() for v in EXCEPTIONS[rule].values())


RAW_FSYNC_RE = re.compile(r"(?<![\w.>])(fsync|fdatasync)\s*\(")


def test_every_fsync_goes_through_fileio():
    """Every fsync/fdatasync in src/ is fileio_fsync/fileio_fdatasync (util/fileio.c), so
    postern_fsyncs_total counts the server's whole durability cost (issue 16, §A)."""
    bad = []
    for p in sources():
        if rel(p) == "src/util/fileio.c":
            continue
        text = strip_comments_and_strings(p.read_text(errors="replace"))
        for n, line in enumerate(text.split("\n"), 1):
            if RAW_FSYNC_RE.search(line):
                bad.append(f"{rel(p)}:{n}: raw {RAW_FSYNC_RE.search(line).group(1)}() (use fileio_fsync/fileio_fdatasync)")
    assert not bad, "\n".join(bad)
