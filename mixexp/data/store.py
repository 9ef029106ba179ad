"""Released dataset files on disk: where they live, how they are fetched, verified and cached.

Layout under the data root (``paths.data_dir``; ``$MIXEXP_DATA``, else ``$XDG_CACHE_HOME/mixexp``, else
``~/.cache/mixexp``)::

    <root>/<name>/                 the released files, as the publisher lays them out
    <root>/<name>/.verified.json   written once every file has been checked (checksums, counts)
    <root>/<name>/cache/<split>.pt uint8 images + int64 labels (or, for ImageNet/ObjectNet, the file index)
    <root>/<name>/source.json      ImageNet/ObjectNet only: the folder the user pointed ``prepare`` at

Life of a split (:func:`load_split`): a cache whose fingerprint matches the verified source is loaded;
a cache that does not match (truncated, wrong shape, built from other files) is rebuilt from the
verified source, or refused when the source is gone; with no cache the source is verified (every pinned
checksum) and converted once. Downloads go to a temporary file that is renamed only when its checksum
matches, so an interrupted or corrupted download never passes for complete.

Every user-facing failure is a :class:`DataError` (a ``ConfigError``): one line naming the dataset, the
folder, what was expected and the ``mixexp-data`` command that fixes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import shlex
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from mixexp.errors import ConfigError
from mixexp.paths import CONF_DIR
from mixexp.data.imageset import ImageSet
from mixexp.io import save_torch, write_json

log = logging.getLogger("mixexp.data")

# Bump when the cache or stamp layout changes: older files are then rebuilt.
CACHE_VERSION = 1
STAMP = ".verified.json"
POINTER = "source.json"
CHUNK = 1 << 20
USER_AGENT = "mixexp (+https://pypi.org/project/torchvision/)"


class DataError(ConfigError):
    """A dataset problem the user can fix (missing files, bad checksum, stale cache): one line."""


class MissingDataError(DataError):
    pass


class ChecksumError(DataError):
    pass


class CacheError(DataError):
    pass


# ------------------------------------------------------------------------------------------ root


def default_data_dir() -> str:
    """``paths.data_dir`` as ``conf/paths/default.yaml`` resolves it now (one definition for both CLIs)."""
    from omegaconf import OmegaConf

    return str(OmegaConf.load(CONF_DIR / "paths" / "default.yaml").data_dir)


def resolve_root(data_dir) -> Path:
    """The data root as an absolute path, with ``~`` and ``$VARS`` expanded."""
    text = "" if data_dir is None else str(data_dir).strip()
    if not text:
        raise ConfigError("paths.data_dir is empty: set $MIXEXP_DATA or pass paths.data_dir=DIR")
    return Path(os.path.expandvars(os.path.expanduser(text))).absolute()


def prepare_command(name: str, root: Path, manual: bool = False) -> str:
    source = " --source DIR" if manual else ""
    return f"mixexp-data prepare {name}{source} --data-dir {shlex.quote(str(root))}"


# ------------------------------------------------------------------------------------------ hashing


def parse_checksum(checksum: str) -> Tuple[str, str]:
    algo, _, digest = checksum.partition(":")
    if not digest:
        raise ValueError(f"checksum {checksum!r} must read 'md5:<hex>' or 'sha256:<hex>'")
    return algo, digest.lower()


def file_digest(path, algo: str) -> str:
    if algo == "md5":
        from torchvision.datasets.utils import calculate_md5

        return calculate_md5(path, chunk_size=CHUNK)
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def matches(path: Path, checksum: Optional[str]) -> bool:
    if not path.is_file():
        return False
    if checksum is None:
        return True
    algo, want = parse_checksum(checksum)
    return file_digest(path, algo) == want


# ------------------------------------------------------------------------------------------ download


def _open_url(url: str):
    """The one place that opens a URL (tests replace it to simulate a dropped connection)."""
    return urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": USER_AGENT}), timeout=60)


def download(urls: Sequence[str], dest: Path, checksum: Optional[str], *, progress: bool = True) -> None:
    """Fetch the first URL that answers into ``dest``, via a temporary file renamed only when the checksum matches.

    A checksum mismatch is final (:class:`ChecksumError`, the bytes are discarded); a network error moves on to
    the next mirror. Whatever happens, no partial file is left under ``dest``'s name.
    """
    errors: List[str] = []
    for url in urls:
        try:
            _download_one(url, dest, checksum, progress)
            return
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            errors.append(f"{url}: {reason}")
            log.warning("could not download %s: %s", url, reason)
    raise DataError(f"could not download {dest.name}: {'; '.join(errors)}")


def _download_one(url: str, dest: Path, checksum: Optional[str], progress: bool) -> None:
    from tqdm import tqdm

    algo, want = parse_checksum(checksum) if checksum else ("sha256", None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    h = hashlib.new(algo)
    try:
        with os.fdopen(fd, "wb") as out, _open_url(url) as response:
            size = response.headers.get("Content-Length")
            with tqdm(total=int(size) if size else None, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=dest.name, disable=not progress, leave=False) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
        found = h.hexdigest()
        if want is not None and found != want:
            raise ChecksumError(
                f"checksum mismatch for {dest.name} downloaded from {url}: expected {algo} {want}, found {found}; "
                "the download was discarded (the server may have changed the file; retry, or report it)"
            )
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _unsafe_path(name: str) -> Optional[str]:
    """Why an archive member's path could leave the folder it is unpacked into (None: it cannot)."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        return "an absolute path"
    if ".." in posix.split("/"):
        return "a path with '..'"
    return None


def _check_tar_member(member: tarfile.TarInfo) -> Optional[str]:
    """Why a tar member is refused (None: it is not): the checks of ``filter="data"``, which Pythons before
    3.11.4 lack, except that an absolute path is refused instead of made relative."""
    why = _unsafe_path(member.name)
    if why is None and (member.issym() or member.islnk()):
        # a symlink's target is relative to its own folder, a hard link's to the archive's root
        link = member.linkname if member.islnk() else posixpath.join(posixpath.dirname(member.name), member.linkname)
        if member.linkname.startswith("/") or posixpath.normpath(link).split("/")[0] == "..":
            why = f"a link to {member.linkname!r}, outside the dataset folder"
    if why is None and not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        why = "a device or special file"
    return why


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            why = _check_tar_member(member)
            if why:
                raise DataError(f"archive {archive} was not unpacked: its member {member.name!r} is {why}")
        if not hasattr(tarfile, "data_filter"):  # Python before 3.11.4: the checks above are all there is
            tar.extractall(dest, members=members)
            return
        try:
            tar.extractall(dest, members=members, filter="data")  # also catches links through links
        except tarfile.FilterError as e:
            raise DataError(f"archive {archive} was not unpacked: its member {e.tarinfo.name!r} would leave "
                            f"the dataset folder or is not a plain file ({type(e).__name__})") from None


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            why = _unsafe_path(info.filename)
            if why is None and stat.S_ISLNK(info.external_attr >> 16):
                why = "a link"
            if why:
                raise DataError(f"archive {archive} was not unpacked: its member {info.filename!r} is {why}")
        z.extractall(dest)


def extract(archive: Path, into: Path) -> None:
    """Unpack ``archive`` (tar, possibly compressed, or zip) beside itself, then move its top-level entries
    into ``into`` (replacing old ones). A member that could land outside (absolute path, '..', a link
    pointing out, a device) stops the extraction with one line naming the archive and the member."""
    into.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=into, prefix=".extract-"))
    try:
        if tarfile.is_tarfile(archive):
            _extract_tar(archive, tmp)
        elif zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp)
        else:
            raise DataError(f"archive {archive} is neither a tar nor a zip file; delete it and prepare again")
        for entry in tmp.iterdir():
            target = into / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------ sources


@dataclass
class Remote:
    """One published file: mirrors, the name it is saved under, its checksum, and whether to unpack it."""

    urls: List[str]
    filename: str
    checksum: Optional[str]  # "md5:<hex>" / "sha256:<hex>"; None: not pinned (the files inside are checked)
    extract: bool = False
    # what the archive unpacks to (relative to the dataset folder): when all of it is there, an archive deleted
    # after unpacking is not fetched again (ImageNet-C's four archives, when a later one failed)
    provides: List[str] = field(default_factory=list)


@dataclass
class Source:
    """One released dataset: what it is made of and how to read it. Subclasses implement :meth:`read`."""

    name: str
    title: str
    use: str  # what it is for, as ``mixexp-data list`` shows it: train, shift, ood
    # files (or folders, ending in "/") that must exist, relative to the dataset folder -> checksum or None
    files: Dict[str, Optional[str]]
    # split -> number of examples expected (None: not known in advance)
    counts: Dict[str, Optional[int]]
    expect: str  # the files expected, as error messages list them
    num_classes: int = 0
    image_shape: Optional[Tuple[int, int, int]] = None  # (C, H, W) of the cached images; None: not an image cache
    remotes: List[Remote] = field(default_factory=list)
    cached: bool = True  # False: the released files are read directly every time (CIFAR-C's .npy blocks)
    manual: bool = False  # ImageNet/ObjectNet: not downloadable; ``prepare --source DIR`` records a folder
    manual_help: str = ""
    # downloadable, yet large enough that a copy you already have may be used: ``prepare --source DIR``
    local_copy: bool = False

    @property
    def takes_source(self) -> bool:
        """Whether ``prepare --source DIR`` may point this dataset at a folder of yours."""
        return self.manual or self.local_copy

    # -- where

    def home(self, root: Path) -> Path:
        return root / self.name

    def folder(self, root: Path) -> Path:
        """Where the released files are: ``<root>/<name>``, or the folder ``prepare --source`` recorded."""
        pointer = self.home(root) / POINTER
        if self.takes_source and pointer.is_file():
            try:
                return Path(json.loads(pointer.read_text())["root"])
            except (ValueError, KeyError, OSError):
                log.warning("ignoring unreadable %s", pointer)
        return self.home(root)

    def cache_path(self, root: Path, split: str) -> Path:
        return self.home(root) / "cache" / f"{split}.pt"

    # -- what is there

    def missing(self, folder: Path) -> List[str]:
        return [rel for rel in self.files if not (folder / rel).exists()]

    def scan(self, folder: Path) -> Dict[str, Any]:
        """A cheap description of the files (sizes, mtimes): the stamp is valid while it is unchanged."""
        out: Dict[str, Any] = {}
        for rel in self.files:
            path = folder / rel
            try:
                st = path.stat()
                out[rel] = [0 if path.is_dir() else st.st_size, st.st_mtime_ns]
            except OSError:
                out[rel] = None
        return out

    def validate(self, folder: Path) -> Dict[str, Any]:
        """Format checks beyond checksums; returns what the stamp records (``counts`` at least)."""
        return {"counts": dict(self.counts)}

    def read(self, folder: Path, split: str):
        raise NotImplementedError

    # -- cache payloads (ImageSet by default; folder sets override)

    def to_payload(self, data) -> Dict[str, Any]:
        return {"images": data.images, "labels": data.labels}

    def from_payload(self, payload: Dict[str, Any], root: Path, split: str):
        return ImageSet(payload["images"], payload["labels"])

    def check_payload(self, payload: Dict[str, Any], n: Optional[int]) -> Optional[str]:
        """Why a loaded cache cannot be used (None: it can)."""
        images, labels = payload.get("images"), payload.get("labels")
        if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
            return "lacks its image or label tensor"
        want = ((n if n is not None else images.shape[0]),) + tuple(self.image_shape or images.shape[1:])
        if images.dtype != torch.uint8 or tuple(images.shape) != want:
            return f"holds {images.dtype} images of shape {tuple(images.shape)}, expected uint8 {want}"
        if labels.dtype != torch.int64 or tuple(labels.shape) != (want[0],):
            return f"holds labels of shape {tuple(labels.shape)}, expected ({want[0]},)"
        return None


SOURCES: Dict[str, Source] = {}


def register_source(source: Source) -> Source:
    SOURCES[source.name] = source
    return source


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise ConfigError(f"no dataset named {name!r}: choose one of {', '.join(sorted(SOURCES))}")
    return SOURCES[name]


# ------------------------------------------------------------------------------------------ messages


def missing_message(src: Source, root: Path, folder: Path, missing: List[str]) -> str:
    what = "not found" if len(missing) == len(src.files) else f"incomplete (missing {', '.join(missing)})"
    cmd = prepare_command(src.name, root, src.manual)
    if src.manual:
        return (f"dataset {src.name} is {what} in {folder}: expected {src.expect}; {src.manual_help} "
                f"Point mixexp-data at your copy: {cmd}")
    yours = prepare_command(src.name, root, manual=True)
    if folder != src.home(root):  # a copy recorded by ``prepare --source``: never replaced by a download
        return (f"dataset {src.name} is {what} in {folder}, the copy recorded in {src.home(root) / POINTER}: expected "
                f"{src.expect}; point at a complete copy: {yours}, or delete that file to download it")
    copy = f", or use a copy you have: {yours}" if src.local_copy else ""
    return (f"dataset {src.name} is {what} in {folder}: expected {src.expect}; "
            f"run: {cmd} (or pass dataset.download=true{copy})")


# ------------------------------------------------------------------------------------------ verification


def read_stamp(src: Source, root: Path) -> Optional[Dict[str, Any]]:
    path = src.home(root) / STAMP
    try:
        stamp = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) and stamp.get("version") == CACHE_VERSION else None


def stamp_is_current(src: Source, root: Path, stamp: Optional[Dict[str, Any]]) -> bool:
    folder = src.folder(root)
    return stamp is not None and stamp.get("folder") == str(folder) and stamp.get("scan") == _jsonable(src.scan(folder))


def _jsonable(obj):
    return json.loads(json.dumps(obj))


def verify(src: Source, root: Path) -> Dict[str, Any]:
    """Check every pinned checksum and the format, then write the stamp; raise a one-line error otherwise."""
    folder = src.folder(root)
    missing = src.missing(folder)
    if missing:
        raise MissingDataError(missing_message(src, root, folder, missing))
    digests: Dict[str, Any] = {}
    for rel, checksum in src.files.items():
        path = folder / rel
        if checksum is None:
            digests[rel] = path.stat().st_size if path.is_file() else "dir"
            continue
        algo, want = parse_checksum(checksum)
        found = file_digest(path, algo)
        if found != want:
            fix = ("replace it with the released file" if src.manual
                   else f"delete it and run: {prepare_command(src.name, root)}")
            raise ChecksumError(f"checksum mismatch for {path}: expected {algo} {want}, found {found}; {fix}")
        digests[rel] = f"{algo}:{found}"
    info = src.validate(folder)
    fingerprint = hashlib.sha256(json.dumps([digests, info], sort_keys=True).encode()).hexdigest()
    stamp = {"version": CACHE_VERSION, "name": src.name, "folder": str(folder), "scan": _jsonable(src.scan(folder)),
             "fingerprint": fingerprint, **_jsonable(info)}
    write_json(src.home(root) / STAMP, stamp)
    return stamp


def ensure_verified(src: Source, root: Path, *, download: bool = False, progress: bool = True) -> Dict[str, Any]:
    """The current stamp, verifying (and with ``download``, fetching) the source first when needed."""
    stamp = read_stamp(src, root)
    if stamp_is_current(src, root, stamp):
        return stamp
    folder = src.folder(root)
    missing = src.missing(folder)
    if missing and download and not src.manual and folder == src.home(root):  # not into a copy of yours
        fetch(src, root, progress=progress)
    elif missing:
        raise MissingDataError(missing_message(src, root, folder, missing))
    return verify(src, root)


# ------------------------------------------------------------------------------------------ caches


def _cache_meta_path(cache: Path) -> Path:
    return cache.with_suffix(".json")


def load_cache(src: Source, root: Path, split: str, stamp: Optional[Dict[str, Any]]):
    """``(data, fingerprint, None)`` for a cache whose contents are sound, else ``(None, None, why)``."""
    cache = src.cache_path(root, split)
    try:
        payload = torch.load(cache, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read means the file is damaged
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return None, None, f"cannot be read (truncated or damaged: {first})"
    if not isinstance(payload, dict) or payload.get("version") != CACHE_VERSION:
        return None, None, "was written by another version of mixexp"
    n = (stamp or {}).get("counts", {}).get(split, src.counts.get(split))
    problem = src.check_payload(payload, n)
    if problem:
        return None, None, problem
    return src.from_payload(payload, root, split), payload.get("fingerprint"), None


def save_cache(src: Source, root: Path, split: str, data, stamp: Dict[str, Any]) -> None:
    cache = src.cache_path(root, split)
    payload = {"version": CACHE_VERSION, "name": src.name, "split": split, "fingerprint": stamp["fingerprint"],
               **src.to_payload(data)}
    save_torch(cache, payload)
    write_json(_cache_meta_path(cache), {"version": CACHE_VERSION, "fingerprint": stamp["fingerprint"],
                                         "bytes": cache.stat().st_size, "n": len(data)})


def cache_is_current(src: Source, root: Path, split: str, stamp: Optional[Dict[str, Any]]) -> bool:
    """A cheap check for ``mixexp-data list`` (the loader itself checks the cache's contents)."""
    cache = src.cache_path(root, split)
    try:
        meta = json.loads(_cache_meta_path(cache).read_text())
        return (meta.get("version") == CACHE_VERSION and cache.stat().st_size == meta.get("bytes")
                and (stamp is None or meta.get("fingerprint") == stamp.get("fingerprint")))
    except (OSError, ValueError):
        return False


def _read_source(src: Source, folder: Path, split: str):
    try:
        return src.read(folder, split)
    except ConfigError:
        raise
    except (OSError, ValueError, KeyError, EOFError, IndexError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataError(f"cannot read {src.name} ({split}) from {folder}: {first}") from None


def _check_read(src: Source, split: str, data, stamp: Dict[str, Any]) -> None:
    n = stamp.get("counts", {}).get(split)
    if n is not None and len(data) != n:
        raise DataError(f"{src.name} ({split}) in {stamp['folder']} holds {len(data)} examples, expected {n}")
    if src.image_shape is not None and tuple(data.shape) != tuple(src.image_shape):
        raise DataError(f"{src.name} ({split}) images have shape {tuple(data.shape)}, expected {src.image_shape}")


def load_split(name: str, split: str, data_dir, *, download: bool = False, progress: bool = True):
    """One split of a dataset: from its cache when that matches the verified source, else read and cached.

    A cache is used when its contents are sound (readable, expected shape and count) and it was built from
    the source as last verified. When the source files have changed since, they are verified again and the
    cache is kept only if their content is the same. A cache that fails these checks is rebuilt from the
    verified source, or refused (:class:`CacheError`) when the source files are gone.
    """
    src = get_source(name)
    root = resolve_root(data_dir)
    if split not in src.counts:
        raise ConfigError(f"{name} has no split {split!r}: choose one of {', '.join(src.counts)}")
    folder = src.folder(root)
    stamp = read_stamp(src, root)
    cache = src.cache_path(root, split)
    if src.cached and cache.exists():
        data, fingerprint, problem = load_cache(src, root, split, stamp)
        if problem is None and stamp is not None and fingerprint != stamp.get("fingerprint"):
            problem = "was built from other source files than the verified ones"
        if problem is None:
            if stamp_is_current(src, root, stamp) or src.missing(folder):
                return data
            stamp = verify(src, root)  # the files changed on disk since they were verified: check them again
            if fingerprint == stamp["fingerprint"]:
                return data
            problem = "was built from other source files than the ones now in place"
        if src.missing(folder) and not (download and not src.manual):
            raise CacheError(
                f"cache {cache} {problem}, and the source files to rebuild it are missing from {folder}; "
                f"run: {prepare_command(name, root, src.manual)}"
            )
        log.warning("cache %s %s: rebuilding it from %s", cache, problem, folder)
    stamp = ensure_verified(src, root, download=download, progress=progress)
    data = _read_source(src, src.folder(root), split)
    _check_read(src, split, data, stamp)
    if src.cached:
        save_cache(src, root, split, data, stamp)
    return data


# ------------------------------------------------------------------------------------------ prepare


def fetch(src: Source, root: Path, *, progress: bool = True, keep_archives: bool = False) -> None:
    """Download (and unpack) every remote file of ``src`` into ``<root>/<name>``."""
    if src.manual or not src.remotes:
        raise DataError(f"{src.name} cannot be downloaded: {src.manual_help}")
    home = src.home(root)
    home.mkdir(parents=True, exist_ok=True)
    for remote in src.remotes:
        target = home / remote.filename
        if remote.extract and remote.provides and all((home / p).exists() for p in remote.provides):
            log.info("%s: already unpacked", remote.filename)
            continue
        for stale in home.glob(f".{remote.filename}.*.part"):  # left by a process that was killed mid-download
            stale.unlink()
        if remote.checksum is not None and matches(target, remote.checksum):
            log.info("%s: already downloaded", target)
        else:
            log.info("downloading %s", remote.filename)
            download(remote.urls, target, remote.checksum, progress=progress)
        if remote.extract:
            log.info("unpacking %s", target)
            extract(target, home)
            if not keep_archives:
                target.unlink()


def set_manual_source(src: Source, root: Path, source) -> Path:
    folder = Path(os.path.expanduser(str(source))).absolute()
    if not folder.is_dir():
        raise MissingDataError(f"--source {folder} is not a folder: expected {src.expect}")
    nested = getattr(src, "nested", None)
    if nested and (folder / nested).is_dir() and src.missing(folder):
        folder = folder / nested
    missing = src.missing(folder)
    if missing:
        raise MissingDataError(f"{folder} does not hold {src.name}: missing {', '.join(missing)}; expected {src.expect}")
    write_json(src.home(root) / POINTER, {"root": str(folder)})
    return folder


def prepare(name: str, data_dir, *, source=None, progress: bool = True, keep_archives: bool = False) -> str:
    """Make ``name`` ready: fetch or locate, verify, convert every split once. Returns a one-line summary."""
    src = get_source(name)
    root = resolve_root(data_dir)
    if source is not None and not src.takes_source:
        allowed = ", ".join(n for n, s in SOURCES.items() if s.takes_source)
        raise ConfigError(f"--source is only for {allowed} (datasets you may already have a copy of), not {name}")
    if src.manual or source is not None or src.folder(root) != src.home(root):  # yours: checked, never fetched
        if source is not None:
            set_manual_source(src, root, source)
        folder = src.folder(root)
        missing = src.missing(folder)
        if missing:
            raise MissingDataError(missing_message(src, root, folder, missing))
        stamp = verify(src, root)
    else:
        stamp = read_stamp(src, root)
        if not stamp_is_current(src, root, stamp):
            stamp = None
            if not src.missing(src.folder(root)):
                try:
                    stamp = verify(src, root)
                except DataError as e:
                    log.warning("%s; fetching it again", e)
            if stamp is None:
                fetch(src, root, progress=progress, keep_archives=keep_archives)
                stamp = verify(src, root)
    if src.cached:
        for split in src.counts:
            load_split(name, split, root, progress=progress)
    return f"{name}: ready in {src.folder(root)}"


# ------------------------------------------------------------------------------------------ status


def disk_usage(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for f in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def status(src: Source, root: Path) -> Dict[str, Any]:
    """What ``mixexp-data list`` reports for one dataset: state, size on disk, where, and the fix."""
    folder = src.folder(root)
    home = src.home(root)
    missing = src.missing(folder)
    stamp = read_stamp(src, root)
    current = stamp_is_current(src, root, stamp)
    caches = [cache_is_current(src, root, split, stamp if current else None) for split in src.counts]
    if current:
        state = "ready" if (not src.cached or all(caches)) else "verified"
    elif not missing:
        state = "unverified"
    elif src.cached and all(caches) and len(missing) == len(src.files):
        state = "cache-only"
    elif len(missing) == len(src.files):
        state = "missing"
    else:
        state = "incomplete"
    size = disk_usage(home) if home.exists() else 0
    if folder != home and folder.exists():
        size_note = "index only; images at the source"
    else:
        size_note = ""
    needs = state in ("missing", "incomplete", "unverified")
    return {"name": src.name, "use": src.use, "state": state, "bytes": size, "note": size_note,
            "where": str(folder), "command": prepare_command(src.name, root, src.manual) if needs else ""}

