"""LaMix Fig 7: Grad-CAM maps (Selvaraju et al. 2017) of models trained with each method, on the same
test images, taken at the last convolutional block.

For activations A (C, h, w) of that block and the class score s_y of the true label,
weights a_c = mean_{h,w} ds_y/dA_c, map = ReLU(sum_c a_c A_c), upsampled (bilinear) to the image and
scaled to [0, 1] per image (all zero when the map is).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import torch
import torch.nn.functional as F

from mixexp.plots.common import plt, save_figure
from mixexp.plots.features import last_conv_block


def grad_cam(model, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Grad-CAM maps (B, H, W) in [0, 1] for ``labels``' scores (hooks on :func:`last_conv_block`)."""
    layer = last_conv_block(model)
    saved = {}
    handle = layer.register_forward_hook(lambda module, inputs, output: saved.update(act=output))
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(images)
            activation = saved["act"]
            grads, = torch.autograd.grad(logits.gather(1, labels[:, None]).sum(), activation)
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12)[:, None, None]
    return (cam / peak).cpu()


def _display(image: torch.Tensor):
    """A normalised input scaled to [0, 1] for display (H, W) or (H, W, 3)."""
    image = image.float().cpu()
    image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-12)
    return (image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)).numpy()


def grad_cam_figure(models: Dict[str, torch.nn.Module], images: torch.Tensor, labels: torch.Tensor,
                    out_dir: Path, name: str = "lamix_fig7_gradcam") -> List[Path]:
    """Rows: the test images; columns: the image, then each method's Grad-CAM map over it."""
    maps = {label: grad_cam(model, images, labels) for label, model in models.items()}
    n, cols = len(images), 1 + len(models)
    fig, axes = plt.subplots(n, cols, figsize=(1.9 * cols, 1.9 * n), squeeze=False)
    rows = []
    for i in range(n):
        picture = _display(images[i])
        axes[i][0].imshow(picture, cmap="gray" if picture.ndim == 2 else None)
        axes[i][0].set_ylabel(f"class {int(labels[i])}")
        for j, (label, cam) in enumerate(maps.items(), start=1):
            axes[i][j].imshow(picture, cmap="gray" if picture.ndim == 2 else None)
            shown = axes[i][j].imshow(cam[i].numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if i == 0:
                axes[i][j].set_title(label, fontsize=9)
        axes[0][0].set_title("test image", fontsize=9)
        grey = images[i].float().mean(dim=0)
        for r in range(images.shape[-2]):
            for c in range(images.shape[-1]):
                rows.append({"image": i, "label": int(labels[i]), "row": r, "col": c, "pixel": float(grey[r, c]),
                             **{f"cam_{label}": float(cam[i, r, c]) for label, cam in maps.items()}})
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=axes, shrink=0.6, label="Grad-CAM (0 to 1, per image)")
    fig.suptitle("LaMix Fig 7: Grad-CAM at the last convolutional block (true class)")
    return save_figure(fig, out_dir, name, rows)
