"""Tests of sweep.datasets: digits, real MNIST files, and downloads from a loopback HTTP server."""

from __future__ import annotations

import dataclasses

import functools
import gzip
import hashlib
import http.server
import os
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import scipy.io

from sweep.data import datasets
from sweep.data.datasets import DATASETS, DatasetError, FileSpec, image_shape, load_dataset

MNIST_DIR = Path(
    os.environ.get("SWEEP_MNIST_DIR", Path(__file__).parents[1].parent / "shared/data/mnist")
)


# --------------------------------------------------------------------------- fixtures


class Server(NamedTuple):
    url: str  # base URL serving the fixture folder
    root: Path  # folder served
    hits: Counter  # request path -> count


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A loopback HTTP server over ``tmp_path / "served"`` counting requests per path."""
    root = tmp_path / "served"
    root.mkdir()
    hits: Counter = Counter()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            hits[self.path] += 1
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}/", root, hits)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _spec(path: Path) -> FileSpec:
    data = path.read_bytes()
    return FileSpec(path.name, hashlib.md5(data).hexdigest(), len(data))


def _idx_gz(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def tiny_mnist(server: Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, np.ndarray]:
    """Write 20 train + 10 test MNIST-format files to the server and register their md5s."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "train_labels": np.arange(20, dtype=np.uint8) % 10,
        "test_images": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "test_labels": np.arange(10, dtype=np.uint8),
    }
    specs = {}
    for role, array in arrays.items():
        path = server.root / datasets.DATASETS["mnist"].files[role].name
        _idx_gz(path, array)
        specs[role] = _spec(path)
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(datasets.DATASETS["mnist"], files=specs))
    return arrays


@pytest.fixture
def tiny_svhn(server: Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, np.ndarray]:
    """Write tiny SVHN-format .mat files (6 train, 4 test, labels 1..10) and register them."""
    rng = np.random.default_rng(1)
    arrays = {
        "train_X": rng.integers(0, 200, (32, 32, 3, 6), dtype=np.uint8),
        "train_y": np.array([[10], [1], [2], [10], [9], [5]], dtype=np.uint8),
        "test_X": rng.integers(0, 200, (32, 32, 3, 4), dtype=np.uint8),
        "test_y": np.array([[3], [10], [4], [7]], dtype=np.uint8),
    }
    arrays["train_X"][5, 7, 2, 0] = 255  # row 5, column 7, blue of the first train image
    specs = {}
    for role in ("train", "test"):
        path = server.root / datasets.DATASETS["svhn"].files[role].name
        scipy.io.savemat(path, {"X": arrays[f"{role}_X"], "y": arrays[f"{role}_y"]})
        specs[role] = _spec(path)
    monkeypatch.setitem(datasets.DATASETS, "svhn", dataclasses.replace(datasets.DATASETS["svhn"], files=specs))
    return arrays


# --------------------------------------------------------------------------- digits


@pytest.mark.parametrize(("scale", "lo", "hi"), [("unit", 0.0, 1.0), ("none", 0.0, 16.0)])
def test_digits_shapes_and_ranges(scale: str, lo: float, hi: float) -> None:
    d = load_dataset("digits", scale=scale)
    assert [a.shape for a in d] == [(1617, 64), (1617,), (0, 64), (0,), (180, 64), (180,)]
    assert [a.dtype for a in d] == [np.float64, np.int64] * 3
    X = np.concatenate([d.X_train, d.X_test])
    assert X.min() == lo and X.max() == hi
    assert set(np.unique(d.y_train)) == set(range(10))
    assert image_shape("digits") == (8, 8) and np.prod(image_shape("digits")) == 64


def test_digits_standard_scaling_fitted_on_train_only() -> None:
    d = load_dataset("digits", scale="standard", val_fraction=0.2)
    assert np.all(np.isfinite(d.X_train)) and np.all(np.isfinite(d.X_test))
    np.testing.assert_allclose(d.X_train.mean(axis=0), 0.0, atol=1e-12)
    std = d.X_train.std(axis=0)
    assert np.all(np.isclose(std, 1.0) | np.isclose(std, 0.0))  # constant pixels stay 0
    assert not np.allclose(d.X_val.mean(axis=0), 0.0)  # val used the train statistics


def test_digits_val_split_sizes_and_partition() -> None:
    raw = load_dataset("digits", scale="none")
    d = load_dataset("digits", scale="none", val_fraction=0.25)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (1213, 404, 180)
    np.testing.assert_array_equal(d.X_test, raw.X_test)  # val is carved after the test split
    pooled = np.concatenate([d.X_train, d.X_val])
    assert sorted(map(bytes, pooled)) == sorted(map(bytes, raw.X_train))


def test_digits_determinism_with_split_seed() -> None:
    a, b = load_dataset("digits", split_seed=3), load_dataset("digits", split_seed=3)
    c = load_dataset("digits", split_seed=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.X_test, c.X_test)


@pytest.mark.parametrize("noise", [0.5, 1.0])
def test_label_noise_train_only(noise: float) -> None:
    clean = load_dataset("digits", val_fraction=0.2)
    noisy = load_dataset("digits", val_fraction=0.2, label_noise=noise, label_noise_seed=7)
    for name in ("X_train", "X_val", "y_val", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(noisy, name), getattr(clean, name))
    changed = np.mean(noisy.y_train != clean.y_train)
    assert changed == pytest.approx(noise * 0.9, abs=0.05)  # a random label keeps 1/10 by chance
    assert set(np.unique(noisy.y_train)) <= set(range(10))
    again = load_dataset("digits", val_fraction=0.2, label_noise=noise, label_noise_seed=7)
    np.testing.assert_array_equal(again.y_train, noisy.y_train)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": "cifar"}, "'digits', 'mnist', 'svhn'"),
        ({"name": "digits", "split": "official"}, "dataset.split"),
        ({"name": "mnist", "split": "random"}, "'holdout', 'official'"),
        ({"name": "digits", "scale": "minmax"}, "'unit', 'none', 'standard'"),
        ({"name": "digits", "test_fraction": 0.0}, "dataset.test_fraction"),
        ({"name": "digits", "test_fraction": 1.0}, "dataset.test_fraction"),
        ({"name": "digits", "val_fraction": 1.0}, "dataset.val_fraction"),
        ({"name": "digits", "val_fraction": -0.1}, "dataset.val_fraction"),
        ({"name": "digits", "label_noise": 1.5}, "dataset.label_noise"),
        ({"name": "digits", "label_noise": float("nan")}, "dataset.label_noise"),
        ({"name": "digits", "split_seed": -1}, "dataset.split_seed"),
        ({"name": "digits", "label_noise_seed": 1.5}, "dataset.label_noise_seed"),
        ({"name": "mnist", "mirrors": "http://x/"}, "dataset.mirrors"),
        ({"name": "mnist", "mirrors": []}, "dataset.mirrors"),
        ({"name": "digits", "test_fraction": 0.9, "val_fraction": 0.999}, "training"),
    ],
)
def test_invalid_parameters(kwargs: dict, needle: str) -> None:
    with pytest.raises(DatasetError, match="Fix") as info:
        load_dataset(**kwargs)
    assert needle in str(info.value)


KNOWN_SHAPES = {"digits": (8, 8), "mnist": (28, 28), "svhn": (32, 32, 3)}


@pytest.mark.parametrize("name", list(DATASETS))
def test_image_shape(name: str) -> None:
    """Every record's rows reshape to an image (rows x columns, maybe channels); the shapes
    this project knows from the releases' documentation are checked by value."""
    shape = image_shape(name)
    assert shape == DATASETS[name].image_shape and len(shape) in (2, 3) and min(shape) >= 1
    assert shape == KNOWN_SHAPES.get(name, shape)
    with pytest.raises(DatasetError, match=name):
        image_shape(name.upper())


# --------------------------------------------------------------------------- real MNIST


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"MNIST files not found at {MNIST_DIR}")
def test_mnist_from_real_files() -> None:
    d = load_dataset("mnist", data_dir=str(MNIST_DIR), scale="none")
    assert [a.shape for a in d] == [(63000, 784), (63000,), (0, 784), (0,), (7000, 784), (7000,)]
    assert d.X_train.min() == 0 and d.X_train.max() == 255 and d.X_train.dtype == np.float64
    assert set(np.unique(d.y_test)) == set(range(10))
    o = load_dataset("mnist", data_dir=str(MNIST_DIR), split="official")
    assert (o.X_train.shape, o.X_test.shape) == ((60000, 784), (10000, 784))
    assert o.X_train.max() == 1.0 and o.y_train.dtype == np.int64
    assert o.y_test[:3].tolist() == [7, 2, 1]  # the first three t10k labels


# --------------------------------------------------------------------------- downloads


def test_mnist_download_then_cache(server: Server, tiny_mnist: dict, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    d = load_dataset(
        "mnist", cache_dir=str(cache), mirrors=[server.url], split="official", scale="none"
    )
    assert (d.X_train.shape, d.X_test.shape) == ((20, 784), (10, 784))
    np.testing.assert_array_equal(d.X_train.reshape(-1, 28, 28), tiny_mnist["train_images"])
    np.testing.assert_array_equal(d.y_test, tiny_mnist["test_labels"])
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(
        s.name for s in datasets.DATASETS["mnist"].files.values()
    )
    hits = sum(server.hits.values())
    assert hits == 4
    h = load_dataset("mnist", cache_dir=str(cache), mirrors=[server.url], test_fraction=0.2)
    assert (len(h.y_train), len(h.y_test)) == (24, 6)
    assert sum(server.hits.values()) == hits  # served from the cache


def test_cache_dir_from_environment(
    server: Server, tiny_mnist: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(datasets.CACHE_ENV, str(tmp_path / "envcache"))
    load_dataset("mnist", mirrors=[server.url])
    assert len(list((tmp_path / "envcache" / "mnist").iterdir())) == 4


def test_mirrors_tried_in_order(
    server: Server, tiny_mnist: dict, tmp_path: Path, dead_url: str
) -> None:
    mirrors = [dead_url, server.url + "missing/", server.url]
    d = load_dataset("mnist", cache_dir=str(tmp_path / "c"), mirrors=mirrors)
    assert len(d.y_train) + len(d.y_test) == 30
    assert server.hits["/missing/train-images-idx3-ubyte.gz"] == 1  # 404, then the next mirror


def test_corrupt_cached_file_is_downloaded_again(
    server: Server, tiny_mnist: dict, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    load_dataset("mnist", cache_dir=str(cache), mirrors=[server.url])
    (cache / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    load_dataset("mnist", cache_dir=str(cache), mirrors=[server.url])
    assert server.hits["/t10k-labels-idx1-ubyte.gz"] == 2
    assert server.hits["/train-images-idx3-ubyte.gz"] == 1


def test_corrupt_download_is_an_error(server: Server, tiny_mnist: dict, tmp_path: Path) -> None:
    spec = datasets.DATASETS["mnist"].files["train_labels"]
    (server.root / spec.name).write_bytes(b"not the file")
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", cache_dir=str(tmp_path / "c"), mirrors=[server.url])
    msg = str(info.value)
    assert spec.name in msg and spec.md5 in msg and "data_dir" in msg
    assert not (tmp_path / "c" / "mnist" / spec.name).exists()


def test_all_mirrors_down(tiny_mnist: dict, tmp_path: Path, dead_url: str) -> None:
    mirrors = [dead_url, dead_url + "other/"]
    with pytest.raises(DatasetError, match="every mirror failed") as info:
        load_dataset("mnist", cache_dir=str(tmp_path / "c"), mirrors=mirrors)
    msg = str(info.value)
    assert all(m + "train-images-idx3-ubyte.gz" in msg for m in mirrors)
    assert "dataset.data_dir" in msg


def test_data_dir_missing_or_truncated_file(
    server: Server, tiny_mnist: dict, tmp_path: Path
) -> None:
    spec = datasets.DATASETS["mnist"].files["test_images"]
    good = (server.root / spec.name).read_bytes()
    (server.root / spec.name).write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", data_dir=str(server.root))
    msg = str(info.value)
    assert str(server.root / spec.name) in msg and spec.md5 in msg and "truncated" in msg
    (server.root / spec.name).unlink()
    with pytest.raises(DatasetError, match="cannot read .*t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist", data_dir=str(server.root))
    assert sum(server.hits.values()) == 0  # data_dir never downloads


def test_bad_idx_magic(server: Server, tiny_mnist: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    path = server.root / "train-labels-idx1-ubyte.gz"
    _idx_gz(path, np.zeros((20, 1), dtype=np.uint8))  # 2-D: magic 0x00000802
    specs = dict(datasets.DATASETS["mnist"].files, train_labels=_spec(path))
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(datasets.DATASETS["mnist"], files=specs))
    with pytest.raises(DatasetError, match="magic number is 0x00000802, expected 0x00000801"):
        load_dataset("mnist", data_dir=str(server.root))


def test_svhn_download_labels_and_flatten_order(
    server: Server, tiny_svhn: dict, tmp_path: Path
) -> None:
    cache = str(tmp_path / "cache")
    d = load_dataset("svhn", cache_dir=cache, mirrors=[server.url], split="official", scale="none")
    assert (d.X_train.shape, d.X_test.shape) == ((6, 3072), (4, 3072))
    assert d.y_train.tolist() == [0, 1, 2, 0, 9, 5] and d.y_test.tolist() == [3, 0, 4, 7]
    assert d.X_train[0, 5 * 96 + 7 * 3 + 2] == 255
    np.testing.assert_array_equal(
        d.X_train.reshape(-1, *image_shape("svhn")), tiny_svhn["train_X"].transpose(3, 0, 1, 2)
    )
    u = load_dataset("svhn", cache_dir=cache, mirrors=[server.url], test_fraction=0.3)
    assert (len(u.y_train), len(u.y_test)) == (7, 3) and u.X_train.max() <= 1.0
    assert sum(server.hits.values()) == 2


@pytest.mark.parametrize("content", [b"", b"garbage" * 50, b"MATLAB 7.3 MAT-file" + bytes(200)])
def test_svhn_unreadable_mat(
    server: Server, tiny_svhn: dict, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    path = server.root / "test_32x32.mat"
    path.write_bytes(content)
    specs = dict(datasets.DATASETS["svhn"].files, test=_spec(path))
    monkeypatch.setitem(datasets.DATASETS, "svhn", dataclasses.replace(datasets.DATASETS["svhn"], files=specs))
    with pytest.raises(DatasetError, match="test_32x32.mat could not be read as an SVHN .mat"):
        load_dataset("svhn", data_dir=str(server.root))


def test_the_idx_reader_names_the_dataset_it_reads(
    server: Server, tiny_mnist: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another MNIST-format record (Fashion-MNIST's shape) reuses the IDX reader; its errors
    name that dataset, not MNIST."""
    path = server.root / "train-labels-idx1-ubyte.gz"
    _idx_gz(path, np.zeros((20, 1), dtype=np.uint8))
    specs = dict(datasets.DATASETS["mnist"].files, train_labels=_spec(path))
    fashion = dataclasses.replace(datasets.DATASETS["mnist"], name="fashion", files=specs)
    monkeypatch.setitem(datasets.DATASETS, "fashion", fashion)
    with pytest.raises(DatasetError, match="magic number .* the original fashion file") as info:
        load_dataset("fashion", data_dir=str(server.root))
    assert "MNIST" not in str(info.value)
