"""Reading per-(job, role, party, component) logs for ``flow job logs``.

The job id, role, party id and component come from a request: each is checked as its
kind of identifier before it becomes part of a path or a glob pattern (one not given
stays ``*``), and a file that a link takes outside ``<home>/logs`` is never read.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator

from flow.core.ids import check_id
from flow.core.paths import is_inside, safe_join


def check_selection(job_id: str, role: str | None, party: str | None, cpn: str | None) -> None:
    """InvalidIdentifier (one line naming the field) unless each given part is one of its kind."""
    check_id("job_id", job_id, "job_id")
    for kind, field, value in (("role", "role", role), ("party_id", "party_id", party),
                               ("component", "component", cpn)):
        if value is not None:
            check_id(kind, value, field)


def _files(home: Path, job_id: str, role: str | None, party: str | None, cpn: str | None) -> list[Path]:
    check_selection(job_id, role, party, cpn)
    logs = home / "logs"
    root = safe_join(logs, job_id, fields=("job_id",))
    pattern = f"{role or '*'}/{party or '*'}/{cpn or '*'}.log"
    found = [p for p in root.glob(pattern) if p.is_file() and is_inside(logs, p)]
    return sorted(found, key=lambda p: (p.stat().st_mtime, str(p)))


def _prefix(path: Path) -> str:
    return f"[{path.parent.parent.name} {path.parent.name} {path.stem}]"


def read_logs(home: Path, job_id: str, role=None, party=None, cpn=None) -> Iterator[str]:
    """The lines of every matching file; a bad identifier raises here, before any line."""
    return _read(_files(home, job_id, role, party, cpn))


def _read(files: list[Path]) -> Iterator[str]:
    for path in files:
        prefix = _prefix(path)
        with path.open() as fh:
            for line in fh:
                yield f"{prefix} {line.rstrip()}"


def follow_logs(home: Path, job_id: str, role, party, cpn, done: Callable[[], bool],
                echo: Callable[[str], None], poll: float = 0.5) -> None:
    """Print lines as they are written, from every matching file, until ``done()``."""
    for line in iter_follow(home, job_id, role, party, cpn, done, poll):
        echo(line)


def iter_follow(home: Path, job_id: str, role, party, cpn, done: Callable[[], bool],
                poll: float = 0.5) -> Iterator[str]:
    """Lines as they are written, from every matching file, until ``done()`` (a flow
    server streams these to ``flow job logs -f``); a bad identifier raises here."""
    check_selection(job_id, role, party, cpn)
    return _follow(home, job_id, role, party, cpn, done, poll)


def _follow(home: Path, job_id: str, role, party, cpn, done: Callable[[], bool], poll: float) -> Iterator[str]:
    offsets: dict[Path, int] = {}
    while True:
        finished = done()
        for path in _files(home, job_id, role, party, cpn):
            with path.open() as fh:
                fh.seek(offsets.get(path, 0))
                for line in fh:
                    yield f"{_prefix(path)} {line.rstrip()}"
                offsets[path] = fh.tell()
        if finished:
            return
        time.sleep(poll)
