"""Tiny datasets in each publisher's released format, for tests and smoke runs (no real download).

``write_tree(root)`` writes every dataset under ``root/<name>/`` exactly as ``mixexp-data`` expects the
released files, and returns, per dataset, the checksums and counts of these tiny files. ``patch_sources``
puts them into ``SOURCES`` (with pytest's monkeypatch), so the real verification and reading code runs.

Pixel values encode what a test needs to check: CIFAR-style image ``i`` is filled with ``i``; CIFAR-C
rows of severity ``s`` of corruption ``k`` are filled with ``20 * s + k``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any, Dict

import numpy as np
from PIL import Image

from mixexp.data.sources import CORRUPTIONS, OBJECTNET_MAPPINGS
from mixexp.data.store import SOURCES

N_TRAIN, N_TEST = 20, 10  # CIFAR / MNIST-style / SVHN
C_PER_SEVERITY = 4  # CIFAR-C rows per severity
TINY_WNIDS = ["n01443537", "n01629819", "n01641577"]
TINY_TRAIN_PER_CLASS, TINY_VAL = 4, 6
IMAGENET_WNIDS = ["n00000001", "n00000002", "n00000003"]
LSUN_N = 6


def md5(path: Path) -> str:
    return "md5:" + hashlib.md5(Path(path).read_bytes()).hexdigest()


def filled(n: int, h: int = 32, w: int = 32, offset: int = 0) -> np.ndarray:
    """uint8 (n, h, w, 3): image i is filled with offset + i (mod 256)."""
    return ((np.arange(n, dtype=np.int64) + offset) % 256).astype(np.uint8)[:, None, None, None].repeat(h, 1).repeat(w, 2).repeat(3, 3)


def _pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _jpeg(path: Path, rgb: np.ndarray, mode: str = "RGB", fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(rgb)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, format=fmt, quality=95)


def _solid(h: int, w: int, color) -> np.ndarray:
    return np.broadcast_to(np.asarray(color, dtype=np.uint8), (h, w, 3)).copy()


# ------------------------------------------------------------------------------------------ writers


def write_cifar10(home: Path) -> Dict[str, Any]:
    base = home / "cifar-10-batches-py"
    per = N_TRAIN // 5
    for b in range(5):
        idx = np.arange(b * per, (b + 1) * per)
        data = filled(per, offset=b * per).transpose(0, 3, 1, 2).reshape(per, -1)
        _pickle(base / f"data_batch_{b + 1}", {b"data": data, b"labels": [int(i % 10) for i in idx],
                                                b"batch_label": b"training batch"})
    _pickle(base / "test_batch", {b"data": filled(N_TEST, offset=100).transpose(0, 3, 1, 2).reshape(N_TEST, -1),
                                  b"labels": [int(i % 10) for i in range(N_TEST)]})
    _pickle(base / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    files = {f"cifar-10-batches-py/{n}": md5(base / n) for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]}
    return {"files": files, "counts": {"train": N_TRAIN, "test": N_TEST}}


def write_cifar100(home: Path) -> Dict[str, Any]:
    base = home / "cifar-100-python"
    for split, n, off in (("train", N_TRAIN, 0), ("test", N_TEST, 100)):
        _pickle(base / split, {b"data": filled(n, offset=off).transpose(0, 3, 1, 2).reshape(n, -1),
                               b"fine_labels": [int(i * 7 % 100) for i in range(n)],
                               b"coarse_labels": [int(i % 20) for i in range(n)]})
    return {"files": {f"cifar-100-python/{s}": md5(base / s) for s in ("train", "test")},
            "counts": {"train": N_TRAIN, "test": N_TEST}}


def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_mnist_like(home: Path) -> Dict[str, Any]:
    home.mkdir(parents=True, exist_ok=True)
    for prefix, n, off in (("train", N_TRAIN, 0), ("t10k", N_TEST, 100)):
        images = filled(n, 28, 28, offset=off)[..., 0]
        _idx(home / f"{prefix}-images-idx3-ubyte.gz", images)
        _idx(home / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    files = {p.name: md5(p) for p in sorted(home.glob("*.gz"))}
    return {"files": files, "counts": {"train": N_TRAIN, "test": N_TEST}}


def write_svhn(home: Path) -> Dict[str, Any]:
    from scipy.io import savemat

    home.mkdir(parents=True, exist_ok=True)
    for split, n, off in (("train", N_TRAIN, 0), ("test", N_TEST, 100)):
        x = filled(n, offset=off).transpose(1, 2, 3, 0)  # (32, 32, 3, N)
        y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)  # 1..10, 10 is digit 0
        savemat(str(home / f"{split}_32x32.mat"), {"X": x, "y": y})
    return {"files": {f"{s}_32x32.mat": md5(home / f"{s}_32x32.mat") for s in ("train", "test")},
            "counts": {"train": N_TRAIN, "test": N_TEST}}


def write_tinyimagenet(home: Path) -> Dict[str, Any]:
    base = home / "tiny-imagenet-200"
    base.mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("\n".join(reversed(TINY_WNIDS)) + "\n")  # file order is not label order
    for k, wnid in enumerate(TINY_WNIDS):
        for i in range(TINY_TRAIN_PER_CLASS):
            mode = "L" if i == 0 else "RGB"  # the release has some greyscale JPEGs
            _jpeg(base / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", _solid(64, 64, (40 * k, 100, 200)), mode)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    rows = []
    for i in range(TINY_VAL):
        wnid = TINY_WNIDS[i % 3]
        _jpeg(base / "val" / "images" / f"val_{i}.JPEG", _solid(64, 64, (10, 20, 30)))
        rows.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")
    return {"counts": {"train": 3 * TINY_TRAIN_PER_CLASS, "test": TINY_VAL}, "num_classes": 3}


def write_cifar_c(home: Path, base: str) -> Dict[str, Any]:
    d = home / base
    d.mkdir(parents=True, exist_ok=True)
    n = 5 * C_PER_SEVERITY
    for k, corruption in enumerate(CORRUPTIONS):
        sev = np.repeat(np.arange(1, 6), C_PER_SEVERITY)
        values = (20 * sev + k).astype(np.uint8)
        np.save(d / f"{corruption}.npy", values[:, None, None, None].repeat(32, 1).repeat(32, 2).repeat(3, 3))
    np.save(d / "labels.npy", (np.arange(n) % 10).astype(np.int64))
    np.save(d / "speckle_noise.npy", np.zeros((n, 32, 32, 3), np.uint8))  # extra corruptions are ignored
    files = {f"{base}/{c}.npy": md5(d / f"{c}.npy") for c in (*CORRUPTIONS, "labels")}
    return {"files": files, "counts": {c: n for c in CORRUPTIONS}}


def write_cifar10_1(home: Path) -> Dict[str, Any]:
    home.mkdir(parents=True, exist_ok=True)
    np.save(home / "cifar10.1_v6_data.npy", filled(N_TEST, offset=50))
    np.save(home / "cifar10.1_v6_labels.npy", (np.arange(N_TEST) % 10).astype(np.int64))
    return {"files": {f: md5(home / f) for f in ("cifar10.1_v6_data.npy", "cifar10.1_v6_labels.npy")},
            "counts": {"test": N_TEST}}


def write_cifar10_2(home: Path) -> Dict[str, Any]:
    home.mkdir(parents=True, exist_ok=True)
    np.savez(home / "cifar102_test.npz", images=filled(N_TEST, offset=70), labels=(np.arange(N_TEST) % 10)[::-1].copy())
    sha = "sha256:" + hashlib.sha256((home / "cifar102_test.npz").read_bytes()).hexdigest()
    return {"files": {"cifar102_test.npz": sha}, "counts": {"test": N_TEST}}


def write_lsun(home: Path) -> Dict[str, Any]:
    for i in range(LSUN_N):
        img = _solid(36, 36, (0, 0, 0))
        img[2:34, 2:34] = (200, 150, 100)  # the central 32x32 patch; a 2-pixel black frame around it
        _jpeg(home / "LSUN" / "test" / f"{i:04d}.jpg", img)
    return {"counts": {"test": LSUN_N}}


def write_imagenet(folder: Path) -> Dict[str, Any]:
    for split, per in (("train", 3), ("val", 2)):
        for k, wnid in enumerate(IMAGENET_WNIDS):
            for i in range(per):
                mode = "L" if (k, i) == (0, 0) else "RGB"
                _jpeg(folder / split / wnid / f"{wnid}_{i}.JPEG", _solid(40 + 7 * i, 50, (60 * k, 80, 120)), mode)
    return {"counts": {"train": 9, "val": 6}, "num_classes": 3}


def write_objectnet(folder: Path) -> Dict[str, Any]:
    """``objectnet-1.0/``: 2 of 3 classes overlap the 3-class ImageNet fixture; ``fish`` maps to two ids."""
    on = folder / "objectnet-1.0"
    maps = on / "mappings"
    maps.mkdir(parents=True, exist_ok=True)
    (maps / OBJECTNET_MAPPINGS[0]).write_text(json.dumps({"fish": "Fish", "shark_things": "Shark", "chair": "Chair"}))
    (maps / OBJECTNET_MAPPINGS[1]).write_text(json.dumps({"Shark": "great white shark", "Fish": "tench; goldfish"}))
    # torchvision index -> ILSVRC-2012 id (line of imagenet_to_label_2012_v2): 0 <-> 1, 1 <-> 0, 2 <-> 2
    (maps / OBJECTNET_MAPPINGS[2]).write_text(json.dumps({"0": 1, "1": 0, "2": 2}))
    (maps / OBJECTNET_MAPPINGS[3]).write_text("goldfish\ntench\ngreat white shark\n")
    for name, n in (("fish", 3), ("shark_things", 2), ("chair", 2)):
        for i in range(n):
            img = _solid(30, 24 + i, (255, 0, 0))  # the 1-pixel red border ObjectNet images carry
            img[1:-1, 1:-1] = (0, 0, 255)
            _jpeg(on / "images" / name / f"{i}.png", img, fmt="PNG")
    return {"counts": {"test": 5}, "num_classes": 2, "num_ids": 3}


def write_imagenet_v2(folder: Path) -> Dict[str, Any]:
    """``imagenetv2-matched-frequency-format-val/<class id>/``: 2 images for each class of the ImageNet fixture."""
    for k in range(len(IMAGENET_WNIDS)):
        for i in range(2):
            _jpeg(folder / "imagenetv2-matched-frequency-format-val" / str(k) / f"{k}{i}.jpeg",
                  _solid(45, 38 + 5 * i, (60 * k, 80, 120)))
    return {"counts": {"test": 2 * len(IMAGENET_WNIDS)}, "num_classes": len(IMAGENET_WNIDS)}


def write_imagenet_c(folder: Path) -> Dict[str, Any]:
    """``<corruption>/<severity>/<wnid>/``: one 24 px image per class; severity ``s`` is filled with ``40 * s``."""
    for corruption in CORRUPTIONS:
        for s in range(1, 6):
            for k, wnid in enumerate(IMAGENET_WNIDS):
                _jpeg(folder / corruption / str(s) / wnid / f"ILSVRC2012_val_{k:08d}.JPEG", _solid(24, 24, (40 * s, 60 * k, 0)))
    return {"counts": {c: 5 * len(IMAGENET_WNIDS) for c in CORRUPTIONS}, "num_classes": len(IMAGENET_WNIDS)}


# ------------------------------------------------------------------------------------------ tree


def write_tree(root: Path, manual_elsewhere: Path = None) -> Dict[str, Dict[str, Any]]:
    """Every dataset under ``root``; ImageNet/ObjectNet under ``manual_elsewhere`` (their --source) if given."""
    root = Path(root)
    out = {
        "cifar10": write_cifar10(root / "cifar10"),
        "cifar100": write_cifar100(root / "cifar100"),
        "mnist": write_mnist_like(root / "mnist"),
        "fashion_mnist": write_mnist_like(root / "fashion_mnist"),
        "svhn": write_svhn(root / "svhn"),
        "tinyimagenet": write_tinyimagenet(root / "tinyimagenet"),
        "cifar10_c": write_cifar_c(root / "cifar10_c", "CIFAR-10-C"),
        "cifar100_c": write_cifar_c(root / "cifar100_c", "CIFAR-100-C"),
        "cifar10_1": write_cifar10_1(root / "cifar10_1"),
        "cifar10_2": write_cifar10_2(root / "cifar10_2"),
        "lsun_crop": write_lsun(root / "lsun_crop"),
        "imagenet_v2": write_imagenet_v2(root / "imagenet_v2"),
        "imagenet_c": write_imagenet_c(root / "imagenet_c"),
    }
    manual = Path(manual_elsewhere) if manual_elsewhere else root
    out["imagenet"] = write_imagenet(manual / "imagenet")
    objectnet_parent = manual / "objectnet" if not manual_elsewhere else manual / "objectnet_release"
    out["objectnet"] = write_objectnet(objectnet_parent)
    if not manual_elsewhere:  # in place: <root>/objectnet must hold images/ and mappings/ directly
        release = objectnet_parent / "objectnet-1.0"
        for entry in release.iterdir():
            entry.rename(objectnet_parent / entry.name)
        release.rmdir()
    return out


def patch_sources(setattr_fn, overrides: Dict[str, Dict[str, Any]]) -> None:
    """Swap the real checksums/counts/class counts for the fixtures' ones, through ``setattr_fn``
    (pytest's ``monkeypatch.setattr``, or :class:`_Patch` which undoes them on exit)."""
    for name, fields in overrides.items():
        src = SOURCES[name]
        for key, value in fields.items():
            if key == "files":
                value = {**src.files, **value}
            setattr_fn(src, key, value)


class _Patch:
    """Attribute patches undone on exit (the monkeypatch of a script)."""

    def __init__(self) -> None:
        self.saved = []

    def __call__(self, obj, key, value) -> None:
        self.saved.append((obj, key, getattr(obj, key)))
        setattr(obj, key, value)

    def __enter__(self) -> "_Patch":
        return self

    def __exit__(self, *exc) -> None:
        for obj, key, value in reversed(self.saved):
            setattr(obj, key, value)


# Written last into a complete smoke root: the datasets it holds, each verified and converted there.
SMOKE_COMPLETE = ".smoke-root.json"


def smoke_root_is_current(root: Path) -> bool:
    """Whether ``root`` is a complete smoke root whose every dataset's stamp and caches match the files in
    place, in this very folder (a copied root, or one a killed build left half-written, is not)."""
    from mixexp.data.store import cache_is_current, read_stamp, stamp_is_current

    root = Path(root)
    try:
        names = json.loads((root / SMOKE_COMPLETE).read_text())["datasets"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    for name in names:
        src = SOURCES.get(name)
        if src is None:
            return False
        stamp = read_stamp(src, root)
        if not stamp_is_current(src, root, stamp):
            return False
        if src.cached and not all(cache_is_current(src, root, split, stamp) for split in src.counts):
            return False
    return True


def make_smoke_root(root: Path) -> Path:
    """A data root with every dataset of the papers as tiny fixtures, verified and cached; kept when it
    is current (:func:`smoke_root_is_current`), else built again.

    The fixtures are checked against their own checksums and counts (not the real releases'), in
    this process only; the stamps and caches written then let any later run load them as usual. Used by
    ``SMOKE=1`` to run every table's grid on real file formats in minutes. The files are written into a
    temporary folder beside ``root`` and renamed into place (then verified there, where the stamps record
    them), under a lock: a killed build leaves no half-written root, and two builds never mix their files.
    """
    from mixexp.io import held_lock, write_json

    root = Path(root)
    with held_lock(root.parent / f".{root.name}.lock",
                   lambda pid: print(f"waiting for process {pid}, which is building the data root {root}", flush=True)):
        if smoke_root_is_current(root):
            return root
        for leftover in root.parent.glob(f".{root.name}.*.building"):  # of a killed build (we hold the lock)
            shutil.rmtree(leftover, ignore_errors=True)
        building = root.parent / f".{root.name}.{os.getpid()}.building"
        overrides = write_tree(building, manual_elsewhere=building / "_manual_sources")
        if root.exists():  # out of date (copied, half-built by an older mixexp, changed): replaced as a whole
            stale = root.parent / f".{root.name}.{os.getpid()}.building.stale"
            os.rename(root, stale)
            shutil.rmtree(stale)
        os.rename(building, root)
        _prepare_smoke_root(root, overrides)
        write_json(root / SMOKE_COMPLETE, {"datasets": sorted(overrides)})
    return root


def _prepare_smoke_root(root: Path, overrides: Dict[str, Dict[str, Any]]) -> None:
    """Verify and convert every fixture dataset in ``root`` against the fixtures' own checksums."""
    from mixexp.data.store import prepare

    manual = root / "_manual_sources"
    with _Patch() as patch:
        patch_sources(patch, overrides)
        for name in overrides:
            source = {"imagenet": manual / "imagenet", "objectnet": manual / "objectnet_release"}.get(name)
            prepare(name, root, source=source, progress=False)


