"""The sweep report: tables, figures, recommendations and a W&B summary run for one sweep folder
(prunelab.report.writer builds it).

Its names load on first use: train.py imports this package for its Hydra callback at every
launch, and the report's plotting library alone takes a third of a second to import; and
`python -m prunelab.report` imports the package before its main() can catch a Ctrl-C.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ReportResult", "build", "problems", "settings"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from prunelab.report import writer

        return getattr(writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
