"""Host-bound costs: PuzzleMix's graph cuts timed on this host, and the compute plan that adds them to the
GPU-hours of every PuzzleMix run (puzzlemix, lamix_puzzle), read from bench.json or measured at plan time."""

from __future__ import annotations

import json
import math

import pytest

from mixexp.plan import PUZZLEMIX_ANCHOR, GraphCuts, format_plan, load_throughput, model_cost, plan_target
from mixexp.reproduce import TARGETS

RATE, PUZZLE_RATIO = 2000.0, 1.5
CUTS = [  # seconds per batch by thread count: the most threads (every core) count
    {"batch": 100, "size": 32, "s_per_batch": {"1": 0.05, "2": 0.03}},
    {"batch": 64, "size": 64, "s_per_batch": {"1": 0.064, "2": 0.032}},
]


def _bench(tmp_path, **extra):
    data = {"device": "fake GPU", "step_images_per_s": {"mixexp": RATE, "bare": RATE},
            "method_step_time_vs_mixup": {"mixup": 1.0, "puzzlemix": 9.0},  # total: the cuts included
            "method_step_time_vs_mixup_without_cuts": {"puzzlemix": PUZZLE_RATIO}, "graph_cuts": CUTS, **extra}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    return path


def _device_hours(run, macs, ratio):
    rate = RATE * model_cost("name: preactresnet18\n", 32, 3, 10)[0] / macs / ratio
    return (run.train_images + run.eval_images / 3) / rate / 3600


def test_bench_json_cuts_become_seconds_per_pair_with_every_core(tmp_path):
    throughput = load_throughput(_bench(tmp_path))
    assert throughput.graph_cuts().seconds_per_pair == {32: pytest.approx(0.0003), 64: pytest.approx(0.0005)}
    assert throughput.method_ratio["puzzlemix"] == PUZZLE_RATIO  # the step without its cuts
    # a side between the measured ones takes the nearest; batches scale the pairs
    assert throughput.graph_cuts().seconds_per_batch(128, 40) == pytest.approx(128 * 0.0003)
    assert throughput.host_seconds_per_step("lamix_puzzle", 100, 32) == pytest.approx(0.03)
    assert throughput.host_seconds_per_step("mixup", 100, 32) == 0.0


def test_puzzlemix_runs_of_table3_and_table4_add_the_cuts_to_their_gpu_hours(tmp_path):
    throughput = load_throughput(_bench(tmp_path))
    runs = {r.folder.name: r for r in plan_target("lamix-table3", TARGETS["lamix-table3"], tmp_path, [], throughput)}
    cifar100 = "dataset=cifar100,method={},model=preactresnet18_puzzlemix,seed=0"
    macs = model_cost("name: preactresnet18\nvariant: puzzlemix\n", 32, 3, 100)[0]
    for method in ("puzzlemix", "lamix_puzzle"):
        run = runs[cifar100.format(method)]
        # 600 epochs x 500 steps of 100 pairs x 0.3 ms, serial with the GPU step
        assert run.host_hours == pytest.approx(600 * 500 * 100 * 0.0003 / 3600)
        assert run.gpu_hours == pytest.approx(_device_hours(run, macs, PUZZLE_RATIO) + run.host_hours)
    tiny = {r.folder.name: r for r in plan_target("lamix-table4", TARGETS["lamix-table4"], tmp_path, [], throughput)}
    run = tiny["dataset=tinyimagenet,method=puzzlemix_tiny,model=preactresnet18_puzzlemix_stride2,seed=0"]
    assert run.host_hours == pytest.approx(600 * 1000 * 100 * 0.0005 / 3600)  # 100,000 images, 64 px


def test_the_plan_prints_its_puzzlemix_estimate_beside_the_published_anchor(tmp_path):
    throughput = load_throughput(_bench(tmp_path))
    runs = plan_target("lamix-table3", TARGETS["lamix-table3"], tmp_path, [], throughput)
    text = format_plan({"lamix-table3": runs}, throughput.source, throughput)
    macs = model_cost(PUZZLEMIX_ANCHOR["model"], 32, 3, 100)[0]
    vanilla = 50_000 / (RATE * model_cost("name: preactresnet18\n", 32, 3, 10)[0] / macs)
    puzzle = vanilla * PUZZLE_RATIO + 500 * 0.03
    line = text.splitlines()[-1]
    assert line == (f"PuzzleMix check (CIFAR-100, PreActResNet-18, batch 100, one training epoch): this plan "
                    f"{vanilla:,.1f} s vanilla, {puzzle:,.1f} s PuzzleMix ({puzzle / vanilla:.2f}x; 15.0 s of it "
                    f"graph cuts, {throughput.source}); published: 34 s vanilla, 50 s PuzzleMix (1.47x), "
                    f"snu-mllab/PuzzleMix README (20.12.01, torch 1.7, multi-process graph cuts).")
    host = sum(r.host_hours for r in runs)
    total = next(l for l in text.splitlines() if l.startswith("| **total**"))
    assert total.split(" | ")[-2] == f"{host:,.1f}" and host > 0


def test_a_plan_without_puzzlemix_has_no_host_hours_and_no_check(tmp_path):
    throughput = load_throughput(_bench(tmp_path))
    runs = plan_target("sem-table1", TARGETS["sem-table1"], tmp_path, [], throughput)
    assert all(r.host_hours == 0 for r in runs)
    assert "PuzzleMix check" not in format_plan({"sem-table1": runs}, throughput.source, throughput)


def test_without_bench_json_the_plan_times_the_cuts_on_this_host(tmp_path):
    throughput = load_throughput(tmp_path / "absent.json")
    assert throughput.cuts is None  # nothing timed until a PuzzleMix run asks
    cuts = throughput.graph_cuts()
    assert set(cuts.seconds_per_pair) == {32, 64} and "measured by the plan on this host" in cuts.source
    assert all(0 < s < 0.05 and math.isfinite(s) for s in cuts.seconds_per_pair.values())
    assert throughput.graph_cuts() is cuts  # timed once


def test_graph_cut_seconds_grow_with_the_grid():
    from mixexp.hostcost import graph_cut_seconds_by_grid

    by_grid = graph_cut_seconds_by_grid(32, 32, threads=1, reps=1)
    assert list(by_grid) == [2, 4, 8, 16]  # every grid PuzzleMix draws at 32 px
    assert by_grid[16] > by_grid[2] > 0  # 256 sites per pair against 4
    assert list(graph_cut_seconds_by_grid(4, 8, threads=1, reps=1)) == [2, 4, 8]  # 16 does not tile 8 px
