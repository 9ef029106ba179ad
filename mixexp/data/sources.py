"""Every released dataset the three papers use: where it is published, its checksums, how to read it.

Readers turn the publisher's files into :class:`ImageSet` (uint8 (N, C, H, W), int64 labels) at the
released resolution, or, for ImageNet, ObjectNet, ImageNetV2 and ImageNet-C, into a :class:`FolderSet`
file index. Checksums are the publishers' (torchvision's tables for CIFAR, MNIST, Fashion-MNIST and SVHN;
Zenodo's for the CIFAR-C and ImageNet-C archives; tensorflow_datasets' for ImageNetV2). ``SOURCES[name]``
fields are plain data, so tests swap in the checksums and counts of their tiny fixtures.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from mixexp.data.folder import FolderSet, class_folders, decode_rgb, list_images
from mixexp.data.imageset import ImageSet
from mixexp.data.store import (
    ChecksumError, DataError, Remote, Source, file_digest, parse_checksum, register_source,
)

# The 15 benchmark corruptions of CIFAR-10-C / CIFAR-100-C (the release has 4 more, unused here).
CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def stack_images(paths: List[Path], size: int, desc: str) -> torch.Tensor:
    """Decode image files into one uint8 (N, 3, size, size) tensor; other sizes are centre-cropped
    (when larger on both sides) or resized."""
    from torchvision.transforms.v2 import functional as TF
    from tqdm import tqdm

    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    for i, p in enumerate(tqdm(paths, desc=desc, unit="img", leave=False, disable=None)):
        img = decode_rgb(p)
        if tuple(img.shape[1:]) != (size, size):
            if img.shape[1] >= size and img.shape[2] >= size:
                img = TF.center_crop(img, [size, size])
            else:
                img = TF.resize(img, [size, size], antialias=True)
        out[i] = img
    return out


def _npy_header(path: Path) -> Tuple[tuple, np.dtype]:
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    return arr.shape, arr.dtype


def _nhwc_to_set(images: np.ndarray, labels: np.ndarray, where: Path) -> ImageSet:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"{where} holds {images.dtype} images of shape {images.shape}, expected uint8 (N, H, W, 3)")
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{where}: {images.shape[0]} images but {labels.shape[0]} labels")
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return ImageSet(x, torch.from_numpy(labels.astype(np.int64)))


# ------------------------------------------------------------------------------------------ CIFAR


@dataclass
class CifarPickles(Source):
    """``cifar-10-batches-py`` / ``cifar-100-python``: pickled dicts with ``data`` (N, 3072) row-major RGB."""

    base: str = ""
    split_files: Dict[str, List[str]] = field(default_factory=dict)
    label_key: str = "labels"

    def read(self, folder: Path, split: str) -> ImageSet:
        xs, ys = [], []
        for name in self.split_files[split]:
            rel = f"{self.base}/{name}"
            path = folder / rel
            check_before_unpickling(path, self.files.get(rel), self.name)
            with open(path, "rb") as f:
                try:
                    batch = ArrayUnpickler(f, encoding="bytes").load()  # the released format, checksum verified
                except (pickle.UnpicklingError, EOFError) as e:
                    raise DataError(f"{path} is not a CIFAR batch: {_first_line(e)}") from None
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[self.label_key.encode()], dtype=np.int64))
        return ImageSet(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)))


# What a CIFAR batch may name when unpickled: numpy's array reconstruction (numpy 1 and 2 spellings, pickle
# protocols 2-5) and the bytes codec of Python 2 pickles. Anything else (os.system, ...) is refused.
ARRAY_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers and numpy arrays (:data:`ARRAY_GLOBALS`)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ARRAY_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR batch never holds")
        return super().find_class(module, name)


def check_before_unpickling(path: Path, checksum: Optional[str], dataset: str) -> None:
    """Hash ``path`` again right before it is unpickled: the verification stamp trusts size and mtime,
    which a replaced file can keep."""
    if checksum is None:
        return
    algo, want = parse_checksum(checksum)
    found = file_digest(path, algo)
    if found != want:
        raise ChecksumError(f"checksum mismatch for {path}: expected {algo} {want}, found {found}; it was not "
                            f"unpickled: delete it and run: mixexp-data prepare {dataset}")


_CIFAR10_FILES = {
    "data_batch_1": "md5:c99cafc152244af753f735de768cd75f",
    "data_batch_2": "md5:d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "md5:54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "md5:634d18415352ddfa80567beed471001a",
    "data_batch_5": "md5:482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "md5:40351d587109b95175f43aff81a1287e",
}

register_source(CifarPickles(
    name="cifar10", title="CIFAR-10 (python version)", use="train",
    files={f"cifar-10-batches-py/{k}": v for k, v in _CIFAR10_FILES.items()},
    counts={"train": 50000, "test": 10000}, num_classes=10, image_shape=(3, 32, 32),
    expect="cifar-10-batches-py/{data_batch_1..5,test_batch} (unpacked cifar-10-python.tar.gz)",
    remotes=[Remote(["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"], "cifar-10-python.tar.gz",
                    "md5:c58f30108f718f92721af3b95e74349a", extract=True)],
    base="cifar-10-batches-py",
    split_files={"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    label_key="labels",
))

register_source(CifarPickles(
    name="cifar100", title="CIFAR-100 (python version), fine labels", use="train",
    files={"cifar-100-python/train": "md5:16019d7e3df5f24257cddd939b257f8d",
           "cifar-100-python/test": "md5:f0ef6b0ae62326f3e7ffdfab6717acfc"},
    counts={"train": 50000, "test": 10000}, num_classes=100, image_shape=(3, 32, 32),
    expect="cifar-100-python/{train,test} (unpacked cifar-100-python.tar.gz)",
    remotes=[Remote(["https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"], "cifar-100-python.tar.gz",
                    "md5:eb9058c3a382ffc7106e4002c42a8d85", extract=True)],
    base="cifar-100-python", split_files={"train": ["train"], "test": ["test"]}, label_key="fine_labels",
))


# ------------------------------------------------------------------------------------------ MNIST-style


def read_idx(path: Path) -> np.ndarray:
    """A gzipped IDX file of unsigned bytes (MNIST's format) as an array of its declared shape."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} declares shape {tuple(dims)} but holds {data.size} values (truncated?)")
    return data.reshape(dims)


@dataclass
class IdxFiles(Source):
    """``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``: 28x28 grey images and their labels."""

    split_prefix: Dict[str, str] = field(default_factory=lambda: {"train": "train", "test": "t10k"})

    def read(self, folder: Path, split: str) -> ImageSet:
        prefix = self.split_prefix[split]
        images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
        if images.ndim != 3 or labels.shape != (images.shape[0],):
            raise DataError(f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match")
        return ImageSet(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


def _idx_source(name: str, title: str, mirrors: List[str], md5s: Dict[str, str]) -> IdxFiles:
    return IdxFiles(
        name=name, title=title, use="train",
        files={f: f"md5:{m}" for f, m in md5s.items()},
        counts={"train": 60000, "test": 10000}, num_classes=10, image_shape=(1, 28, 28),
        expect="train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz",
        remotes=[Remote([m + f for m in mirrors], f, f"md5:{md5}") for f, md5 in md5s.items()],
    )


register_source(_idx_source(
    "mnist", "MNIST handwritten digits", ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
     "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
     "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
     "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
))

register_source(_idx_source(
    "fashion_mnist", "Fashion-MNIST", ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
     "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
     "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
     "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
))


# ------------------------------------------------------------------------------------------ SVHN


@dataclass
class SvhnMat(Source):
    """``{train,test}_32x32.mat``: X (32, 32, 3, N) uint8 and y (N, 1) with digit 0 stored as 10."""

    def read(self, folder: Path, split: str) -> ImageSet:
        from scipy.io import loadmat

        path = folder / f"{split}_32x32.mat"
        mat = loadmat(str(path))
        x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1).astype(np.int64)
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.shape[0]:
            raise DataError(f"{path} holds X {x.dtype} {x.shape} and y {y.shape}, expected X uint8 (32, 32, 3, N), y (N, 1)")
        y[y == 10] = 0
        return ImageSet(torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1))), torch.from_numpy(y))


register_source(SvhnMat(
    name="svhn", title="SVHN cropped digits (extra not used)", use="train,ood",
    files={"train_32x32.mat": "md5:e26dedcc434d2e4c54c9b2d4a06d8373", "test_32x32.mat": "md5:eb5a983be6a315427106f1b164d9cef3"},
    counts={"train": 73257, "test": 26032}, num_classes=10, image_shape=(3, 32, 32),
    expect="train_32x32.mat, test_32x32.mat",
    remotes=[Remote([f"http://ufldl.stanford.edu/housenumbers/{s}_32x32.mat"], f"{s}_32x32.mat", f"md5:{m}")
             for s, m in (("train", "e26dedcc434d2e4c54c9b2d4a06d8373"), ("test", "eb5a983be6a315427106f1b164d9cef3"))],
))


# ------------------------------------------------------------------------------------------ Tiny-ImageNet


@dataclass
class TinyImageNetFolders(Source):
    """``tiny-imagenet-200``: wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG + val_annotations.txt.

    Labels are the index of the wnid in sorted order (as an ImageFolder over train/ numbers them); the
    labelled val split is the test set.
    """

    base: str = "tiny-imagenet-200"

    def _wnids(self, folder: Path) -> List[str]:
        return sorted({w.strip() for w in (folder / self.base / "wnids.txt").read_text().split() if w.strip()})

    def _val(self, folder: Path) -> List[Tuple[str, str]]:
        rows = []
        for line in (folder / self.base / "val" / "val_annotations.txt").read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[0].strip():
                rows.append((parts[0].strip(), parts[1].strip()))
        return rows

    def _train(self, folder: Path, wnids: List[str]) -> List[Tuple[Path, int]]:
        out = []
        for label, wnid in enumerate(wnids):
            d = folder / self.base / "train" / wnid / "images"
            out.extend((d / n, label) for n in list_images(d))
        return out

    def scan(self, folder: Path) -> Dict[str, Any]:
        out = super().scan(folder)
        train = folder / self.base / "train"
        out["#train"] = sum(len(list_images(train / w / "images")) for w in class_folders(train))
        out["#val"] = len(list_images(folder / self.base / "val" / "images"))
        return out

    def validate(self, folder: Path) -> Dict[str, Any]:
        wnids = self._wnids(folder)
        if len(wnids) != self.num_classes:
            raise DataError(f"{folder / self.base / 'wnids.txt'} lists {len(wnids)} classes, expected {self.num_classes}")
        n_train = len(self._train(folder, wnids))
        val = self._val(folder)
        unknown = sorted({w for _, w in val} - set(wnids))
        if unknown:
            raise DataError(f"val_annotations.txt names classes not in wnids.txt: {', '.join(unknown[:5])}")
        present = set(list_images(folder / self.base / "val" / "images"))
        absent = [f for f, _ in val if f not in present]
        if absent:
            raise DataError(f"{folder / self.base / 'val' / 'images'} lacks {len(absent)} annotated images, e.g. {absent[0]}")
        counts = {"train": n_train, "test": len(val)}
        for split, n in counts.items():
            want = self.counts[split]
            if want is not None and n != want:
                raise DataError(f"{folder / self.base} holds {n} {split} images, expected {want} (incomplete unpacking?)")
        return {"counts": counts}

    def read(self, folder: Path, split: str) -> ImageSet:
        wnids = self._wnids(folder)
        if split == "train":
            items = self._train(folder, wnids)
        else:
            index = {w: i for i, w in enumerate(wnids)}
            items = [(folder / self.base / "val" / "images" / f, index[w]) for f, w in self._val(folder)]
        images = stack_images([p for p, _ in items], 64, f"tinyimagenet {split}")
        return ImageSet(images, torch.tensor([y for _, y in items], dtype=torch.int64))


register_source(TinyImageNetFolders(
    name="tinyimagenet", title="Tiny-ImageNet-200 (val is the test set)", use="train",
    files={"tiny-imagenet-200/wnids.txt": None, "tiny-imagenet-200/train/": None,
           "tiny-imagenet-200/val/val_annotations.txt": None, "tiny-imagenet-200/val/images/": None},
    counts={"train": 100000, "test": 10000}, num_classes=200, image_shape=(3, 64, 64),
    expect="tiny-imagenet-200/{wnids.txt,train/<wnid>/images/*.JPEG,val/images/*.JPEG,val/val_annotations.txt}",
    remotes=[Remote(["http://cs231n.stanford.edu/tiny-imagenet-200.zip"], "tiny-imagenet-200.zip",
                    "md5:90528d7ca1a48142e341f4ef8d21d0de", extract=True)],
))


# ------------------------------------------------------------------------------------------ CIFAR-C


@dataclass
class CorruptionBlocks(Source):
    """``CIFAR-10-C/<corruption>.npy``: uint8 (5 * n, 32, 32, 3), severity s in rows (s-1)*n .. s*n-1,
    and ``labels.npy`` for every block. Read directly (memory-mapped); the split is the corruption."""

    base: str = ""

    def validate(self, folder: Path) -> Dict[str, Any]:
        shape, dtype = _npy_header(folder / self.base / "labels.npy")
        n = shape[0] if shape else -1
        for corruption, want in self.counts.items():
            path = folder / self.base / f"{corruption}.npy"
            cshape, cdtype = _npy_header(path)
            expected = (want if want is not None else n, 32, 32, 3)
            if cdtype != np.uint8 or tuple(cshape) != expected or expected[0] % 5:
                raise DataError(f"{path} holds {cdtype} {tuple(cshape)}, expected uint8 {expected} (5 severities)")
        if tuple(shape) != (n,) or n % 5:
            raise DataError(f"{folder / self.base / 'labels.npy'} has shape {tuple(shape)}, expected ({n},)")
        return {"counts": {c: n for c in self.counts}}

    def read(self, folder: Path, split: str) -> ImageSet:
        images = np.load(folder / self.base / f"{split}.npy", mmap_mode="r", allow_pickle=False)
        labels = np.load(folder / self.base / "labels.npy", allow_pickle=False)
        return _nhwc_to_set(images, labels, folder / self.base / f"{split}.npy")


_CIFAR10_C_MD5 = {
    "gaussian_noise": "ecaf8b9a2399ffeda7680934c33405fd", "shot_noise": "3a7239bb118894f013d9bf1984be7f11",
    "impulse_noise": "2090e01c83519ec51427e65116af6b1a", "defocus_blur": "7d1322666342a0702b1957e92f6254bc",
    "glass_blur": "7361fb4019269e02dbf6925f083e8629", "motion_blur": "fffa5f852ff7ad299cfe8a7643f090f4",
    "zoom_blur": "6ea8e63f1c5cdee1517533840641641b", "snow": "bb238de8555123da9c282dea23bd6e55",
    "frost": "31f6ab3bce1d9934abfb0cc13656f141", "fog": "7b397314b5670f825465fbcd1f6e9ccd",
    "brightness": "0a81ef75e0b523c3383219c330a85d48", "contrast": "3c8262171c51307f916c30a3308235a8",
    "elastic_transform": "9421657c6cd452429cf6ce96cc412b5f", "pixelate": "0f14f7e2db14288304e1de10df16832f",
    "jpeg_compression": "2b9cc4c864e0193bb64db8d7728f8187", "labels": "c439b113295ed5254878798ffe28fd54",
}
_CIFAR100_C_MD5 = {
    "gaussian_noise": "ecc4d366eac432bdf25c024086f5e97d", "shot_noise": "b0a1fa6e1e465a747c1b204b1914048a",
    "impulse_noise": "3b3c210ddfa0b5cb918ff4537a429fef", "defocus_blur": "d923e3d9c585a27f0956e2f2ad832564",
    "glass_blur": "0bf384f38e5ccbf8dd479d9059b913e1", "motion_blur": "732a7e2e54152ff97c742d4c388c5516",
    "zoom_blur": "0204613400c034a81c4830d5df81cb82", "snow": "0237be164583af146b7b144e73b43465",
    "frost": "3a39c6823bdfaa0bf8b12fe7004b8117", "fog": "4efc7ebd5e82b028bdbe13048e3ea564",
    "brightness": "f22d7195aecd6abb541e27fca230c171", "contrast": "322bb385f1d05154ee197ca16535f71e",
    "elastic_transform": "a0792bd6581f6810878be71acedfc65a", "pixelate": "96c00c60f144539e14cffb02ddbd0640",
    "jpeg_compression": "c851b7f1324e1d2ffddeb76920576d11", "labels": "bb4026e9ce52996b95f439544568cdb2",
}


def _corruption_source(name: str, base: str, title: str, md5s: Dict[str, str], url: str, tar_md5: str) -> CorruptionBlocks:
    return CorruptionBlocks(
        name=name, title=title, use="shift",
        files={f"{base}/{k}.npy": f"md5:{v}" for k, v in md5s.items()},
        counts={c: 50000 for c in CORRUPTIONS}, image_shape=(3, 32, 32), cached=False,
        expect=f"{base}/<corruption>.npy for the 15 benchmark corruptions and {base}/labels.npy (unpacked {base}.tar)",
        remotes=[Remote([url], f"{base}.tar", f"md5:{tar_md5}", extract=True)], base=base,
    )


register_source(_corruption_source(
    "cifar10_c", "CIFAR-10-C", "CIFAR-10-C: 15 corruptions x 5 severities of the CIFAR-10 test set", _CIFAR10_C_MD5,
    "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar?download=1", "56bf5dcef84df0e2308c6dcbcbbd8499"))
register_source(_corruption_source(
    "cifar100_c", "CIFAR-100-C", "CIFAR-100-C: 15 corruptions x 5 severities of the CIFAR-100 test set", _CIFAR100_C_MD5,
    "https://zenodo.org/records/3555552/files/CIFAR-100-C.tar?download=1", "11f0ed0f1191edbf9fa23466ae6021d3"))


# ------------------------------------------------------------------------------------------ CIFAR-10.1 / 10.2


@dataclass
class NpyPair(Source):
    """CIFAR-10.1: ``<prefix>_data.npy`` uint8 (N, 32, 32, 3) and ``<prefix>_labels.npy``."""

    prefix: str = ""

    def read(self, folder: Path, split: str) -> ImageSet:
        data = folder / f"{self.prefix}_data.npy"
        return _nhwc_to_set(np.load(data, allow_pickle=False),
                            np.load(folder / f"{self.prefix}_labels.npy", allow_pickle=False), data)


@dataclass
class NpzArchive(Source):
    """CIFAR-10.2: ``cifar102_test.npz`` with arrays ``images`` uint8 (N, 32, 32, 3) and ``labels``."""

    filename: str = ""

    def read(self, folder: Path, split: str) -> ImageSet:
        path = folder / self.filename
        with np.load(path, allow_pickle=False) as z:
            return _nhwc_to_set(z["images"], z["labels"], path)


_C101 = "https://github.com/modestyachts/CIFAR-10.1/raw/master/datasets/"
register_source(NpyPair(
    name="cifar10_1", title="CIFAR-10.1 v6 (new CIFAR-10 test set)", use="shift",
    files={"cifar10.1_v6_data.npy": "md5:4fcae82cb1326aec9ed1dc1fc62345b8",
           "cifar10.1_v6_labels.npy": "md5:09a97fb7c430502fcbd69d95093a3f85"},
    counts={"test": 2000}, num_classes=10, image_shape=(3, 32, 32),
    expect="cifar10.1_v6_data.npy, cifar10.1_v6_labels.npy",
    remotes=[Remote([_C101 + "cifar10.1_v6_data.npy"], "cifar10.1_v6_data.npy", "md5:4fcae82cb1326aec9ed1dc1fc62345b8"),
             Remote([_C101 + "cifar10.1_v6_labels.npy"], "cifar10.1_v6_labels.npy", "md5:09a97fb7c430502fcbd69d95093a3f85")],
    prefix="cifar10.1_v6",
))

_C102_SHA = "sha256:e4fd6462bd5141ed293acd52ea570952f65d1bfd4ec9b068f87742f75a7a632e"
register_source(NpzArchive(
    name="cifar10_2", title="CIFAR-10.2 test split", use="shift",
    files={"cifar102_test.npz": _C102_SHA}, counts={"test": 2000}, num_classes=10, image_shape=(3, 32, 32),
    expect="cifar102_test.npz (arrays images, labels)",
    remotes=[Remote(["https://github.com/modestyachts/cifar-10.2/raw/master/cifar102_test.npz"], "cifar102_test.npz", _C102_SHA)],
    filename="cifar102_test.npz",
))


# ------------------------------------------------------------------------------------------ LSUN-Crop


@dataclass
class FlatImageFolder(Source):
    """ODIN's LSUN (crop): images anywhere under ``LSUN/``, read at 32x32 (centre-cropped when larger).
    Out-of-distribution: every label is -1."""

    base: str = "LSUN"
    size: int = 32

    def _files(self, folder: Path) -> List[Path]:
        out = []
        for dirpath, dirnames, filenames in os.walk(folder / self.base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out.extend(Path(dirpath) / f for f in sorted(filenames)
                       if f.lower().endswith((".jpg", ".jpeg", ".png")) and not f.startswith("."))
        return out

    def scan(self, folder: Path) -> Dict[str, Any]:
        out = super().scan(folder)
        out["#images"] = len(self._files(folder))
        return out

    def validate(self, folder: Path) -> Dict[str, Any]:
        n, want = len(self._files(folder)), self.counts["test"]
        if want is not None and n != want:
            raise DataError(f"{folder / self.base} holds {n} images, expected {want}")
        return {"counts": {"test": n}}

    def read(self, folder: Path, split: str) -> ImageSet:
        files = self._files(folder)
        images = stack_images(files, self.size, f"{self.name}")
        return ImageSet(images, torch.full((len(files),), -1, dtype=torch.int64))


register_source(FlatImageFolder(
    name="lsun_crop", title="LSUN (crop), as released with ODIN", use="ood",
    files={"LSUN/": None}, counts={"test": 10000}, image_shape=(3, 32, 32),
    expect="LSUN/**/*.jpg, 10,000 images (unpacked LSUN.tar.gz)",
    remotes=[Remote(["https://www.dropbox.com/s/fhtsw1m3qxlwj6h/LSUN.tar.gz?dl=1"], "LSUN.tar.gz",
                    "md5:458a0a0ab8e5f1cb4516d7400568e460", extract=True)],
))


# ------------------------------------------------------------------------------------------ ImageNet / ObjectNet


@dataclass
class _IndexedFolders(Source):
    """Sources whose cache is a file index (:class:`FolderSet`), not images."""

    def to_payload(self, data: FolderSet) -> Dict[str, Any]:
        return {"files": list(data.files), "labels": data.labels, "classes": list(data.classes),
                "class_ids": data.class_ids}

    def check_payload(self, payload: Dict[str, Any], n: Optional[int]) -> Optional[str]:
        files, labels = payload.get("files"), payload.get("labels")
        if not isinstance(files, list) or not isinstance(labels, torch.Tensor):
            return "lacks its file index"
        if labels.dtype != torch.int64 or tuple(labels.shape) != (len(files),):
            return f"indexes {len(files)} files but holds labels of shape {tuple(labels.shape)}"
        if n is not None and len(files) != n:
            return f"indexes {len(files)} files, expected {n}"
        return None


def index_class_folders(d: Path, prefix: str = "") -> Tuple[List[str], List[int], List[str]]:
    """(files as ``prefix + <wnid>/<name>``, labels, wnids) of ``d/<wnid>/*``: label = index in sorted wnids."""
    classes = class_folders(d)
    files, labels = [], []
    for label, wnid in enumerate(classes):
        names = list_images(d / wnid)
        files.extend(f"{prefix}{wnid}/{n}" for n in names)
        labels.extend([label] * len(names))
    return files, labels, classes


@dataclass
class ImageNetFolders(_IndexedFolders):
    """ILSVRC-2012 as class folders: ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG`` (val sorted into
    class folders, as torchvision's ImageNet or the usual valprep script leave it). Labels: sorted wnids."""

    split_dirs: Dict[str, str] = field(default_factory=lambda: {"train": "train", "val": "val"})

    def _index(self, folder: Path, split: str) -> Tuple[List[str], List[int], List[str]]:
        return index_class_folders(folder / self.split_dirs[split])

    def validate(self, folder: Path) -> Dict[str, Any]:
        counts, classes = {}, {}
        for split in self.split_dirs:
            files, _, classes[split] = self._index(folder, split)
            counts[split] = len(files)
            if len(classes[split]) != self.num_classes:
                raise DataError(f"{folder / self.split_dirs[split]} has {len(classes[split])} class folders, "
                                f"expected {self.num_classes} (<wnid>/ folders of images)")
            want = self.counts[split]
            if want is not None and counts[split] != want:
                raise DataError(f"{folder / self.split_dirs[split]} holds {counts[split]} images, expected {want}")
        if classes["train"] != classes["val"]:
            raise DataError(f"{folder}: train/ and val/ have different class folders")
        return {"counts": counts}

    def read(self, folder: Path, split: str) -> FolderSet:
        files, labels, classes = self._index(folder, split)
        return FolderSet(str(folder / self.split_dirs[split]), files, torch.tensor(labels, dtype=torch.int64), classes)

    def from_payload(self, payload: Dict[str, Any], root: Path, split: str) -> FolderSet:
        return FolderSet(str(self.folder(root) / self.split_dirs[split]), payload["files"], payload["labels"],
                         payload["classes"])


register_source(ImageNetFolders(
    name="imagenet", title="ImageNet ILSVRC-2012 (your copy; streamed from disk)", use="train",
    files={"train/": None, "val/": None}, counts={"train": 1281167, "val": 50000}, num_classes=1000,
    image_shape=None, manual=True,
    expect="train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (ILSVRC-2012, 1000 class folders each)",
    manual_help="ImageNet cannot be downloaded freely: get ILSVRC-2012 from image-net.org and sort val/ into class folders.",
))

OBJECTNET_MAPPINGS = ("folder_to_objectnet_label.json", "objectnet_to_imagenet_1k.json",
                      "pytorch_to_imagenet_2012_id.json", "imagenet_to_label_2012_v2")


@dataclass
class ObjectNetMapping:
    """ObjectNet classes that overlap ImageNet: ``folders[k]`` is scored correct for any id in ``imagenet_ids[k]``.

    Ids are torchvision/ImageFolder class indices (sorted wnids), the output order of an ImageNet model.
    """

    folders: List[str]
    imagenet_ids: List[List[int]]

    @property
    def allowed_ids(self) -> List[int]:
        """Every ImageNet id some ObjectNet class maps to: predictions are restricted to these."""
        return sorted({i for ids in self.imagenet_ids for i in ids})

    def membership(self, num_imagenet: int) -> torch.Tensor:
        """Bool (num_objectnet_classes, num_imagenet): True where the id counts for the class."""
        m = torch.zeros((len(self.folders), num_imagenet), dtype=torch.bool)
        for k, ids in enumerate(self.imagenet_ids):
            m[k, ids] = True
        return m


def read_objectnet_mapping(mappings: Path) -> ObjectNetMapping:
    """Parse ObjectNet's released ``mappings/`` folder:

    - ``folder_to_objectnet_label.json``: {image folder: ObjectNet class name} (all 313 classes);
    - ``objectnet_to_imagenet_1k.json``: {ObjectNet class name: "ImageNet name; ImageNet name"} (113 classes);
    - ``imagenet_to_label_2012_v2``: one ImageNet class name per line, line i = ILSVRC-2012 id i;
    - ``pytorch_to_imagenet_2012_id.json``: {torchvision class index: ILSVRC-2012 id}.
    """
    try:
        folder_of = {label: folder for folder, label in json.loads((mappings / OBJECTNET_MAPPINGS[0]).read_text()).items()}
        to_imagenet = json.loads((mappings / OBJECTNET_MAPPINGS[1]).read_text())
        index_of_line = {int(line): int(idx) for idx, line in json.loads((mappings / OBJECTNET_MAPPINGS[2]).read_text()).items()}
        lines = (mappings / OBJECTNET_MAPPINGS[3]).read_text().splitlines()
    except (OSError, ValueError, AttributeError) as e:
        raise DataError(f"cannot read ObjectNet's mappings in {mappings}: {_first_line(e)}") from None
    line_of = {name.strip(): i for i, name in enumerate(lines) if name.strip()}
    pairs = []
    for label, names in to_imagenet.items():
        if label not in folder_of:
            raise DataError(f"{OBJECTNET_MAPPINGS[1]} names ObjectNet class {label!r}, absent from {OBJECTNET_MAPPINGS[0]}")
        ids = []
        for name in (n.strip() for n in names.split(";")):
            if name not in line_of or line_of[name] not in index_of_line:
                raise DataError(f"ObjectNet mapping: ImageNet class {name!r} (for {label!r}) is not in "
                                f"{OBJECTNET_MAPPINGS[3]} / {OBJECTNET_MAPPINGS[2]}")
            ids.append(index_of_line[line_of[name]])
        pairs.append((folder_of[label], sorted(ids)))
    pairs.sort()
    return ObjectNetMapping([f for f, _ in pairs], [ids for _, ids in pairs])


@dataclass
class ObjectNetFolders(_IndexedFolders):
    """ObjectNet 1.0 (``objectnet-1.0/``): ``images/<folder>/*.png`` and ``mappings/``. Only the classes
    that overlap ImageNet are indexed; label k is the k-th overlapping folder in sorted order."""

    nested: str = "objectnet-1.0"
    num_ids: int = 125
    border: int = 1

    def mapping(self, folder: Path) -> ObjectNetMapping:
        return read_objectnet_mapping(folder / "mappings")

    def _index(self, folder: Path) -> Tuple[List[str], List[int], ObjectNetMapping]:
        mapping = self.mapping(folder)
        files, labels = [], []
        for k, name in enumerate(mapping.folders):
            names = list_images(folder / "images" / name)
            files.extend(f"{name}/{n}" for n in names)
            labels.extend([k] * len(names))
        return files, labels, mapping

    def validate(self, folder: Path) -> Dict[str, Any]:
        mapping = self.mapping(folder)
        if len(mapping.folders) != self.num_classes or len(mapping.allowed_ids) != self.num_ids:
            raise DataError(f"{folder / 'mappings'} maps {len(mapping.folders)} ObjectNet classes to "
                            f"{len(mapping.allowed_ids)} ImageNet ids, expected {self.num_classes} and {self.num_ids}")
        absent = [f for f in mapping.folders if not (folder / "images" / f).is_dir()]
        if absent:
            raise DataError(f"{folder / 'images'} lacks the class folders {', '.join(absent[:5])}")
        files, _, _ = self._index(folder)
        want = self.counts["test"]
        if want is not None and len(files) != want:
            raise DataError(f"{folder / 'images'} holds {len(files)} images of the overlapping classes, expected {want}")
        return {"counts": {"test": len(files)}}

    def read(self, folder: Path, split: str) -> FolderSet:
        files, labels, mapping = self._index(folder)
        return FolderSet(str(folder / "images"), files, torch.tensor(labels, dtype=torch.int64), mapping.folders,
                         border=self.border, class_ids=mapping.imagenet_ids)

    def from_payload(self, payload: Dict[str, Any], root: Path, split: str) -> FolderSet:
        return FolderSet(str(self.folder(root) / "images"), payload["files"], payload["labels"], payload["classes"],
                         border=self.border, class_ids=payload["class_ids"])


register_source(ObjectNetFolders(
    name="objectnet", title="ObjectNet 1.0, the 113 classes shared with ImageNet (your copy)", use="shift",
    files={"images/": None, **{f"mappings/{m}": None for m in OBJECTNET_MAPPINGS}},
    counts={"test": None}, num_classes=113, image_shape=None, manual=True,
    expect="objectnet-1.0/images/<class folder>/*.png and objectnet-1.0/mappings/{" + ",".join(OBJECTNET_MAPPINGS) + "}",
    manual_help="ObjectNet is distributed (password-protected zip) from objectnet.dev after accepting its licence; unzip it.",
))


# ------------------------------------------------------------------------------------------ ImageNetV2 / ImageNet-C


@dataclass
class ImageNetV2Folders(_IndexedFolders):
    """ImageNetV2 (Recht et al. 2019), one variant: ``imagenetv2-<variant>-format-val/<class id>/*.jpeg``, 10 new
    test images per ImageNet class. A folder's name is its class's index in ImageNet's sorted-wnid order (the
    output order of an ImageNet model), so labels come from the number, never from the folders' text order
    (in which "10" comes before "2")."""

    base: str = "imagenetv2-matched-frequency-format-val"

    def _index(self, folder: Path) -> Tuple[List[str], List[int]]:
        d = folder / self.base
        names = class_folders(d)
        bad = [n for n in names if not n.isdigit() or int(n) >= self.num_classes]
        if bad:
            raise DataError(f"{d} holds the folder {bad[0]!r}: ImageNetV2's class folders are named 0..{self.num_classes - 1}")
        files, labels = [], []
        for cid in sorted(names, key=int):
            images = list_images(d / cid)
            files.extend(f"{cid}/{n}" for n in images)
            labels.extend([int(cid)] * len(images))
        if len(names) != self.num_classes:
            raise DataError(f"{d} has {len(names)} class folders, expected {self.num_classes} (0..{self.num_classes - 1})")
        return files, labels

    def validate(self, folder: Path) -> Dict[str, Any]:
        files, _ = self._index(folder)
        want = self.counts["test"]
        if want is not None and len(files) != want:
            raise DataError(f"{folder / self.base} holds {len(files)} images, expected {want} (incomplete unpacking?)")
        return {"counts": {"test": len(files)}}

    def _set(self, folder: Path, files: List[str], labels) -> FolderSet:
        return FolderSet(str(folder / self.base), files, labels, [str(i) for i in range(self.num_classes)])

    def read(self, folder: Path, split: str) -> FolderSet:
        files, labels = self._index(folder)
        return self._set(folder, files, torch.tensor(labels, dtype=torch.int64))

    def from_payload(self, payload: Dict[str, Any], root: Path, split: str) -> FolderSet:
        return self._set(self.folder(root), payload["files"], payload["labels"])


_V2_SHA = "sha256:f0c37fdf925916b19ea1323cd9a2208cdb6959ba2c32eef2a7fc393835c9ca7c"  # tensorflow_datasets' checksums.tsv
register_source(ImageNetV2Folders(
    name="imagenet_v2", title="ImageNetV2 matched-frequency (10,000 new ImageNet test images)", use="shift",
    files={"imagenetv2-matched-frequency-format-val/": None}, counts={"test": 10000}, num_classes=1000,
    image_shape=None, local_copy=True,
    expect="imagenetv2-matched-frequency-format-val/<0..999>/*.jpeg (unpacked imagenetv2-matched-frequency.tar.gz)",
    remotes=[Remote(["https://huggingface.co/datasets/vaishaal/ImageNetV2/resolve/main/imagenetv2-matched-frequency.tar.gz"],
                    "imagenetv2-matched-frequency.tar.gz", _V2_SHA, extract=True)],
))


@dataclass
class ImageNetCFolders(_IndexedFolders):
    """ImageNet-C (Hendrycks & Dietterich 2019): ``<corruption>/<severity>/<wnid>/*.JPEG``, the 50,000 ImageNet
    validation images resized to 256, centre-cropped to 224 x 224 and corrupted. A split is one corruption: its
    severities 1..5 in order, the same number of files each; labels are the wnid's index in sorted order, as
    ImageNet's. The files are centre crops already (``FolderSet.recrop=False``)."""

    severities: int = 5

    def _severity(self, folder: Path, corruption: str, s: int) -> Tuple[List[str], List[int], List[str]]:
        d = folder / corruption / str(s)
        files, labels, wnids = index_class_folders(d, prefix=f"{s}/")
        if len(wnids) != self.num_classes:
            raise DataError(f"{d} has {len(wnids)} class folders, expected {self.num_classes} (<wnid>/ folders of images)")
        return files, labels, wnids

    def _index(self, folder: Path, corruption: str) -> Tuple[List[str], List[int], List[str]]:
        files, labels, per, classes = [], [], [], None
        for s in range(1, self.severities + 1):
            f, y, wnids = self._severity(folder, corruption, s)
            if classes is not None and wnids != classes:
                raise DataError(f"{folder / corruption / str(s)} has other class folders than {folder / corruption / '1'}")
            classes = wnids
            files += f
            labels += y
            per.append(len(f))
        if len(set(per)) != 1:
            raise DataError(f"{folder / corruption}: severities 1..{self.severities} hold {per} images, expected the same number in each")
        return files, labels, classes

    def validate(self, folder: Path) -> Dict[str, Any]:
        counts = {}
        for corruption, want in self.counts.items():
            counts[corruption] = len(self._index(folder, corruption)[0])
            if want is not None and counts[corruption] != want:
                raise DataError(f"{folder / corruption} holds {counts[corruption]} images, expected {want} "
                                f"({self.severities} severities; incomplete unpacking?)")
        return {"counts": counts}

    def read(self, folder: Path, split: str) -> FolderSet:
        files, labels, classes = self._index(folder, split)
        return FolderSet(str(folder / split), files, torch.tensor(labels, dtype=torch.int64), classes, recrop=False)

    def from_payload(self, payload: Dict[str, Any], root: Path, split: str) -> FolderSet:
        return FolderSet(str(self.folder(root) / split), payload["files"], payload["labels"], payload["classes"],
                         recrop=False)


# The four archives of the 15 benchmark corruptions (``extra.tar``, the 4 held-out ones, is not used): Zenodo's
# md5 and the corruption folders each unpacks to.
_IMAGENET_C_TARS = {"noise": ("e80562d7f6c3f8834afb1ecf27252745", CORRUPTIONS[:3]),
                    "blur": ("2d8e81fdd8e07fef67b9334fa635e45c", CORRUPTIONS[3:7]),
                    "weather": ("33ffea4db4d93fe4a428c40a6ce0c25d", CORRUPTIONS[7:11]),
                    "digital": ("89157860d7b10d5797849337ca2e5c03", CORRUPTIONS[11:])}
register_source(ImageNetCFolders(
    name="imagenet_c", title="ImageNet-C: 15 corruptions x 5 severities of the ImageNet validation set", use="shift",
    files={f"{c}/": None for c in CORRUPTIONS}, counts={c: 250000 for c in CORRUPTIONS}, num_classes=1000,
    image_shape=None, local_copy=True,
    expect="<corruption>/<1..5>/<wnid>/*.JPEG for the 15 benchmark corruptions (unpacked noise.tar, blur.tar, "
           "weather.tar, digital.tar)",
    remotes=[Remote([f"https://zenodo.org/records/2235448/files/{t}.tar?download=1",
                     f"https://zenodo.org/record/2235448/files/{t}.tar"], f"{t}.tar", f"md5:{md5}", extract=True,
                    provides=[f"{c}/" for c in corruptions])
             for t, (md5, corruptions) in _IMAGENET_C_TARS.items()],
))
