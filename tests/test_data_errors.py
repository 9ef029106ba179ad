"""Bad input: missing data, wrong checksums, damaged caches, broken downloads, bad eval config."""

from __future__ import annotations

import io
import logging
import os
import tarfile
from pathlib import Path

import pytest
import torch

import fixtures_data as fx
from fixtures_data import compose
from mixexp.config import ConfigError, validate
from mixexp.data import load_dataset
from mixexp.data import store
from mixexp.data.store import (
    SOURCES, CacheError, ChecksumError, DataError, MissingDataError, Remote, load_split, prepare, resolve_root, status,
)


@pytest.fixture
def cifar10_root(tmp_path, monkeypatch):
    """A fresh root holding only the CIFAR-10 fixture (checksums patched)."""
    root = tmp_path / "data"
    fx.patch_sources(monkeypatch.setattr, {"cifar10": fx.write_cifar10(root / "cifar10")})
    return root


def cfg_for(name, root, *overrides):
    return compose([f"dataset={name}", f"paths.data_dir={root}", *overrides])


# ------------------------------------------------------------------------------------------ missing


def test_missing_data_names_dataset_folder_files_and_command(tmp_path):
    cfg = cfg_for("cifar10", tmp_path)
    with pytest.raises(MissingDataError) as e:
        load_dataset(cfg.dataset, cfg.paths.data_dir)
    msg = str(e.value)
    assert msg == (f"dataset cifar10 is not found in {tmp_path}/cifar10: expected "
                   "cifar-10-batches-py/{data_batch_1..5,test_batch} (unpacked cifar-10-python.tar.gz); "
                   f"run: mixexp-data prepare cifar10 --data-dir {tmp_path} (or pass dataset.download=true)")
    assert "\n" not in msg and isinstance(e.value, ConfigError)


def test_incomplete_data_lists_the_missing_files(cifar10_root):
    (cifar10_root / "cifar10" / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(MissingDataError, match=r"is incomplete \(missing cifar-10-batches-py/test_batch\)"):
        load_split("cifar10", "train", cifar10_root)


def test_manual_datasets_explain_what_they_expect(tmp_path):
    with pytest.raises(MissingDataError) as e:
        load_split("imagenet", "train", tmp_path, download=True)  # cannot be downloaded: same message
    msg = str(e.value)
    assert "train/<wnid>/*.JPEG and val/<wnid>/*.JPEG" in msg and "cannot be downloaded freely" in msg
    assert msg.endswith(f"mixexp-data prepare imagenet --source DIR --data-dir {tmp_path}")
    with pytest.raises(MissingDataError, match=r"does not hold objectnet: missing images/, mappings/"):
        prepare("objectnet", tmp_path, source=tmp_path)


# ------------------------------------------------------------------------------------------ checksums


def test_checksum_mismatch_names_file_expected_and_found_and_builds_no_cache(cifar10_root):
    path = cifar10_root / "cifar10" / "cifar-10-batches-py" / "data_batch_2"
    want = SOURCES["cifar10"].files["cifar-10-batches-py/data_batch_2"].split(":")[1]
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    found = fx.md5(path).split(":")[1]
    with pytest.raises(ChecksumError) as e:
        load_split("cifar10", "train", cifar10_root)
    assert str(e.value) == (f"checksum mismatch for {path}: expected md5 {want}, found {found}; delete it and run: "
                            f"mixexp-data prepare cifar10 --data-dir {cifar10_root}")
    assert not (cifar10_root / "cifar10" / "cache").exists()
    assert not (cifar10_root / "cifar10" / ".verified.json").exists()


def test_real_checksums_are_pinned_for_every_downloadable_file():
    for src in SOURCES.values():
        if src.manual:
            continue
        assert src.remotes, src.name
        for remote in src.remotes:
            assert remote.checksum and remote.checksum.split(":")[0] in ("md5", "sha256"), (src.name, remote.filename)
    assert SOURCES["cifar10"].remotes[0].checksum == "md5:c58f30108f718f92721af3b95e74349a"


# ------------------------------------------------------------------------------------------ caches


def test_truncated_cache_is_rebuilt_from_the_verified_source(cifar10_root, caplog):
    first = load_split("cifar10", "train", cifar10_root)
    cache = cifar10_root / "cifar10" / "cache" / "train.pt"
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="mixexp.data"):
        again = load_split("cifar10", "train", cifar10_root)
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    assert f"cache {cache} cannot be read (truncated or damaged" in caplog.text and "rebuilding it" in caplog.text
    assert torch.load(cache, weights_only=True)["images"].shape == (fx.N_TRAIN, 3, 32, 32)


def test_damaged_cache_without_source_is_refused_with_the_command(cifar10_root):
    load_split("cifar10", "train", cifar10_root)
    cache = cifar10_root / "cifar10" / "cache" / "train.pt"
    cache.write_bytes(cache.read_bytes()[:1000])
    for f in (cifar10_root / "cifar10" / "cifar-10-batches-py").iterdir():
        f.unlink()
    with pytest.raises(CacheError) as e:
        load_split("cifar10", "train", cifar10_root)
    msg = str(e.value)
    assert msg.startswith(f"cache {cache} cannot be read (truncated or damaged: ")
    assert msg.endswith(f", and the source files to rebuild it are missing from {cifar10_root}/cifar10; "
                        f"run: mixexp-data prepare cifar10 --data-dir {cifar10_root}")


def test_cache_of_the_wrong_shape_is_rebuilt(cifar10_root, caplog):
    first = load_split("cifar10", "train", cifar10_root)
    cache = cifar10_root / "cifar10" / "cache" / "train.pt"
    payload = torch.load(cache, weights_only=True)
    payload["images"], payload["labels"] = payload["images"][:-1], payload["labels"][:-1]
    torch.save(payload, cache)
    with caplog.at_level(logging.WARNING, logger="mixexp.data"):
        again = load_split("cifar10", "train", cifar10_root)
    assert len(again) == len(first) == fx.N_TRAIN
    assert f"holds torch.uint8 images of shape ({fx.N_TRAIN - 1}, 3, 32, 32), expected uint8 ({fx.N_TRAIN}, 3, 32, 32)" in caplog.text


def test_cache_is_rebuilt_when_the_source_is_replaced(cifar10_root, monkeypatch):
    load_split("cifar10", "test", cifar10_root)
    path = cifar10_root / "cifar10" / "cifar-10-batches-py" / "test_batch"
    import pickle

    batch = pickle.loads(path.read_bytes())
    batch[b"labels"] = [9 - y for y in batch[b"labels"]]
    path.write_bytes(pickle.dumps(batch))
    monkeypatch.setitem(SOURCES["cifar10"].files, "cifar-10-batches-py/test_batch", fx.md5(path))
    again = load_split("cifar10", "test", cifar10_root)
    assert again.labels.tolist() == [9 - i % 10 for i in range(fx.N_TEST)]
    os.utime(path)  # touched but identical: verified again, the cache is kept
    assert load_split("cifar10", "test", cifar10_root).labels.tolist() == again.labels.tolist()


def test_cache_survives_removal_of_the_source(cifar10_root):
    first = load_split("cifar10", "train", cifar10_root)
    load_split("cifar10", "test", cifar10_root)
    assert status(SOURCES["cifar10"], cifar10_root)["state"] == "ready"
    for f in (cifar10_root / "cifar10" / "cifar-10-batches-py").iterdir():
        f.unlink()
    assert torch.equal(load_split("cifar10", "train", cifar10_root).images, first.images)
    assert status(SOURCES["cifar10"], cifar10_root)["state"] == "cache-only"


# ------------------------------------------------------------------------------------------ downloads


def _serve_cifar10_tar(tmp_path) -> tuple:
    """A CIFAR-10 fixture packed as cifar-10-python.tar.gz in a folder served by file:// URLs."""
    staging, served = tmp_path / "staging", tmp_path / "served"
    overrides = fx.write_cifar10(staging)
    served.mkdir()
    with tarfile.open(served / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return served / "cifar-10-python.tar.gz", overrides


def _remote(path: Path, checksum=None, extract=True, urls=None) -> Remote:
    return Remote(urls or [path.as_uri()], path.name, checksum or fx.md5(path), extract=extract)


def test_prepare_downloads_verifies_unpacks_and_converts(tmp_path, monkeypatch):
    archive, overrides = _serve_cifar10_tar(tmp_path)
    fx.patch_sources(monkeypatch.setattr, {"cifar10": {**overrides, "remotes": [_remote(archive)]}})
    root = tmp_path / "data"
    assert prepare("cifar10", root, progress=False) == f"cifar10: ready in {root}/cifar10"
    assert (root / "cifar10" / "cache" / "train.pt").is_file() and (root / "cifar10" / "cache" / "test.pt").is_file()
    assert not (root / "cifar10" / "cifar-10-python.tar.gz").exists()  # unpacked, then removed
    assert status(SOURCES["cifar10"], root)["state"] == "ready"
    assert load_split("cifar10", "test", root).images[:, 0, 0, 0].tolist() == list(range(100, 100 + fx.N_TEST))


def test_stale_partial_downloads_are_cleared_and_never_used(tmp_path, monkeypatch):
    archive, overrides = _serve_cifar10_tar(tmp_path)
    fx.patch_sources(monkeypatch.setattr, {"cifar10": {**overrides, "remotes": [_remote(archive)]}})
    root = tmp_path / "data"
    stale = root / "cifar10" / ".cifar-10-python.tar.gz.k1ll3d.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(archive.read_bytes()[:500])  # what a killed process leaves behind
    with pytest.raises(MissingDataError):
        load_split("cifar10", "train", root)
    prepare("cifar10", root, progress=False)
    assert not stale.exists() and not [n for n in _no_partial_files(root / "cifar10") if n.endswith(".part")]
    assert sorted(p.name for p in (root / "cifar10").iterdir()) == [".verified.json", "cache", "cifar-10-batches-py"]


def test_training_with_download_true_prepares_on_first_use(tmp_path, monkeypatch):
    archive, overrides = _serve_cifar10_tar(tmp_path)
    fx.patch_sources(monkeypatch.setattr, {"cifar10": {**overrides, "remotes": [_remote(archive)]}})
    cfg = cfg_for("cifar10", tmp_path / "data", "dataset.download=true")
    data = load_dataset(cfg.dataset, cfg.paths.data_dir)
    assert data.train.images.shape == (fx.N_TRAIN, 3, 32, 32)


def _no_partial_files(folder: Path) -> list:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_download_with_wrong_checksum_is_discarded(tmp_path, monkeypatch):
    archive, overrides = _serve_cifar10_tar(tmp_path)
    bad = "md5:" + "0" * 32
    fx.patch_sources(monkeypatch.setattr, {"cifar10": {**overrides, "remotes": [_remote(archive, checksum=bad)]}})
    root = tmp_path / "data"
    with pytest.raises(ChecksumError) as e:
        prepare("cifar10", root, progress=False)
    found = fx.md5(archive).split(":")[1]
    assert str(e.value) == (f"checksum mismatch for cifar-10-python.tar.gz downloaded from {archive.as_uri()}: "
                            f"expected md5 {'0' * 32}, found {found}; the download was discarded "
                            "(the server may have changed the file; retry, or report it)")
    assert _no_partial_files(root / "cifar10") == []
    assert not (root / "cifar10" / "cache").exists()


class _Dropping(io.BytesIO):
    """A response that sends one chunk and then fails, like a dropped connection."""

    def __init__(self, data: bytes, error: BaseException):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data) * 10)}
        self.error, self.calls = error, 0

    def read(self, n=-1):
        self.calls += 1
        if self.calls > 1:
            raise self.error
        return super().read(min(n, 100))


@pytest.mark.parametrize("error", [ConnectionResetError("connection reset by peer"), KeyboardInterrupt()])
def test_interrupted_download_leaves_no_file_that_passes_for_complete(tmp_path, monkeypatch, error):
    archive, overrides = _serve_cifar10_tar(tmp_path)
    fx.patch_sources(monkeypatch.setattr, {"cifar10": {**overrides, "remotes": [_remote(archive)]}})
    monkeypatch.setattr(store, "_open_url", lambda url: _Dropping(archive.read_bytes(), error))
    root = tmp_path / "data"
    expected = DataError if isinstance(error, Exception) else KeyboardInterrupt
    with pytest.raises(expected) as e:
        prepare("cifar10", root, progress=False)
    if expected is DataError:
        assert str(e.value) == f"could not download cifar-10-python.tar.gz: {archive.as_uri()}: connection reset by peer"
    assert _no_partial_files(root / "cifar10") == []


def test_download_falls_back_to_the_next_mirror(tmp_path, monkeypatch):
    root = tmp_path / "data"
    staging = tmp_path / "served"
    overrides = fx.write_cifar10_1(staging)
    remotes = [Remote([(staging / "nowhere" / f).as_uri(), (staging / f).as_uri()], f, overrides["files"][f])
               for f in ("cifar10.1_v6_data.npy", "cifar10.1_v6_labels.npy")]
    fx.patch_sources(monkeypatch.setattr, {"cifar10_1": {**overrides, "remotes": remotes}})
    prepare("cifar10_1", root, progress=False)
    assert load_split("cifar10_1", "test", root).labels.tolist() == [i % 10 for i in range(fx.N_TEST)]


def test_prepare_fetches_again_when_a_present_file_is_corrupt(tmp_path, monkeypatch):
    staging = tmp_path / "served"
    overrides = fx.write_cifar10_1(staging)
    remotes = [Remote([(staging / f).as_uri()], f, overrides["files"][f])
               for f in ("cifar10.1_v6_data.npy", "cifar10.1_v6_labels.npy")]
    fx.patch_sources(monkeypatch.setattr, {"cifar10_1": {**overrides, "remotes": remotes}})
    root = tmp_path / "data"
    (root / "cifar10_1").mkdir(parents=True)
    for f in ("cifar10.1_v6_data.npy", "cifar10.1_v6_labels.npy"):
        (root / "cifar10_1" / f).write_bytes(b"garbage")
    prepare("cifar10_1", root, progress=False)
    assert fx.md5(root / "cifar10_1" / "cifar10.1_v6_data.npy") == overrides["files"]["cifar10.1_v6_data.npy"]


# ------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize("overrides, message", [
    (["eval.shift=[cifar10_c,svhn]"], "eval.shift='svhn' is not allowed: choose one of cifar100_c, cifar10_1, cifar10_2, cifar10_c, imagenet_c, imagenet_v2, objectnet"),
    (["eval.ood=[mnist]"], "eval.ood='mnist' is not allowed: choose one of lsun_crop, svhn"),
    (["dataset=cifar100", "eval.shift=[cifar10_1]"],
     "eval.shift='cifar10_1' is not allowed: cifar10_1 is labelled with the classes of cifar10; train with dataset=cifar10"),
    (["eval.severities=[0,3]"], "eval.severities=[0, 3] is not allowed: use severities from 1..5"),
    (["eval.corruptions=[rain]"], "eval.corruptions='rain' is not allowed: choose one of"),
    (["dataset.num_workers=-1"], "dataset.num_workers=-1 is not allowed: must be >= 0"),
    (["dataset.classes=[3,3]"], "dataset.classes=[3, 3] is not allowed: must be empty (every class) or >= 2 distinct"),
    (["dataset.classes=[3,4]", "eval.shift=[cifar10_1]"], "dataset.classes=[3, 4] is not allowed: cannot be combined"),
])
def test_eval_and_dataset_keys_are_validated(overrides, message):
    cfg = compose(["dataset=cifar10", *overrides])
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert str(e.value).startswith(message)


def test_eval_group_default_and_the_papers_sets_validate():
    default = compose([])
    assert list(default.eval.shift) == [] and list(default.eval.ood) == [] and list(default.eval.severities) == [1, 2, 3, 4, 5]
    validate(compose(["dataset=cifar10", "eval.shift=[cifar10_c,cifar10_1,cifar10_2]", "eval.ood=[svhn,lsun_crop]"]))
    validate(compose(["dataset=cifar100", "eval.shift=[cifar100_c]", "eval.ood=[svhn,lsun_crop]"]))
    validate(compose(["dataset=imagenet", "eval.shift=[objectnet]"]))
    validate(compose(["dataset=digits", "eval.ood=[svhn]"]))  # OOD sets need no particular training set


def test_missing_eval_sets_fail_before_training_or_are_fetched(tmp_path, monkeypatch):
    from mixexp.data.evalsets import require_eval_sets

    cfg = compose(["dataset=cifar10", f"paths.data_dir={tmp_path}", "eval.shift=[cifar10_1]", "eval.ood=[svhn]"])
    with pytest.raises(MissingDataError, match=r"^dataset cifar10_1 is not found in .*cifar10\.1_v6_data\.npy"):
        require_eval_sets(cfg, tmp_path)
    staging = tmp_path / "served"
    c101 = fx.write_cifar10_1(staging)
    fx.patch_sources(monkeypatch.setattr, {
        "cifar10_1": {**c101, "remotes": [Remote([(staging / f).as_uri()], f, c101["files"][f]) for f in c101["files"]]},
        "svhn": fx.write_svhn(tmp_path / "svhn")})
    with pytest.raises(MissingDataError, match="cifar10_1"):
        require_eval_sets(cfg, tmp_path)
    require_eval_sets(compose(["dataset=cifar10", "dataset.download=true", "eval.shift=[cifar10_1]",
                               "eval.ood=[svhn]"]), tmp_path)
    assert status(SOURCES["cifar10_1"], tmp_path)["state"] == "verified"


def test_data_root_comes_from_env_then_xdg_then_home_and_expands_tilde(monkeypatch, tmp_path):
    monkeypatch.setenv("MIXEXP_DATA", str(tmp_path / "a"))
    assert compose([]).paths.data_dir == str(tmp_path / "a")
    assert store.default_data_dir() == str(tmp_path / "a")
    monkeypatch.delenv("MIXEXP_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compose([]).paths.data_dir == str(tmp_path / "xdg" / "mixexp")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert store.default_data_dir() == str(tmp_path / "home" / ".cache" / "mixexp")
    assert resolve_root("~/d") == tmp_path / "home" / "d"
    with pytest.raises(ConfigError, match="paths.data_dir is empty"):
        resolve_root("  ")
