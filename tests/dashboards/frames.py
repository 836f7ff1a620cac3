"""Grafana's table frames and the few transformations the dashboards use, modelled in Python so
the tests can run a panel's whole pipeline (queries, then transformations) on real results.

A model, not Grafana: it covers ``organize`` (exclude, include, rename), ``merge`` (rows with
equal values in the fields every frame shares become one row), ``filterByValue`` (include rows
where a field is null), ``calculateField`` (binary ``/``), and a transformation's ``filter``
by refId. An InfluxQL table result becomes one frame per query: tags as columns, the time
column as ``Time``, as Grafana's InfluxQL table format does.
"""

from __future__ import annotations

Frame = list[dict]


def frame_of(series: list[dict]) -> Frame:
    rows = []
    for s in series:
        for values in s["values"]:
            row = {("Time" if c == "time" else c): v for c, v in zip(s["columns"], values)}
            row.update(s.get("tags", {}))
            rows.append(row)
    return rows


def _organize(frame: Frame, opts: dict) -> Frame:
    out = []
    for row in frame:
        r = {k: v for k, v in row.items() if not opts.get("excludeByName", {}).get(k)}
        if opts.get("includeByName"):
            r = {k: v for k, v in r.items() if opts["includeByName"].get(k)}
        out.append({opts.get("renameByName", {}).get(k, k): v for k, v in r.items()})
    return out


def _merge(frames: dict[str, Frame]) -> Frame:
    fields = [set().union(*(r.keys() for r in f)) for f in frames.values() if f]
    common = sorted(set.intersection(*fields)) if fields else []
    merged: dict[tuple, dict] = {}
    for frame in frames.values():
        for row in frame:
            merged.setdefault(tuple(row.get(k) for k in common), {}).update(row)
    return list(merged.values())


def _binary(frame: Frame, opts: dict) -> Frame:
    b = opts["binary"]
    assert b["operator"] == "/", b
    out = []
    for row in frame:
        left, right = row.get(b["left"]), row.get(b["right"])
        out.append({**row, opts["alias"]: left / right if left is not None and right else None})
    return out


def apply(panel: dict, results: dict[str, list[dict]]) -> Frame:
    """Run ``panel["transformations"]`` over ``results`` (refId -> InfluxQL series); the final
    table. Raises ``NotImplementedError`` for a transformation this model lacks."""
    frames: dict[str, Frame] = {ref: frame_of(series) for ref, series in results.items()}
    for t in panel.get("transformations", []):
        only = t.get("filter", {}).get("options") if t.get("filter", {}).get("id") == "byRefId" else None
        targets = [only] if only else list(frames)
        if t["id"] == "organize":
            for ref in targets:
                frames[ref] = _organize(frames[ref], t["options"])
        elif t["id"] == "merge":
            frames = {"merged": _merge(frames)}
        elif t["id"] == "filterByValue":
            (f,) = t["options"]["filters"]
            assert f["config"]["id"] == "isNull" and t["options"]["type"] == "include"
            frames = {ref: [r for r in fr if r.get(f["fieldName"]) is None] for ref, fr in frames.items()}
        elif t["id"] == "calculateField" and t["options"]["mode"] == "binary":
            frames = {ref: _binary(fr, t["options"]) for ref, fr in frames.items()}
        else:
            raise NotImplementedError(t["id"])
    assert len(frames) == 1, f"{len(frames)} frames left: the panel shows several tables"
    return next(iter(frames.values()))
