"""ImageNetV2 and ImageNet-C (table rescaled-ub): their released layouts, archives and checksums, labels,
ImageNet-C's severities and crop, and the metrics a run reports on them."""

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest
import torch

import mixexp.data.fixtures as fx
from fixtures_data import IMAGENET_WNIDS, compose, data_root, fixture_tree  # noqa: F401  (pytest fixtures)
from mixexp.config import ConfigError, validate
from mixexp.data import FolderSet, build_loader
from mixexp.data import store
from mixexp.data.evalsets import EVAL_SETS, load_eval_set
from mixexp.data.sources import CORRUPTIONS
from mixexp.data.store import ChecksumError, DataError, Remote, load_split, prepare
from mixexp.evaluation import keys
from mixexp.tables import cell_source, load_tables

# how the four Zenodo archives split the 15 benchmark corruptions
GROUPS = {"noise": CORRUPTIONS[:3], "blur": CORRUPTIONS[3:7], "weather": CORRUPTIONS[7:11], "digital": CORRUPTIONS[11:]}


def _pixels(data, size):
    """The first batch of a FolderSet as the test loader gives it, in [0, 1] (no normalisation)."""
    loader = build_loader(data.resized(size), len(data), device="cpu", mean=(0, 0, 0), std=(1, 1, 1), train=False)
    return next(iter(loader))


def test_imagenet_v2_labels_are_the_folder_numbers_not_their_text_order(tmp_path, monkeypatch):
    base = tmp_path / "imagenet_v2" / "imagenetv2-matched-frequency-format-val"
    for k in range(12):  # as text, "10" and "11" sort before "2"
        for i in range(2):
            fx._jpeg(base / str(k) / f"{i}.jpeg", fx._solid(30, 30, (20 * k, 0, 0)))
    fx.patch_sources(monkeypatch.setattr, {"imagenet_v2": {"counts": {"test": 24}, "num_classes": 12}})
    test = load_eval_set("imagenet_v2", tmp_path, size=16)["test"]
    assert isinstance(test, FolderSet) and test.labels.tolist() == [k for k in range(12) for _ in range(2)]
    assert test.files[20:22] == ["10/0.jpeg", "10/1.jpeg"] and test.recrop is True
    x, y = _pixels(test, 16)
    assert x.shape == (24, 3, 16, 16) and (x[:, 0].mean((1, 2)) * 255 / 20).round().tolist() == y.float().tolist()


@pytest.mark.parametrize("folder, message", [
    ("n01440764", "holds the folder 'n01440764': ImageNetV2's class folders are named 0..2"),
    ("7", "holds the folder '7': ImageNetV2's class folders are named 0..2"),
    (None, "has 2 class folders, expected 3 (0..2)"),
])
def test_imagenet_v2_layout_errors_are_one_line(tmp_path, monkeypatch, folder, message):
    base = tmp_path / "imagenet_v2" / "imagenetv2-matched-frequency-format-val"
    for name in ["0", "1"] + ([folder] if folder else []):
        fx._jpeg(base / name / "a.jpeg", fx._solid(8, 8, (0, 0, 0)))
    fx.patch_sources(monkeypatch.setattr, {"imagenet_v2": {"counts": {"test": None}, "num_classes": 3}})
    with pytest.raises(DataError) as e:
        load_split("imagenet_v2", "test", tmp_path)
    assert str(e.value) == f"{base} {message}"


def _tar(path, folder, members):
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tar:
        for m in members:
            tar.add(folder / m, arcname=m)
    return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()


def test_imagenet_v2_is_downloaded_as_its_released_archive_and_checked(tmp_path, monkeypatch):
    staging = tmp_path / "served"
    overrides = fx.write_imagenet_v2(staging)
    archive = tmp_path / "imagenetv2-matched-frequency.tar.gz"
    checksum = _tar(archive, staging, ["imagenetv2-matched-frequency-format-val"])
    real = store.SOURCES["imagenet_v2"].remotes[0]
    assert real.checksum == "sha256:f0c37fdf925916b19ea1323cd9a2208cdb6959ba2c32eef2a7fc393835c9ca7c" and real.extract
    bad = Remote([archive.as_uri()], real.filename, "md5:" + "0" * 32, extract=True)
    fx.patch_sources(monkeypatch.setattr, {"imagenet_v2": {**overrides, "remotes": [bad]}})
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match="checksum mismatch for imagenetv2-matched-frequency.tar.gz"):
        prepare("imagenet_v2", root, progress=False)
    assert not (root / "imagenet_v2" / "imagenetv2-matched-frequency-format-val").exists()
    monkeypatch.setattr(store.SOURCES["imagenet_v2"], "remotes", [Remote([archive.as_uri()], real.filename, checksum, extract=True)])
    assert prepare("imagenet_v2", root, progress=False).startswith("imagenet_v2: ready")
    assert load_split("imagenet_v2", "test", root).labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert not (root / "imagenet_v2" / real.filename).exists()  # the archive is removed once unpacked


def _serve_imagenet_c(tmp_path, monkeypatch):
    staging = tmp_path / "served"
    overrides = fx.write_imagenet_c(staging)
    remotes = []
    for group, corruptions in GROUPS.items():
        archive = tmp_path / f"{group}.tar"
        remotes.append(Remote([archive.as_uri()], archive.name, _tar(archive, staging, corruptions), extract=True,
                              provides=[f"{c}/" for c in corruptions]))
    real = store.SOURCES["imagenet_c"].remotes
    assert [(r.filename, r.provides) for r in real] == [(f"{g}.tar", [f"{c}/" for c in cs]) for g, cs in GROUPS.items()]
    fx.patch_sources(monkeypatch.setattr, {"imagenet_c": {**overrides, "remotes": remotes}})
    return staging


def test_imagenet_c_archives_unpack_to_corruption_severity_wnid_folders(tmp_path, monkeypatch):
    _serve_imagenet_c(tmp_path, monkeypatch)
    root = tmp_path / "data"
    prepare("imagenet_c", root, progress=False)
    assert sorted(p.name for p in (root / "imagenet_c").iterdir() if p.is_dir()) == sorted([*CORRUPTIONS, "cache"])
    sets = load_eval_set("imagenet_c", root, size=24, severities=[2, 5], corruptions=["fog", "contrast"])
    assert list(sets) == ["fog/2", "fog/5", "contrast/2", "contrast/5"]
    fog5 = sets["fog/5"]
    assert isinstance(fog5, FolderSet) and fog5.recrop is False and fog5.classes == IMAGENET_WNIDS
    assert fog5.files == [f"5/{w}/ILSVRC2012_val_{k:08d}.JPEG" for k, w in enumerate(IMAGENET_WNIDS)]
    x, y = _pixels(fog5, 24)
    assert y.tolist() == [0, 1, 2] and (x[:, 0].mean((1, 2)) * 255).round().tolist() == pytest.approx([200] * 3, abs=2)
    assert (_pixels(sets["fog/2"], 24)[0][:, 0].mean() * 255).item() == pytest.approx(80, abs=2)  # 40 x severity
    with pytest.raises(ConfigError, match="corruptions \\['rain'\\]"):
        load_eval_set("imagenet_c", root, corruptions=["rain"])
    again = load_eval_set("imagenet_c", root, size=24, severities=[5], corruptions=["fog"], imagenet_c_crop="center")
    assert again["fog/5"].recrop is True  # eval.imagenet_c_crop=center: ImageNet's test view again
    with pytest.raises(ConfigError, match="^eval.imagenet_c_crop='full' is not allowed: choose one of center, none$"):
        load_eval_set("imagenet_c", root, imagenet_c_crop="full")


def test_an_imagenet_c_archive_already_unpacked_is_not_fetched_again(tmp_path, monkeypatch):
    _serve_imagenet_c(tmp_path, monkeypatch)
    root = tmp_path / "data"
    (tmp_path / "noise.tar").rename(tmp_path / "gone.tar")  # a second download of noise.tar would fail
    with tarfile.open(tmp_path / "gone.tar") as tar:  # as a first prepare left it before blur.tar failed
        tar.extractall(root / "imagenet_c")
    prepare("imagenet_c", root, progress=False)
    assert len(load_split("imagenet_c", "shot_noise", root)) == 15


def test_imagenet_c_from_a_copy_you_have_and_source_only_where_allowed(tmp_path, monkeypatch):
    staging = _serve_imagenet_c(tmp_path, monkeypatch)
    root = tmp_path / "data"
    monkeypatch.setattr(store, "_open_url", lambda url: pytest.fail(f"downloaded {url}"))
    assert prepare("imagenet_c", root, source=staging, progress=False) == f"imagenet_c: ready in {staging}"
    assert len(load_split("imagenet_c", "snow", root)) == 5 * len(IMAGENET_WNIDS)
    assert store.status(store.SOURCES["imagenet_c"], root)["state"] == "ready"
    with pytest.raises(ConfigError) as e:
        prepare("cifar10", root, source=staging)
    assert str(e.value) == ("--source is only for imagenet, objectnet, imagenet_v2, imagenet_c (datasets you may "
                            "already have a copy of), not cifar10")
    # your copy goes away (unmounted): neither prepare nor a run downloads 47 GB in its place, and a run that
    # would evaluate on it stops before training (a file index cannot stand in for the images)
    staging.rename(tmp_path / "unmounted")
    with pytest.raises(DataError) as e:
        prepare("imagenet_c", root, progress=False)
    assert str(e.value).startswith(f"dataset imagenet_c is not found in {staging}, the copy recorded in "
                                   f"{root / 'imagenet_c' / 'source.json'}: expected <corruption>/")
    assert str(e.value).endswith("or delete that file to download it")
    from mixexp.data.evalsets import require_eval_sets

    cfg = compose(["dataset=imagenet", f"paths.data_dir={root}", "eval.shift=[imagenet_c]", "dataset.download=true"])
    with pytest.raises(DataError, match=f"^dataset imagenet_c is not found in {staging}, the copy recorded"):
        require_eval_sets(cfg, root)


def test_imagenet_c_missing_says_how_to_download_or_point_at_a_copy(tmp_path):
    with pytest.raises(DataError) as e:
        load_split("imagenet_c", "fog", tmp_path)
    text = str(e.value)
    assert text.startswith(f"dataset imagenet_c is not found in {tmp_path / 'imagenet_c'}: expected <corruption>/<1..5>/")
    assert text.endswith(f"(or pass dataset.download=true, or use a copy you have: mixexp-data prepare imagenet_c "
                         f"--source DIR --data-dir {tmp_path})") and "\n" not in text


def test_imagenet_c_crop_none_keeps_the_released_view_and_center_crops_it_again(tmp_path):
    img = fx._solid(224, 224, (0, 255, 0))
    img[12:-12, 12:-12] = (0, 0, 255)  # a 12 px frame: Resize(256) + CenterCrop(224) cuts 224 * 16/256 = 14 px a side
    fx._jpeg(tmp_path / "1" / "n0" / "a.JPEG", img)
    released = FolderSet(str(tmp_path), ["1/n0/a.JPEG"], torch.tensor([0]), ["n0"], recrop=False, num_workers=0)
    x, _ = _pixels(released, 224)
    assert x[0, 1, 0, 0].item() > 0.9 and x[0, 2, 112, 112].item() > 0.9  # the frame is there, as released
    x, _ = _pixels(FolderSet(**{**released.__dict__, "recrop": True}), 224)
    assert x[0, 1, :2].max().item() < 0.1 and x[0, 2, 0, 0].item() > 0.9  # cropped again: no frame left


def test_top1_keys_of_imagenet_sets_and_the_ub_cells_that_read_them():
    assert set(keys.TOP1_SETS) == {n for n, s in EVAL_SETS.items() if s.base == "imagenet"}
    ub = load_tables()["rescaled-ub"]
    sources = {(c.dataset, m): cell_source(c, m).key for c in ub.columns for m in ub.methods if c.metric == "top1"}
    assert sources[("imagenet_c", "mixup+rescaled")] == "rescaled_imagenet_c_top1"
    assert sources[("imagenet_v2", "erm")] == "imagenet_v2_top1" and sources[("objectnet", "erm")] == "objectnet_top1"


def test_eval_imagenet_c_crop_allows_none_or_center():
    cfg = compose(["dataset=imagenet", "eval.imagenet_c_crop=full"])
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert str(e.value).startswith("eval.imagenet_c_crop=")
    assert "none" in str(e.value) and "center" in str(e.value)


def test_an_imagenet_run_reports_v2_and_c_top1_and_reevaluates_c_when_its_crop_changes(data_root, tmp_path):
    from mixexp.trainer import Trainer

    base = ["dataset=imagenet", f"paths.data_dir={data_root}", "dataset.resize=32", "dataset.num_workers=0",
            "model=simplecnn", "model.width=8", "trainer.epochs=1", "trainer.batch_size=4", "trainer.device=cpu",
            "trainer.progress=log", "mixer=mixup", "resume=true", "eval.shift=[imagenet_v2,imagenet_c]",
            "eval.rescaled=true", "eval.corruptions=[fog,snow]", "eval.severities=[1,5]"]
    cfg = compose(base)
    validate(cfg)
    first = Trainer(cfg, tmp_path / "run").fit()
    parts = json.loads((tmp_path / "run" / "eval_breakdown.json").read_text())
    assert sorted(parts["imagenet_c"]) == ["fog/1", "fog/5", "snow/1", "snow/5"]
    for prefix in ("", "rescaled_"):
        assert first[prefix + "imagenet_c_top1"] == pytest.approx(sum(parts[prefix + "imagenet_c"].values()) / 4)
        assert first[prefix + "imagenet_v2_top1"] * 6 / 100 == pytest.approx(round(first[prefix + "imagenet_v2_top1"] * 6 / 100))
    assert first["eval_settings"]["imagenet_c"] == {"severities": [1, 5], "corruptions": ["fog", "snow"], "crop": "none"}
    cfg = compose(base + ["eval.imagenet_c_crop=center"])
    validate(cfg)
    again = Trainer(cfg, tmp_path / "run").fit()
    assert again["eval_settings"]["imagenet_c"]["crop"] == "center"  # evaluated again: its crop changed
    assert again["imagenet_v2_top1"] == first["imagenet_v2_top1"] and again["wall_s"] == first["wall_s"]
