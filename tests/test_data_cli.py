"""``mixexp-data`` and the acceptance checks of ``mixexp-train`` without data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fixtures_data as fx
from fixtures_data import data_root, fixture_tree  # noqa: F401  (pytest fixtures)
from mixexp.data.cli import main
from mixexp.data.store import SOURCES, Remote

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _env(root) -> dict:
    env = {**os.environ, "MIXEXP_DATA": str(root), "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def test_list_on_an_empty_root_reports_every_dataset_missing_with_its_command(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mixexp.data.cli", "list"], env=_env(tmp_path), cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"data root: {tmp_path} ($MIXEXP_DATA)"
    for name, src in SOURCES.items():
        row = next(line for line in lines if line.startswith(name + " "))
        assert row.split()[-2:] == ["-", str(tmp_path / name)] and " missing " in row
        source = " --source DIR" if src.manual else ""
        assert f"-> mixexp-data prepare {name}{source} --data-dir {tmp_path}" in out.stdout
    assert len(SOURCES) == 15 and out.stdout.count(" missing ") == 15


def test_train_without_data_fails_with_one_line_and_exit_2(tmp_path):
    out = subprocess.run([str(BIN / "mixexp-train"), "dataset=cifar10", "dataset.download=false",
                          f"hydra.run.dir={tmp_path / 'run'}"], env=_env(tmp_path / "empty"), cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        f"error: dataset cifar10 is not found in {tmp_path}/empty/cifar10: expected "
        "cifar-10-batches-py/{data_batch_1..5,test_batch} (unpacked cifar-10-python.tar.gz); "
        f"run: mixexp-data prepare cifar10 --data-dir {tmp_path}/empty (or pass dataset.download=true)")


def test_prepare_imagenet_and_objectnet_from_a_source_folder(tmp_path, monkeypatch, capsys):
    elsewhere, root = tmp_path / "mine", tmp_path / "data"
    overrides = {"imagenet": fx.write_imagenet(elsewhere / "ILSVRC"), "objectnet": fx.write_objectnet(elsewhere)}
    fx.patch_sources(monkeypatch.setattr, overrides)
    assert main(["prepare", "imagenet", "--source", str(elsewhere / "ILSVRC"), "--data-dir", str(root)]) == 0
    # ObjectNet: the folder that holds objectnet-1.0/ is accepted too
    assert main(["--data-dir", str(root), "prepare", "objectnet", "--source", str(elsewhere)]) == 0
    out = capsys.readouterr().out
    assert f"imagenet: ready in {elsewhere / 'ILSVRC'}" in out and f"objectnet: ready in {elsewhere / 'objectnet-1.0'}" in out
    assert main(["list", "--data-dir", str(root)]) == 0
    listing = capsys.readouterr().out
    assert [line.split()[2] for line in listing.splitlines() if line.startswith(("imagenet ", "objectnet "))] == ["ready"] * 2
    assert "index only; images at the source" in listing


def test_prepare_errors_are_one_line_with_exit_2(tmp_path, capsys):
    assert main(["prepare", "cifar11", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith("error: no dataset named 'cifar11': choose one of ")
    assert main(["prepare", "imagenet", "--source", str(tmp_path / "nope"), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"error: --source {tmp_path / 'nope'} is not a folder: expected train/<wnid>/*.JPEG and "
                           "val/<wnid>/*.JPEG (ILSVRC-2012, 1000 class folders each)")
    assert main(["prepare", "cifar10", "--source", str(tmp_path), "--data-dir", str(tmp_path)]) == 2
    assert "--source is only for imagenet, objectnet, imagenet_v2, imagenet_c (datasets you may" in capsys.readouterr().err


def test_prepare_downloads_from_the_url_table(tmp_path, monkeypatch, capsys):
    staging = tmp_path / "served"
    overrides = fx.write_cifar10_2(staging)
    sha = overrides["files"]["cifar102_test.npz"]
    fx.patch_sources(monkeypatch.setattr, {"cifar10_2": {**overrides, "remotes": [
        Remote([(staging / "cifar102_test.npz").as_uri()], "cifar102_test.npz", sha)]}})
    root = tmp_path / "data"
    assert main(["prepare", "cifar10_2", "--no-progress", "--data-dir", str(root)]) == 0
    assert main(["list", "--data-dir", str(root)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("cifar10_2 "))
    assert row.split()[2] == "ready" and "KB" in row


def test_list_shows_states_of_a_full_tree(data_root, capsys):
    assert main(["list", "--data-dir", str(data_root)]) == 0
    rows = {line.split()[0]: line.split()[2]
            for line in capsys.readouterr().out.splitlines()[2:] if line and not line.startswith((" ", "states"))}
    assert set(rows) == set(SOURCES)
    assert set(rows.values()) <= {"ready", "verified", "unverified"} and "missing" not in rows.values()
