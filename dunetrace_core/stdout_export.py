"""An exporter that writes each event as one JSON line (NDJSON) to a stream,
``sys.stdout`` by default: for piping into other tools, and for seeing what
would be sent."""

from __future__ import annotations

import json
import sys
import threading
from typing import IO

from .export import ExportBatch, ExportResult
from .plugins import hookimpl

__all__ = ["StdoutExporter"]


class StdoutExporter:
    name = "stdout"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()  # two batches may be exported at once

    @hookimpl(tryfirst=True)
    def dunetrace_export(self, batch: ExportBatch) -> ExportResult:
        if self.name in batch.delivered_by:
            return ExportResult.ok()
        stream = self._stream or sys.stdout
        lines = "".join(json.dumps(e, separators=(",", ":"), default=str) + "\n" for e in batch.events)
        with self._lock:
            stream.write(lines)
            stream.flush()
        batch.delivered_by.add(self.name)
        return ExportResult.ok()
