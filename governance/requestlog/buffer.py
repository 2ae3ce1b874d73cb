"""The in-process buffer of request-log rows, written with one bulk INSERT per batch.

The request log must cost a request nearly nothing: the middleware
(marketerapi.middleware.RequestLogMiddleware) hands a dict to `add`, which appends it to
a list under a lock. A daemon thread per process writes what has gathered every
REQUEST_LOG_FLUSH_SECONDS, or as soon as REQUEST_LOG_BATCH rows wait, in one
`bulk_create` on its own connection; what is left is written at exit. A row is a record
of traffic, not of a governed change: if the database refuses a batch, the batch is
logged and dropped rather than retried forever or allowed to fail a request.

With REQUEST_LOG_BACKGROUND off (the test settings) there is no thread: rows wait until
`flush()` is called, or are written inline once a batch is full.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any

from django.conf import settings

logger = logging.getLogger("governance.requestlog")

_lock = threading.Lock()
_rows: list[dict[str, Any]] = []
_wake = threading.Event()
_stop = threading.Event()
_thread: threading.Thread | None = None
_thread_pid: int | None = None


def add(row: dict[str, Any]) -> None:
    """Queue one row; never touches the database on the caller's thread (unless the
    background writer is off and a batch is full)."""
    with _lock:
        _rows.append(row)
        full = len(_rows) >= settings.REQUEST_LOG_BATCH
    if settings.REQUEST_LOG_BACKGROUND:
        _ensure_writer()
        if full:
            _wake.set()
    elif full:
        flush()


def pending() -> int:
    with _lock:
        return len(_rows)


def discard() -> None:
    """Forget the queued rows (tests: a test's rows must not be written in the next one)."""
    with _lock:
        _rows.clear()


def flush() -> int:
    """Write every queued row in one INSERT; the number written."""
    with _lock:
        batch = _rows[:]
        _rows.clear()
    if not batch:
        return 0
    from governance.models import RequestLog

    try:
        RequestLog.objects.bulk_create([RequestLog(**row) for row in batch], batch_size=1000)
    except Exception:
        logger.exception("request log: a batch of %d rows could not be written and is dropped", len(batch))
        return 0
    return len(batch)


def _ensure_writer() -> None:
    global _thread, _thread_pid
    # After a fork (gunicorn's workers) the parent's thread does not exist in the child.
    if _thread is not None and _thread_pid == os.getpid() and _thread.is_alive():
        return
    with _lock:
        if _thread is not None and _thread_pid == os.getpid() and _thread.is_alive():
            return
        _thread = threading.Thread(target=_write_forever, name="request-log-writer", daemon=True)
        _thread_pid = os.getpid()
        _thread.start()


def stop_writer() -> None:
    """Write what waits and stop this process's writer thread (tests; a new row starts another)."""
    global _thread
    thread = _thread
    if thread is not None:
        _stop.set()
        _wake.set()
        thread.join(timeout=5)
        _thread = None
        _stop.clear()


def _write_forever() -> None:
    from django.db import close_old_connections, connection

    while not _stop.is_set():
        _wake.wait(settings.REQUEST_LOG_FLUSH_SECONDS)
        _wake.clear()
        try:
            close_old_connections()
            flush()
        except Exception:  # the writer outlives a database outage; the next batch tries again
            logger.exception("request log: the writer could not reach the database")
    connection.close()


def _at_exit() -> None:
    # Only where a writer thread ran: a test run's leftover rows have no database to go to.
    if _thread is not None:
        flush()


atexit.register(_at_exit)
