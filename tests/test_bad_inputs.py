"""Every bad input of issue 22, through the commands themselves (their cli functions, in this process, as a
console script calls them): one ``error:`` line naming what is wrong, exit code 2, no traceback, and no file
below the test's folder changed (Hydra's job log, ``*.log``, aside: it is appended to, never a run's record).

The README's reliability section counts these cases."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch

from conftest import FAST, compose_cfg, files_below, run_in_process
from mixexp.checkpoint import HISTORY_KEYS

RUN = [*FAST, "trainer.epochs=1", "mixer=mixup"]  # the finished run every case starts from
BOTTLENECK = [o for o in RUN if not o.startswith("model")] + [
    "model=bottleneck", "model@model.backbone=simplecnn", "model.backbone.width=8", "trainer.snapshot_epochs=[1]",
    "trainer.epochs=2"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Finished runs to copy: a mixup run (1 epoch, its last.pt) and a 2-D bottleneck run with a snapshot."""
    from mixexp.trainer import Trainer

    root = tmp_path_factory.mktemp("finished")
    for name, overrides in (("run", RUN), ("bottleneck", BOTTLENECK)):
        Trainer(compose_cfg(overrides), root / name).fit()
    return root


# ------------------------------------------------------------------------------------------ damaged files


def craft(**changes):
    """Rewrite the run's last.pt with ``changes`` (each a value, or a function of the loaded state)."""
    def prepare(run: Path, monkeypatch) -> None:
        state = torch.load(run / "last.pt", weights_only=True)
        for key, value in changes.items():
            state[key] = value(state) if callable(value) else value
        torch.save(state, run / "last.pt")
    return prepare


def rows(epochs: int, **cells):
    return [{**dict.fromkeys(HISTORY_KEYS, 0.5), "epoch": e, **cells} for e in range(1, epochs + 1)]


def rewrite_history(edit):
    def prepare(run: Path, monkeypatch) -> None:
        lines = (run / "history.csv").read_text().splitlines()
        (run / "history.csv").write_text("\n".join(edit(lines)) + "\n")
    return prepare


def truncate(relative: str):
    def prepare(run: Path, monkeypatch) -> None:
        path = run / relative
        path.write_bytes(path.read_bytes()[:300])
    return prepare


def disk_full(run: Path, monkeypatch) -> None:
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)


def env(**values):
    def prepare(run: Path, monkeypatch) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)
    return prepare


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
RESUME = ["mixexp-train", *RUN, "resume=true", "hydra.run.dir={run}"]
NEW = ["mixexp-train", *RUN, "hydra.run.dir={new}"]
RESCALING_BAD = {"theta_bar": 0.75, "x_bar": torch.zeros(3, 8, 8), "y_bar": "uniform"}
RESCALING_SHAPE = {"theta_bar": 0.75, "x_bar": torch.zeros(3, 4, 4), "y_bar": torch.full((10,), 0.1)}

# id, argv ({run}: a copy of the finished run; {new}: a folder that does not exist; {file}: a file; {tmp}: the
# test's folder; {bottleneck}: the bottleneck run, its snapshot truncated), what the line says, what is done to
# the run first, and marks
CASES = [
    # dataset splits and sizes
    ("val_fraction_tiny", [*NEW, "dataset.val_fraction=0.001"],
     "dataset.val_fraction=0.001 is not allowed: it splits the 64 training images into 64 to train on and 0 to "
     "validate on", None),
    ("val_fraction_huge_digits", [*NEW, "dataset=digits", "dataset.crop_padding=0", "dataset.val_fraction=0.999"],
     "dataset.val_fraction=0.999 is not allowed: it splits the 1437 training images into 0 to train on", None),
    ("noise_nan", [*NEW, "dataset.noise=nan"], "dataset.noise=nan is not allowed: must be a finite number", None),
    ("noise_inf", [*NEW, "dataset.noise=inf"], "dataset.noise=inf is not allowed: must be a finite number", None),
    ("gamma_inf", [*NEW, "regularizer=sem", "regularizer.gamma=inf"],
     "regularizer.gamma=inf is not allowed: must be a finite number", None),
    ("alpha_1e308", [*NEW, "mixer.alpha=1e308"], "mixer.alpha=1e+308 is not allowed: must be a finite number, "
     "at most 3.4e+38 in size (training computes in float32)", None),
    ("weight_decay_1e300", [*NEW, "optim.weight_decay=1e300"],
     "optim.weight_decay=1e+300 is not allowed: must be a finite number, at most 3.4e+38", None),
    ("lr_1e300", [*NEW, "optim.lr=1e300"], "optim.lr=1e+300 is not allowed: must be a finite number, at most", None),
    ("puzzlemix_t_eps_inf", [*NEW, "mixer=puzzlemix", "mixer.t_eps=inf"],
     "mixer.t_eps=inf is not allowed: must be a finite number", None),
    ("resize_1", [*NEW, "dataset.resize=1", "dataset.crop_padding=0"],
     "model=simplecnn cannot take 1x1 px images (", None),
    ("resize_100000", [*NEW, "dataset.resize=100000"], "dataset.resize=100000 is not allowed: the images would "
     "take", None),
    ("crop_padding_100000", [*NEW, "dataset.crop_padding=100000"], "dataset.crop_padding=100000 is not allowed: "
     "must be smaller than the image side (8 px here)", None),
    ("image_size_1", [*NEW, "dataset.image_size=1", "dataset.crop_padding=0"],
     "model=simplecnn cannot take 1x1 px images (", None),
    ("image_size_100000", [*NEW, "dataset.image_size=100000"],
     "dataset.image_size/num_classes/train_size/test_size=(100000, 10, 64, 32) is not allowed: the images", None),
    ("num_threads_1000000", [*NEW, "trainer.num_threads=1000000"],
     "trainer.num_threads=1000000 is not allowed: must be at most the ", None),
    # what the environment holds
    ("wandb_mode_bogus", [*NEW, "logger=wandb"], "$WANDB_MODE='bogus' is not allowed: choose one of online, offline",
     env(WANDB_MODE="bogus")),
    ("download_into_proc", [*NEW, "dataset=cifar10", "dataset.download=true", "paths.data_dir=/proc/mixexp"],
     "cannot write /proc/mixexp: ", None),
    ("download_into_a_file", [*NEW, "dataset=cifar10", "dataset.download=true", "paths.data_dir={file}"],
     "cannot write {file}/cifar10: not a directory", None),
    ("download_into_read_only", [*NEW, "dataset=cifar10", "dataset.download=true", "paths.data_dir=/sys/mixexp"],
     "cannot write /sys/mixexp: operation not permitted", None),
    # crafted or damaged checkpoints, resumed and evaluated
    *[(f"{name}_{command}", argv, f"last.pt cannot be loaded: {says}", craft(**change))
      for command, argv in (("resume", RESUME), ("eval", ["mixexp-eval", "{run}"]))
      for name, change, says in (
          ("rng_a_list", {"rng": [1, 2]}, "'rng' is a list, expected dict"),
          ("rng_python_damaged", {"rng": lambda s: {**s["rng"], "python": [3, [1, 2], None]}},
           "its 'rng' state cannot be restored: "),
          ("rng_numpy_damaged", {"rng": lambda s: {**s["rng"], "numpy": ["MT19937", torch.zeros(3), 0, 0, 0.0]}},
           "its 'rng' state cannot be restored: "),
          ("records_damaged", {"records": {"soft_targets.csv": "rows"}},
           "'records' holds 'soft_targets.csv', which is not a list of per-epoch rows"),
          ("history_of_strings", {"history": ["epoch"]}, "'history' row 1 is not epoch 1's numbers"),
          ("history_without_keys", {"history": [{}]}, "'history' row 1 is not epoch 1's numbers"),
          ("history_with_text", {"history": rows(1, test_acc="high")}, "'history' row 1 is not epoch 1's numbers"),
          ("rescaling_damaged", {"rescaling": RESCALING_BAD}, "its 'rescaling' statistics cannot be used: y_bar"),
          ("epoch_huge", {"epoch": 1_000_000}, "'history' holds 1 row(s) for 1000000 epoch(s)"),
          ("epoch_negative", {"epoch": -1}, "'epoch' is -1, expected a count of epochs >= 0"),
          ("elapsed_nan", {"elapsed": math.nan}, "'elapsed' is nan, expected seconds >= 0"))],
    ("epoch_past_the_run_resume", RESUME, "last.pt holds epoch 3, past this run's trainer.epochs=1",
     craft(epoch=3, history=rows(3))),
    ("epoch_past_the_run_eval", ["mixexp-eval", "{run}"], "last.pt holds epoch 3, past the run's trainer.epochs=1",
     craft(epoch=3, history=rows(3))),
    ("rescaling_of_other_images_resume", [*RESUME, "eval.rescaled=true"], "the test-time rescaling statistics "
     "cannot be used: x_bar has shape (3, 4, 4), the images (3, 8, 8)", craft(rescaling=RESCALING_SHAPE)),
    ("rescaling_of_other_images_eval", ["mixexp-eval", "{run}", "eval.rescaled=true"], "the test-time rescaling "
     "statistics cannot be used: x_bar has shape (3, 4, 4)", craft(rescaling=RESCALING_SHAPE)),
    # devices that are not there
    ("eval_on_cuda", ["mixexp-eval", "{run}", "trainer.device=cuda"],
     "trainer.device='cuda' is not allowed here: no CUDA device is visible", None, NO_CUDA),
    ("plot_on_cuda", ["mixexp-plot", "reliability", "{run}", "--device", "cuda", "--out", "{tmp}/figs"],
     "trainer.device='cuda' is not allowed here: no CUDA device is visible", None, NO_CUDA),
    # figures and reports of damaged files, written where nothing can be written
    ("curves_of_a_bogus_metric", ["mixexp-plot", "curves", "{run}", "--metrics", "bogus", "--out", "{tmp}/figs"],
     "--metrics bogus: not a history.csv column; choose from epoch, images_per_s, lr", None),
    ("curves_of_a_non_number", ["mixexp-plot", "curves", "{run}", "--out", "{tmp}/figs"],
     "history.csv line 2: lr='fast' is not a number", rewrite_history(
         lambda lines: [lines[0], ",".join(v if k != "lr" else "fast" for k, v in zip(lines[0].split(","),
                                                                                        lines[1].split(",")))])),
    ("curves_of_a_short_row", ["mixexp-plot", "curves", "{run}", "--out", "{tmp}/figs"],
     "history.csv line 2 does not hold one cell for each of the 7 columns", rewrite_history(
         lambda lines: [lines[0], lines[1].rsplit(",", 2)[0]])),
    ("bars_of_a_binary_file", ["mixexp-plot", "bars", "{run}/last.pt", "--out", "{tmp}/figs"],
     "last.pt is not a report CSV: it cannot be read as CSV text", None),
    ("bottleneck_of_a_truncated_snapshot", ["mixexp-plot", "bottleneck", "{bottleneck}", "--out", "{tmp}/figs"],
     "snapshots/epoch_0001.pt cannot be loaded: it is truncated or not a checkpoint", None),
    ("report_into_proc", ["mixexp-report", "{run}", "--out", "/proc/mixexp_report"],
     "cannot write /proc/mixexp_report", None),
    ("report_onto_a_full_disk", ["mixexp-report", "{run}", "--out", "{tmp}/report"],
     "no space left on device while writing {tmp}/report/report.md", disk_full),
    # the plan of a table
    ("plan_bogus_key", ["mixexp-reproduce", "sem-table1", "--plan", "--root", "{tmp}", "bogus_key=1"],
     "bogus_key is not a key; allowed keys: dataset, model,", None),
    ("plan_bogus_mixer", ["mixexp-reproduce", "sem-table1", "--plan", "--root", "{tmp}", "mixer=bogus"],
     "mixer=bogus is not allowed: choose one of cutmix,", None),
    ("plan_root_a_file", ["mixexp-reproduce", "sem-table1", "--plan", "--root", "{file}"],
     "--root {file} is not a folder", None),
    ("plan_negative_alpha", ["mixexp-reproduce", "sem-table1", "--plan", "--root", "{tmp}", "mixer.alpha=-1"],
     "mixer.alpha=-1.0 is not allowed: must be >= 0", None),
]


@pytest.mark.parametrize("argv,says,prepare", [pytest.param(*case[1:4], id=case[0], marks=case[4:]) for case in CASES])
def test_a_bad_input_is_one_line_exit_2_and_changes_nothing(argv, says, prepare, finished, tmp_path, capsys,
                                                           monkeypatch):
    run, bottleneck = tmp_path / "run", tmp_path / "bottleneck"
    shutil.copytree(finished / "run", run)
    shutil.copytree(finished / "bottleneck", bottleneck)
    truncate("snapshots/epoch_0001.pt")(bottleneck, monkeypatch)
    (tmp_path / "file").write_text("a file where a folder should be\n")
    if prepare is not None:
        prepare(run, monkeypatch)
    places = {"run": run, "new": tmp_path / "new", "file": tmp_path / "file", "tmp": tmp_path,
              "bottleneck": bottleneck}
    before = files_below(tmp_path)
    code, err = run_in_process([a.format(**places) for a in argv], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert says.format(**places) in lines[0]
    assert "Traceback" not in err
    assert files_below(tmp_path) == before


def test_mixexp_eval_of_a_sweep_evaluates_every_run_and_lists_the_ones_it_cannot(finished, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    damaged, sound = sweep / "a_first", sweep / "b_second"
    for run in (damaged, sound):
        shutil.copytree(finished / "run", run)
    truncate("last.pt")(damaged, None)
    before = files_below(damaged)
    code, err = run_in_process(["mixexp-eval", str(sweep), "eval.rescaled=true"], capsys)
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()] == [
        f"error: {damaged}: checkpoint {damaged / 'last.pt'} cannot be loaded: it is truncated or not a checkpoint",
        "error: 1 of the 2 runs were not evaluated (each is named above); the others were"]
    assert "rescaled_test_acc" in json.loads((sound / "metrics.json").read_text())  # evaluated after the failure
    assert files_below(damaged) == before
