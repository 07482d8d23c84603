"""The model registry: artifacts in the model store, one row per version in ``models``.

An artifact is one ``.npz`` file written through fsspec (a local directory by default; any fsspec
URI on a cluster: gs:// with the ``gcp`` extra, s3:// with s3fs); its SHA-256 is stored with the row
and checked on every load, so a corrupted or swapped file is refused instead of served. Per pair
there is always a persistence champion (the floor) and at most one LSTM champion, whose
``metrics["served_horizons"]`` lists the horizons the promotion gate gave it; everything else is
shadow or retired, each with its reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import fsspec
from fsspec import AbstractFileSystem
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cryptocast.sql.database import Database
from cryptocast.sql.schema import models, symbols
from cryptocast.storeuri import require_backend
from cryptocast.tune.predictor import (
    LSTM,
    PERSISTENCE,
    LstmPredictor,
    PersistencePredictor,
    Predictor,
    ServedPredictor,
    from_bytes,
)

KEEP_VERSIONS = 5
P = TypeVar("P", PersistencePredictor, LstmPredictor)
CHAMPION, SHADOW, RETIRED, FAILED = "champion", "shadow", "retired", "failed"


class CorruptArtifact(RuntimeError):
    """The stored file does not match the checksum recorded when it was registered."""


class NoChampion(LookupError):
    """The pair has no registered model of the kind asked for."""


@dataclass(frozen=True, slots=True)
class ModelRecord:
    id: int
    symbol_id: int
    kind: str
    version: int
    artifact_uri: str | None
    status: str
    status_reason: str | None
    hyperparameters: dict
    metrics: dict
    trained_at: datetime
    data_start: datetime | None
    data_end: datetime | None

    @property
    def served_horizons(self) -> list[int]:
        return [int(h) for h in self.metrics.get("served_horizons", [])]

    @property
    def sha256(self) -> str | None:
        return self.metrics.get("artifact_sha256")


def _record(row: Any) -> ModelRecord:
    return ModelRecord(**{k: row._mapping[k] for k in ModelRecord.__dataclass_fields__})


def _open(uri: str) -> tuple[AbstractFileSystem, str]:
    """The filesystem and path of a store or artifact URI; a missing backend is a ConfigurationError."""
    require_backend(uri)
    return fsspec.core.url_to_fs(uri)


class ModelStore:
    """Where artifact bytes live; any fsspec URI whose backend is installed."""

    def __init__(self, uri: str) -> None:
        self.fs, self.root = _open(uri)

    def put(self, symbol: str, version: int, kind: str, data: bytes) -> tuple[str, str]:
        """Write an artifact; returns (URI, SHA-256)."""
        folder = f"{self.root.rstrip('/')}/{symbol}"
        self.fs.makedirs(folder, exist_ok=True)
        path = f"{folder}/v{version:05d}-{kind}.npz"
        self.fs.pipe_file(path, data)
        return self.fs.unstrip_protocol(path), hashlib.sha256(data).hexdigest()

    @staticmethod
    def get(uri: str, sha256: str | None) -> bytes:
        """The artifact's bytes, refused unless they hash to the registered checksum."""
        fs, path = _open(uri)
        data = fs.cat_file(path)
        actual = hashlib.sha256(data).hexdigest()
        if sha256 is None or actual != sha256:
            raise CorruptArtifact(
                f"{uri}: checksum {actual[:12]}… does not match the registered {str(sha256)[:12]}…"
            )
        return data

    @staticmethod
    def delete(uri: str) -> None:
        fs, path = _open(uri)
        if fs.exists(path):
            fs.rm(path)


async def register(
    db: Database,
    store: ModelStore,
    symbol_id: int,
    predictor: Predictor,
    status: str,
    reason: str,
    **fields: Any,
) -> ModelRecord:
    """Store the artifact and its row; a new champion or shadow retires the one it replaces. ``fields``:
    data_start, data_end, hyperparameters, metrics (as :func:`register_on` takes them)."""
    async with db.begin() as conn:
        return await register_on(conn, store, symbol_id, predictor, status, reason, **fields)


async def register_on(
    conn: AsyncConnection,
    store: ModelStore,
    symbol_id: int,
    predictor: Predictor,
    status: str,
    reason: str,
    data_start: datetime | None = None,
    data_end: datetime | None = None,
    hyperparameters: dict | None = None,
    metrics: dict | None = None,
) -> ModelRecord:
    """:func:`register` inside the caller's transaction, so several versions land together or not at all.

    The artifact is written before the row commits; a transaction that never commits leaves at most a
    file that the next registration of that version number overwrites, never a row without its file.
    """
    data = predictor.to_bytes()
    # Locking the pair's row numbers versions one at a time.
    symbol = (
        await conn.execute(select(symbols.c.symbol).where(symbols.c.id == symbol_id).with_for_update())
    ).scalar_one()
    version = (
        1
        + (
            await conn.execute(
                select(func.coalesce(func.max(models.c.version), 0)).where(models.c.symbol_id == symbol_id)
            )
        ).scalar_one()
    )
    uri, sha = store.put(symbol, version, predictor.kind, data)
    row = (
        await conn.execute(
            insert(models)
            .values(
                symbol_id=symbol_id,
                kind=predictor.kind,
                version=version,
                artifact_uri=uri,
                data_start=data_start,
                data_end=data_end,
                hyperparameters=hyperparameters or {},
                metrics=(metrics or {}) | {"artifact_sha256": sha},
                status=status,
                status_reason=reason,
            )
            .returning(*models.c)
        )
    ).one()
    if status in (CHAMPION, SHADOW):
        await _retire(conn, symbol_id, predictor.kind, status, f"replaced by v{version}", keep=row.id)
    return _record(row)


async def _retire(
    conn: AsyncConnection, symbol_id: int, kind: str, status: str, reason: str, keep: int
) -> None:
    await conn.execute(
        update(models)
        .where(
            models.c.symbol_id == symbol_id,
            models.c.kind == kind,
            models.c.status == status,
            models.c.id != keep,
        )
        .values(status=RETIRED, status_reason=reason)
    )


async def records(db: Database, symbol_id: int | None = None, status: str | None = None) -> list[ModelRecord]:
    """Rows, newest version first; optionally one pair's and one status."""
    query = select(models).order_by(models.c.symbol_id, models.c.version.desc())
    if symbol_id is not None:
        query = query.where(models.c.symbol_id == symbol_id)
    if status is not None:
        query = query.where(models.c.status == status)
    async with db.connect() as conn:
        return [_record(r) for r in await conn.execute(query)]


async def current(db: Database, symbol_id: int, kind: str, status: str = CHAMPION) -> ModelRecord | None:
    found = [r for r in await records(db, symbol_id, status) if r.kind == kind]
    return found[0] if found else None


def load(record: ModelRecord, use_tf: bool = False) -> PersistencePredictor | LstmPredictor:
    """The record's predictor, checksum verified."""
    if record.artifact_uri is None:
        raise NoChampion(f"model v{record.version} has no artifact (pruned)")
    return from_bytes(ModelStore.get(record.artifact_uri, record.sha256), use_tf=use_tf)


def load_as(kind: type[P], record: ModelRecord, use_tf: bool = False) -> P:
    """:func:`load`, for a record whose artifact must be of this predictor class."""
    predictor = load(record, use_tf)
    if not isinstance(predictor, kind):
        raise TypeError(f"model v{record.version} holds a {predictor.kind} artifact, not {kind.kind}")
    return predictor


async def load_served(db: Database, symbol_id: int, use_tf: bool = False) -> ServedPredictor:
    """What the pair serves: the persistence champion, with the LSTM champion on its horizons."""
    baseline = await current(db, symbol_id, PERSISTENCE)
    if baseline is None:
        raise NoChampion(f"pair {symbol_id} has no persistence champion yet (it has no data)")
    lstm = await current(db, symbol_id, LSTM)
    return ServedPredictor(
        load_as(PersistencePredictor, baseline),
        load_as(LstmPredictor, lstm, use_tf) if lstm is not None else None,
        set(lstm.served_horizons) if lstm is not None else set(),
    )


async def demote(db: Database, record: ModelRecord, kept: list[int], reason: str) -> ModelRecord:
    """Take horizons from an LSTM champion; with none left it is retired and persistence serves alone."""
    async with db.begin() as conn:
        return await demote_on(conn, record, kept, reason)


async def demote_on(conn: AsyncConnection, record: ModelRecord, kept: list[int], reason: str) -> ModelRecord:
    """:func:`demote` inside the caller's transaction."""
    status = CHAMPION if kept else RETIRED
    row = (
        await conn.execute(
            update(models)
            .where(models.c.id == record.id)
            .values(metrics=record.metrics | {"served_horizons": kept}, status=status, status_reason=reason)
            .returning(*models.c)
        )
    ).one()
    return _record(row)


async def rollback(db: Database, symbol_id: int) -> ModelRecord | None:
    """Retire the LSTM champion and restore the one it replaced (None: the baseline alone serves)."""
    async with db.begin() as conn:
        rows = [
            _record(r)
            for r in await conn.execute(
                select(models)
                .where(models.c.symbol_id == symbol_id, models.c.kind == LSTM)
                .order_by(models.c.version.desc())
                .with_for_update()
            )
        ]
        champion = next((r for r in rows if r.status == CHAMPION), None)
        if champion is None:
            raise NoChampion(f"pair {symbol_id} has no LSTM champion to roll back")
        previous = next(
            (
                r
                for r in rows
                if r.version < champion.version
                and r.status == RETIRED
                and r.served_horizons
                and r.artifact_uri
            ),
            None,
        )
        await conn.execute(
            update(models)
            .where(models.c.id == champion.id)
            .values(status=RETIRED, status_reason="rolled back on request")
        )
        if previous is None:
            return None
        await conn.execute(
            update(models)
            .where(models.c.id == previous.id)
            .values(status=CHAMPION, status_reason=f"restored by rollback of v{champion.version}")
        )
    return previous


async def prune(db: Database, symbol_id: int, keep: int = KEEP_VERSIONS) -> int:
    """Delete the artifacts of all but the newest ``keep`` versions per kind (champions are kept)."""
    pruned = 0
    rows = [r for r in await records(db, symbol_id) if r.artifact_uri]
    for kind in {r.kind for r in rows}:
        for r in [r for r in rows if r.kind == kind][keep:]:
            if r.status == CHAMPION or r.artifact_uri is None:
                continue
            ModelStore.delete(r.artifact_uri)
            async with db.begin() as conn:
                await conn.execute(
                    update(models)
                    .where(models.c.id == r.id)
                    .values(
                        artifact_uri=None,
                        status=RETIRED,
                        status_reason=func.concat_ws(
                            "; ", models.c.status_reason, f"artifact pruned (keep {keep})"
                        ),
                    )
                )
            pruned += 1
    return pruned
