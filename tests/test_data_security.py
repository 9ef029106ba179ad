"""Hostile data files: a replaced CIFAR batch is never unpickled, archives cannot write outside their folder."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zipfile

import pytest

import fixtures_data as fx
from mixexp.data import store
from mixexp.data.sources import ArrayUnpickler
from mixexp.data.store import ChecksumError, DataError, load_split


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def cifar10_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    fx.patch_sources(monkeypatch.setattr, {"cifar10": fx.write_cifar10(root / "cifar10")})
    return root


def test_replaced_cifar_batch_with_same_size_and_mtime_is_never_unpickled(cifar10_root, tmp_path):
    load_split("cifar10", "test", cifar10_root)  # verified, stamped, cached
    path = cifar10_root / "cifar10" / "cifar-10-batches-py" / "test_batch"
    st = path.stat()
    marker = tmp_path / "pwned"
    evil = pickle.dumps(Payload(marker))
    path.write_bytes(evil + b"\0" * (st.st_size - len(evil)))  # pickle stops at STOP: the padding is ignored
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert store.stamp_is_current(store.SOURCES["cifar10"], cifar10_root, store.read_stamp(store.SOURCES["cifar10"], cifar10_root))
    (cifar10_root / "cifar10" / "cache" / "test.pt").unlink()  # the source is read again
    with pytest.raises(ChecksumError, match=rf"checksum mismatch for {path}: .* it was not unpickled"):
        load_split("cifar10", "test", cifar10_root)
    assert not marker.exists()


def test_cifar_unpickler_builds_arrays_and_refuses_other_globals(cifar10_root, tmp_path):
    path = cifar10_root / "cifar10" / "cifar-10-batches-py" / "test_batch"
    batch = ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    assert batch[b"data"].shape == (fx.N_TEST, 3072)
    for protocol in (2, 5):
        import numpy as np

        data = pickle.dumps({b"data": np.arange(6, dtype=np.uint8)}, protocol=protocol)
        assert ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()[b"data"].tolist() == list(range(6))
    with pytest.raises(pickle.UnpicklingError, match="it names posix.system, which a CIFAR batch never holds"):
        ArrayUnpickler(io.BytesIO(pickle.dumps(Payload(tmp_path / "pwned"))), encoding="bytes").load()
    assert not (tmp_path / "pwned").exists()


def _tar_with(path, member: tarfile.TarInfo, data: bytes = b"x"):
    with tarfile.open(path, "w") as tar:
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink"])
def test_tar_members_cannot_leave_the_dataset_folder(tmp_path, kind):
    archive, home = tmp_path / "a.tar", tmp_path / "home"
    info = tarfile.TarInfo({"dotdot": "../escaped", "absolute": str(tmp_path / "escaped")}.get(kind, "link"))
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "../../escaped"
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
    else:
        info.size = 1
    _tar_with(archive, info)
    with pytest.raises(DataError, match=rf"^archive {archive} was not unpacked: its member '{info.name}'"):
        store.extract(archive, home)
    assert not (tmp_path / "escaped").exists() and list(home.iterdir()) == []


def test_tar_checks_without_the_data_filter(tmp_path, monkeypatch):
    monkeypatch.delattr(tarfile, "data_filter")  # Python before 3.11.4
    archive, home = tmp_path / "a.tar", tmp_path / "home"
    info = tarfile.TarInfo("sub/link")
    info.type, info.linkname = tarfile.SYMTYPE, "../../escaped"
    _tar_with(archive, info)
    with pytest.raises(DataError, match=r"its member 'sub/link' is a link to '../../escaped', outside the dataset"):
        store.extract(archive, home)
    info = tarfile.TarInfo("../escaped")
    info.size = 1
    _tar_with(archive, info)
    with pytest.raises(DataError, match=r"its member '../escaped' is a path with '..'"):
        store.extract(archive, home)
    ok = tarfile.TarInfo("set/file.txt")
    ok.size = 1
    _tar_with(archive, ok)
    store.extract(archive, home)
    assert (home / "set" / "file.txt").read_bytes() == b"x"


@pytest.mark.parametrize("name,why", [("../escaped", "a path with '..'"), ("/tmp/escaped", "an absolute path"),
                                      ("link", "a link")])
def test_zip_members_cannot_leave_the_dataset_folder(tmp_path, name, why):
    archive, home = tmp_path / "a.zip", tmp_path / "home"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("fine.txt", "ok")
        info = zipfile.ZipInfo(name)
        if name == "link":
            info.external_attr = (0o120777 << 16)  # a symlink, as Info-ZIP stores it
        z.writestr(info, "../../escaped")
    with pytest.raises(DataError, match=rf"^archive {archive} was not unpacked: its member '{name}' is {why}$"):
        store.extract(archive, home)
    assert list(home.iterdir()) == [] and not (tmp_path / "escaped").exists()


def test_good_zip_and_tar_gz_are_unpacked(tmp_path):
    home = tmp_path / "home"
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.writestr("set/a.txt", "zip")
    store.extract(tmp_path / "a.zip", home)
    assert (home / "set" / "a.txt").read_text() == "zip"
    (tmp_path / "plain").write_text("not an archive")
    with pytest.raises(DataError, match="is neither a tar nor a zip file"):
        store.extract(tmp_path / "plain", home)
