"""Where export files go: the `exports` storage (settings.STORAGES: a local directory,
EXPORTS_ROOT, by default; an S3-compatible bucket through django-storages when configured).

A file is written under a temporary name and appears under its final name only once it is
complete: on a local directory by an atomic rename, on an object store by one upload of the
finished file (an object is never visible half-written). A failed or killed export leaves
at most a temporary file, which no one is ever offered (and the sweep removes).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

PARTIAL_DIR = ".partial"
# A temporary file older than this belongs to an export that died.
PARTIAL_MAX_AGE_SECONDS = 24 * 3600


def export_storage() -> Storage:
    return storages["exports"]


def _local_root(storage: Storage) -> Path | None:
    if isinstance(storage, FileSystemStorage):
        return Path(storage.location)
    return None


@contextmanager
def writing(final_name: str) -> Iterator[IO[bytes]]:
    """A binary file to write the export into; on a clean exit it becomes `final_name`
    in the exports storage, on an exception it is removed and nothing is published."""
    storage = export_storage()
    root = _local_root(storage)
    partial_dir = (root / PARTIAL_DIR) if root is not None else Path(tempfile.gettempdir()) / "marketerapi-exports"
    partial_dir.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=partial_dir, prefix="export-", suffix=".part", delete=False)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if root is not None:
            target = root / final_name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(handle.name, target)  # atomic on one file system
        else:
            with open(handle.name, "rb") as finished:
                storage.save(final_name, File(finished))
    finally:
        if os.path.exists(handle.name):
            os.unlink(handle.name)


def open_file(name: str) -> IO[bytes]:
    return export_storage().open(name, "rb")


def exists(name: str) -> bool:
    return bool(name) and export_storage().exists(name)


def delete(name: str) -> None:
    if name:
        export_storage().delete(name)


def remove_stale_partials(now: float | None = None) -> int:
    """Delete temporary files of exports that died long ago; how many."""
    storage = export_storage()
    root = _local_root(storage)
    partial_dir = (root / PARTIAL_DIR) if root is not None else Path(tempfile.gettempdir()) / "marketerapi-exports"
    if not partial_dir.is_dir():
        return 0
    now = now or time.time()
    removed = 0
    for path in partial_dir.glob("export-*.part"):
        try:
            if now - path.stat().st_mtime > PARTIAL_MAX_AGE_SECONDS:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def exports_root() -> str:
    return str(settings.EXPORTS_ROOT)
