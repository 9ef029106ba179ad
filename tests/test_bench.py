"""`make bench` cannot rot: its quick form (tiny sizes, seconds on a CPU) runs here as on a fresh clone and
bench.json holds every figure, each a finite positive number, in the form the compute plan reads."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from conftest import REPO
from mixexp.hostcost import thread_counts

METHODS = ["mixup", "cutmix", "mixup+sem", "lamix", "puzzlemix"]
FIGURES = {  # figure -> its keys
    "data_images_per_s": ["mixexp", "reference"],
    "step_images_per_s": ["mixexp", "bare"],
    "step_ops_per_step": ["mixexp", "bare"],
    "step_host_floor_ms_per_step": ["mixexp", "bare"],
    "method_images_per_s": METHODS,
    "method_step_time_vs_mixup": METHODS,
    "method_step_time_vs_mixup_without_cuts": ["puzzlemix"],
    "host_overhead.us_per_step": ["mixexp", "bare", "loader", "bare, for-loop SGD", "bare, foreach SGD",
                                  "bare, fused SGD"],
    "host_overhead.ops_per_step": ["mixexp", "bare", "loader"],
    "jpeg.decode_images_per_s": ["pil", "torchvision_cpu"],
}
NUMBERS = ["data_speedup", "step_ratio_mixexp_over_bare", "host_overhead.step_ratio_mixexp_over_bare",
           "host_overhead.us_per_op", "jpeg.worker_images_per_s", "jpeg.streaming_images_per_s",
           "jpeg.resnet50_gpu_images_per_s", "jpeg.workers_per_resnet50_gpu", "jpeg.workers"]


def _get(data, dotted):
    for key in dotted.split("."):
        data = data[key]
    return data


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, "scripts/bench.py", "--quick", "--device", "cpu", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout, out


def test_quick_bench_writes_every_figure_as_a_finite_positive_number(quick_bench):
    data, _, _ = quick_bench
    assert data["quick"] is True and data["device"].startswith("CPU")
    bad = [f"{name}.{key}" for name, keys in FIGURES.items() for key in keys if not _positive(_get(data, name)[key])]
    bad += [name for name in NUMBERS if not _positive(_get(data, name))]
    assert bad == []
    for name, keys in FIGURES.items():
        assert sorted(_get(data, name)) == sorted(keys), name


def test_quick_bench_figures_agree_with_each_other(quick_bench):
    data, _, _ = quick_bench
    host = data["host_overhead"]
    assert host["overhead_us_per_step"] == pytest.approx(host["us_per_step"]["mixexp"] - host["us_per_step"]["bare"])
    assert host["us_per_op"] == pytest.approx(host["us_per_step"]["loader"] / host["ops_per_step"]["loader"])
    assert data["step_ratio_mixexp_over_bare"] == pytest.approx(
        data["step_images_per_s"]["mixexp"] / data["step_images_per_s"]["bare"])
    rates = data["method_images_per_s"]
    assert data["method_step_time_vs_mixup"]["puzzlemix"] == pytest.approx(rates["mixup"] / rates["puzzlemix"])
    jpeg = data["jpeg"]
    assert jpeg["workers_per_resnet50_gpu"] == math.ceil(jpeg["resnet50_gpu_images_per_s"] / jpeg["worker_images_per_s"])


def test_quick_bench_times_the_graph_cuts_for_both_puzzlemix_batches(quick_bench):
    data, _, _ = quick_bench
    assert [(row["batch"], row["size"]) for row in data["graph_cuts"]] == [(100, 32), (64, 64)]
    for row in data["graph_cuts"]:
        assert sorted(row["s_per_batch"], key=int) == [str(t) for t in thread_counts()]
        assert all(_positive(s) for s in row["s_per_batch"].values())


def test_quick_bench_names_what_a_cpu_cannot_measure(quick_bench):
    data, stdout, _ = quick_bench
    assert set(data["not_measured"]) == {"host_overhead.compiled", "host_overhead.cuda-graphs",
                                         "jpeg.decode_images_per_s.torchvision_cuda", "jpeg.dali"}
    assert "not measured: host_overhead.compiled: --quick skips torch.compile" in stdout
    assert "5. PuzzleMix graph cuts, batch 100 at 32 px" in stdout


def test_the_plan_reads_the_bench_it_writes(quick_bench):
    from mixexp.plan import load_throughput

    data, _, path = quick_bench
    throughput = load_throughput(path)
    assert throughput.base_images_per_s == data["step_images_per_s"]["mixexp"]
    assert throughput.method_ratio["puzzlemix"] == data["method_step_time_vs_mixup_without_cuts"]["puzzlemix"]
    most = str(thread_counts()[-1])
    assert throughput.graph_cuts().seconds_per_batch(100, 32) == pytest.approx(data["graph_cuts"][0]["s_per_batch"][most])
