"""Dunetrace: know while your agent runs that it is going wrong.

No prompt, completion, tool argument or error message leaves the process;
they are hashed here. Importing this package imports no framework and starts
no thread.
"""

from __future__ import annotations

from ._version import __version__
from .client import Dunetrace
from .export import ExportBatch, ExportResult
from .plugins import hookimpl
from .policies import Policy, PolicyViolation
from .run import Run, get_current_run

__all__ = [
    "Dunetrace",
    "ExportBatch",
    "ExportResult",
    "Policy",
    "PolicyViolation",
    "Run",
    "__version__",
    "get_current_run",
    "hookimpl",
]
