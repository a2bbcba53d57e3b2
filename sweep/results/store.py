"""Results on disk: one explicit Parquet schema per kind, Hive partitions, atomic parts,
resume, and the study manifest.

Layout: ``<root>/<study>/kind=<k>/dataset=<d>/model=<m>/seed=<s>/part-<shard>.parquet``.
The partition keys live only in the path (pyarrow cannot merge a key that is both in the
path and in the file), so readers get ``dataset, model, seed`` from the path.
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sweep.results.shards import RunKey, Shard
from sweep.results import storage

SELECTION = "selection"
"""The column that says which selection a row was measured under (synapse sweeps)."""

PARTITIONING = pads.partitioning(
    pa.schema([("dataset", pa.string()), ("model", pa.string()), ("seed", pa.int64())]), flavor="hive"
)


KIND_COLUMNS = b"sweep.columns"
"""Key of a part's metadata listing its kind's columns (JSON), in the order of the kind's
schema; the part itself holds every kind's columns."""


class StoreError(RuntimeError):
    """Results on disk that this run cannot safely add to."""


def _column(values: np.ndarray, dtype: pa.DataType) -> pa.Array:
    """An Arrow array; a 2-D ``(n_rows, width)`` array becomes a list column."""
    if pa.types.is_list(dtype):
        matrix = np.asarray(values, dtype=np.float64)
        offsets = np.arange(matrix.shape[0] + 1, dtype=np.int32) * matrix.shape[1]
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(matrix.ravel()))
    return pa.array(np.asarray(values), type=dtype)


def to_table(schema: pa.Schema, columns: dict[str, Any], constants: dict[str, str]) -> pa.Table:
    """An Arrow table of ``schema`` (a kind's) from kernel columns plus constant string columns.

    Parameters
    ----------
    schema : pa.Schema — every column, in file order (a column the kernel did not return is
        an error, never silently dropped)
    columns : dict of str to ndarray — each of length ``n_rows`` (``class_effect``: (n_rows, n_classes))
    constants : dict of str to str — e.g. ``{"mode": "zero", "split": "test"}``
    """
    missing = [f.name for f in schema if f.name not in columns and f.name not in constants]
    if missing:
        raise KeyError(f"the kernel returned no column(s) {missing} of this kind's schema")
    n_rows = len(next(iter(columns.values())))
    arrays = [
        pa.array([constants[f.name]] * n_rows, type=f.type) if f.name in constants
        else _column(columns[f.name], f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, in its order: a column ``table`` lacks is
    all null, a column ``schema`` lacks is dropped."""
    arrays = [table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
              for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


@dataclass(frozen=True)
class ResultStore:
    """The results of one study under a root folder or filesystem URI.

    Attributes
    ----------
    root : str — local folder or pyarrow filesystem URI
    study : str — the study folder under the root
    schemas : mapping of str to pa.Schema — each result kind's schema (from
        :data:`sweep.kinds.KINDS`). Parts are written with their union, :attr:`part_schema`
        (the other kinds' columns null), so that a reader's defaults see every column of a
        mixed study; reads return a kind's own columns (a column added since a part was
        written is null there), and empty reads have them. Without it, reads return the
        columns a part lists as its kind's (:data:`KIND_COLUMNS`), and reads of a missing
        kind are empty frames without columns.
    """

    root: str
    study: str
    schemas: Mapping[str, pa.Schema] = field(default_factory=dict, compare=False)

    @property
    def part_schema(self) -> pa.Schema:
        """Every column of every kind, the Hive keys left out: the schema parts are written with."""
        return pa.unify_schemas(list(self.schemas.values())) if self.schemas else pa.schema([])

    def _empty(self, kind: str) -> pd.DataFrame:
        schema = self.schemas.get(kind)
        return pd.DataFrame() if schema is None else schema.empty_table().to_pandas()

    def _kind_columns(self, kind: str, schema: pa.Schema) -> pa.Schema:
        """The columns of ``kind``: its registered schema, else those a part with this
        ``schema`` lists in its metadata (parts of the first release list none: all theirs)."""
        if kind in self.schemas:
            return self.schemas[kind]
        listed = json.loads((schema.metadata or {}).get(KIND_COLUMNS, b"null"))
        return schema.remove_metadata() if listed is None else pa.schema([schema.field(c) for c in listed])

    def fits(self, part: pa.Schema) -> bool:
        """Whether a part's columns are ones this release writes: each is a column of
        :attr:`part_schema` of the same type. A part may lack columns added since it was
        written (a new unit statistic): reads give them as null, and it is not recomputed."""
        study = self.part_schema
        return all(study.get_field_index(f.name) >= 0 and study.field(f.name).type == f.type for f in part)

    @property
    def _fs_and_base(self) -> tuple[pafs.FileSystem, str]:
        fs, base = storage.resolve(self.root)
        return fs, storage.join(base, self.study)

    @property
    def location(self) -> str:
        """The study folder as a user passes it to pandas (absolute path or URI)."""
        return storage.join(self.root, self.study) if "://" in self.root else self._fs_and_base[1]

    def partition_dir(self, kind: str, dataset: str, model: str, seed: int) -> str:
        return storage.join(self._fs_and_base[1], f"kind={kind}", f"dataset={dataset}", f"model={model}", f"seed={seed}")

    def part_path(self, shard: Shard) -> str:
        run = shard.run
        return storage.join(self.partition_dir(shard.kind, run.dataset, run.model, run.seed), f"part-{shard.id}.parquet")

    def _footer(self, path: str) -> tuple[pa.Schema, int, dict[str, Any]] | None:
        """A part's schema, row count and the ``sweep`` metadata it was written with, read
        from its footer alone; None if it is missing or unreadable."""
        fs, _ = self._fs_and_base
        if not storage.exists(fs, path):
            return None
        try:
            with fs.open_input_file(path) as f:
                meta = pq.ParquetFile(f).metadata
                schema = meta.schema.to_arrow_schema()
        except (OSError, pa.ArrowInvalid):
            return None
        written = json.loads((schema.metadata or {}).get(b"sweep", b"{}"))
        return schema.remove_metadata(), meta.num_rows, written

    def check_writable(self) -> bool:
        """:func:`check_writable` of the study folder (``paths.results``)."""
        return check_writable(storage.join(self.root, self.study), f"paths.results={self.root!r}")

    def broken_parts(self) -> list[str]:
        """Paths of the study's parts whose footer cannot be read (truncated or corrupt), sorted."""
        fs, base = self._fs_and_base
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        parts = sorted(i.path for i in fs.get_file_info(selector) if i.base_name.startswith("part-")
                       and i.base_name.endswith(".parquet"))
        return [path for path in parts if self._footer(path) is None]

    def has_kind(self, kind: str) -> bool:
        """Whether the study holds a ``kind=<kind>`` folder."""
        fs, base = self._fs_and_base
        return fs.get_file_info(storage.join(base, f"kind={kind}")).type == pafs.FileType.Directory

    def part_fingerprint(self, shard: Shard) -> str | None:
        """The fingerprint a shard's part was written with, or None if the part is missing or
        broken (unreadable, another schema, another row count)."""
        footer = self._footer(self.part_path(shard))
        if footer is None or not self.fits(footer[0]) or not shard.holds(footer[1]):
            return None
        return str(footer[2].get("fingerprint", ""))

    def part_rows(self, shard: Shard) -> int:
        """Rows of a shard's complete part (one :meth:`pending` kept): :attr:`Shard.n_rows`,
        read from the footer for a shard a stop rule may cut short."""
        if not shard.cut_short:
            return shard.n_rows
        return (self._footer(self.part_path(shard)) or (None, 0, {}))[1]

    def existing_parts(self, kind: str, dataset: str, model: str, seed: int) -> set[str]:
        """File names of the complete-looking parts in one partition."""
        fs, _ = self._fs_and_base
        selector = pafs.FileSelector(self.partition_dir(kind, dataset, model, seed), allow_not_found=True)
        return {
            info.base_name for info in fs.get_file_info(selector)
            if info.base_name.startswith("part-") and info.base_name.endswith(".parquet")
        }

    def pending(self, shards: list[Shard], fingerprints: Mapping[RunKey, str]) -> list[Shard]:
        """The shards whose part is missing or broken.

        Parameters
        ----------
        fingerprints : mapping of RunKey to str
            What each run's parts must have been computed from (model weights, data and
            ablation settings); see :func:`sweep.run.pipeline.fingerprint`.

        Raises
        ------
        StoreError
            If a partition holds parts of another plan for the same (kind, mode, split)
            (e.g. another shard size), which would duplicate rows, or a part computed from
            other settings that map to the same path (e.g. another ``dataset.scale``), which
            a resume would otherwise silently keep.
        """
        planned: dict[tuple, set[str]] = {}
        for s in shards:
            key = (s.kind, s.run.dataset, s.run.model, s.run.seed)
            planned.setdefault(key, set()).add(f"part-{s.id}.parquet")
        for (kind, dataset, model, seed), names in planned.items():
            prefixes = {n.rsplit("-l", 1)[0] for n in names}
            foreign = {
                n for n in self.existing_parts(kind, dataset, model, seed)
                if n not in names and n.rsplit("-l", 1)[0] in prefixes
            }
            if foreign:
                raise StoreError(
                    f"{self.partition_dir(kind, dataset, model, seed)} holds parts of a different shard plan "
                    f"({min(foreign)}, ...); use another study= or delete that folder"
                )
        todo = []
        for shard in shards:
            written = self.part_fingerprint(shard)
            if written is None:
                todo.append(shard)
            elif written != fingerprints[shard.run]:
                raise StoreError(
                    f"{self.part_path(shard)} was computed from other settings (model, data or "
                    "ablation.metrics/quantizer/repetitions/k_points) under the same names; "
                    "use another study= for this configuration or delete that partition"
                )
        return todo

    def write_part(self, shard: Shard, table: pa.Table, metadata: dict[str, Any]) -> str:
        """Write a shard's table atomically; ``metadata`` rides in the file's key-value metadata."""
        if not shard.holds(table.num_rows):
            bound = "at most " if shard.cut_short else ""
            raise StoreError(f"shard {shard.id} produced {table.num_rows} rows, expected {bound}{shard.n_rows}")
        meta = {b"sweep": json.dumps(metadata, sort_keys=True, default=str).encode(),
                KIND_COLUMNS: json.dumps(table.column_names).encode()}
        table = conform(table, self.part_schema if self.schemas else table.schema).replace_schema_metadata(meta)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        fs, _ = self._fs_and_base
        path = self.part_path(shard)
        storage.write_bytes_atomic(fs, path, buffer.getvalue())
        return path

    def remove_part(self, shard: Shard) -> None:
        """Delete a shard's part (if any) so that the next run recomputes it."""
        fs, _ = self._fs_and_base
        path = self.part_path(shard)
        if storage.exists(fs, path):
            fs.delete_file(path)

    def read_model_rows(self, kind: str, run: RunKey, weights: str) -> pd.DataFrame:
        """A run's rows of ``kind`` from the parts computed with the model whose weights hash
        is ``weights`` (parts of an earlier model under the same names are left out)."""
        fs, _ = self._fs_and_base
        folder = self.partition_dir(kind, run.dataset, run.model, run.seed)
        paths = [storage.join(folder, name) for name in sorted(self.existing_parts(kind, run.dataset, run.model, run.seed))]
        mine = [path for path in paths if (self._footer(path) or (None, 0, {}))[2].get("weights") == weights]
        tables = [pq.read_table(path, filesystem=fs) for path in mine]
        tables = [conform(t, self._kind_columns(kind, t.schema)) for t in tables]
        return pa.concat_tables(tables).to_pandas() if tables else self._empty(kind)

    def read(self, kind: str, filters: Any = None, distinct: bool = True) -> pd.DataFrame:
        """All rows of ``kind`` as a DataFrame with typed ``dataset, model, seed`` columns.

        Parameters
        ----------
        filters : list of (column, op, value), optional — as ``pandas.read_parquet``'s
        distinct : bool — return a measurement stored under several selections (a synapse of
            an all-synapse sweep and of a ``top_harmful`` one: same model, same settings,
            same numbers) once, under the first selection read; False returns every row
        """
        fs, base = self._fs_and_base
        folder = storage.join(base, f"kind={kind}")
        if not storage.exists(fs, folder):
            return self._empty(kind)
        columns = self.schemas.get(kind) or self._kind_columns(
            kind, pads.dataset(folder, filesystem=fs, format="parquet", partitioning=PARTITIONING).schema)
        dataset = pads.dataset(folder, filesystem=fs, format="parquet", partitioning=PARTITIONING,
                               schema=pa.unify_schemas([columns, PARTITIONING.schema]))
        expression = pq.filters_to_expression(filters) if filters else None
        frame = dataset.to_table(filter=expression).replace_schema_metadata(None).to_pandas()
        if not distinct or SELECTION not in frame.columns:
            return frame
        identity = [c for c in frame.columns if c != SELECTION and not pd.api.types.is_object_dtype(frame[c])]
        identity += [c for c in ("mode", "split") if c in frame.columns and c not in identity]
        return frame.drop_duplicates(subset=identity, ignore_index=True)

    def _entry_path(self, run: dict[str, Any], kind: str) -> str:
        base = self._fs_and_base[1]
        return storage.join(base, RUNS_DIR, f"{run['dataset']}-{run['model']}-{run['seed']}-{kind}.json")

    def _entry_files(self) -> dict[str, str]:
        """The per-run manifest entries: file name -> path; entries of the first release's
        ``runs/`` folder first, so a newer entry of the same name in ``_runs/`` wins."""
        fs, base = self._fs_and_base
        found = {}
        for folder in (*LEGACY_RUNS_DIRS, RUNS_DIR):
            selector = pafs.FileSelector(storage.join(base, folder), allow_not_found=True)
            found.update({info.base_name: info.path for info in fs.get_file_info(selector)
                          if info.base_name.endswith(".json") and not info.base_name.startswith("_")})
        return found

    def _entries(self) -> dict[str, bytes]:
        """The per-run manifest entries: file name -> JSON bytes."""
        fs, _ = self._fs_and_base
        return {name: storage.read_bytes(fs, path) for name, path in self._entry_files().items()}

    def read_manifest(self) -> dict[str, Any]:
        """The study's manifest, merged from the per-run entries (always up to date); a
        study with no entries gives its ``manifest.json`` as written, if any."""
        entries = self._entries()
        fs, base = self._fs_and_base
        for name in (MANIFEST, *LEGACY_MANIFESTS):
            written = storage.join(base, name)
            if not entries and storage.exists(fs, written):
                return json.loads(storage.read_bytes(fs, written))
        return _summary(self.study, entries)

    def write_manifest(self, config: dict[str, Any], runs: list[dict[str, Any]], versions: dict[str, str],
                       environment: dict[str, Any] | None = None) -> str:
        """Record this sweep's runs and refresh ``_manifest.json``.

        Each run is its own entry file ``_runs/<dataset>-<model>-<seed>-<kind>.json``
        (``kind`` is ``config["ablation"]["kind"]``; written atomically, no
        read-modify-write), so concurrent sweeps never drop each other's runs, and a
        synapse or cumulative sweep keeps the neuron sweep's config beside its own. ``environment``
        (:func:`sweep.results.provenance.environment`: the sweep's commit, the BLAS code path)
        is kept beside ``versions``. ``_manifest.json``, the readable summary, is rebuilt from every entry until
        the entries are unchanged after its rename: whichever sweep renames last has seen
        all entries written before it.
        """
        fs, base = self._fs_and_base
        updated = datetime.now(timezone.utc).isoformat()
        for run in runs:
            entry = {"updated": updated, "config": config, "versions": versions, "environment": environment or {},
                     "run": run}
            kind = config.get("ablation", {}).get("kind", "sweep")
            storage.write_bytes_atomic(fs, self._entry_path(run, kind), json.dumps(entry, indent=2, default=str).encode())
        self._migrate_legacy_manifest()
        path = storage.join(base, MANIFEST)
        entries = self._entries()
        while True:
            storage.write_bytes_atomic(fs, path, json.dumps(_summary(self.study, entries), indent=2).encode())
            latest = self._entries()
            if latest == entries:
                return path
            entries = latest


    def _migrate_legacy_manifest(self) -> None:
        """Move a first-release study's ``runs/*.json`` into ``_runs/`` and drop its
        ``manifest.json`` (rebuilt as ``_manifest.json``): names without a leading ``_`` inside
        the Parquet tree stop pyarrow and pandas from reading the whole study. Parts are never
        touched."""
        fs, base = self._fs_and_base
        for name, path in self._entry_files().items():
            if not path.startswith(storage.join(base, RUNS_DIR) + "/"):
                storage.write_bytes_atomic(fs, storage.join(base, RUNS_DIR, name), storage.read_bytes(fs, path))
                fs.delete_file(path)
        for folder in LEGACY_RUNS_DIRS:
            if storage.exists(fs, storage.join(base, folder)):
                fs.delete_dir(storage.join(base, folder))
        for name in LEGACY_MANIFESTS:
            if storage.exists(fs, storage.join(base, name)):
                fs.delete_file(storage.join(base, name))


MANIFEST = "_manifest.json"
"""The study's readable manifest, at its top. Like every non-Parquet file inside a study its
name starts with ``_``, which pyarrow's (and so pandas', DuckDB's, Polars') dataset discovery
skips: a whole study reads as one Hive-partitioned dataset."""

RUNS_DIR = "_runs"
"""Folder of the per-run manifest entries beside :data:`MANIFEST`."""

LEGACY_MANIFESTS: tuple[str, ...] = ("manifest.json",)
LEGACY_RUNS_DIRS: tuple[str, ...] = ("runs",)
"""Names the first release used; read, and migrated on the next write."""


def _summary(study: str, entries: dict[str, bytes]) -> dict[str, Any]:
    """``manifest.json``'s content: every run; the config of the latest entry, and the
    latest config of each ablation kind under ``configs``; the latest entry's environment,
    and under ``environments`` every distinct one of the entries, oldest first (the commits
    and BLAS code paths the study's runs were made with)."""
    parsed = sorted((json.loads(blob) for blob in entries.values()), key=lambda e: e["updated"])
    latest = parsed[-1] if parsed else {"updated": None, "config": {}, "versions": {}}
    runs = {(e["run"]["dataset"], e["run"]["model"], e["run"]["seed"]): e["run"] for e in parsed}
    configs = {e["config"].get("ablation", {}).get("kind", "sweep"): e["config"] for e in parsed}
    return {
        "study": study,
        "updated": latest["updated"],
        "versions": latest["versions"],
        "environment": latest.get("environment", {}),
        "environments": [json.loads(e) for e in dict.fromkeys(
            json.dumps(entry.get("environment", {}), sort_keys=True) for entry in parsed if entry.get("environment"))],
        "config": latest["config"],
        "configs": configs,
        "runs": [runs[k] for k in sorted(runs, key=str)],
    }


def check_writable(location: str, setting: str) -> bool:
    """Whether a folder (local path or URI) can be written, found in seconds and before any work.

    Returns False for a read-only folder that exists (the caller decides whether it needs to
    write); a folder it had to create for the probe is removed again, so a run that fails
    later leaves no empty folder behind.

    Raises
    ------
    StoreError
        If a part of the path is a file, the folder cannot be created, or its object store
        cannot be reached; the message names ``setting`` (e.g. ``paths.results='s3://...'``).
    """
    try:
        fs, path = storage.resolve(location)
        parent = path.rsplit("/", 1)[0] or "/"
        kinds = [fs.get_file_info(p).type for p in (parent, path)]
        created = storage.missing_folders(fs, path)
    except OSError as error:
        raise StoreError(f"cannot reach {setting} ({str(error).splitlines()[0]}); check the address, "
                         "the endpoint and the credentials, or use a local folder") from error
    if pafs.FileType.File in kinds:
        raise StoreError(f"{setting} is a file, not a folder; choose a folder (it is created if missing)")
    try:
        storage.write_bytes_atomic(fs, probe := storage.join(path, f"_probe-{uuid.uuid4().hex}"), b"")
        fs.delete_file(probe)
    except OSError as error:
        if created:
            reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
            raise StoreError(f"cannot create {created[-1]} for {setting} ({reason}); choose a folder you "
                             "can write, e.g. paths.results=./results") from error
        return False
    finally:
        storage.remove_empty_folders(fs, created)
    return True


def list_studies(root: str) -> list[str] | None:
    """Names of the studies under a results root (folders holding a manifest or a
    ``kind=<kind>`` folder), sorted; None if the root is not a folder."""
    fs, base = storage.resolve(root)
    if fs.get_file_info(base).type != pafs.FileType.Directory:
        return None
    children = lambda path: fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))  # noqa: E731
    return sorted(
        info.base_name for info in children(base)
        if info.type == pafs.FileType.Directory
        and any(c.base_name in (MANIFEST, RUNS_DIR, *LEGACY_MANIFESTS, *LEGACY_RUNS_DIRS)
                or c.base_name.startswith("kind=") for c in children(info.path))
    )


def read_results(root: str, study: str, kind: str, filters: Any = None) -> pd.DataFrame:
    """Rows of one kind of a study with typed ``dataset, model, seed`` columns; ``filters``
    as in ``pandas.read_parquet`` (partition keys included).

    Examples
    --------
    A study of one part, written the way a sweep writes it:

    >>> import tempfile, numpy as np
    >>> from sweep.kinds import SCHEMAS
    >>> from sweep.results.shards import RunKey, Shard
    >>> root = tempfile.mkdtemp()
    >>> shard = Shard(RunKey("digits", "tiny", 0), "unit", "stats", "test", -1, 0, 2)
    >>> columns = {name: np.arange(2) for name in SCHEMAS["unit"].names if name != "split"}
    >>> path = ResultStore(root, "demo", SCHEMAS).write_part(shard, to_table(SCHEMAS["unit"],
    ...     columns, {"split": "test"}), {"fingerprint": "f"})
    >>> rows = read_results(root, "demo", "unit", [("seed", "=", 0)])
    >>> rows[["model", "seed", "layer", "unit", "entropy"]].to_dict("list")
    {'model': ['tiny', 'tiny'], 'seed': [0, 0], 'layer': [0, 1], 'unit': [0, 1], 'entropy': [0.0, 1.0]}
    """
    return ResultStore(root, study).read(kind, filters)
