"""The README's set-up commands on a machine that lacks the build packages.

The machine running the tests has them all, so "not there yet when make
starts" is simulated in a copy of the tree, with stand-ins first on PATH:
  - pkg-config fails (as it does before libpcap-dev, libhiredis-dev ... are
    installed) until the install step has run, then is the real one;
  - dpkg-query reports every package missing, as on a fresh machine;
  - apt-get logs what it was asked and "installs" by making pkg-config work.
scripts/install-deps.sh and the Makefile run for real. A make that read
pkg-config's flags before the install compiles without -I/usr/include/libxml2
and fails (issue: "the README's first command fails on a fresh machine").

These test the Makefile, not the code: they run once, in the plain pass."""
import os
import shutil
import subprocess

import pytest

import dati_helpers as h

pytestmark = pytest.mark.skipif(
    h.BUILD.name != "build", reason="tests the Makefile: run once, in the plain (not sanitizer) pass")

FAKE_TOOLS = {
    "pkg-config": """#!/bin/sh
[ -e "$FAKE_ROOT/installed" ] || exit 1
exec {real} "$@"
""",
    "dpkg-query": "#!/bin/sh\nexit 1\n",
    "apt-get": """#!/bin/sh
echo "apt-get $*" >> "$FAKE_ROOT/apt.log"
case "$*" in *install*) touch "$FAKE_ROOT/installed" ;; esac
""",
    "debconf-set-selections": "#!/bin/sh\ncat > /dev/null\n",
    "sudo": "#!/bin/sh\nexec \"$@\"\n",
}


def copy_tree(dest):
    """The tracked files as they are in the working tree (a fresh clone's
    content, with any change not yet committed)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=h.REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = h.REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.fixture
def fresh(tmp_path):
    if not (h.REPO / ".git").exists() or not shutil.which("git"):
        pytest.skip("needs a git checkout to copy the tracked files")
    real = shutil.which("pkg-config")
    if not real:
        pytest.skip("pkg-config is not installed")
    tree = tmp_path / "dati"
    tree.mkdir()
    copy_tree(tree)
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    for name, text in FAKE_TOOLS.items():
        (fake / name).write_text(text.format(real=real))
        (fake / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(PATH=f"{fake}:{env['PATH']}", FAKE_ROOT=str(tmp_path),
               CFLAGS="-O0", MAKEFLAGS="-j2")   # quicker; the Makefile appends its own flags
    return tree, tmp_path, env


def make(tree, env, *goals):
    return subprocess.run(["make", *goals], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=600)


def test_make_demo_installs_then_builds(fresh):
    tree, root, env = fresh
    p = make(tree, env, "demo")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "apt-get install" in (root / "apt.log").read_text(), "install step not run"
    assert "-I/usr/include/libxml2" in p.stdout, "compiled without the packages' flags"
    records = [line for line in p.stdout.splitlines() if line.startswith('{"type":"record"')]
    assert len(records) > 100   # the demo capture gives some 200 field records
    assert '"final":true' in p.stdout


def test_plain_make_names_make_deps(fresh):
    """Plain `make` installs nothing: it says what to do, not a compiler error."""
    tree, root, env = fresh
    p = make(tree, env)
    assert p.returncode != 0
    assert "run 'make deps'" in p.stderr
    assert "fatal error" not in p.stderr and "No such file" not in p.stderr
    assert not (root / "apt.log").exists()
    p = make(tree, env, "deps")
    assert p.returncode == 0, p.stderr
    p = make(tree, env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tree / "build" / "dati").is_file()
