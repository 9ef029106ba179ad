"""One run on two processes (torchrun, gloo on the CPU) against one process with the same global batch.

Exactly comparable setting: LeNet (no BatchNorm, whose per-rank batch statistics would differ from the
global batch's), mixer=none (no random partner or lambda), no crop or flip (their random draws are per
example, so two ranks of 8 draw other offsets than one process of 16). Then rank r's batch holds rows
r, r+2, ... of the step's 16-row slice of the shared permutation, DDP averages the two ranks' mean
gradients, which is the mean gradient of the 16 rows: the two runs differ only by float rounding.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import FAST, REPO, run_cli
from mixexp.checkpoint import CHECKPOINT, load_checkpoint
from mixexp.distributed import rank_batch_size
from mixexp.errors import ConfigError
from mixexp.evaluation.metrics import classification_metrics, predict_logits
from mixexp.evaluation.run import load_finished_run

EXACT = [
    "dataset=synthetic", "dataset.image_size=16", "dataset.train_size=64", "dataset.test_size=33",
    "dataset.crop_padding=0", "dataset.flip=false", "model=lenet", "mixer=none", "trainer.epochs=2",
    "trainer.batch_size=16", "trainer.device=cpu", "trainer.progress=log", "sched=cosine",
]
# float32 sums in another order (gradient all-reduce, per-rank means): rounding, nothing more
TOL = 1e-5


def _env():
    return {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}


def torchrun(args, nproc=2, timeout=240, launcher="torch.distributed.run") -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", launcher, "--standalone", f"--nproc_per_node={nproc}", *args]
    return subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _history(run_dir: Path):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_two_ranks_train_the_model_one_process_trains_with_the_same_global_batch(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.run([sys.executable, "-m", "mixexp.train", *EXACT, f"hydra.run.dir={one}"], cwd=REPO,
                            env=_env(), capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stderr
    ddp = torchrun(["-m", "mixexp.train", *EXACT, f"hydra.run.dir={two}"])
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert m2["provenance"]["world_size"] == 2
    for key in ("test_acc", "test_nll", "test_ece"):
        assert m2[key] == pytest.approx(m1[key], abs=TOL), key
    for r1, r2 in zip(_history(one), _history(two), strict=True):  # train loss: summed over both ranks' shards
        assert float(r2["train_loss"]) == pytest.approx(float(r1["train_loss"]), abs=TOL)
        assert float(r2["test_acc"]) == pytest.approx(float(r1["test_acc"]), abs=TOL)
    w1, w2 = (load_checkpoint(d / CHECKPOINT)["model"] for d in (one, two))
    assert list(w2) == list(w1) and not any(k.startswith("module.") for k in w2)  # the unwrapped model's keys
    for key in w1:
        torch.testing.assert_close(w2[key], w1[key], atol=TOL, rtol=0)

    # the test metrics cover all 33 test images once (ranks held 17 and 16): one process re-evaluating
    # the saved weights on the whole test set finds the same numbers
    run = load_finished_run(two)
    logits, labels = predict_logits(run.model, run.test_loader)
    assert logits.shape[0] == 33
    whole = classification_metrics(logits, labels, prefix="test")
    for key in ("test_acc", "test_nll", "test_ece"):
        assert m2[key] == pytest.approx(whole[key], abs=1e-6), key

    # rank 0 alone writes and logs: each epoch's line once in the shared folder's log
    log_lines = (two / "train.log").read_text().splitlines()
    assert sum(" epoch " in line for line in log_lines) == 2, log_lines

    # refused on every rank (a finished run; a global batch the ranks cannot share): said once, in one line, by
    # mixexp's launcher (torchrun's arguments), where torchrun alone adds its report of the failed ranks
    for args, says in (([*EXACT, f"hydra.run.dir={two}"], f"error: {two} already holds a run (metrics.json, "),
                       ([*EXACT, "trainer.batch_size=15", f"hydra.run.dir={tmp_path / 'odd'}"],
                        "error: trainer.batch_size=15 is the global batch and must divide evenly over the 2 ranks")):
        result = torchrun(["-m", "mixexp.train", *args], launcher="mixexp.distributed")
        assert result.returncode == 2 and one_error_line(result).startswith(says)


@pytest.mark.slow
@pytest.mark.parametrize("extra", [["mixer=mixup"], ["method=lamix"], ["method=puzzlemix_tiny", "dataset.image_size=16"]],
                         ids=["mixup_bn", "lamix_head", "puzzlemix_saliency_pass"])
def test_ranks_hold_identical_weights_after_every_step(tmp_path, extra):
    """Random mixing per rank, BatchNorm (simplecnn; buffers broadcast from rank 0), for LaMix a head of
    the method's own that gets no gradient on its original batches (find_unused_parameters), for
    PuzzleMix a saliency pass (an input gradient) inside DDP's forward."""
    out = tmp_path / "digests"
    out.mkdir()
    result = torchrun([str(REPO / "tests" / "ddp_probe.py"), str(out), str(tmp_path / "run"), *FAST, *extra])
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    steps = 2 * (64 // 2) // (16 // 2)  # 2 epochs x (32 examples per rank / 8 per rank's batch)
    assert len(rank0) == 1 + steps + 1
    assert rank0 == rank1
    assert len(set(rank0)) == len(rank0)  # and every step changed them


def test_sync_bn_on_the_cpu_is_refused_in_one_line(tmp_path):
    result = run_cli(["mixexp-train", *FAST, "trainer.sync_bn=true", f"hydra.run.dir={tmp_path / 'run'}"])
    assert result.returncode == 2
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "trainer.sync_bn" in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_global_batch_is_shared_evenly_by_the_ranks():
    assert rank_batch_size(128, 4) == 32
    assert rank_batch_size(128, 1) == 128
    with pytest.raises(ConfigError, match=r"trainer.batch_size=130 is the global batch .* multiple of 4"):
        rank_batch_size(130, 4)


@pytest.mark.slow
def test_a_run_of_two_ranks_resumes_in_one_process(tmp_path):
    """Weights, optimiser, schedule and epoch carry over to another world size (here 2 -> 1)."""
    run = tmp_path / "run"
    args = [o for o in EXACT if not o.startswith("sched=")] + ["sched=multistep"]  # lr > 0 in epoch 2
    first = torchrun(["-m", "mixexp.train", *args, "trainer.epochs=1", f"hydra.run.dir={run}"])
    assert first.returncode == 0, first.stderr[-3000:]
    weights = load_checkpoint(run / CHECKPOINT)["model"]
    second = subprocess.run([sys.executable, "-m", "mixexp.train", *args, "resume=true", f"hydra.run.dir={run}"],
                            cwd=REPO, env=_env(), capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stderr
    assert "resumed" in second.stdout + second.stderr
    history = _history(run)
    assert [int(r["epoch"]) for r in history] == [1, 2]
    state = load_checkpoint(run / CHECKPOINT)
    assert state["epoch"] == 2
    assert not torch.equal(state["model"]["fc1.weight"], weights["fc1.weight"])  # it trained on from there
    assert json.loads((run / "metrics.json").read_text())["provenance"]["world_size"] == 1


@pytest.mark.slow
def test_a_killed_rank_stops_the_run_in_one_line_that_says_what_last_pt_holds(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "mixexp.distributed", "--standalone", "--nproc_per_node=2", "-m", "mixexp.train",
           *[o for o in EXACT if not o.startswith("trainer.epochs")], "trainer.epochs=500", "dataset.train_size=1024",
           f"hydra.run.dir={run}"]
    launcher = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not (run / CHECKPOINT).exists() and time.monotonic() < deadline and launcher.poll() is None:
        time.sleep(0.2)
    ranks = sorted(int(pid) for pid in subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True,
                                                       text=True).stdout.split())
    assert len(ranks) == 2, "the two ranks never started"
    os.kill(ranks[1], signal.SIGKILL)
    _, err = launcher.communicate(timeout=180)
    lines = [line for line in err.splitlines() if line.strip()]
    assert launcher.returncode == 128 + signal.SIGKILL and len(lines) == 1 and "Traceback" not in err, err
    held = load_checkpoint(run / CHECKPOINT)["epoch"]
    assert re.fullmatch(rf"error: rank \d \(pid {ranks[1]}\) was ended by SIGKILL; stopped because another rank of "
                        rf"the run ended at epoch \d+/500 \(\d+ finished; last.pt holds epoch {held}\); resume with: "
                        rf"mixexp-train \.\.\. resume=true hydra.run.dir={re.escape(str(run))}", lines[0]), lines[0]
