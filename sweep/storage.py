"""Filesystem access for local paths and pyarrow filesystem URIs (``s3://``, ``gs://``...).

The one place that knows how a location string becomes a ``pyarrow.fs.FileSystem``; every
write goes through :func:`write_bytes_atomic` (temporary name, then rename).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow.fs as pafs


def resolve(location: str) -> tuple[pafs.FileSystem, str]:
    """Filesystem and path for a local path (made absolute) or a URI with a scheme."""
    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())


def absolute(location: str) -> str:
    """A URI unchanged, a local path made absolute."""
    return location if "://" in location else str(Path(location).expanduser().resolve())


def join(*parts: str) -> str:
    """Join path parts with ``/`` (pyarrow paths use forward slashes everywhere)."""
    return "/".join(p.rstrip("/") for p in parts if p)


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return stream.read()


def temporary_sibling(path: str) -> str:
    """A unique name beside ``path`` that dataset discovery ignores (leading ``_``)."""
    folder, name = path.rsplit("/", 1)
    return f"{folder}/_tmp-{uuid.uuid4().hex}-{name}"


def write_bytes_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to a temporary sibling, then rename it to ``path``.

    Readers never see a partial file: on a local disk the rename is atomic; on object
    stores the object appears whole when its upload completes.
    """
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = temporary_sibling(path)
    with fs.open_output_stream(tmp) as out:
        out.write(data)
    if isinstance(fs, pafs.LocalFileSystem):
        os.replace(tmp, path)
    else:
        fs.move(tmp, path)
