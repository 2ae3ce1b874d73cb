"""`file`: CSV or JSONL drops in a local directory, for an SFTP server (or any job) to pick up.

Each batch becomes one file, written atomically: the rows go to a hidden temporary file
in the same directory (`.<name>.tmp-<random>`), which is flushed, fsynced and renamed
over the final name (`os.replace`, atomic on POSIX within one file system). A reader
never sees a half-written file; a crash leaves only a temporary file, removed on the next
write attempt's failure path or ignored by pick-up jobs (they skip dot-files).

Names are deterministic — `<prefix>-<reference>-<phase>-<part>.<ext>`, e.g.
`marketerapi-push-42-added-0001.jsonl` — so a retried push rewrites the same file rather
than dropping a duplicate.

Rows: `{"external_id", "operation": "add" | "remove", "email", "phone", "first_name",
"last_name", …attributes}` for members; `{"external_id", "operation": "send", …,
"properties"}` for sends. CSV has a header row of the columns present in that file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings

from integrations.adapters.base import (
    MEMBER_FIELDS,
    Adapter,
    Checkpoint,
    ConfigProblem,
    DeliveryResult,
    Field,
    HealthResult,
    ServerFailure,
    TargetRefused,
    VendorRejected,
    chunks,
    external_id,
    member,
)
from integrations.adapters.registry import register

SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return str(value)


def _looks_remote(directory: str) -> bool:
    return "://" in directory or directory.startswith(("//", "\\\\"))


def under_roots(directory: str, roots: list[str]) -> bool:
    """Whether `directory`, with symlinks and `..` resolved, is one of `roots` or below one."""
    real = os.path.realpath(directory)
    for root in roots:
        base = os.path.realpath(root)
        if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
            return True
    return False


@register
class FileAdapter(Adapter):
    name = "file"
    title = "File drop"
    sandbox_allowed = True
    fields = (
        Field("directory", str, required=True, help="an absolute local directory, e.g. /var/drops/crm"),
        Field("format", str, default="jsonl", choices=("jsonl", "csv"), help="jsonl or csv"),
        Field("prefix", str, default="marketerapi", help="file name prefix (letters, digits, _ . -)"),
        Field("rows_per_file", int, default=100_000, minimum=1, maximum=1_000_000, help="rows per file"),
    )
    credential_keys = {}
    batch_sizes = {"rows_per_file": 100_000}
    send_channels = ("email", "sms", "push")
    send_batch_size = 10_000
    # A batch is one file named by its reference: written again, it replaces itself.
    send_idempotent = True

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> list[ConfigProblem]:
        problems = []
        directory = config["directory"]
        if _looks_remote(directory) or not os.path.isabs(directory):
            problems.append(
                ConfigProblem(
                    "/directory",
                    "invalid_directory",
                    f"{directory!r} is not an absolute local directory.",
                    "Use an absolute path on this server, e.g. /var/drops/crm; an SFTP server picks the files up "
                    "from there.",
                )
            )
        if not PREFIX.match(str(config.get("prefix", ""))):
            problems.append(
                ConfigProblem(
                    "/prefix",
                    "invalid_prefix",
                    "The prefix must be 1–64 letters, digits, '_', '.' or '-', starting with a letter or digit.",
                    "Use e.g. crm-members.",
                )
            )
        return problems

    @classmethod
    def target_problems(cls, config: dict[str, Any], *, sandbox: bool) -> list[ConfigProblem]:
        """The directory, symlinks and `..` resolved, must lie under a configured root: in a
        sandbox DESTINATION_SANDBOX_FILE_ROOTS (empty: any local directory), elsewhere
        DESTINATION_FILE_ROOTS (empty: none)."""
        directory = str(config.get("directory", ""))
        setting = "DESTINATION_SANDBOX_FILE_ROOTS" if sandbox else "DESTINATION_FILE_ROOTS"
        code = "sandbox_target_not_local" if sandbox else "directory_not_allowed"
        roots = [str(r) for r in getattr(settings, setting)]
        if _looks_remote(directory) or not os.path.isabs(directory):
            return [
                ConfigProblem(
                    "/directory",
                    code,
                    "File destinations write to an absolute local directory only.",
                    "Use an absolute path on this server, e.g. /var/drops/crm.",
                )
            ]
        if sandbox and not roots:
            return []
        if not roots:
            return [
                ConfigProblem(
                    "/directory",
                    code,
                    "This deployment allows no file destinations outside a sandbox.",
                    f"An operator lists the directories file destinations may write under in {setting} "
                    "(docs/operations.md).",
                )
            ]
        if not under_roots(directory, roots):
            where = "Sandbox file drops" if sandbox else "File drops"
            return [
                ConfigProblem(
                    "/directory",
                    code,
                    f"{where} must stay under the deployment's drop directories; {directory!r} is not under them "
                    "once links and '..' are resolved.",
                    f"Use a directory under: {', '.join(roots)}.",
                )
            ]
        return []

    # -- writing --

    @property
    def directory(self) -> Path:
        return Path(self.config["directory"])

    def checked_directory(self) -> Path:
        """The directory, links and `..` resolved, checked against the roots right before it
        is written to (a link changed after the destination was saved is caught here);
        writes go to this resolved path."""
        problems = self.target_problems(self.config, sandbox=self.policy.sandbox)
        if problems:
            raise TargetRefused(f"{self.label}: nothing was written. {problems[0].message}", hint=problems[0].hint)
        return Path(os.path.realpath(self.directory))

    def _file_name(self, phase: str, part: int) -> str:
        reference = SAFE_NAME.sub("-", self.reference).strip("-") or "adhoc"
        return f"{self.config['prefix']}-{reference}-{phase}-{part:04d}.{self.config['format']}"

    def _render(self, rows: Sequence[dict[str, Any]]) -> bytes:
        if self.config["format"] == "jsonl":
            return "".join(json.dumps(row, separators=(",", ":"), default=str) + "\n" for row in rows).encode()
        first = ["external_id", "operation", *MEMBER_FIELDS]
        others = sorted({key for row in rows for key in row} - set(first))
        columns = [c for c in first if any(c in row for row in rows)] + others
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in columns])
        return out.getvalue().encode()

    def write_atomic(self, name: str, data: bytes) -> Path:
        """Write `data` as `name` in the directory so that it appears whole or not at all."""
        directory = self.checked_directory()
        final = directory / name
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.tmp-")
        except FileNotFoundError:
            raise ServerFailure(
                f"The drop directory {self.directory} does not exist.",
                hint="Create it (or mount it) on every worker, then POST /api/v1/destinations/{id}/test.",
            ) from None
        except PermissionError:
            raise VendorRejected(
                f"The drop directory {self.directory} is not writable by this process.",
                hint="Give the worker's user write access to the directory.",
            ) from None
        except OSError as exc:
            raise ServerFailure(f"The drop directory {self.directory} is unavailable ({exc.strerror}).") from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise ServerFailure(f"Writing {name} in {self.directory} failed ({exc.strerror or exc}).") from None
        self._fsync_directory(directory)
        return final

    def _fsync_directory(self, directory: Path) -> None:
        # Make the rename itself durable; not every platform allows opening a directory.
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _drop(self, phase: str, rows: Sequence[dict[str, Any]], result: DeliveryResult, cp: Checkpoint) -> None:
        size = int(self.config["rows_per_file"])
        for offset, chunk in chunks(rows, size, cp.offset(phase)):
            path = self.write_atomic(self._file_name(phase, offset // size + 1), self._render(chunk))
            result.calls += 1
            result.delivered += len(chunk)
            result.details.setdefault("files", []).append(path.name)
            cp.advance(phase, len(chunk))

    def _guarded(self, work: Any) -> DeliveryResult:
        # The breaker sees the directory like a vendor: unavailable (missing, full) counts.
        from integrations.adapters.base import CircuitOpen

        if self.breaker is not None and not self.breaker.allow():
            snap = self.breaker.snapshot()
            raise CircuitOpen(
                f"{self.label} is unavailable ({snap.failures} failures, last: {snap.last_error or 'unknown'}).",
                snapshot=snap,
            )
        try:
            result = work()
        except ServerFailure as exc:
            if self.breaker is not None:
                self.breaker.record_failure(exc.message)
            raise
        if self.breaker is not None:
            self.breaker.record_success()
        return result

    def push_members(
        self, added: Sequence[Any], removed: Sequence[Any], checkpoint: Checkpoint | None = None
    ) -> DeliveryResult:
        cp = checkpoint or Checkpoint()

        def work() -> DeliveryResult:
            result = DeliveryResult()
            gone = [{"external_id": external_id(item), "operation": "remove"} for item in removed]
            self._drop("removed", gone, result, cp)
            rows = []
            for item in added:
                row = member(item)
                attributes = row.pop("attributes")
                rows.append({**attributes, **row, "operation": "add"})
            self._drop("added", rows, result, cp)
            return result

        return self._guarded(work)

    def send(self, batch: dict[str, Any], checkpoint: Checkpoint | None = None) -> DeliveryResult:
        cp = checkpoint or Checkpoint()
        shared = dict(batch.get("properties") or {})

        def work() -> DeliveryResult:
            result = DeliveryResult()
            rows = []
            for recipient in batch.get("recipients") or []:
                row = member(recipient)
                row.pop("attributes")
                props = {**shared, **dict(recipient.get("properties") or {})} if isinstance(recipient, dict) else shared
                rows.append({**row, "operation": "send", "properties": props})
            self._drop("recipients", rows, result, cp)
            return result

        return self._guarded(work)

    def health(self) -> HealthResult:
        started = time.monotonic()
        result = HealthResult(ok=True, message=f"{self.directory} is writable.")
        try:
            directory = self.checked_directory()
        except TargetRefused as refused:
            result.ok = False
            result.message = refused.message
            result.check("directory", False, refused.message)
            return result
        if not directory.is_dir():
            result.ok = False
            result.message = f"The drop directory {self.directory} does not exist."
            result.check("directory", False, result.message)
        else:
            result.check("directory", True, f"{self.directory} exists.")
            try:
                fd, tmp = tempfile.mkstemp(dir=directory, prefix=".marketerapi-health-")
                os.close(fd)
                os.unlink(tmp)
                result.check("writable", True, "A test file was written and removed.")
            except OSError as exc:
                result.ok = False
                result.message = f"The drop directory {self.directory} is not writable ({exc.strerror})."
                result.check("writable", False, result.message)
        if self.breaker is not None:
            if result.ok:
                self.breaker.record_success()
            elif not directory.is_dir():
                self.breaker.record_failure(result.message)
        result.latency_ms = int((time.monotonic() - started) * 1000)
        return result
