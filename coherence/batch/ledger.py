"""The results ledger of a batch: ``results.jsonl``, one JSON object a line, one line per finished clip.

Only the driving process writes it. Each record is appended with a single ``write`` on a file opened with
``O_APPEND`` and synced before the next clip is reported, so an interruption (Ctrl-C, a killed job) leaves whole
lines only; a torn last line from a power cut is skipped with a warning when the ledger is read back. Reruns
read the ledger to skip what is already done (see :func:`is_done`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from coherence.batch.jobs import Job
from coherence.errors import OutputError

log = logging.getLogger(__name__)

LEDGER_NAME = "results.jsonl"


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """Every well-formed record of a ledger, in order (none when the file does not exist)."""
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s: line %d is not a complete record; ignored", path, number)
                continue
            if isinstance(record, dict) and "path" in record:
                records.append(record)
    return records


def latest_records(path: Path) -> dict[str, dict[str, Any]]:
    """The last record of each clip path in a ledger."""
    return {record["path"]: record for record in read_ledger(path)}


def is_done(job: Job, record: dict[str, Any] | None) -> bool:
    """Whether a previous ``record`` of ``job``'s clip makes running it again pointless.

    It does when it was made with the same options from the same file (size and modification time), and either
    succeeded (with its output still in place) or failed because of the input itself (a corrupt file fails the
    same way every time). Failures of any other kind (a crash, a full disk, a missing dependency) are retried.
    """
    if record is None or record.get("options") != job.options.signature():
        return False
    if job.fingerprint is None or record.get("fingerprint") != job.fingerprint:
        return False
    if record.get("status") == "ok":
        output = record.get("output")
        return output is None or Path(output).exists()
    return record.get("error_kind") == "input"


class Ledger:
    """Append-only writer of ``results.jsonl``; a context manager.

    Args:
        path: the ledger file; its folder must exist and be writable.

    Raises:
        OutputError: the ledger cannot be opened for appending.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write the results ledger ({exc.strerror})") from exc
        # a torn last line (power cut) must not swallow the next record
        size = os.fstat(self._fd).st_size
        if size:
            with path.open("rb") as handle:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    self._write(b"\n")

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line and sync it to disk."""
        self._write((json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8"))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot append to the results ledger ({exc.strerror})") from exc

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
