"""Which code made a run: the commit of the checkout protodiff is imported from, or a plain
statement that there is none."""

import subprocess

import pytest

from protodiff import provenance


def git(repo, *args):
    command = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    return subprocess.run([*command, *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A git repository with one commit, standing in for the source tree protodiff is imported from."""
    git(tmp_path, "init", "-q")
    (tmp_path / "module.py").write_text("x = 1\n")
    git(tmp_path, "add", "module.py")
    git(tmp_path, "commit", "-q", "-m", "first")
    monkeypatch.setattr(provenance, "SOURCE_ROOT", tmp_path.resolve())
    return tmp_path


def test_a_checkout_is_named_by_its_commit_and_marked_dirty_when_its_files_changed(checkout):
    head = git(checkout, "rev-parse", "HEAD")
    assert provenance.source_commit() == head
    (checkout / "untracked.txt").write_text("not code the run used\n")
    assert provenance.source_commit() == head
    (checkout / "module.py").write_text("x = 2\n")
    assert provenance.source_commit() == head + "+dirty"


def test_a_copy_inside_another_repository_is_not_named_by_it(checkout, monkeypatch):
    """An installed copy in a virtual environment that happens to sit inside a checkout."""
    inside = checkout / ".venv" / "site-packages"
    inside.mkdir(parents=True)
    monkeypatch.setattr(provenance, "SOURCE_ROOT", inside.resolve())
    assert provenance.source_commit() == provenance.NO_CHECKOUT


def test_no_repository_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "SOURCE_ROOT", tmp_path.resolve())
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert provenance.source_commit() == provenance.NO_CHECKOUT
    assert provenance.code_version()["commit"] == provenance.NO_CHECKOUT
