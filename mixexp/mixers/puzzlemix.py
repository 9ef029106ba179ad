"""PuzzleMix (Kim, Choo & Song, ICML 2020): a saliency-aware graph-cut mask plus block transport.

Per batch (one lambda ~ Beta(alpha, alpha), partner j = perm(i), grid of n x n blocks, n drawn from
``block_sizes``; block size (H/n, W/n)):

1. **Saliency.** s = sqrt(mean_c (d CE(f(x), y) / d x)^2), shape (B, H, W), from one clean pass.

2. **Graph cut per pair (i, j)** on the n x n grid with L labels (3 by default). Label l puts the
   mask value m_l = 1 - l/(L-1) (1, 0.5, 0) on a block: the block is m * x_i + (1 - m) * x_j.
   The energy of a labelling is

       sum_blocks [ m * U_i + (1 - m) * U_j + prior(m) ]  +  sum_neighbours  w_st * (m_s - m_t)^2

   * Saliency term: S = saliency average-pooled to the grid and normalised to sum 1 per image.
     Keeping image i at a block (m = 1) loses the partner's saliency there, so U_i = S_j and
     U_j = S_i (plus the unary parts of the data-local term below): the image whose block is more
     salient is the cheaper one to keep.
   * Prior: prior(m_l) = eta * (-log p_l) / n^2 with p_l = C(L-1, l) lambda^(L-1-l) (1-lambda)^l,
     i.e. (lambda^2, 2 lambda (1-lambda), (1-lambda)^2) for 3 labels: lambda sets the expected share.
   * Smoothness: with beta' = beta / (16 n) (the official normalisation), each pair of neighbouring
     blocks pays beta' * (m_s - m_t)^2 (label smoothness, (l - l')^2 / (L-1)^2), plus the data-local
     term beta' * gamma * phi(a, b), where phi(a, b) is the mean absolute difference, across the
     shared block boundary, of image a on block s and image b on block t (images in pixel units,
     average-pooled with ``neigh_size`` cells, averaged over channels and along the boundary; the
     official code uses this L1 distance). The four binary combinations are written exactly as
     unary parts plus a Potts part,

         phi(a, b) = (phi(a,i) + phi(a,j))/2 [on s]  +  (phi(i,b) + phi(j,b))/2 [on t]
                     + w [a != b] + const,       w = (phi(i,j) + phi(j,i) - phi(i,i) - phi(j,j)) / 2,

     and carried to the three labels by interpolating the unary parts in m and giving the edge the
     weight w_st = beta' * (1 + gamma * w) on the label distance (m_s - m_t)^2 (clipped at 0).

   The cut is solved by alpha-beta swap with ``gco`` (gco-wrapper) on integer costs: each pair's
   costs are scaled so that its largest unary cost is 10^6, and edge weights are capped so that no
   energy term can overflow int32.

3. **Transport** (optional): inside each image, salient blocks move to positions the mask keeps (see
   :mod:`mixexp.mixers.puzzlemix_transport`); x_i' from the mask, x_j' from 1 - mask.

4. **Mix**: x~ = mask * x_i' + (1 - mask) * x_j', with the mask upsampled (nearest) to H x W, and
   the label weight lam_i = mean(mask_i), one per example.

Threads, not processes: gco's solver runs inside ctypes calls, which release the GIL (checked: a
Python loop keeps running in another thread during a long ``swap``), so the pairs of a batch are cut
in a ``ThreadPoolExecutor`` (``workers`` threads, contiguous chunks of pairs) with no pickling or
worker start-up. The per-pair Python set-up in gco's wrapper (~70 us) still holds the GIL. gco keeps
its graphs in a global C++ map without a lock, so graphs are only created and destroyed by the
calling thread, under a module lock held for the whole batch, while the worker threads only look
theirs up (concurrent look-ups are safe) and solve. The accelerator waits while the cuts run: they
need the saliency of the current batch and the training step needs their mask.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mixexp.errors import FINITE, finite, one_of, require
from mixexp.mixers.base import MixedBatch, Mixer, PairMixingConfig, random_partner, sample_lambda
from mixexp.mixers.puzzlemix_transport import TRANSPORT_SOLVERS, apply_transport, transport_plan

GRID_SIZES = (2, 4, 8, 16)
# Per pair, costs are scaled so that the largest unary cost is this integer ...
_UNARY_SCALE = 1_000_000
# ... and an edge weight times the largest label distance stays below this (no int32 overflow in gco).
_EDGE_TERM_CAP = 100_000_000
_PRIOR_EPS = 1e-8
_GCO_LOCK = threading.Lock()


# ----------------------------------------------------------------------------------------- saliency


def input_saliency(grad: torch.Tensor) -> torch.Tensor:
    """sqrt(mean over channels of grad^2): (B, C, H, W) -> (B, H, W).

    A diverged model's non-finite gradients count as no saliency, so that the cut still gets finite
    costs (the trainer warns about the divergence itself)."""
    return torch.nan_to_num(grad.float().pow(2).mean(dim=1).sqrt(), nan=0.0, posinf=0.0, neginf=0.0)


def valid_grid_sizes(sizes: Sequence[int], height: int, width: int) -> List[int]:
    """The grid sizes n whose blocks tile the image exactly (n divides H and W); larger ones are skipped."""
    return [int(n) for n in sizes if 0 < n <= min(height, width) and height % n == 0 and width % n == 0]


def _largest_divisor_at_most(m: int, k: int) -> int:
    return max(d for d in range(1, max(1, min(m, k)) + 1) if m % d == 0)


# ----------------------------------------------------------------------------------------- energy


class CutEnergy(NamedTuple):
    """The graph-cut energy of a batch of pairs, in float64 on the host.

    unary (B, n, n, L): cost of each label at each block; edge_v (B, n-1, n): weight between block
    rows r and r+1; edge_h (B, n, n-1): between block columns c and c+1; smooth (L, L): the label
    distance ((l - l') / (L-1))^2 that multiplies an edge weight.
    """

    unary: np.ndarray
    edge_v: np.ndarray
    edge_h: np.ndarray
    smooth: np.ndarray


def label_prior(lam: torch.Tensor, n_labels: int, eta: float, n_blocks: int) -> torch.Tensor:
    """eta * -log p_l / n^2 with p_l = C(L-1, l) lam^(L-1-l) (1-lam)^l: (B,) -> (B, L)."""
    lam = lam.double().clamp(0.0, 1.0).unsqueeze(1)
    k = n_labels - 1
    l = torch.arange(n_labels, dtype=torch.float64, device=lam.device)
    binom = torch.tensor([math.comb(k, i) for i in range(n_labels)], dtype=torch.float64, device=lam.device)
    p = binom * lam.pow(k - l) * (1.0 - lam).pow(l)
    return eta * -torch.log(p + _PRIOR_EPS) / n_blocks ** 2


def _boundary_terms(pooled: Tuple[torch.Tensor, torch.Tensor], n: int, kh: int, kw: int):
    """phi[a][b] across vertical (B, n-1, n) and horizontal (B, n, n-1) block boundaries.

    a is the image on the first block (above / left), b on the second; 0 = own image, 1 = partner.
    """
    phi_v = [[None, None], [None, None]]
    phi_h = [[None, None], [None, None]]
    for a in (0, 1):
        for b in (0, 1):
            top = pooled[a][:, :, kh - 1:(n - 1) * kh:kh, :]
            bottom = pooled[b][:, :, kh:n * kh:kh, :]
            d = (top - bottom).abs().mean(1)  # (B, n-1, n*kw)
            phi_v[a][b] = d.reshape(d.shape[0], n - 1, n, kw).mean(-1)
            left = pooled[a][:, :, :, kw - 1:(n - 1) * kw:kw]
            right = pooled[b][:, :, :, kw:n * kw:kw]
            d = (left - right).abs().mean(1)  # (B, n*kh, n-1)
            phi_h[a][b] = d.reshape(d.shape[0], n, kh, n - 1).mean(2)
    return phi_v, phi_h


def cut_energy(x: torch.Tensor, saliency: torch.Tensor, partner: torch.Tensor, lam, n_blocks: int,
               beta: float = 1.2, gamma: float = 0.5, eta: float = 0.2, neigh_size: int = 4,
               n_labels: int = 3, pixel_std: Optional[Sequence[float]] = None) -> CutEnergy:
    """The energy of the module docstring (step 2) for every pair (i, partner[i]), computed batched on x's device.

    ``lam`` is a float or a (B,) tensor. ``pixel_std`` (per channel) maps normalised inputs back to
    pixel units for the data-local term; None takes the inputs as pixel values.
    """
    b, c, h, w = x.shape
    n = int(n_blocks)
    bh, bw = h // n, w // n
    if n < 2 or bh * n != h or bw * n != w:
        raise ValueError(f"a {n}x{n} grid does not tile {h}x{w} images (need n >= 2 dividing H and W)")
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        x = x.detach().float()
        lam_t = torch.as_tensor(lam, dtype=torch.float64, device=x.device).reshape(-1).expand(b)
        s = F.avg_pool2d(saliency.detach().float().unsqueeze(1), (bh, bw)).squeeze(1).double()
        s = s / s.sum(dim=(1, 2), keepdim=True).clamp_min(1e-30)
        # cost of keeping own image (m = 1) = partner saliency lost, and the other way round
        unary_img = [s[partner].clone(), s.clone()]

        beta_n = beta / (16.0 * n)
        nh, nw = _largest_divisor_at_most(bh, neigh_size), _largest_divisor_at_most(bw, neigh_size)
        if pixel_std is not None and len(pixel_std) > 0:
            std = torch.as_tensor(list(pixel_std), dtype=x.dtype, device=x.device).reshape(-1)
            x = x * (std.view(1, -1, 1, 1) if std.numel() == c else std.mean())
        pooled = F.avg_pool2d(x, (nh, nw)).double()
        phi_v, phi_h = _boundary_terms((pooled, pooled[partner]), n, bh // nh, bw // nw)

        data = beta_n * gamma
        for a in (0, 1):
            unary_img[a][:, :-1, :] += data * (phi_v[a][0] + phi_v[a][1]) / 2  # a on the upper block
            unary_img[a][:, 1:, :] += data * (phi_v[0][a] + phi_v[1][a]) / 2   # a on the lower block
            unary_img[a][:, :, :-1] += data * (phi_h[a][0] + phi_h[a][1]) / 2  # a on the left block
            unary_img[a][:, :, 1:] += data * (phi_h[0][a] + phi_h[1][a]) / 2   # a on the right block

        def potts(phi):
            return (beta_n * (1.0 + gamma * (phi[0][1] + phi[1][0] - phi[0][0] - phi[1][1]) / 2)).clamp_min(0.0)

        m = 1.0 - torch.arange(n_labels, dtype=torch.float64, device=x.device) / (n_labels - 1)
        unary = m * unary_img[0].unsqueeze(-1) + (1.0 - m) * unary_img[1].unsqueeze(-1)
        unary = unary + label_prior(lam_t, n_labels, eta, n).view(b, 1, 1, n_labels)
        edge_v, edge_h = potts(phi_v), potts(phi_h)
        flat = torch.cat([unary.flatten(), edge_v.flatten(), edge_h.flatten()]).cpu().numpy()  # one host sync
    nu, nv = unary.numel(), edge_v.numel()
    labels = np.arange(n_labels, dtype=np.float64)
    smooth = ((labels[:, None] - labels[None, :]) / (n_labels - 1)) ** 2
    return CutEnergy(flat[:nu].reshape(b, n, n, n_labels), flat[nu:nu + nv].reshape(b, n - 1, n),
                     flat[nu + nv:].reshape(b, n, n - 1), smooth)


# ----------------------------------------------------------------------------------------- cuts


@lru_cache(maxsize=16)
def _grid_edges(n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Edge end points of the n x n grid, row-major sites: vertical edges first, then horizontal."""
    idx = np.arange(n * n, dtype=np.intc).reshape(n, n)
    first = np.concatenate([idx[:-1, :].ravel(), idx[:, :-1].ravel()])
    second = np.concatenate([idx[1:, :].ravel(), idx[:, 1:].ravel()])
    return first, second


def _integer_costs(energy: CutEnergy):
    """Scale every pair's costs to integers (largest unary 10^6); edges capped against int32 overflow."""
    b, n, _, n_labels = energy.unary.shape
    peak = energy.unary.reshape(b, -1).max(axis=1)
    scale = _UNARY_SCALE / np.maximum(peak, 1e-30)
    unary = np.rint(energy.unary * scale[:, None, None, None]).astype(np.intc)
    # gco takes an integer label distance: (l - l')^2, with 1 / (L-1)^2 moved into the edge weight
    smooth = np.rint(energy.smooth * (n_labels - 1) ** 2).astype(np.intc)
    cap = _EDGE_TERM_CAP // max(1, int(smooth.max()))
    edges = np.concatenate([energy.edge_v.reshape(b, -1), energy.edge_h.reshape(b, -1)], axis=1)
    edges = np.clip(np.rint(edges * (scale / (n_labels - 1) ** 2)[:, None]), 0, cap).astype(np.intc)
    return unary.reshape(b, n * n, n_labels), edges, smooth


def solve_cuts(energy: CutEnergy, executor: Optional[ThreadPoolExecutor] = None, workers: int = 1) -> np.ndarray:
    """Labels (B, n, n) minimising each pair's energy: gco alpha-beta swap, run to convergence.

    With an ``executor`` the pairs are split into ``workers`` contiguous chunks solved in its threads.
    """
    import gco

    unary, edges, smooth = _integer_costs(energy)
    b, sites, n_labels = unary.shape
    n = energy.unary.shape[1]
    first, second = _grid_edges(n)
    labels = np.empty((b, sites), dtype=np.int64)

    with _GCO_LOCK:  # graphs are created and destroyed by this thread only (gco's registry is unlocked)
        graphs = []
        try:
            for _ in range(b):
                graph = gco.GCO()
                graph.create_general_graph(sites, n_labels)
                graphs.append(graph)

            def solve(lo: int, hi: int) -> None:
                for i in range(lo, hi):
                    graph = graphs[i]
                    graph.set_data_cost(unary[i])
                    graph.set_all_neighbors(first, second, edges[i])
                    graph.set_smooth_cost(smooth)
                    graph.swap(-1)
                    labels[i] = graph.get_labels()

            chunks = max(1, min(workers, b))
            if executor is None or chunks == 1:
                solve(0, b)
            else:
                bounds = np.linspace(0, b, chunks + 1).astype(int)
                futures = [executor.submit(solve, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
                for future in futures:
                    future.result()
        finally:
            for graph in graphs:
                graph.destroy_graph()
    return labels.reshape(b, n, n)


def graph_cut_mask(x: torch.Tensor, saliency: torch.Tensor, partner: torch.Tensor, lam, n_blocks: int,
                   beta: float = 1.2, gamma: float = 0.5, eta: float = 0.2, neigh_size: int = 4,
                   n_labels: int = 3, pixel_std: Optional[Sequence[float]] = None,
                   executor: Optional[ThreadPoolExecutor] = None, workers: int = 1) -> torch.Tensor:
    """The optimal mask on the block grid, (B, n, n) with values 1 - l/(L-1) (1, 0.5, 0), on x's device."""
    energy = cut_energy(x, saliency, partner, lam, n_blocks, beta, gamma, eta, neigh_size, n_labels, pixel_std)
    labels = solve_cuts(energy, executor, workers)
    return 1.0 - torch.from_numpy(labels).to(x.device, torch.float32) / (n_labels - 1)


# ----------------------------------------------------------------------------------------- mixing


def transport_grid(height: int, width: int, n_blocks: int, t_size: int) -> int:
    """Side of the transport grid: H // t_size when t_size is a proper divisor of the block height, else n.

    ``t_size = -1`` (or a size >= the block size, or one that does not divide it) moves whole blocks
    of the cut's grid, as in PuzzleMix. Each cut block is split r x r with r = (H/n) / t_size, which
    must also divide the block width.
    """
    bh, bw = height // n_blocks, width // n_blocks
    if 0 < t_size < bh and bh % t_size == 0 and bw % (bh // t_size) == 0:
        return n_blocks * (bh // t_size)
    return n_blocks


def _grid_saliency(saliency: torch.Tensor, g: int) -> torch.Tensor:
    h, w = saliency.shape[-2:]
    s = F.avg_pool2d(saliency.float().unsqueeze(1), (h // g, w // g)).flatten(1)
    return s / s.sum(1, keepdim=True).clamp_min(1e-30)


def puzzle_mix(x: torch.Tensor, saliency: torch.Tensor, partner: torch.Tensor, lam, n_blocks: int, *,
               beta: float = 1.2, gamma: float = 0.5, eta: float = 0.2, neigh_size: int = 4, n_labels: int = 3,
               transport: bool = True, t_eps: float = 0.8, t_size: int = -1,
               pixel_std: Optional[Sequence[float]] = None,
               inputs: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
               executor: Optional[ThreadPoolExecutor] = None, workers: int = 1,
               t_solver: str = "auto") -> Tuple[torch.Tensor, torch.Tensor]:
    """PuzzleMix's mixing for given saliency, partners, lambda (float or (B,)) and grid size.

    Returns ``(mixed, mask)``, mask (B, 1, H, W) in {0, 1/(L-1), ..., 1}; the label weight of
    example i is ``mask[i].mean()``. ``inputs = (x1, x2)`` are the images actually mixed (e.g.
    adversarially perturbed copies of ``x`` and ``x[partner]``); the energy always uses ``x``.
    ``n_blocks = 1`` leaves the batch unmixed (mask of ones), as the official code does.
    """
    b, _, h, w = x.shape
    x1, x2 = inputs if inputs is not None else (x, x[partner])
    if n_blocks == 1:
        return x1, torch.ones(b, 1, h, w, device=x.device, dtype=x.dtype)
    grid_mask = graph_cut_mask(x, saliency, partner, lam, n_blocks, beta, gamma, eta, neigh_size, n_labels,
                               pixel_std, executor, workers)
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        x1, x2 = x1.detach(), x2.detach()
        if transport:
            g = transport_grid(h, w, n_blocks, t_size)
            r = g // n_blocks
            mask_t = grid_mask.repeat_interleave(r, 1).repeat_interleave(r, 2).flatten(1)
            s_t = _grid_saliency(saliency.detach(), g)
            plan1 = transport_plan(mask_t > 0, s_t, t_eps, t_solver, executor=executor, workers=workers)
            plan2 = transport_plan(mask_t < 1, s_t[partner], t_eps, t_solver, executor=executor, workers=workers)
            x1, x2 = apply_transport(x1, plan1, g), apply_transport(x2, plan2, g)
        mask = grid_mask.repeat_interleave(h // n_blocks, 1).repeat_interleave(w // n_blocks, 2).unsqueeze(1)
        mask = mask.to(x1.dtype)
        mixed = mask * x1 + (1.0 - mask) * x2
    return mixed, mask


# ----------------------------------------------------------------------------------------- mixer


class PuzzleMix(Mixer):
    """PuzzleMix as a mixer: saliency pass, graph-cut mask, transport, lam_i = mask mean.

    ``clean_lam > 0``: the saliency pass runs in train mode and ``clean_loss_scale * clean_lam * CE(f(x), y)``
    is returned as ``extra_loss`` (the config sets ``clean_loss_scale = 2 / num_classes``, as PuzzleMix's
    ``main.py``: ``2 * args.clean_lam * criterion_batch(output, target) / args.num_classes``) (its graph kept for the trainer's backward). ``clean_lam == 0``: the
    pass runs in eval mode (train mode restored after), only the input gradient is taken, and no
    parameter receives a gradient from it.

    Adversarial option (``adv_p > 0``): an FGSM step of ``adv_eps / 255`` pixel units in the sign of
    the saliency pass's input gradient, divided by ``pixel_std`` to be in the normalised units the
    model sees (without ``pixel_std`` the inputs are taken as pixel values). Each example, as the
    first image and as a partner, is perturbed with probability ``adv_p`` independently. Unlike the
    official code there is no random start, no random rescaling of the step and no clipping to the
    valid pixel range.

    Grid sizes that do not tile the image (n > H, or H or W not divisible by n) are skipped, so 8x8
    digits draw n from {2, 4, 8}; if none is left the call raises ``ValueError``.

    ``workers`` threads cut the pairs of a batch (0: one per CPU core; 1: the calling thread only).
    ``per_sample`` draws one lambda per pair (the prior then differs per pair); ``prob < 1`` leaves a
    whole batch unmixed with probability 1 - prob; ``alpha = 0`` never mixes.
    """

    def __init__(self, alpha: float = 1.0, block_sizes: Sequence[int] = GRID_SIZES, beta: float = 1.2,
                 gamma: float = 0.5, eta: float = 0.2, neigh_size: int = 4, n_labels: int = 3,
                 transport: bool = True, t_eps: float = 0.8, t_size: int = -1, t_solver: str = "auto",
                 clean_lam: float = 0.0,
                 adv_p: float = 0.0, adv_eps: float = 10.0, pixel_std: Sequence[float] = (),
                 workers: int = 0, per_sample: bool = False, prob: float = 1.0, clean_loss_scale: float = 1.0) -> None:
        super().__init__()
        self.alpha, self.per_sample, self.prob = float(alpha), bool(per_sample), float(prob)
        self.block_sizes = [int(n) for n in block_sizes]
        self.beta, self.gamma, self.eta = float(beta), float(gamma), float(eta)
        self.neigh_size, self.n_labels = int(neigh_size), int(n_labels)
        self.transport, self.t_eps, self.t_size = bool(transport), float(t_eps), int(t_size)
        self.t_solver = str(t_solver)
        self.clean_lam, self.adv_p, self.adv_eps = float(clean_lam), float(adv_p), float(adv_eps)
        self.clean_loss_scale = float(clean_loss_scale)
        self.pixel_std = [float(s) for s in pixel_std]
        self.workers = int(workers) if workers else (os.cpu_count() or 1)
        self._executor: Optional[ThreadPoolExecutor] = None

    def __getstate__(self):  # the thread pool is neither copied nor pickled
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        state = dict(state)
        state["_executor"] = None
        return state

    def executor(self) -> Optional[ThreadPoolExecutor]:
        if self.workers <= 1:
            return None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="puzzlemix-cut")
        return self._executor

    def check_input_shape(self, shape: tuple) -> None:
        _, h, w = shape
        if not valid_grid_sizes(self.block_sizes, h, w):
            raise ValueError(f"mixer.block_sizes={list(self.block_sizes)} is not allowed for {h}x{w} images: "
                             f"each grid size must divide {h} and {w}")

    def saliency(self, x: torch.Tensor, y: torch.Tensor, model: nn.Module, clean_lam: Optional[float] = None):
        """(saliency (B, H, W), input gradient (B, C, H, W), clean_lam * clean loss or None).

        ``clean_lam`` defaults to the mixer's own.
        """
        clean_lam = self.clean_lam if clean_lam is None else clean_lam
        x_in = x.detach().requires_grad_(True)
        with torch.enable_grad():
            if clean_lam > 0:
                loss = F.cross_entropy(model(x_in).float(), y)
                (grad,) = torch.autograd.grad(loss, x_in, retain_graph=True)
                return input_saliency(grad), grad, self.clean_loss_scale * clean_lam * loss
            was_training = model.training
            model.eval()
            try:
                loss = F.cross_entropy(model(x_in).float(), y)
                (grad,) = torch.autograd.grad(loss, x_in)
            finally:
                model.train(was_training)
        return input_saliency(grad), grad, None

    def _adversarial(self, x: torch.Tensor, grad: torch.Tensor, partner: torch.Tensor):
        c = x.shape[1]
        std = torch.tensor(self.pixel_std or [1.0], dtype=x.dtype, device=x.device)
        std = std.view(1, -1, 1, 1) if std.numel() == c else std.mean()
        x_adv = x.detach() + (self.adv_eps / 255.0) / std * grad.sign().to(x.dtype)
        b = x.shape[0]
        first = (torch.rand(b, device=x.device) < self.adv_p).view(b, 1, 1, 1)
        second = (torch.rand(b, device=x.device) < self.adv_p).view(b, 1, 1, 1)
        return torch.where(first, x_adv, x), torch.where(second, x_adv[partner], x[partner])

    def _grids(self, x: torch.Tensor) -> List[int]:
        h, w = x.shape[-2:]
        grids = valid_grid_sizes(self.block_sizes, h, w)
        if not grids:
            raise ValueError(f"PuzzleMix: no grid size in block_sizes={self.block_sizes} tiles {h}x{w} images")
        return grids

    def _mix(self, x, saliency, partner, lam, n, inputs=None):
        return puzzle_mix(
            x, saliency, partner, lam, n, beta=self.beta, gamma=self.gamma, eta=self.eta,
            neigh_size=self.neigh_size, n_labels=self.n_labels, transport=self.transport, t_eps=self.t_eps,
            t_size=self.t_size, pixel_std=self.pixel_std or None, inputs=inputs, executor=self.executor(),
            workers=self.workers, t_solver=self.t_solver,
        )

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None,
                model: Optional[nn.Module] = None) -> MixedBatch:
        if y is None or model is None:
            raise ValueError("PuzzleMix needs the labels and the model: its saliency is an input gradient")
        b = x.shape[0]
        grids = self._grids(x)
        saliency, grad, extra = self.saliency(x, y, model)
        if self.alpha <= 0 or (self.prob < 1.0 and torch.rand(()).item() >= self.prob):
            return MixedBatch(x, torch.arange(b, device=x.device), torch.ones(b, device=x.device), extra)
        n = grids[int(torch.randint(len(grids), ()).item())]
        lam = sample_lambda(self.alpha, b, self.per_sample, 1.0, x.device)
        partner = random_partner(b, x.device)
        inputs = self._adversarial(x, grad, partner) if self.adv_p > 0 else None
        mixed, mask = self._mix(x, saliency, partner, lam, n, inputs)
        return MixedBatch(mixed, partner, mask.flatten(1).float().mean(1), extra)

    def mix_at_half(self, x: torch.Tensor, y: torch.Tensor, model: nn.Module, partner: torch.Tensor):
        """(PuzzleMix's mixed inputs at lambda = 0.5 with the given partners, clean loss or None), for LaMix
        on PuzzleMix inputs. The saliency pass adds the clean loss as PuzzleMix's own does (``clean_lam``);
        no adversarial step is taken."""
        grids = self._grids(x)
        saliency, _, extra = self.saliency(x, y, model)
        n = grids[int(torch.randint(len(grids), ()).item())]
        return self._mix(x, saliency, partner, 0.5, n)[0], extra


@dataclass
class PuzzleMixConfig(PairMixingConfig):
    """``mixer=puzzlemix``; the official CIFAR values are the defaults (conf/mixer/puzzlemix.yaml cites them)."""

    name: str = "puzzlemix"
    # Grid sizes n (blocks per side) drawn uniformly per batch; sizes that do not tile the image are skipped.
    block_sizes: List[int] = field(default_factory=lambda: list(GRID_SIZES))
    # Graph cut: label smoothness beta, data-local smoothness gamma, prior eta, cells of the
    # smoothness pooling, number of mask values (3: {1, 0.5, 0}).
    beta: float = 1.2
    gamma: float = 0.5
    eta: float = 0.2
    neigh_size: int = 4
    n_labels: int = 3
    # Transport of salient blocks: cost weight t_eps of the move distance, block size t_size in pixels
    # (-1: the cut's blocks), solver "approx" (PuzzleMix's greedy claims, mixup.py mask_transport), "exact"
    # (the optimal assignment), "auto" (approx on an accelerator, exact on the CPU, where it is faster).
    transport: bool = True
    t_eps: float = 0.8
    t_size: int = 4
    t_solver: str = "approx"
    # The clean loss times clean_lam is added to the loss (0: the saliency pass runs in eval mode, no gradient).
    clean_lam: float = 0.0
    # Adversarial PuzzleMix: FGSM step of adv_eps/255 pixel units with probability adv_p per example.
    adv_p: float = 0.0
    adv_eps: float = 10.0
    # Per-channel std of the input normalisation (pixel units), for adv_eps and the smoothness term;
    # empty: the inputs are taken as pixel values.
    pixel_std: List[float] = field(default_factory=list)
    # Threads that run the graph cuts (0: os.cpu_count(); 1: the calling thread).
    workers: int = 0

    def check(self, cfg) -> None:
        super().check(cfg)
        require(len(self.block_sizes) > 0 and all(n > 0 for n in self.block_sizes), "mixer.block_sizes",
                list(self.block_sizes), "must be a non-empty list of grid sizes > 0")
        for key in ("beta", "gamma", "eta", "t_eps", "clean_lam"):
            require(finite(getattr(self, key)), f"mixer.{key}", getattr(self, key), FINITE)
            require(getattr(self, key) >= 0, f"mixer.{key}", getattr(self, key), "must be >= 0")
        require(self.neigh_size > 0, "mixer.neigh_size", self.neigh_size, "must be a whole number > 0")
        require(self.n_labels >= 2, "mixer.n_labels", self.n_labels, "must be a whole number >= 2")
        require(self.t_size == -1 or self.t_size > 0, "mixer.t_size", self.t_size, "must be > 0 or -1 (the cut's blocks)")
        one_of("mixer.t_solver", self.t_solver, TRANSPORT_SOLVERS)
        require(0.0 <= self.adv_p <= 1.0, "mixer.adv_p", self.adv_p, "must be a probability in [0, 1]")
        require(finite(self.adv_eps), "mixer.adv_eps", self.adv_eps, FINITE)
        require(self.adv_eps >= 0, "mixer.adv_eps", self.adv_eps, "must be >= 0 (pixel units / 255)")
        require(all(finite(v) for v in self.pixel_std), "mixer.pixel_std", list(self.pixel_std),
                "every value must be a finite number")
        require(all(v > 0 for v in self.pixel_std), "mixer.pixel_std", list(self.pixel_std), "every value must be > 0")
        require(self.workers >= 0, "mixer.workers", self.workers, "must be >= 0 (0: one per CPU core)")

    def build(self, num_classes: int = 0, feature_dim: int = 0) -> PuzzleMix:
        return PuzzleMix(
            alpha=self.alpha, block_sizes=self.block_sizes, beta=self.beta, gamma=self.gamma, eta=self.eta,
            neigh_size=self.neigh_size, n_labels=self.n_labels, transport=self.transport, t_eps=self.t_eps,
            t_size=self.t_size, t_solver=self.t_solver, clean_lam=self.clean_lam, adv_p=self.adv_p,
            adv_eps=self.adv_eps, pixel_std=self.pixel_std, workers=self.workers, per_sample=self.per_sample,
            prob=self.prob, clean_loss_scale=2.0 / num_classes if num_classes else 1.0,
        )
