"""A text file -> stored table of raw lines (FATE's upload layout for tag, sparse and
svmlight files): key = the line's first ``delimiter``-separated token, value = the rest of
the line, as one text column ``line``. DataTransform parses the lines by its
``input_format``.

FATE stores every upload this way; fedweave stores header-row CSV files as typed columns
(``csv_import``) and keeps this layout for the files that are not column tables: a file
uploaded without a header row (``head: 0``) and a file whose first row holds ``idx:value``
or ``tag:value`` tokens (FATE's tag and sparse example files, uploaded with ``head: 1``:
as FATE does, that first row is then taken as the header and not stored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from backends.computing.api import Session
from backends.storage.api import StorageEngine, TableMeta
from flow.core.errors import StorageError

#: the one value column of a lines table
LINE_COLUMN = "line"
#: ``TableMeta.extra["kind"]`` of a lines table
LINES_KIND = "lines"


def looks_like_lines(header: str, delimiter: str = ",") -> bool:
    """Whether a file's first row is a data row of FATE's tag/sparse formats rather than
    column names: after the id (and at most one label token) every token is ``key:value``."""
    tokens = [t.strip() for t in header.rstrip("\r\n").split(delimiter)][1:]
    if tokens and ":" not in tokens[0]:
        tokens = tokens[1:]  # a label before the idx:value pairs (svmlight/sparse with label)
    return bool(tokens) and all(":" in t for t in tokens)


def _rows(path: Path, head: bool, delimiter: str) -> Iterator[tuple[str, tuple[str]]]:
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            if head and number == 1:
                continue
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            key, _, rest = line.partition(delimiter)
            key = key.strip()
            if not key:
                raise StorageError(f"{path}: empty id in line {number}")
            if key in seen:
                raise StorageError(f"{path}: duplicate id '{key}' (line {number})")
            seen.add(key)
            yield key, (rest,)


def import_lines(path: str | Path, engine: StorageEngine, session: Session, namespace: str, name: str,
                 head: bool = True, delimiter: str = ",", partitions: int | None = None) -> TableMeta:
    """Store ``path`` as a table of raw lines (see the module doc); ``head`` skips the first
    line as FATE's header (kept in the meta as ``extra["header"]``)."""
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"file {path} does not exist")
    engine.exists(namespace, name)  # refuses a bad namespace/name before the file is read
    header = None
    id_column = "id"
    if head:
        try:
            with path.open(encoding="utf-8") as fh:
                first = fh.readline().rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise StorageError(f"{path}: not a text file: {exc}") from exc
        id_name, _, header = first.partition(delimiter)
        if id_name.strip() and not looks_like_lines(first, delimiter):
            id_column = id_name.strip()
    try:
        table = session.parallelize(_rows(path, head, delimiter), partitions)
    except UnicodeDecodeError as exc:
        raise StorageError(f"{path}: not a text file: {exc}") from exc
    if table.count() == 0:
        raise StorageError(f"file {path} has no data lines")
    meta = TableMeta(namespace=namespace, name=name, engine=engine.engine, id_column=id_column,
                     columns=[LINE_COLUMN], dtypes=["string"], partitions=table.partitions,
                     extra={"source": str(path), "kind": LINES_KIND, "header": header, "delimiter": delimiter})
    return engine.write(table, meta)
