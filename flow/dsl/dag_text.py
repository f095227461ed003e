"""A job's DAG drawn as text for a terminal (``flow job validate --dag``, ``flow job dag``).

One row of boxes per stage (:meth:`JobDAG.stages`: no two components of a stage depend on
each other), wrapped to further rows when a stage is wider than ``width``, then every edge
listed as ``upstream -> downstream (kinds)``. Plain ASCII, so it reads the same in any
terminal, log file or e-mail::

    stage 1  +----------+ +----------+
             | reader_0 | | reader_1 |
             | Reader   | | Reader   |
             +----------+ +----------+
                  |
                  v
    stage 2  ...

    edges
      reader_0 -> data_transform_0  (data)
"""

from __future__ import annotations

from typing import Mapping

from flow.dsl.dag import JobDAG

#: columns before the boxes ("stage 12  ")
_LABEL = 9


def _box(lines: list[str]) -> list[str]:
    inner = max(len(x) for x in lines)
    edge = "+" + "-" * (inner + 2) + "+"
    return [edge, *(f"| {x.ljust(inner)} |" for x in lines), edge]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 3)] + "..."


def render_dag(dag: JobDAG, modules: Mapping[str, str] | None = None, width: int = 80) -> str:
    """The stages as rows of boxes (name, and module when ``modules`` names it), then the edges.

    Raises :class:`flow.core.errors.ValidationError` for a DAG with a cycle (it has no stages)."""
    modules = modules or {}
    room = max(20, width - _LABEL)
    out: list[str] = []
    stages = dag.stages()
    for number, stage in enumerate(stages, start=1):
        boxes = [_box([_clip(n, room - 4)] + ([_clip(modules[n], room - 4)] if n in modules else []))
                 for n in stage]
        rows: list[list[list[str]]] = [[]]
        used = 0
        for box in boxes:  # as many boxes side by side as fit in ``width``
            need = len(box[0]) + (1 if rows[-1] else 0)
            if rows[-1] and used + need > room:
                rows.append([])
                used, need = 0, len(box[0])
            rows[-1].append(box)
            used += need
        label = f"stage {number}"
        for row in rows:
            height = max(len(b) for b in row)
            for i in range(height):
                cells = [b[i] if i < len(b) else " " * len(b[0]) for b in row]
                out.append(f"{label:<{_LABEL}}" + " ".join(cells).rstrip())
                label = ""
        if number < len(stages):
            out += [" " * (_LABEL + 4) + "|", " " * (_LABEL + 4) + "v"]
    edges = sorted(dag.graph.edges(data=True), key=lambda e: (dag.components.index(e[0]), dag.components.index(e[1])))
    out += ["", "edges" if edges else "edges: none (no component takes another's output)"]
    for up, down, data in edges:
        kinds = ", ".join(sorted(data.get("kinds", ())))
        line, tail = f"  {up} -> {down}", f"  ({kinds})" if kinds else ""
        if len(line + tail) <= width:
            out.append(line + tail)
        else:  # the kinds on a line of their own rather than cut
            out += [_clip(line, width)] + ([_clip("    " + tail.strip(), width)] if tail else [])
    return "\n".join(out)
