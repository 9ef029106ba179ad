"""Sweeps beyond one process: submitit's SLURM and local executors, several jobs per GPU."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.types import RunMode
from omegaconf import OmegaConf

from conftest import run_cli
from mixexp.config import CONF_DIR
from mixexp.train_utils import resolve_device, sweep_job_num


def launcher_params(launcher, overrides=()):
    """hydra.launcher of the composed config, resolved as the submitit plugin receives it."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra/launcher={launcher}", *overrides],
                      return_hydra_config=True)
    node = cfg.hydra.launcher
    node.name, node.submitit_folder = "train", "/sweep/.submitit/%j"  # filled in by Hydra at launch time
    return OmegaConf.to_container(node, resolve=True)


def test_slurm_preset_asks_for_one_gpu_and_requeue_with_partition_and_account_from_the_environment(
        tmp_path, monkeypatch):
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    monkeypatch.setenv("MIXEXP_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("MIXEXP_SLURM_ACCOUNT", "proj42")
    monkeypatch.setenv("MIXEXP_SLURM_TIMEOUT_MIN", "90")
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # as if srun were here
    params = launcher_params("slurm", ["hydra.launcher.mem_gb=16"])
    assert params["_target_"].endswith("SlurmLauncher") and params["timeout_min"] == 90
    # the sbatch script submitit writes from these parameters, the way the Hydra plugin passes them
    executor = submitit.AutoExecutor(folder=tmp_path, cluster="slurm", slurm_max_num_timeout=params["max_num_timeout"])
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()
                                  if k not in ("_target_", "submitit_folder", "max_num_timeout")})
    script = executor._executor._make_submission_file_text("python -m x", "uid")
    for line in ["--partition=gpu", "--account=proj42", "--time=90", "--gpus-per-node=1", "--ntasks-per-node=1",
                 "--mem=16GB", "--cpus-per-task=8", "--signal=USR2@120"]:
        assert f"#SBATCH {line}\n" in script, line
    assert "#SBATCH --requeue\n" in script


def test_slurm_preset_leaves_partition_and_account_to_the_cluster_default_when_unset(monkeypatch):
    for name in ["MIXEXP_SLURM_PARTITION", "MIXEXP_SLURM_ACCOUNT", "MIXEXP_SLURM_TIMEOUT_MIN"]:
        monkeypatch.delenv(name, raising=False)
    params = launcher_params("slurm", ["hydra.launcher.partition=debug"])
    assert params["partition"] == "debug" and params["account"] is None and params["timeout_min"] == 1440


@pytest.mark.slow
def test_a_sweep_runs_through_submitits_local_executor(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["mixexp-train", "-m", "hydra/launcher=local", "dataset=digits", "trainer.epochs=1",
                      "trainer.device=auto", "trainer.progress=log", "trainer.checkpoint=false", "trainer.num_threads=1",
                      "seed=0,1",
                      f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = sorted(p.parent.name for p in sweep.glob("*/metrics.json"))
    assert [run.split(",")[1] for run in runs] == ["seed=0", "seed=1"]  # folders: dataset=digits,seed=0,...
    for run in runs:
        assert json.loads((sweep / run / "metrics.json").read_text())["epochs"] == 1
        # auto resolved in the job (the preset's gpus_per_node=0 hides every GPU) and recorded
        assert "  device: cpu\n" in (sweep / run / "config.yaml").read_text()
    assert list((sweep / ".submitit").glob("*/*_result.pkl"))  # submitit ran the jobs


@pytest.mark.parametrize("job_num,count,expected", [(None, 4, "cuda"), (0, 4, "cuda:0"), (5, 4, "cuda:1"),
                                                    (3, 2, "cuda:1"), (7, 1, "cuda")])
def test_auto_device_spreads_a_sweeps_jobs_over_the_visible_gpus(monkeypatch, job_num, count, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    assert str(resolve_device("auto", job_num)) == expected
    assert str(resolve_device("cuda:0", job_num)) == "cuda:0"  # an explicit device is kept


def test_auto_device_without_cuda_is_the_cpu_and_a_single_run_has_no_job_number(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert str(resolve_device("auto", 3)) == "cpu"
    assert sweep_job_num(SimpleNamespace(mode=RunMode.MULTIRUN, job=SimpleNamespace(num=3))) == 3
    assert sweep_job_num(SimpleNamespace(mode=RunMode.RUN, job=SimpleNamespace(num="???"))) is None
