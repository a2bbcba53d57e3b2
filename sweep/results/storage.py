"""Filesystem access for local paths and pyarrow filesystem URIs (``s3://``, ``gs://``...).

The one place that knows how a location string becomes a ``pyarrow.fs.FileSystem``; every
write goes through :func:`write_bytes_atomic` (temporary name, then rename).
"""

from __future__ import annotations

import contextlib
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
    """Join path parts with ``/`` (pyarrow paths use forward slashes everywhere).

    A URI's query (``s3://b/x?endpoint_override=...``) stays at the end of the result.
    """
    first, sep, query = parts[0].partition("?") if "://" in parts[0] else (parts[0], "", "")
    return "/".join(p.rstrip("/") for p in (first, *parts[1:]) if p) + sep + query


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def missing_folders(fs: pafs.FileSystem, path: str) -> list[str]:
    """The folders of ``path`` that do not exist yet, deepest first (``path`` included)."""
    missing = []
    while path and path not in ("/", ".") and not exists(fs, path):
        missing.append(path)
        path = path.rsplit("/", 1)[0] if "/" in path else ""
    return missing


def remove_empty_folders(fs: pafs.FileSystem, folders: list[str]) -> None:
    """Remove local ``folders`` (deepest first) that are still empty; a folder another process
    has written to meanwhile stays. Object stores have no folders to leave behind."""
    if isinstance(fs, pafs.LocalFileSystem):
        for folder in folders:
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return stream.read()


def temporary_sibling(path: str) -> str:
    """A unique name beside ``path`` that dataset discovery ignores (leading ``_``)."""
    folder, name = path.rsplit("/", 1)
    return f"{folder}/_tmp-{uuid.uuid4().hex}-{name}"


OBJECT_STORES: tuple[type, ...] = tuple(
    getattr(pafs, name) for name in ("S3FileSystem", "GcsFileSystem", "AzureFileSystem") if hasattr(pafs, name)
)
"""Filesystems whose objects appear whole once their upload completes (no rename needed)."""


def write_bytes_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``data`` so that readers never see a partial ``path``.

    Object stores publish an object whole when its upload completes, so it is written in
    place; elsewhere it goes to a temporary sibling that is then renamed (atomic on a
    local disk).
    """
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    if isinstance(fs, OBJECT_STORES):
        with fs.open_output_stream(path) as out:
            out.write(data)
        return
    tmp = temporary_sibling(path)
    with fs.open_output_stream(tmp) as out:
        out.write(data)
    if isinstance(fs, pafs.LocalFileSystem):
        os.replace(tmp, path)
    else:
        fs.move(tmp, path)
