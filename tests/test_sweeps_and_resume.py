"""Sweeps survive a bad job, relaunched sweeps continue, resumed runs keep their config, diverged runs stop."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import FAST, compose_cfg, run_cli
from mixexp.config import validate
from mixexp.errors import ConfigError
from mixexp.rundir import resume_differences
from mixexp.trainer import Trainer

QUICK = [*FAST, "trainer.epochs=1"]


def test_a_failing_job_fails_alone_and_the_sweep_ends_with_a_summary(tmp_path):
    # test-time rescaling is defined for mixup runs only: the cutmix job is a user error, the others are fine
    result = run_cli(["mixexp-train", "-m", *QUICK, "eval.rescaled=true", "mixer=cutmix,mixup",
                      f"hydra.sweep.dir={tmp_path}"])
    assert result.returncode == 2, result.stderr
    (cutmix,), (mixup,) = tmp_path.glob("*mixer=cutmix*"), tmp_path.glob("*mixer=mixup*")
    assert (mixup / "metrics.json").is_file()  # ran to the end after the failed job
    assert not (cutmix / "metrics.json").exists()
    err = [line for line in result.stderr.splitlines() if line.startswith(("error", "  "))]
    why = "eval.rescaled=True is not allowed: needs a mixup-trained run (mixer=mixup), not mixer=cutmix"
    assert err == [f"error: job {cutmix.name}: {why}",
                   f"error: 1 job(s) of the sweep in {tmp_path} failed:", f"  {cutmix.name}: {why}"]
    assert "Traceback" not in result.stderr


def test_a_relaunched_sweep_continues_its_finished_runs(tmp_path):
    args = ["mixexp-train", "-m", *QUICK, "seed=0", f"hydra.sweep.dir={tmp_path}"]
    assert run_cli(args).returncode == 0
    (run,) = tmp_path.glob("*seed=0*")
    before = json.loads((run / "metrics.json").read_text())
    again = run_cli(args)  # resume is null: auto for sweep jobs
    assert again.returncode == 0, again.stderr
    after = json.loads((run / "metrics.json").read_text())
    assert after["test_acc"] == before["test_acc"] and after["epochs"] == 1


def test_resume_with_a_changed_training_key_is_refused_with_the_keys(tmp_path):
    cfg = compose_cfg(QUICK + ["mixer=mixup"])
    validate(cfg)
    Trainer(cfg, tmp_path / "run").fit()
    changed = compose_cfg(QUICK + ["mixer=mixup", "optim.lr=0.01", "mixer.alpha=0.4", "resume=true",
                                   "trainer.progress=bar"])
    with pytest.raises(ConfigError, match=r"cannot be resumed with a changed config: mixer.alpha=0.4 \(the run has 1.0\); "
                                          r"optim.lr=0.01 \(the run has 0.1\)"):
        Trainer(changed, tmp_path / "run")


def test_epochs_may_grow_only_where_the_schedule_does_not_depend_on_them():
    stored = {"trainer": {"epochs": 10}, "sched": {"name": "multistep", "warmup_epochs": 0}, "mixer": {"name": "mixup"}}
    longer = {**stored, "trainer": {"epochs": 20}}
    assert resume_differences(stored, longer) == []
    cosine = {**longer, "sched": {"name": "cosine", "warmup_epochs": 0}}
    assert resume_differences({**stored, "sched": cosine["sched"]}, cosine) == ["trainer.epochs=20 (the run has 10)"]


def test_a_diverging_run_stops_keeps_its_last_finite_checkpoint_and_says_so(tmp_path):
    cfg = compose_cfg(FAST + ["trainer.epochs=6", "optim.lr=1e30", "trainer.stop_on_divergence=2"])
    validate(cfg)
    trainer = Trainer(cfg, tmp_path / "run")
    metrics = trainer.fit()
    text = (tmp_path / "run" / "metrics.json").read_text()
    assert metrics["diverged"] is True and json.loads(text)["diverged"] is True
    assert "NaN" not in text and "Infinity" not in text
    assert metrics["epochs"] < 6  # stopped early
    history = [row for row in yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()).items()]
    assert history  # the run folder is complete


def test_ctrl_c_is_one_line_that_says_how_to_resume(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    run = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mixexp-train"), *FAST, "trainer.epochs=500",
                             f"hydra.run.dir={run}"], env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    lines = [x for x in err.splitlines() if x.startswith("error")]
    assert proc.returncode == 130 and len(lines) == 1, err
    assert lines[0].startswith("error: interrupted at epoch ") and f"resume=true hydra.run.dir={run}" in lines[0]
    assert "Traceback" not in err


@pytest.mark.slow
def test_ctrl_c_of_a_joblib_sweep_is_one_line(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    sweep = tmp_path / "sweep"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    # a new session: Ctrl-C in a terminal interrupts the launcher and its worker processes alike
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mixexp-train"), "-m", "hydra/launcher=joblib",
                             "hydra.launcher.n_jobs=2", *FAST, "trainer.epochs=500", "trainer.num_threads=1", "seed=0,1",
                             f"hydra.sweep.dir={sweep}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.time() + 180
    while len(list(sweep.glob("*/last.pt"))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.strip()] == [
        "error: interrupted: relaunch the same command to continue (finished runs are kept, interrupted ones resume "
        "from their last.pt)"]


def test_an_unwritable_run_folder_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli(["mixexp-train", *FAST, f"hydra.run.dir={blocker}/run"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [x for x in result.stderr.splitlines() if x.strip()] == [f"error: cannot write {blocker}/run: not a directory"]


def test_mixexp_eval_takes_only_evaluation_overrides_and_whole_sweep_folders(tmp_path):
    sweep = tmp_path / "sweep"
    assert run_cli(["mixexp-train", "-m", *QUICK, "mixer=none,mixup", f"hydra.sweep.dir={sweep}"]).returncode == 0
    refused = run_cli(["mixexp-eval", str(sweep), "optim.lr=0.01"])
    assert refused.returncode == 2 and refused.stderr.startswith(
        "error: optim.lr cannot be changed when evaluating a finished run: only eval.*")
    both = run_cli(["mixexp-eval", str(sweep), "trainer.device=cpu"])
    assert both.returncode == 0, both.stderr
    assert sorted(line.split(": ")[0].split("/")[-1] for line in both.stdout.splitlines()) == \
        sorted(p.name for p in sweep.iterdir() if (p / "last.pt").exists())
    assert len(both.stdout.splitlines()) == 2


def test_a_damaged_run_config_and_a_mean_of_the_wrong_length_are_one_line(tmp_path):
    run = tmp_path / "run"
    assert run_cli(["mixexp-train", *QUICK, f"hydra.run.dir={run}"]).returncode == 0
    (run / "config.yaml").write_text("dataset: [unclosed\n")
    damaged = run_cli(["mixexp-eval", str(run)])
    assert damaged.returncode == 2 and damaged.stderr.startswith(f"error: {run / 'config.yaml'} cannot be read:")
    wrong = run_cli(["mixexp-train", *QUICK, "dataset.mean=[0.5,0.5]", "dataset.std=[0.2,0.2]",
                     f"hydra.run.dir={tmp_path / 'other'}"])
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert wrong.stderr.strip() == "error: dataset.mean has 2 values but synthetic images have 3 channels"
