"""What the host spends per batch whatever the accelerator: PuzzleMix's graph cuts, timed here.

PuzzleMix's cuts run on the CPU (gco, :func:`mixexp.mixers.puzzlemix.solve_cuts`) between the saliency
pass and the mixed forward pass of the same batch, so the accelerator waits for them: a faster GPU does
not make them shorter. :func:`graph_cut_seconds` times them on this host for a batch of ``batch`` pairs
of ``size`` px images, on the grid sizes PuzzleMix draws from (uniformly, so the mean over grids is the
expected time per batch). ``scripts/bench.py`` records it in bench.json and the compute plan
(:mod:`mixexp.plan`) adds it to a PuzzleMix run's hours. Only the host part is timed: the energy
(:func:`~mixexp.mixers.puzzlemix.cut_energy`) is batched tensor work that runs on the accelerator.

The images and saliency maps are smooth random fields (bilinear upsampling of an 8x coarser noise,
as photos and saliency are locally smooth); the cut's time depends on the costs only through the
solver's iterations, so real images change it little.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F


def smooth_field(batch: int, channels: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, channels, size, size) values in [0, 1], smooth on a scale of size / 8 px."""
    coarse = torch.rand(batch, channels, max(2, size // 8), max(2, size // 8), generator=generator)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def graph_cut_seconds_by_grid(batch: int, size: int, threads: int, reps: int = 3, seed: int = 0,
                              grids: Optional[Sequence[int]] = None) -> Dict[int, float]:
    """Median seconds of the cuts of one batch, per grid size n (blocks per side), with ``threads`` threads
    (as ``mixer.workers``); the energy is computed once per grid, outside the timing."""
    from mixexp.mixers.puzzlemix import GRID_SIZES, cut_energy, solve_cuts, valid_grid_sizes

    gen = torch.Generator().manual_seed(seed)
    x = smooth_field(batch, 3, size, gen)
    saliency = smooth_field(batch, 1, size, gen)[:, 0] + 1e-3
    partner = torch.randperm(batch, generator=gen)
    lam = float(torch.rand((), generator=gen))
    executor = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
    seconds: Dict[int, float] = {}
    try:
        for n in valid_grid_sizes(grids or GRID_SIZES, size, size):
            energy = cut_energy(x, saliency, partner, lam, n)
            solve_cuts(energy, executor, threads)  # warm-up: gco's first graphs, the thread pool
            runs = []
            for _ in range(max(1, reps)):
                start = time.perf_counter()
                solve_cuts(energy, executor, threads)
                runs.append(time.perf_counter() - start)
            seconds[n] = statistics.median(runs)
    finally:
        if executor is not None:
            executor.shutdown()
    return seconds


def graph_cut_seconds(batch: int, size: int, threads: int, reps: int = 3, seed: int = 0) -> float:
    """Expected seconds of one batch's cuts: the mean over PuzzleMix's grid sizes (drawn uniformly)."""
    by_grid = graph_cut_seconds_by_grid(batch, size, threads, reps, seed)
    return sum(by_grid.values()) / len(by_grid)


def thread_counts() -> list:
    """1, 2 and every core (``mixer.workers=0``), without repeats: the thread counts the benchmark times."""
    return sorted({1, 2, os.cpu_count() or 1})
