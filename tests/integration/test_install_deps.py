"""scripts/install-deps installs everything a fresh Debian 12 needs for the Quick start.

On a minimal Debian 12 (debootstrap minbase with git, make and ca-certificates) the
only packages present are those of Priority required (Essential among them), apt, and
what install-deps adds, so a package
that a developer machine happens to have hides a gap (libunbound.pc needs nettle.pc
from nettle-dev; the doctor's tests need python3-cryptography). These tests derive
what is needed from the sources themselves and check that each piece comes from a
package of the right install-deps profile, from a package such a package depends on,
or from a package debootstrap's minbase installs (Priority required):
  - every pkg-config dependency in meson.build, with its Requires and Requires.private,
    followed recursively (build profile);
  - every Python module the tests import (test profile);
  - every program the tests run (test profile).
The real proof on a fresh machine is `make fresh-test` (scripts/fresh-machine-test)."""
import ast
import os
import re
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL_DEPS = REPO / "scripts" / "install-deps"
TESTS = REPO / "tests"
# meson's built-in dependencies, not found through pkg-config
MESON_BUILTIN = {"threads"}
# debootstrap's minbase: every Priority required package (Essential ones included) and
# apt (/usr/share/debootstrap/scripts/debian-common); the Quick start adds git, make, ca-certificates
BASELINE = {"apt", "git", "make", "ca-certificates"}
RUNNERS = {"run", "Popen", "check_output", "check_call", "call"}


def profile(name):
    p = subprocess.run([str(INSTALL_DEPS), "--list", name], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, "install-deps --list %s: %s" % (name, p.stderr)
    return set(p.stdout.split())


def _installed():
    """{package: (in minbase, [first alternative of each Pre-Depends/Depends])} and {virtual: [providers]}."""
    fmt = ("${Package}\t${Essential}\t${Priority}\t${db:Status-Abbrev}\t${Pre-Depends}, ${Depends}\t"
           "${Provides}\n")
    out = subprocess.run(["dpkg-query", "-W", "-f", fmt], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    pkgs, provides = {}, {}
    for line in out.splitlines():
        name, essential, priority, status, deps, prov = (line.split("\t") + [""] * 6)[:6]
        if not status.startswith("ii"):
            continue
        # apt installs the first alternative of "a | b": count only that one
        first = [d.split("|")[0].split("(")[0].split(":")[0].strip() for d in deps.split(",")]
        pkgs[name] = (essential == "yes" or priority == "required", [d for d in first if d])
        for v in prov.split(","):
            v = v.split("(")[0].strip()
            if v:
                provides.setdefault(v, []).append(name)
    return pkgs, provides


def closure(roots):
    """Every installed package a fresh machine gets from ROOTS, minbase and BASELINE."""
    pkgs, provides = _installed()
    todo = list(roots) + list(BASELINE) + [p for p, (minbase, _) in pkgs.items() if minbase]
    seen = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        if p in pkgs:
            todo.extend(pkgs[p][1])
        todo.extend(provides.get(p, []))
    return seen


def package_of(path):
    """The Debian package that owns PATH (tries the path as given and its real path:
    /bin is /usr/bin on Debian 12, and alternatives are symlinks)."""
    for candidate in dict.fromkeys([str(path), os.path.realpath(path),
                                    re.sub(r"^/usr/", "/", os.path.realpath(path))]):
        p = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True,
                           timeout=30)
        if p.returncode == 0:
            # "pkg[:arch][, pkg2...]: /path" - any owner will do
            return [o.strip().split(":")[0] for o in p.stdout.split(": ")[0].split(",")]
    return None


def meson_pkgconfig_names(optional_for_tests):
    """The dependency() names in meson.build: the ones the build always needs, or (when
    OPTIONAL_FOR_TESTS) the ones only the tests need (required : get_option('tests'))."""
    text = (REPO / "meson.build").read_text()
    names = set()
    for name, args in re.findall(r"\bdependency\(\s*'([^']+)'([^)]*)\)", text):
        if ("get_option('tests'" in args) == optional_for_tests:
            names.add(name)
    return sorted(names - MESON_BUILTIN)


def pc_files(names):
    """{module: .pc path} for NAMES and everything they Require (publicly or privately)."""
    found, todo = {}, list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        p = subprocess.run(["pkg-config", "--path", name], capture_output=True, text=True, timeout=30)
        found[name] = p.stdout.strip() if p.returncode == 0 else None
        if p.returncode != 0:
            continue
        req = subprocess.run(["pkg-config", "--print-requires", "--print-requires-private", name],
                             capture_output=True, text=True, timeout=30).stdout
        todo.extend(line.split()[0] for line in req.splitlines() if line.strip())
    return found


def check_owned(what, paths, roots, profile_name):
    """Assert each of {item: path} is owned by a package in closure(ROOTS)."""
    have = closure(roots)
    gaps = []
    for item, path in sorted(paths.items()):
        if path is None:
            gaps.append("%s: not found on this machine" % item)
            continue
        owners = package_of(path)
        if not owners:
            gaps.append("%s: %s belongs to no Debian package" % (item, path))
        elif not set(owners) & have:
            gaps.append("%s: %s is in %s, which scripts/install-deps %s does not install"
                        % (item, path, " or ".join(owners), profile_name))
    assert not gaps, "%s not covered:\n  %s" % (what, "\n  ".join(gaps))


def test_build_profile_covers_every_pkg_config_dependency_recursively():
    names = meson_pkgconfig_names(optional_for_tests=False)
    assert "libunbound" in names and "openssl" in names
    pcs = pc_files(names)
    assert "nettle" in pcs, "libunbound's Requires.private were not followed"
    check_owned("pkg-config modules meson.build needs", pcs, profile("build"), "build")


def test_test_profile_covers_the_pkg_config_dependencies_of_the_tests():
    names = meson_pkgconfig_names(optional_for_tests=True)
    assert "cmocka" in names
    check_owned("pkg-config modules the unit tests need", pc_files(names), profile("test"), "test")


def _python_sources():
    return sorted(p for p in TESTS.rglob("*.py") if "fuzz" not in p.parts)


def _imported_modules():
    local = {p.stem for p in _python_sources()}
    stdlib = set(sys.stdlib_module_names)
    mods = {}
    for src in _python_sources():
        for node in ast.walk(ast.parse(src.read_text(), str(src))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "importorskip" and node.args
                  and isinstance(node.args[0], ast.Constant)):
                names = [node.args[0].value]
            for n in names:
                top = n.split(".")[0]
                if top not in stdlib and top not in local:
                    mods.setdefault(top, src.name)
    return mods


def test_test_profile_covers_every_python_import_in_tests():
    mods = _imported_modules()
    assert "pytest" in mods
    paths = {}
    for mod, where in mods.items():
        spec = find_spec(mod)
        origin = spec and (spec.origin if spec.has_location else
                           next(iter(spec.submodule_search_locations or []), None))
        paths["%s (imported by %s)" % (mod, where)] = origin
    check_owned("Python modules the tests import", paths, profile("test"), "test")


def _programs_run():
    """Programs the tests start: the literal first word of subprocess.run([...]) and
    friends, and every literal /usr/bin or /usr/sbin path."""
    progs = {}
    for src in _python_sources():
        for node in ast.walk(ast.parse(src.read_text(), str(src))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in RUNNERS and node.args
                    and isinstance(node.args[0], ast.List) and node.args[0].elts
                    and isinstance(node.args[0].elts[0], ast.Constant)
                    and isinstance(node.args[0].elts[0].value, str)):
                progs.setdefault(node.args[0].elts[0].value, src.name)
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and re.fullmatch(r"/usr/s?bin/[\w.+-]+", node.value)):
                progs.setdefault(node.value, src.name)
    return progs


def test_test_profile_covers_every_program_the_tests_run():
    progs = _programs_run()
    assert "swaks" in progs and "/usr/sbin/postfix" in progs
    paths = {}
    for prog, where in progs.items():
        path = prog if prog.startswith("/") else shutil.which(prog)
        paths["%s (run by %s)" % (prog, where)] = path if path and os.path.exists(path) else None
    check_owned("programs the tests run", paths, profile("test"), "test")


def test_make_build_shows_meson_error_when_a_dependency_is_missing(tmp_path):
    # No pkg-config module can be found: meson setup fails at the first dependency(),
    # and make must show meson's ERROR line instead of failing with no word.
    env = dict(os.environ, PKG_CONFIG_LIBDIR=str(tmp_path / "no-pkgconfig"),
               CMAKE_PREFIX_PATH=str(tmp_path / "no-cmake"))
    p = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "build",
                        "BUILD=%s" % (tmp_path / "b")], capture_output=True, text=True,
                       env=env, timeout=300)
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert re.search(r"ERROR: Dependency \"\w+\" not found", out), out
    assert "meson-log.txt" in out, out


MISSING_MODULE_TESTS = '''
import pytest

def test_in_a_test():
    pytest.importorskip("postern_no_such_module")

def test_not_installed():
    pytest.skip("frobnicate not installed")

def test_other_skip_stays_a_skip():
    pytest.skip("needs root")
'''


@pytest.mark.parametrize("at_module_level", [False, True])
def test_a_missing_module_fails_the_test_instead_of_skipping_it(tmp_path, at_module_level):
    # the conftest of tests/integration, loaded as a plugin on a module outside it
    body = MISSING_MODULE_TESTS
    if at_module_level:
        body = 'import pytest\npytest.importorskip("postern_no_such_module")\n' + body
    (tmp_path / "test_missing.py").write_text(body)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "conftest",
                        "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                        str(tmp_path / "test_missing.py")],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    if at_module_level:
        assert re.search(r"\b1 error\b", out), out
    else:
        assert re.search(r"\b2 failed\b", out) and re.search(r"\b1 skipped\b", out), out
        assert "postern_no_such_module" in out, out
