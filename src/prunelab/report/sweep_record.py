"""Which jobs are a sweep folder's own, in a way that survives moving or copying the folder.

Hydra records each job's absolute folder (`.hydra/hydra.yaml`) and multirun.yaml the latest
launch's sweep folder only, so after `mv` (or `cp -a`) and a new launch the earlier jobs name a
folder that is no longer this one. At each launch the report's Hydra callback therefore notes in
`<sweep>/prunelab_sweep.yaml` an id minted at the folder's first launch and every path the folder
was launched as, and stamps each job with that id (`<job>/.hydra/prunelab_sweep.yaml`). A job is
the folder's own when it was written under one of those paths and, where both carry one, with
the folder's id: a job folder copied in from another sweep has another path or another id.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("prunelab")

RECORD = "prunelab_sweep.yaml"  # in the sweep folder, beside multirun.yaml
JOB_RECORD = Path(".hydra") / RECORD  # in each job folder
HEADER = (
    "# prunelab: this sweep folder's id and the paths it was launched as; the report takes a\n"
    "# job as this sweep's only if it ran under one of them with this id. Keep this file when\n"
    "# moving or copying the folder.\n"
)


@dataclass(frozen=True)
class SweepRecord:
    """A sweep folder's id (None if unreadable) and the absolute paths it was launched as."""

    id: str | None
    dirs: tuple[Path, ...]


def _load(path: Path) -> dict[str, Any] | None:
    """A small YAML mapping, or None where absent or unreadable (the report goes on without)."""
    try:
        found = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return found if isinstance(found, dict) else None


def _id(found: dict[str, Any] | None) -> str | None:
    value = found.get("id") if found else None
    return value if isinstance(value, str) and value else None


def read_record(sweep: Path) -> SweepRecord | None:
    """The sweep folder's record, or None (a sweep launched before records, or none kept)."""
    found = _load(sweep / RECORD)
    if found is None:
        return None
    dirs = found.get("dirs")
    paths = tuple(
        Path(os.path.normpath(d))
        for d in (dirs if isinstance(dirs, list) else [])
        if d and isinstance(d, str)
    )
    return SweepRecord(_id(found), paths)


def job_sweep_id(job: Path) -> str | None:
    """The id of the sweep a job was launched by, or None (a job written before records)."""
    return _id(_load(job / JOB_RECORD))


def _write(path: Path, text: str) -> None:
    # Atomic (prunelab.io imports torch: seconds at each launch, so not it).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _absolute(path: str, cwd: Any) -> Path:
    base = Path(str(cwd)) if cwd else Path.cwd()
    return Path(os.path.normpath(base / path))


def _earlier_launch(multirun: Path) -> Path | None:
    """Where the launch that wrote an existing multirun.yaml (a launch before records) ran."""
    found = _load(multirun)
    hydra = found.get("hydra") if found else None
    if not isinstance(hydra, dict):
        return None
    sweep = (hydra.get("sweep") or {}).get("dir")
    cwd = (hydra.get("runtime") or {}).get("cwd")
    if not isinstance(sweep, str) or not sweep or "${" in sweep:
        return None
    return _absolute(sweep, cwd)


def note_launch(sweep_dir: str, cwd: Any = None) -> SweepRecord:
    """Before a launch's jobs run: mint the folder's id once, add this launch's path."""
    sweep = _absolute(sweep_dir, cwd)
    sweep.mkdir(parents=True, exist_ok=True)
    record = read_record(sweep)
    if record is None or record.id is None:
        # The first launch with records. A folder launched into before keeps its jobs: the
        # multirun.yaml Hydra has not yet overwritten names the path they ran under.
        earlier = _earlier_launch(sweep / "multirun.yaml")
        dirs = (earlier,) if earlier is not None else ()
        record = SweepRecord(uuid.uuid4().hex, dirs + (record.dirs if record else ()))
    if sweep not in record.dirs:
        record = SweepRecord(record.id, (*record.dirs, sweep))
    body = {"id": record.id, "dirs": [str(d) for d in record.dirs]}
    _write(sweep / RECORD, HEADER + yaml.safe_dump(body, sort_keys=False))
    return record


def stamp_job(output_dir: str, sweep_dir: str, cwd: Any = None) -> None:
    """As a job starts: write its sweep's id beside Hydra's record of the job."""
    record = read_record(_absolute(sweep_dir, cwd))
    hydra_dir = Path(output_dir) / JOB_RECORD.parent
    if record is None or record.id is None or not hydra_dir.is_dir():
        return
    _write(hydra_dir / RECORD, yaml.safe_dump({"id": record.id}))  # quoted if it reads as a number
