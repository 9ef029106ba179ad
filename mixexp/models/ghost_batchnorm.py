"""BatchNorm over fixed groups of a batch ("ghost" BatchNorm, Hoffer et al. 2017).

In training, a batch of B = n * G examples is normalised group by group: examples [kG, (k+1)G) with the mean
and variance of their own group. This is what data-parallel training without synchronised BatchNorm does
with a per-device batch of G: uncertainty-baselines trains ImageNet on 32 TPU cores x 128 images, each core
normalising its own 128 (TPU replicas' BatchNorm is per replica). The running statistics are updated as the
replicas' mirrored averages are: each group moves them from the same start, and the groups' results are
averaged, i.e. the usual update with the groups' mean statistics. Evaluation is plain BatchNorm.
"""

from __future__ import annotations

import torch
from torch import nn

from mixexp.errors import ConfigError


class GhostBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters, buffers and state_dict keys) whose training statistics are those of
    each group of ``group_size`` consecutive examples. A batch of at most ``group_size`` examples is one group; a
    batch that is not a multiple of it ends with a smaller group."""

    def __init__(self, num_features: int, group_size: int, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.group_size = int(group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.shape[0] <= self.group_size:
            return super().forward(x)
        factor = self._factor()
        full, rest = divmod(x.shape[0], self.group_size)
        parts = [(x[: full * self.group_size], full)] + ([(x[full * self.group_size:], 1)] if rest else [])
        outs, means, variances = [], [], []
        for part, n in parts:
            out, mean, var = self._normalise_groups(part, n)
            outs.append(out)
            means.append(mean)
            variances.append(var)
        if self.track_running_stats:
            with torch.no_grad():  # every group moves the statistics from the same start; the moves are averaged
                self.running_mean.lerp_(torch.cat(means).mean(0), factor)
                self.running_var.lerp_(torch.cat(variances).mean(0), factor)
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def _factor(self) -> float:
        """The running-average factor of this step, as ``nn.BatchNorm2d`` computes it."""
        if not self.track_running_stats:
            return 0.0
        self.num_batches_tracked.add_(1)
        return 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum

    def _normalise_groups(self, x: torch.Tensor, n: int):
        """(x normalised in n equal groups, each group's mean (n, C) and unbiased variance (n, C)). Statistics in
        float32 (as BatchNorm's under autocast); broadcasting keeps x's memory format (channels_last too)."""
        groups = x.unflatten(0, (n, x.shape[0] // n))  # (n, G, C, H, W)
        dims = (1, *range(3, groups.dim()))
        var, mean = torch.var_mean(groups.float(), dim=dims, unbiased=False, keepdim=True)
        out = (groups - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            shape = (1, 1, -1) + (1,) * (groups.dim() - 3)
            out = out * self.weight.view(shape) + self.bias.view(shape)
        count = groups[0].numel() // groups.shape[2]  # values per channel in a group
        return (out.to(x.dtype).flatten(0, 1), mean.detach().view(n, -1),
                var.detach().view(n, -1) * count / max(count - 1, 1))


def convert_ghost_batchnorm(module: nn.Module, group_size: int) -> nn.Module:
    """``module`` with every ``nn.BatchNorm2d`` replaced by a :class:`GhostBatchNorm2d` holding the same
    parameters and statistics (in place for children; the converted module is returned). A subclass of
    BatchNorm2d that computes more than the normalisation (timm's BatchNormAct2d adds its activation) is
    refused: replacing it would drop that computation."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and type(module) is not GhostBatchNorm2d:
        if type(module) is not nn.BatchNorm2d:
            raise ConfigError(f"trainer.bn_group_size={group_size} is not allowed for this model: its "
                              f"{type(module).__name__} layers are not plain BatchNorm2d (use 0)")
        ghost = GhostBatchNorm2d(module.num_features, group_size, eps=module.eps, momentum=module.momentum,
                                 affine=module.affine, track_running_stats=module.track_running_stats)
        ghost.load_state_dict(module.state_dict())
        return ghost.to(next(iter(module.state_dict().values())).device) if module.state_dict() else ghost
    for name, child in module.named_children():
        setattr(module, name, convert_ghost_batchnorm(child, group_size))
    return module
