"""The real pre-commit client installs this repository's ``ckpt-lint`` hook and runs it on a
commit: ``model.pth`` (a real checkpoint) is refused with CKPT001, ``model.pt`` goes through.

The hook's source is this repository at HEAD when the working tree is clean (a CI clone), and
otherwise a snapshot commit of the working tree (tracked and untracked, not ignored), made with
fixed dates so that an unchanged tree gives the same commit and pre-commit's cached environment
(kept in pytest's cache folder) is reused. The first run installs the hook's environment with
pip, like any pre-commit user's first run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
FIXED_DATE = "2000-01-01T00:00:00+0000"


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True)
    return done.stdout


def isolated_env(home: Path, pre_commit_home: Path) -> dict[str, str]:
    """No global or system git configuration (hooksPath, templates) leaks into the test."""
    config = home / "gitconfig"
    config.write_text("[user]\n\tname = ckpt tests\n\temail = tests@example.invalid\n"
                      "[init]\n\tdefaultBranch = main\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(GIT_CONFIG_GLOBAL=str(config), GIT_CONFIG_NOSYSTEM="1",
               PRE_COMMIT_HOME=str(pre_commit_home), GIT_AUTHOR_DATE=FIXED_DATE,
               GIT_COMMITTER_DATE=FIXED_DATE)
    return env


def hook_source(snapshot: Path, env: dict[str, str]) -> tuple[str, str]:
    """(repo, rev) for .pre-commit-config.yaml."""
    dirty = git("status", "--porcelain", cwd=ROOT, env=env).strip()
    if not dirty:
        return str(ROOT), git("rev-parse", "HEAD", cwd=ROOT, env=env).strip()
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT,
                env=env).split("\0")
    shutil.rmtree(snapshot, ignore_errors=True)
    snapshot.mkdir(parents=True)
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is left out
            (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, snapshot / name)
    git("init", "-q", cwd=snapshot, env=env)
    git("add", "-A", cwd=snapshot, env=env)
    git("commit", "-q", "-m", "working tree snapshot", cwd=snapshot, env=env)
    return str(snapshot), git("rev-parse", "HEAD", cwd=snapshot, env=env).strip()


def keep_one_environment(home: Path, key: str) -> None:
    """Each new snapshot gets its own hook environment (~100 MB): keep only the current one."""
    marker = home / "ckpt-tests-source"
    if marker.exists() and marker.read_text() == key:
        return
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    marker.write_text(key)


def commit(repo: Path, name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    shutil.copyfile(FIXTURES / "state_dict.pt", repo / name)
    git("add", name, cwd=repo, env=env)
    return subprocess.run(["git", "commit", "-m", f"add {name}"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)


def test_pre_commit_hook_refuses_pth_and_accepts_pt(tmp_path: Path, request) -> None:
    cache = Path(request.config.cache.mkdir("ckpt-lint-pre-commit"))
    env = isolated_env(tmp_path, cache / "home")
    repo_url, rev = hook_source(cache / "snapshot", env)
    keep_one_environment(cache / "home", f"{repo_url}@{rev}")
    repo = tmp_path / "user-repo"
    repo.mkdir()
    git("init", "-q", cwd=repo, env=env)
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {repo_url}\n    rev: {rev}\n    hooks:\n      - id: ckpt-lint\n")
    git("add", ".pre-commit-config.yaml", cwd=repo, env=env)
    subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=repo, env=env,
                   check=True, capture_output=True)

    refused = commit(repo, "model.pth", env)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert "model.pth: CKPT001 pth-extension" in output, output

    git("rm", "-q", "--cached", "model.pth", cwd=repo, env=env)
    (repo / "model.pth").unlink()
    accepted = commit(repo, "model.pt", env)
    output = accepted.stdout + accepted.stderr
    assert accepted.returncode == 0, output
    assert "ckpt lint (PyTorch checkpoints)" in output and "Passed" in output

    # Pickles under any name, text ones included: the hook passes every file, lint picks.
    from tests.attack_files import headless_pickle
    from tests.lint_corpus import ROUTES

    (repo / "notes.dat").write_bytes(headless_pickle(10))
    protocol_0 = next(route for route in ROUTES if route.id == "protocol-0")
    (repo / "settings.txt").write_bytes(protocol_0.pickle)
    git("add", "notes.dat", "settings.txt", cwd=repo, env=env)
    hostile = subprocess.run(["git", "commit", "-m", "add data"], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=600)
    output = hostile.stdout + hostile.stderr
    assert hostile.returncode != 0, output
    assert "notes.dat: CKPT002" in output and "settings.txt: CKPT002" in output, output
    assert_hook_environment_is_small(cache / "home")


def assert_hook_environment_is_small(home: Path) -> None:
    """The hook installs the plain package: typer and rich, none of what computes on tensors
    (numpy alone is 73 MB). README's "The pre-commit hook" reports the size this measures."""
    [site_packages] = home.glob("repo*/py_env-*/lib/python*/site-packages")
    installed = {path.name.lower() for path in site_packages.iterdir()}
    assert {"typer", "rich", "ckpt_tool"} <= installed
    assert not {"numpy", "ml_dtypes", "safetensors", "torch"} & installed
    size = sum(path.stat().st_size for path in site_packages.rglob("*") if path.is_file())
    print(f"pre-commit hook environment: {size / 1e6:.1f} MB of site-packages")
