"""Every run records where its numbers came from (metrics.json's ``provenance``)."""

from __future__ import annotations

import json
import platform
import subprocess

import torch

from conftest import compose_cfg
from mixexp import __version__, provenance as prov
from mixexp.config import validate
from mixexp.trainer import Trainer


def git(cwd, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_metrics_json_of_a_run_holds_its_provenance(tmp_path):
    cfg = compose_cfg(["dataset=digits", "trainer.epochs=1", "trainer.device=cpu", "trainer.progress=log",
                       "trainer.checkpoint=false"])
    validate(cfg)
    Trainer(cfg, tmp_path / "run").fit()
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())["provenance"]
    assert saved["torch_version"] == torch.__version__ and saved["mixexp_version"] == __version__
    assert saved["device"] == "cpu" and saved["world_size"] == 1
    assert saved["python_version"] == platform.python_version() and saved["hostname"]
    source = prov.SOURCE_DIR
    if (source / ".git").exists():  # mixexp runs from a checkout (the test suite does)
        assert saved["git_commit"] == git(source, "rev-parse", "HEAD") and isinstance(saved["git_dirty"], bool)
    else:
        assert saved["git_commit"] is None and saved["git_dirty"] is None


def test_git_revision_of_a_checkout_and_its_dirty_flag(tmp_path, monkeypatch):
    monkeypatch.setattr(prov, "SOURCE_DIR", tmp_path)
    assert prov.git_revision() == (None, None)  # not a checkout: no error, no revision
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "commit", "-qm", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "untracked.txt").write_text("not part of the source")
    assert prov.git_revision() == (head, False)
    (tmp_path / "a.py").write_text("x = 2\n")
    assert prov.git_revision() == (head, True)


def test_a_folder_inside_another_checkout_is_not_taken_for_the_source(tmp_path, monkeypatch):
    git(tmp_path, "init", "-q")
    (tmp_path / "venv" / "site-packages").mkdir(parents=True)
    monkeypatch.setattr(prov, "SOURCE_DIR", tmp_path / "venv" / "site-packages")
    assert prov.git_revision() == (None, None)
