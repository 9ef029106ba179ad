"""`make gpu-check DRY=1`: the GPU check's code paths on the CPU at tiny sizes, so that the check cannot rot
before a GPU runs it. The device side is then the CPU in float32, so each compared step must equal the CPU
reference up to float rounding, which holds only if the recorded random draws are replayed exactly."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from conftest import REPO

MIXING = ["mixup", "cutmix", "sem", "lamix", "puzzlemix", "manifold_mixup", "saliencymix", "rescaling"]


@pytest.fixture(scope="module")
def dry_check(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py", "--dry", "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), out.with_suffix(".md").read_text()


def test_every_method_trains_and_its_step_equals_the_cpu_reference(dry_check):
    data, _ = dry_check
    assert data["dry"] is True and data["failures"] == [] and data["skipped"] == []
    results = data["methods"]["results"]
    assert sorted(results) == sorted(["erm", "es", *MIXING])
    for name, r in results.items():
        eager = r["eager"]
        assert eager["ok"] and eager["rel_diff"] <= 1e-5, name
        assert len(eager["device_losses"]) == 2 and all(math.isfinite(v) for v in eager["device_losses"])
        assert math.isfinite(eager["epoch_loss"])
        # the mixing methods draw in their step (lambda, partners, boxes, grids), ERM and ES past its stop do not
        assert (eager["draws"] > 0) == (name in MIXING), name
    assert results["es"]["eager"]["device_losses"] == results["erm"]["eager"]["device_losses"]  # ES unmixed = ERM
    assert results["mixup"]["compiled"]["ok"] and results["mixup"]["compiled"]["rel_diff"] <= 1e-5
    assert results["cutmix"]["compiled"] == {"skipped": "--dry compiles mixup only (CPU compilation is slow)"}
    rescaled = results["rescaling"]["eager"]["rescaled_eval"]
    assert rescaled["ok"] and rescaled["device_nll"] == pytest.approx(rescaled["cpu_nll"], rel=1e-5)


def test_throughput_ddp_puzzlemix_and_jpeg_parts_report_numbers(dry_check):
    data, table = dry_check
    rows = data["throughput"]["rows"]
    assert [(r["model"], r["compiled"]) for r in rows] == [("preactresnet18", False), ("wrn28_10", False),
                                                          ("resnet50", False)]
    for r in rows:
        assert r["mixexp_images_per_s"] > 0 and r["bare_images_per_s"] > 0 and r["mixexp_peak_gb"] is None
        assert r["ratio_mixexp_over_bare"] == pytest.approx(r["mixexp_images_per_s"] / r["bare_images_per_s"])
    ddp = data["ddp"]
    assert (ddp["world_size"], ddp["backend"]) == (2, "gloo")
    assert ddp["ddp"]["ok"] and ddp["ddp"]["weight_diff_across_ranks"] == 0.0 and ddp["ddp"]["steps"] == 3
    assert ddp["ddp+sync_bn"] == {"skipped": "SyncBatchNorm has no CPU kernel"}
    p = data["puzzlemix"]
    assert p["puzzlemix_step_ms"] > 0 and p["graph_cuts_ms"] > 0
    assert p["step_time_vs_mixup"] == pytest.approx(p["puzzlemix_step_ms"] / p["mixup_step_ms"])
    jpeg = data["jpeg"]
    assert jpeg["worker_images_per_s"] > 0 and set(jpeg["decode_images_per_s"]) == {"pil", "torchvision_cpu"}
    assert jpeg["workers_per_resnet50_gpu"] == math.ceil(rows[2]["mixexp_images_per_s"] / jpeg["worker_images_per_s"])
    assert table.startswith("# gpu-check: CPU") and "DDP (gloo, world size 2): ddp: weights equal across ranks" in table


def test_without_a_gpu_the_real_check_refuses_in_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "gpu-check: no CUDA device is visible here; run it with DRY=1 (--dry) on a CPU"
