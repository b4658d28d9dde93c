"""Reading both sides back, independently of the code under test."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import func, select

from dicomhub.core.db import (
    Collection,
    Instance,
    Patient,
    Release,
    Series,
    Study,
    make_engine,
    make_sessionmaker,
)
from dicomhub.core.store.base import BlobStore
from dicomhub.sample import SampleManifest


def counts(url: str) -> dict[str, int]:
    """Rows of each catalogue table (the whole database)."""
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as db:
            return {
                name: int(db.scalar(select(func.count()).select_from(model)) or 0)
                for name, model in (
                    ("collections", Collection),
                    ("patients", Patient),
                    ("studies", Study),
                    ("series", Series),
                    ("instances", Instance),
                )
            }
    finally:
        engine.dispose()


def instances(url: str) -> dict[str, dict[str, Any]]:
    """Every instance row by SOPInstanceUID: hashes, size, key and its series' counts."""
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as db:
            rows = db.execute(
                select(Instance, Series.series_instance_uid).join(
                    Series, Series.id == Instance.series_id
                )
            ).all()
            return {
                i.sop_instance_uid: {
                    "sha256": i.sha256,
                    "md5": i.md5,
                    "size": i.size,
                    "key": i.blob_key,
                    "series": uid,
                    "header": i.header,
                }
                for i, uid in rows
            }
    finally:
        engine.dispose()


def releases(url: str) -> list[Release]:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as db:
            return list(db.scalars(select(Release).order_by(Release.id)))
    finally:
        engine.dispose()


def series_totals(url: str) -> dict[str, tuple[int, int, int, int]]:
    """(recorded count, actual count, recorded size, actual size) per series."""
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as db:
            actual = (
                select(
                    Instance.series_id, func.count(Instance.id), func.sum(Instance.size)
                ).group_by(Instance.series_id)
            ).subquery()
            rows = db.execute(
                select(
                    Series.series_instance_uid,
                    Series.instance_count,
                    actual.c[1],
                    Series.total_size,
                    actual.c[2],
                ).join(actual, actual.c.series_id == Series.id)
            ).all()
            return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}
    finally:
        engine.dispose()


def store_hashes(store: BlobStore, keys: list[str]) -> dict[str, tuple[str, str]]:
    out = {}
    for key in keys:
        data = store.get(key)
        out[key] = (
            hashlib.sha256(data).hexdigest(),
            hashlib.md5(data, usedforsecurity=False).hexdigest(),
        )
    return out


def encodings(value: str) -> set[bytes]:
    forms = {value.encode("utf-8"), value.encode("latin-1", "replace")}
    if "^" in value:
        forms.add(value.replace("^", " ").strip().encode("utf-8"))
    return forms


def phi_leaks(store: BlobStore, manifest: SampleManifest) -> list[tuple[str, bytes]]:
    """(key, PHI form) for every planted PHI string found in any blob of ``store``."""
    forms = {form for value in manifest.phi_values() for form in encodings(value)}
    leaks = []
    for key in sorted(store.keys("")):
        data = store.get(key)
        leaks.extend((key, form) for form in forms if form in data)
    return leaks
