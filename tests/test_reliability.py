"""Faults and hostile inputs: pickled checkpoints, locked and finished run folders, full disks.

Each test feeds one bad input and asserts what the user gets: one line, exit code 2, nothing run,
nothing overwritten."""

from __future__ import annotations

import builtins
import errno
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch
from omegaconf import OmegaConf

from conftest import FAST, compose_cfg, run_cli, run_in_process
import mixexp.io
from mixexp.checkpoint import HISTORY_KEYS, load_checkpoint, save_checkpoint
from mixexp.config import ConfigError, validate
from mixexp.io import save_torch, write_json
from mixexp.rundir import LOCK, claim_run_dir
from mixexp.train_utils import rng_state
from mixexp.trainer import Trainer


class Payload:
    """Unpickling this runs ``touch <marker>``: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_checkpoint(path, marker):
    torch.save({"epoch": 1, "model": {"w": Payload(marker)}, "method": {}, "optimizer": {}, "scheduler": {},
                "rng": {}, "history": [], "elapsed": 0.0}, path)


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_pickle_payload_in_last_pt_is_refused_by_resume_and_eval(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "pwned"
    crafted_checkpoint(run / "last.pt", marker)
    (run / "config.yaml").write_text(OmegaConf.to_yaml(compose_cfg(FAST + ["trainer.epochs=1"]), resolve=True))
    for args in (["mixexp-train", *FAST, "trainer.epochs=1", "resume=true", f"hydra.run.dir={run}"],
                 ["mixexp-eval", str(run)]):
        line = one_error_line(run_cli(args))
        assert str(run / "last.pt") in line and "posix.system" in line and "never loaded" in line
        assert not marker.exists()


def epoch_rows(epochs: int) -> list:
    return [{**dict.fromkeys(HISTORY_KEYS, 0.5), "epoch": e} for e in range(1, epochs + 1)]


def test_checkpoint_round_trip_and_bad_files_are_one_line(tmp_path):
    state = {"epoch": 3, "model": {"w": torch.ones(2)}, "method": {}, "optimizer": {"state": {}}, "scheduler": {},
             "rng": rng_state(), "history": epoch_rows(3), "elapsed": 1.5, "rescaling": None}
    path = tmp_path / "last.pt"
    save_checkpoint(path, state)
    assert load_checkpoint(path)["epoch"] == 3 and torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ConfigError, match=r"last.pt cannot be loaded: it is truncated or not a checkpoint"):
        load_checkpoint(path)
    save_checkpoint(path, {**state, "epoch": "3"})
    with pytest.raises(ConfigError, match=r"'epoch' is a str, expected int"):
        load_checkpoint(path)
    save_checkpoint(path, {k: v for k, v in state.items() if k != "optimizer"})
    with pytest.raises(ConfigError, match=r"lacks the key 'optimizer'"):
        load_checkpoint(path)
    save_checkpoint(path, [1, 2])
    with pytest.raises(ConfigError, match=r"holds a list, not a dict"):
        load_checkpoint(path)


def test_rng_state_survives_weights_only_round_trip(tmp_path):
    import random

    import numpy as np

    from mixexp.train_utils import rng_state, seed_everything, set_rng_state

    seed_everything(5)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    path = tmp_path / "rng.pt"
    save_torch(path, rng_state())
    draws = (random.random(), np.random.normal(), np.random.rand(), torch.rand(1).item())
    set_rng_state(torch.load(path, weights_only=True))
    assert (random.random(), np.random.normal(), np.random.rand(), torch.rand(1).item()) == draws


# ------------------------------------------------------------------------------------------ run folders


def fast_trainer(run_dir, *overrides):
    cfg = compose_cfg(FAST + ["trainer.epochs=1", *overrides])
    validate(cfg)
    return Trainer(cfg, run_dir)


def test_finished_run_without_checkpoint_is_not_overwritten(tmp_path):
    fast_trainer(tmp_path / "run", "trainer.checkpoint=false").fit()
    before = (tmp_path / "run" / "metrics.json").read_bytes()
    with pytest.raises(ConfigError, match=r"already holds a run \(metrics.json, config.yaml\): pass resume=true"):
        fast_trainer(tmp_path / "run", "trainer.checkpoint=false")
    assert (tmp_path / "run" / "metrics.json").read_bytes() == before


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_lock_of_a_dead_pid_is_taken_over_and_tmp_files_removed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text(f"{dead_pid()} {socket.gethostname()}\n")
    (run / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    lock = claim_run_dir(run, resume=False)
    assert (run / LOCK).read_text() == f"{os.getpid()} {socket.gethostname()}\n"
    assert not (run / ".last.pt.abc123.tmp").exists()
    lock.release()
    assert not (run / LOCK).exists()


def test_lock_of_a_live_process_is_refused_with_its_pid(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (run / LOCK).write_text(f"{other.pid} {socket.gethostname()}\n")
        with pytest.raises(ConfigError, match=rf"{run} is in use by another mixexp process \(pid {other.pid} on "):
            claim_run_dir(run, resume=True)
    finally:
        other.kill()
        other.wait()
    assert (run / LOCK).read_text().startswith(f"{other.pid} ")  # someone else's lock is left alone


@pytest.mark.slow
def test_second_mixexp_train_into_a_busy_folder_exits_with_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    args = [*FAST, "dataset.train_size=2048", "trainer.epochs=200", f"hydra.run.dir={run}"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    first = subprocess.Popen([str(sys.executable), "-m", "mixexp.train", *args], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (run / LOCK).exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert (run / LOCK).exists(), "the first run never took its lock"
        line = one_error_line(run_cli(["mixexp-train", *args, "resume=true"]))
        assert f"{run} is in use by another mixexp process (pid {first.pid} on" in line
        # an evaluation waits its turn too: its merge into metrics.json would be lost to the run's final write
        code, err = run_in_process(["mixexp-eval", str(run)], capsys)
        assert code == 2 and err.startswith(f"error: {run} is in use by another mixexp process (pid {first.pid} on ")
        assert "wait for it to end or evaluate it afterwards" in err and len(err.strip().splitlines()) == 1
    finally:
        first.kill()
        first.wait()


# ------------------------------------------------------------------------------------------ writes


def test_metrics_json_holds_null_not_nan(tmp_path):
    write_json(tmp_path / "m.json", {"test_nll": float("nan"), "loss": [1.0, float("inf")], "diverged": True})
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"test_nll": None, "loss": [1.0, None], "diverged": True}


def test_disk_full_during_fsync_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    write_json(target, {"a": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ConfigError, match=rf"^no space left on device while writing {target} \(the previous"):
        write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_disk_full_inside_torch_save_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    save_torch(target, {"w": torch.zeros(3)})

    class FullDisk:
        """A file that takes 100 bytes, then fails as a full disk does."""

        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            self.n += len(b)
            if self.n > 100:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(mixexp.io, "open", lambda *a, **k: FullDisk(builtins.open(*a, **k)), raising=False)
    with pytest.raises(ConfigError, match=rf"^no space left on device while writing {target}"):
        save_torch(target, {"w": torch.ones(10000)})
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.zeros(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]



# ------------------------------------------------------------------------------------------ report


def fake_run(folder, mixer, seed, metrics_text):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"name: demo\nseed: {seed}\nmixer:\n  name: {mixer}\n  alpha: 1.0\n")
    if metrics_text is not None:
        (folder / "metrics.json").write_text(metrics_text)


def test_report_skips_corrupt_runs_and_lists_them(tmp_path):
    for seed in (0, 1):
        fake_run(tmp_path / f"mixup_{seed}", "mixup", seed, json.dumps({"test_acc": 90.0 + seed}))
        fake_run(tmp_path / f"none_{seed}", "none", seed, json.dumps({"test_acc": 80.0 + seed}))
    fake_run(tmp_path / "truncated", "mixup", 2, '{"test_acc": 9')
    fake_run(tmp_path / "badyaml", "none", 3, json.dumps({"test_acc": 1.0}))
    (tmp_path / "badyaml" / "config.yaml").write_text("mixer: [unclosed\n")
    result = run_cli(["mixexp-report", str(tmp_path), "--metrics", "test_acc"])
    assert result.returncode == 0, result.stderr
    assert "| mixup | 2 | 90.50 ± 0.71 |" in result.stdout and "| erm | 2 | 80.50 ± 0.71 |" in result.stdout
    report = (tmp_path / "report.md").read_text()
    for text in (result.stdout, report):
        assert "2 run(s) skipped (damaged files):" in text
        assert f"- {tmp_path / 'badyaml'}: config.yaml cannot be read (" in text
        assert f"- {tmp_path / 'truncated'}: metrics.json cannot be read (" in text


def test_report_of_a_metric_no_run_has_is_one_line(tmp_path):
    fake_run(tmp_path / "a", "mixup", 0, json.dumps({"test_acc": 90.0, "test_nll": None, "diverged": True}))
    line = one_error_line(run_cli(["mixexp-report", str(tmp_path), "--metrics", "test_acc,test_acc5"]))
    assert line == "error: --metrics test_acc5: no run reports it; the runs report: diverged, test_acc, test_nll"
    assert not (tmp_path / "report.md").exists()


# ------------------------------------------------------------------------------------------ reproduce


def test_reproduce_takes_overrides_after_options(monkeypatch, tmp_path):
    from mixexp import reproduce

    calls = []
    monkeypatch.setattr(reproduce, "reproduce", lambda *a: calls.append(a) or [])
    reproduce.cli(["sem-table1", "--smoke", "trainer.epochs=2", "--logger", "none", "trainer.device=cuda:1",
                   "--root", str(tmp_path)])
    assert calls[0][:4] == ("sem-table1", True, "none", ["trainer.epochs=2", "trainer.device=cuda:1"])
    line = one_error_line(run_cli(["mixexp-reproduce", "bogus", "--smoke", "trainer.epochs=2"]))
    assert line.startswith("error: target 'bogus' is not allowed: choose one of all, sem-table1")


# ------------------------------------------------------------------------------------------ data options


def test_mixexp_data_on_an_unwritable_data_dir_is_one_line(tmp_path):
    # /sys refuses new folders even to root, as a read-only mount does
    line = one_error_line(run_cli(["mixexp-data", "--data-dir", "/sys/mixexp_data", "prepare", "cifar10"]))
    assert line.startswith("error: cannot write /sys/mixexp_data: operation not permitted (the data root")
    (tmp_path / "afile").write_text("")
    line = one_error_line(run_cli(["mixexp-data", "--data-dir", str(tmp_path / "afile"), "prepare", "cifar10"]))
    assert line.startswith(f"error: cannot write {tmp_path / 'afile' / 'cifar10'}: not a directory")


@pytest.mark.parametrize("fraction,sizes", [("0.001", "1795 train and 2 test"), ("0.996", "7 train and 1790 test")])
def test_digits_split_that_leaves_a_class_out_is_refused(fraction, sizes):
    from mixexp.data import load_dataset

    cfg = compose_cfg([*FAST, "dataset=digits", f"dataset.test_fraction={fraction}"])
    with pytest.raises(ConfigError, match=rf"dataset.test_fraction={fraction} is not allowed: it splits the 1797 "
                                          rf"images into {sizes}, .* \(choose a fraction above 0.0050 and at most 0.9944\)"):
        load_dataset(cfg.dataset, cfg.paths.data_dir)


def test_training_set_too_small_for_one_step_is_one_line(tmp_path):
    line = one_error_line(run_cli(["mixexp-train", *FAST, "dataset.train_size=1", f"hydra.run.dir={tmp_path / 'r'}"]))
    assert line == "error: dataset.train_size=1 is not allowed: must be >= 2 (a training batch needs two images)"
    # the loader says it too, whatever left the set that small (e.g. a validation split)
    from mixexp.data import ImageSet, build_loader

    one = ImageSet(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"the training set holds 1 example\(s\), too few for one step of "
                                          r"trainer.batch_size=16 \(a final batch of one is dropped\)"):
        build_loader(one, 16, train=True, device="cpu", mean=(0.5,), std=(0.5,))
