"""Read CloudWatch embedded-metric-format lines out of captured output, checking them against the spec."""

from __future__ import annotations

import json
from typing import Any

UNITS = {"Count", "Milliseconds"}


def emf_records(text: str) -> list[dict[str, Any]]:
    """Every EMF object in `text` (one per line), each checked as CloudWatch would read it."""
    records = []
    for line in text.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        record = json.loads(line)
        check(record)
        records.append(read_values(record))
    return records


def read_values(record: dict[str, Any]) -> dict[str, Any]:
    """The record with each metric's value as CloudWatch reads it: Powertools writes every value as an array
    (EMF allows up to 100 values per metric), and a one-element array is that one value."""
    names = metric_names(record)
    return {
        key: value[0] if key in names and isinstance(value, list) and len(value) == 1 else value
        for key, value in record.items()
    }


def check(record: dict[str, Any]) -> None:
    """What the EMF specification requires: a millisecond timestamp, directives whose metrics and
    dimensions are root members (numbers and strings), at most 30 dimensions per set, 100 metrics."""
    meta = record["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
    for directive in meta["CloudWatchMetrics"]:
        assert isinstance(directive["Namespace"], str) and directive["Namespace"]
        assert len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert metric["Unit"] in UNITS, metric
            value = record[metric["Name"]]
            values = value if isinstance(value, list) else [value]
            assert 0 < len(values) <= 100, metric
            for one in values:
                assert isinstance(one, (int, float)) and not isinstance(one, bool), metric
        for dimension_set in directive["Dimensions"]:
            assert 0 < len(dimension_set) <= 30
            for dimension in dimension_set:
                assert isinstance(record[dimension], str) and record[dimension], dimension


def dimension_sets(record: dict[str, Any], metric: str) -> list[list[str]]:
    return [
        sorted(dimensions)
        for directive in record["_aws"]["CloudWatchMetrics"]
        if metric in {m["Name"] for m in directive["Metrics"]}
        for dimensions in directive["Dimensions"]
    ]


def metric_names(record: dict[str, Any]) -> set[str]:
    return {m["Name"] for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def server_timing(header: str) -> dict[str, float]:
    """`gateway;dur=1.2, upstream;dur=3.4` -> {"gateway": 1.2, "upstream": 3.4}."""
    timings = {}
    for entry in header.split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        durations = [float(p[4:]) for p in params if p.startswith("dur=")]
        assert len(durations) == 1, header
        timings[name] = durations[0]
    return timings
