"""Dataset loaders: scikit-learn digits, MNIST (IDX) and SVHN (.mat), with splits.

Downloads go through :mod:`pooch` (md5-verified, cached, mirrors tried in order);
files given through ``data_dir`` are md5-verified too. Nothing here prints; progress
is logged through ``logging.getLogger(__name__)``.

Every row of an ``X`` array reshapes, in C order, to :func:`image_shape` of its dataset:
``(8, 8)`` for digits, ``(28, 28)`` for MNIST and ``(32, 32, 3)`` (row, column, RGB
channel) for SVHN, so the pixel at ``(r, c, ch)`` of an SVHN image is column
``r * 96 + c * 3 + ch``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import logging
import math
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pooch

logger = logging.getLogger(__name__)

__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetRecord",
    "DatasetSplits",
    "FileSpec",
    "check_files",
    "image_shape",
    "load_dataset",
]


class DatasetError(ValueError):
    """A dataset could not be loaded; the message says which file/parameter and how to fix it."""


class DatasetSplits(NamedTuple):
    """Train/validation/test arrays: ``X_*`` float64 ``(n, n_features)``, ``y_*`` int64 ``(n,)``.

    ``X_val`` is ``(0, n_features)`` and ``y_val`` ``(0,)`` when no validation split is asked for.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


class FileSpec(NamedTuple):
    """A file of a dataset release: its name, md5 and size in bytes; for a ``.gz`` file, also
    the md5 and size of its decompressed content, so a folder of gunzipped copies is accepted."""

    name: str
    md5: str
    size: int
    raw_md5: str | None = None
    raw_size: int | None = None

    def gunzipped(self) -> "FileSpec | None":
        """The spec of the decompressed copy (name without ``.gz``), if known."""
        if self.raw_md5 is None or not self.name.endswith(".gz"):
            return None
        return FileSpec(self.name.removesuffix(".gz"), self.raw_md5, self.raw_size or 0)


CACHE_ENV = "ABLATION_SWEEP_CACHE"
DOWNLOAD_TIMEOUT_S = 60.0

_IDX_UBYTE = 0x08  # IDX type code of unsigned bytes: magic = 0x0000 08 <ndim>

Part = tuple[np.ndarray, np.ndarray]  # (X (n, n_features) raw pixels, y (n,) integer labels)


# --------------------------------------------------------------------------- files


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _read_verified(path: Path, spec: FileSpec, fix: str) -> bytes:
    """Return the bytes of ``path`` after checking its size and md5 against ``spec``."""
    expected = f"expected {spec.size:,} bytes with md5 {spec.md5}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path} ({exc.strerror}); {expected}. Fix: {fix}") from exc
    if len(data) != spec.size:
        raise DatasetError(
            f"{path} has {len(data):,} bytes, {expected} (truncated or wrong file). Fix: {fix}"
        )
    if (got := _md5(data)) != spec.md5:
        raise DatasetError(f"{path} has md5 {got}, {expected} (corrupt file). Fix: {fix}")
    return data


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if env := os.environ.get(CACHE_ENV):
        return Path(env).expanduser()
    return Path(pooch.os_cache("ablation-sweep"))


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Silence pooch's own stderr logger (it prints at INFO) for the duration."""
    pooch_logger = pooch.get_logger()
    level = pooch_logger.level
    pooch_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        pooch_logger.setLevel(level)


def _download(spec: FileSpec, folder: Path, mirrors: Sequence[str]) -> Path:
    """Fetch ``spec`` into ``folder`` (or reuse a cached copy whose md5 matches)."""
    failures: list[str] = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + spec.name
        try:
            with _quiet_pooch():
                path = pooch.retrieve(
                    url,
                    known_hash=f"md5:{spec.md5}",
                    fname=spec.name,
                    path=folder,
                    downloader=pooch.HTTPDownloader(timeout=DOWNLOAD_TIMEOUT_S),
                    progressbar=False,
                )
        except (OSError, ValueError) as exc:  # requests errors are OSErrors; bad hash: ValueError
            logger.warning("download of %s failed: %s", url, exc)
            failures.append(f"{url}: {type(exc).__name__}: {' '.join(str(exc).split())}")
            continue
        return Path(path)
    raise DatasetError(
        f"could not download {spec.name} (expected md5 {spec.md5}) into {folder}; every mirror failed "
        f"({'; '.join(failures)}). Fix: check the network or dataset.mirrors, or download the file "
        "yourself and set dataset.data_dir to the folder holding it."
    )


def _fetch(
    record: DatasetRecord,
    role: str,
    data_dir: str | None,
    cache_dir: str | None,
    mirrors: Sequence[str] | None,
) -> tuple[bytes, Path]:
    """Return the verified bytes (and the path) of file ``role`` of a dataset."""
    spec = record.files[role]
    if data_dir is not None:
        path = Path(data_dir).expanduser().resolve() / spec.name
        raw = spec.gunzipped()
        if not path.exists() and raw is not None and (path.parent / raw.name).exists():
            spec, path = raw, path.parent / raw.name  # a gunzipped copy, verified as such
        fix = (
            f"put a good copy of {spec.name} in {path.parent}, point dataset.data_dir at a "
            "folder holding one, or unset dataset.data_dir to download it"
        )
        return _read_verified(path, spec, fix), path
    path = _download(spec, _cache_root(cache_dir) / record.name, mirrors or record.mirrors)
    return _read_verified(path, spec, "delete it and re-run to download it again"), path


# --------------------------------------------------------------------------- parsers


GZIP_MAGIC = b"\x1f\x8b"


def _parse_idx(raw: bytes, path: Path, ndim: int, dataset: str) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (gzipped or not) into a ``uint8`` array of ``ndim``
    dims; errors name ``dataset``, whose original file is the fix."""
    try:
        data = gzip.decompress(raw) if raw[:2] == GZIP_MAGIC or path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"{path} is not a valid gzip file ({exc}); expected a gzipped IDX file. "
            f"Fix: replace it with the original {dataset} file."
        ) from exc
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    expected_magic = (_IDX_UBYTE << 8) | ndim
    header = 4 + 4 * ndim
    if magic != expected_magic or len(data) < header:
        found = "a short file" if magic is None else f"0x{magic:08x}"
        raise DatasetError(
            f"{path}: IDX magic number is {found}, expected 0x{expected_magic:08x} "
            f"(unsigned bytes, {ndim} dimension(s)). Fix: replace it with the original {dataset} file."
        )
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    body = np.frombuffer(data, np.uint8, offset=header)
    if body.size != math.prod(dims):
        raise DatasetError(
            f"{path}: IDX header declares dims {dims} ({math.prod(dims):,} bytes of data), "
            f"found {body.size:,} bytes. Fix: replace it with the original {dataset} file."
        )
    return body.reshape(dims)


Reader = Callable[["DatasetRecord", "str | None", "str | None", "Sequence[str] | None"], list[Part]]
"""``(record, data_dir, cache_dir, mirrors) -> [train part, test part]`` (or one part)."""


def _read_bundled_digits(record: DatasetRecord, data_dir: str | None, cache_dir: str | None,
                         mirrors: Sequence[str] | None) -> list[Part]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return [(bunch.data, bunch.target)]


def _read_idx(record: DatasetRecord, data_dir: str | None, cache_dir: str | None,
              mirrors: Sequence[str] | None) -> list[Part]:
    """The generic IDX reader: files ``{train,test}_{images,labels}`` of any MNIST-format
    dataset (gzipped IDX of unsigned bytes)."""
    parts: list[Part] = []
    for split in ("train", "test"):
        raw_x, path_x = _fetch(record, f"{split}_images", data_dir, cache_dir, mirrors)
        raw_y, path_y = _fetch(record, f"{split}_labels", data_dir, cache_dir, mirrors)
        images = _parse_idx(raw_x, path_x, 3, record.name)
        labels = _parse_idx(raw_y, path_y, 1, record.name)
        if images.shape[1:] != record.image_shape or len(images) != len(labels):
            raise DatasetError(
                f"{path_x} holds images of shape {images.shape} and {path_y} {len(labels):,} "
                f"labels; expected (n, {', '.join(map(str, record.image_shape))}) images and n labels. "
                f"Fix: use the original, matching {record.name} files."
            )
        if labels.size and labels.max() >= record.n_classes:
            raise DatasetError(
                f"{path_y} holds label {labels.max()}, expected 0..{record.n_classes - 1}. "
                f"Fix: replace it with the original {record.name} file."
            )
        parts.append((images.reshape(len(images), -1), labels))
    return parts


def _parse_svhn(raw: bytes, path: Path) -> Part:
    """Parse an SVHN ``*_32x32.mat`` (X ``(32, 32, 3, N)``, y ``(N, 1)`` in 1..10)."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:  # loadmat reads v4/v5 .mat data only: nothing is executed, nothing unpickled
        mat = loadmat(io.BytesIO(raw), variable_names=("X", "y"))
        images, labels = mat["X"], np.asarray(mat["y"]).reshape(-1)
    except (MatReadError, ValueError, TypeError, KeyError, NotImplementedError, OSError) as exc:
        raise DatasetError(
            f"{path} could not be read as an SVHN .mat file with variables X and y ({exc}). "
            "Fix: replace it with the original SVHN file."
        ) from exc
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or images.shape[3] != labels.size:
        raise DatasetError(
            f"{path}: X has shape {images.shape} and y {labels.size:,} labels; expected X of "
            "shape (32, 32, 3, N) and y of N labels. Fix: replace it with the original SVHN file."
        )
    if labels.size and (labels.min() < 0 or labels.max() > 10):
        raise DatasetError(
            f"{path}: labels range {labels.min()}..{labels.max()}, expected 1..10 (10 = digit 0). "
            "Fix: replace it with the original SVHN file."
        )
    # (32, 32, 3, N) -> (N, 32*32*3): each row is the (row, col, channel) image in C order.
    flat = np.ascontiguousarray(images.transpose(3, 0, 1, 2)).reshape(labels.size, -1)
    return flat, np.where(labels == 10, 0, labels)


def _read_svhn_mat(record: DatasetRecord, data_dir: str | None, cache_dir: str | None,
                   mirrors: Sequence[str] | None) -> list[Part]:
    return [_parse_svhn(*_fetch(record, role, data_dir, cache_dir, mirrors)) for role in ("train", "test")]


@dataclass(frozen=True)
class DatasetRecord:
    """Everything the loader knows of one dataset.

    Attributes
    ----------
    name : str
    reader : Reader — turns its files into ``[train, test]`` parts (or one pooled part)
    image_shape : tuple of int — what one row of ``X`` reshapes to (C order)
    pixel_max : float — the largest raw pixel value (``scale=unit`` divides by it)
    n_classes : int
    files : dict of str to FileSpec — the release's files by role (none when bundled)
    mirrors : tuple of str — base URLs downloads are tried from, in order
    splits : tuple of str — ``dataset.split`` values it supports (``official`` needs a
        release with its own test files)
    """

    name: str
    reader: Reader
    image_shape: tuple[int, ...]
    pixel_max: float
    n_classes: int
    files: dict[str, FileSpec] = field(default_factory=dict)
    mirrors: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("holdout", "official")


DATASETS: dict[str, DatasetRecord] = {
    "digits": DatasetRecord("digits", _read_bundled_digits, (8, 8), 16.0, 10, splits=("holdout",)),
    "mnist": DatasetRecord(
        "mnist", _read_idx, (28, 28), 255.0, 10,
        files={
            "train_images": FileSpec("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422,
                                     "6bbc9ace898e44ae57da46a324031adb", 47_040_016),
            "train_labels": FileSpec("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28_881,
                                     "a25bea736e30d166cdddb491f175f624", 60_008),
            "test_images": FileSpec("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1_648_877,
                                    "2646ac647ad5339dbf082846283269ea", 7_840_016),
            "test_labels": FileSpec("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4_542,
                                    "27ae3e4e09519cfbb04c329615203637", 10_008),
        },
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    ),
    "svhn": DatasetRecord(
        "svhn", _read_svhn_mat, (32, 32, 3), 255.0, 10,
        files={
            "train": FileSpec("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373", 182_040_794),
            "test": FileSpec("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3", 64_275_384),
        },
        mirrors=("http://ufldl.stanford.edu/housenumbers/",),
    ),
}
"""One record per dataset, by name: the only list of datasets (config choices, image shapes
and the loader derive from it). Tests replace records to serve their own small files."""


# --------------------------------------------------------------------------- validation


def _choice(param: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise DatasetError(
            f"dataset.{param} is {value!r}; expected one of {', '.join(map(repr, allowed))}. "
            f"Fix: set dataset.{param} to one of them."
        )


def _fraction(
    param: str, value: object, lo: float, hi: float, *, lo_open: bool, hi_open: bool
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise DatasetError(
            f"dataset.{param} is {value!r}; expected a number in {interval}. "
            f"Fix: set dataset.{param} inside that range."
        )


def _seed(param: str, value: object) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise DatasetError(
            f"dataset.{param} is {value!r}; expected a non-negative integer. "
            f"Fix: set dataset.{param} to an integer >= 0."
        )


def _check_mirrors(mirrors: object) -> None:
    if mirrors is None:
        return
    if (
        isinstance(mirrors, (str, bytes))
        or not isinstance(mirrors, Sequence)
        or not mirrors
        or not all(isinstance(m, str) and m for m in mirrors)
    ):
        raise DatasetError(
            f"dataset.mirrors is {mirrors!r}; expected a non-empty list of base URLs such as "
            "['https://example.org/mnist/']. Fix: give a list, or null for the official mirrors."
        )


# --------------------------------------------------------------------------- splits


def _split_indices(
    n: int, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` at random: sorted (kept, taken) indices, ``round(fraction * n)`` taken."""
    perm = rng.permutation(n)
    n_taken = int(round(fraction * n))
    return np.sort(perm[n_taken:]), np.sort(perm[:n_taken])


def _scale_unit(record: DatasetRecord, arrays: list[np.ndarray]) -> None:
    for X in arrays:
        X /= record.pixel_max


def _scale_standard(record: DatasetRecord, arrays: list[np.ndarray]) -> None:
    mean = arrays[0].mean(axis=0)
    std = arrays[0].std(axis=0)
    std[std == 0] = 1.0
    for X in arrays:
        X -= mean
        X /= std


SCALERS: dict[str, Callable[[DatasetRecord, list[np.ndarray]], None]] = {
    "unit": _scale_unit,
    "none": lambda record, arrays: None,
    "standard": _scale_standard,
}


# --------------------------------------------------------------------------- public API


def reference_inputs(X_train: np.ndarray, X_val: np.ndarray) -> np.ndarray:
    """The inputs ``mean`` ablation averages over: the validation split when it has rows,
    else the training split, shape ``(n, n_features)``."""
    return X_val if len(X_val) else X_train


def check_files(
    name: str, data_dir: str | None = None, cache_dir: str | None = None, mirrors: list[str] | None = None
) -> list[Path]:
    """Verify every file of a dataset (size and md5), downloading missing ones into the cache:
    what :func:`load_dataset` would read, checked in seconds before any slow work.

    Returns
    -------
    list of Path
        The verified files (none for a bundled dataset such as ``digits``).

    Raises
    ------
    DatasetError
        In one line naming the file (or ``dataset.data_dir``) and the fix: a folder that is
        not there, a missing, truncated or corrupt file, a failed download.

    Examples
    --------
    >>> check_files("digits")
    []
    >>> check_files("mnist", data_dir="/no/such/folder")
    Traceback (most recent call last):
    ...
    sweep.data.datasets.DatasetError: dataset.data_dir=/no/such/folder is not a folder; ...
    """
    _choice("name", name, tuple(DATASETS))
    _check_mirrors(mirrors)
    record = DATASETS[name]
    if record.files and data_dir is not None and not Path(data_dir).expanduser().is_dir():
        names = ", ".join(spec.name for spec in record.files.values())
        raise DatasetError(
            f"dataset.data_dir={data_dir} is not a folder; expected the folder holding {names}. Fix: give "
            f"that folder (dataset.data_dir=path/to/{name}) or leave dataset.data_dir out to download them."
        )
    return [_fetch(record, role, data_dir, cache_dir, mirrors)[1] for role in record.files]


def image_shape(name: str) -> tuple[int, ...]:
    """Shape one row of ``X`` reshapes to (C order).

    Parameters
    ----------
    name : str — a key of :data:`DATASETS`, e.g. ``"digits"``, ``"mnist"``, ``"svhn"``

    Returns
    -------
    tuple of int
        ``(8, 8)``, ``(28, 28)`` or ``(32, 32, 3)`` (row, column, channel).
    """
    _choice("name", name, tuple(DATASETS))
    return DATASETS[name].image_shape


def load_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    cache_dir: str | None = None,
    split: str = "holdout",
    test_fraction: float = 0.1,
    split_seed: int = 0,
    val_fraction: float = 0.0,
    scale: str = "unit",
    label_noise: float = 0.0,
    label_noise_seed: int = 0,
    mirrors: list[str] | None = None,
) -> DatasetSplits:
    """Load a dataset and split it into train, validation and test arrays.

    Parameters
    ----------
    name : str — a key of :data:`DATASETS`, e.g. ``"digits"``, ``"mnist"``, ``"svhn"``
        ``digits``: scikit-learn's 1,797 8x8 images (pixels 0..16, no download).
        ``mnist``: the four original IDX ``.gz`` files (70,000 28x28 images, pixels 0..255).
        ``svhn``: ``train_32x32.mat`` / ``test_32x32.mat`` (73,257 / 26,032 32x32 RGB images;
        label 10 is mapped to digit 0; rows flattened in (row, column, channel) C order).
    data_dir : str, optional
        Folder holding the original files; they are md5-verified and never downloaded.
        Without it files are downloaded (md5-verified) into the cache.
    cache_dir : str, optional
        Download cache; default ``$ABLATION_SWEEP_CACHE`` or ``pooch.os_cache("ablation-sweep")``.
        Files live in ``<cache_dir>/<name>/``.
    split : {"holdout", "official"}
        ``holdout`` pools every image and holds out ``test_fraction`` of them at random
        (seeded by ``split_seed``); ``official`` keeps the release's train/test files
        (mnist and svhn only; ``test_fraction`` is then unused).
    test_fraction : float
        In (0, 1); the test part has ``round(test_fraction * n)`` images (MNIST: 7,000 of 70,000).
    split_seed : int
        Seeds the test and validation draws (independent streams).
    val_fraction : float
        In [0, 1); ``round(val_fraction * n_train)`` images are moved from the training part,
        after the test split, into the validation part.
    scale : {"unit", "none", "standard"}
        ``unit`` divides by the pixel maximum (16 for digits, 255 otherwise); ``none`` keeps
        raw pixel values; ``standard`` z-scores every feature with the mean and standard
        deviation of the final training part (a constant feature's std is taken as 1).
    label_noise : float
        In [0, 1]; this fraction of the training labels (never validation or test) is replaced
        by labels drawn uniformly from the class set (which may equal the original label).
    label_noise_seed : int
        Seeds the label-noise draw.
    mirrors : list of str, optional
        Base URLs to download from, tried in order; replaces the official mirror list.

    Returns
    -------
    DatasetSplits
        ``X_*`` float64 of shape ``(n, n_features)``, ``y_*`` int64 of shape ``(n,)``;
        ``X_val`` is ``(0, n_features)`` when ``val_fraction`` is 0. Rows keep the order of the
        original files (pooled train then test for ``holdout``).

    Raises
    ------
    DatasetError
        On an invalid parameter, or a missing, corrupt or undownloadable file.

    Examples
    --------
    >>> d = load_dataset("digits", val_fraction=0.2)
    >>> d.X_train.shape, d.X_val.shape, d.X_test.shape
    ((1294, 64), (323, 64), (180, 64))
    >>> float(d.X_train.max()), sorted(set(d.y_test.tolist())) == list(range(10))
    (1.0, True)
    """
    _choice("name", name, tuple(DATASETS))
    record = DATASETS[name]
    _choice("split", split, record.splits)
    _choice("scale", scale, tuple(SCALERS))
    _fraction("test_fraction", test_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    _fraction("val_fraction", val_fraction, 0.0, 1.0, lo_open=False, hi_open=True)
    _fraction("label_noise", label_noise, 0.0, 1.0, lo_open=False, hi_open=False)
    _seed("split_seed", split_seed)
    _seed("label_noise_seed", label_noise_seed)
    _check_mirrors(mirrors)

    parts = record.reader(record, data_dir, cache_dir, mirrors)
    classes = np.unique(np.concatenate([y for _, y in parts]))
    seeds = np.random.SeedSequence(split_seed).spawn(2)
    test_rng, val_rng = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[1])

    if split == "official":
        (X_tr, y_tr), (X_te, y_te) = parts
    else:
        X_all = np.concatenate([X for X, _ in parts])
        y_all = np.concatenate([y for _, y in parts])
        keep, held = _split_indices(len(y_all), test_fraction, test_rng)
        X_tr, y_tr, X_te, y_te = X_all[keep], y_all[keep], X_all[held], y_all[held]
    keep, held = _split_indices(len(y_tr), val_fraction, val_rng)
    X_tr, y_tr, X_va, y_va = X_tr[keep], y_tr[keep], X_tr[held], y_tr[held]
    if len(y_tr) == 0 or len(y_te) == 0:
        raise DatasetError(
            f"{name}: these fractions leave {len(y_tr)} training and {len(y_te)} test images "
            f"(test_fraction={test_fraction}, val_fraction={val_fraction}). "
            "Fix: lower dataset.test_fraction / dataset.val_fraction."
        )

    Xs = [np.array(X, dtype=np.float64, order="C") for X in (X_tr, X_va, X_te)]
    SCALERS[scale](record, Xs)
    ys = [np.array(y, dtype=np.int64) for y in (y_tr, y_va, y_te)]

    if label_noise > 0:
        noise_rng = np.random.default_rng(label_noise_seed)
        n_noisy = int(round(label_noise * len(ys[0])))
        rows = noise_rng.choice(len(ys[0]), size=n_noisy, replace=False)
        ys[0][rows] = noise_rng.choice(classes, size=n_noisy)

    logger.info(
        "%s (%s split, scale %s): %d train / %d val / %d test, %d features",
        name, split, scale, len(ys[0]), len(ys[1]), len(ys[2]), Xs[0].shape[1],
    )
    return DatasetSplits(Xs[0], ys[0], Xs[1], ys[1], Xs[2], ys[2])
