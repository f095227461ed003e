"""Reading per-(job, role, party, component) logs for ``flow job logs``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator


def _files(home: Path, job_id: str, role: str | None, party: str | None, cpn: str | None) -> list[Path]:
    root = home / "logs" / job_id
    pattern = f"{role or '*'}/{party or '*'}/{cpn or '*'}.log"
    return sorted(root.glob(pattern), key=lambda p: (p.stat().st_mtime, str(p)))


def _prefix(path: Path) -> str:
    return f"[{path.parent.parent.name} {path.parent.name} {path.stem}]"


def read_logs(home: Path, job_id: str, role=None, party=None, cpn=None) -> Iterator[str]:
    for path in _files(home, job_id, role, party, cpn):
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
    server streams these to ``flow job logs -f``)."""
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
