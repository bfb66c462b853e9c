"""Structured answers: what checking an answer and building typed columns cost, side by side.

1. Per answer, for a 10-field schema: parsing and checking the JSON text (``Schema.check``) in
   each form (concise string and dicts, checked by fastjsonschema; a dict with a keyword only
   draft 2020-12 has, left to jsonschema, the slow path; a pydantic model), next to the
   per-item cost of a describe_many run without a schema against the offline server (200
   images, concurrency 8, in this process).
   Target: at most 0.2 ms per answer.
2. ``parse_partial`` (the fields shown while an answer streams) on a prefix of 2 KB and of
   16 KB: one call should cost about 8 times as much on 8 times the text (linear).
3. ``Results.to_pandas()`` of 20,000 results, plus the typed columns of their structured data
   (one row in 10 failed: nulls), and both joined. Target: at most 1 s in all.

Run: ``python benchmarks/bench_schema.py`` (about a minute). It prints figures, asserts nothing.
"""

from __future__ import annotations

import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIELDS = ["str", "int", "float", "bool", "list[str]"] * 2
CONCISE = ", ".join(f"f{i} {kind}" for i, kind in enumerate(FIELDS))
VALUES: dict[str, Any] = {"str": "a beach", "int": 3, "float": 2.5, "bool": True,
                          "list[str]": ["sea", "sand"]}  # fmt: skip
ANSWER = {f"f{i}": VALUES[kind] for i, kind in enumerate(FIELDS)}
TEXT = json.dumps(ANSWER)
ROWS = 20_000
REPEATS = 5


def _best_of(fn: Callable[[], object], number: int) -> float:
    """Seconds per call: the best of REPEATS runs of ``number`` calls (least disturbed)."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return min(times)


def _schemas() -> dict[str, Any]:
    from pydantic import create_model

    from reka_nb.protocol.schema import make_schema

    types = {"str": str, "int": int, "float": float, "bool": bool, "list[str]": list[str]}
    model = create_model(  # type: ignore[call-overload]
        "Ten", **{f"f{i}": (types[kind], ...) for i, kind in enumerate(FIELDS)}
    )
    concise = make_schema(CONCISE)
    assert concise is not None
    with_format = concise.json_schema
    with_format["properties"]["f0"]["format"] = "regex"  # a string format, checked too
    newer = concise.json_schema | {"unevaluatedProperties": False}  # 2020-12 only
    return {
        "concise string (fastjsonschema)": concise,
        "JSON Schema dict (fastjsonschema)": make_schema(concise.json_schema | {"title": "d"}),
        "dict with a string format (fast)": make_schema(with_format),
        "dict with a 2020-12 keyword (jsonschema)": make_schema(newer),
        "pydantic model": make_schema(model),
    }


def _run_cost() -> float:
    """Seconds per item of a describe_many run without a schema, on the offline server."""
    from PIL import Image

    import reka_nb
    from reka_nb.testing import OfflineServer

    with tempfile.TemporaryDirectory() as folder, OfflineServer(keep_bodies=False) as server:
        for i in range(200):
            buf = io.BytesIO()
            Image.new("RGB", (64, 48), (i, 100, 200)).save(buf, format="PNG")
            Path(folder, f"{i:03}.png").write_bytes(buf.getvalue())
        client = reka_nb.RekaClient(api_key=server.api_key, base_url=server.base_url)
        try:
            kw = {"concurrency": 8, "cache": False, "show": False, "client": client}
            reka_nb.describe_many(folder, "Warm up?", **kw)
            start = time.perf_counter()
            results = reka_nb.describe_many(folder, "What is it?", **kw)
            seconds = time.perf_counter() - start
        finally:
            client.close()
        assert not results.errors
        return seconds / len(results)


def _results(rows: int) -> tuple[Any, list[Any]]:
    from reka_nb import Description
    from reka_nb.batch import Result, Results
    from reka_nb.protocol.stream import Usage

    out, data = [], []
    for i in range(rows):
        failed = i % 10 == 9
        description = None if failed else Description(
            TEXT, model="reka-flash", usage=Usage(100, 40), finish_reason="stop",
            request_id=f"req_{i}", elapsed=0.5, data=dict(ANSWER),
        )  # fmt: skip
        error = ValueError("not valid for the schema") if failed else None
        out.append(Result(i, f"{i}.png", f"{i}.png", description=description, error=error))
        data.append(None if failed else dict(ANSWER))
    return Results(out), data


def main() -> None:
    import pandas

    from reka_nb.batch.columns import schema_frame

    print("Checking one answer of a 10-field schema (parse + validate), best of 5:")
    for name, schema in _schemas().items():
        schema.check(TEXT)
        per = _best_of(lambda schema=schema: schema.check(TEXT), 2_000)
        print(f"  {name:40} {per * 1e3:7.3f} ms per answer")
    per_item = _run_cost()
    print(f"  {'describe_many without a schema':40} {per_item * 1e3:7.3f} ms per item (run cost)")
    print("  target: at most 0.200 ms per answer")

    from reka_nb.protocol.json_text import parse_partial

    print("\nparse_partial on a growing answer (one call), best of 5:")
    costs = []
    for size in (2_000, 16_000):
        whole = json.dumps({f"k{i}": ["word " * 5, i, {"x": True}] for i in range(size // 40)})
        prefix = whole[:size]
        costs.append(_best_of(lambda prefix=prefix: parse_partial(prefix), 50))
        print(f"  {f'{len(prefix):,} characters':40} {costs[-1] * 1e3:7.3f} ms per call")
    print(f"  {'16 KB / 2 KB':40} {costs[1] / costs[0]:7.1f} x  (linear: about 8)")
    from reka_nb.protocol.json_text import PartialObject

    for size in (2_000, 16_000):
        whole = json.dumps({f"k{i}": ["word " * 5, i, {"x": True}] for i in range(size // 40)})
        pieces = [whole[i : i + 6] for i in range(0, len(whole), 6)]  # about a token each

        def stream(pieces: list[str] = pieces) -> None:
            partial = PartialObject()
            for piece in pieces:
                partial.feed(piece)

        seconds = _best_of(stream, 3)
        label = f"PartialObject, {len(whole):,} chars in {len(pieces):,} pieces"
        print(f"  {label:40} {seconds * 1e3:7.1f} ms for the stream")

    print(f"\nto_pandas() of {ROWS:,} structured results (1 in 10 failed), best of 5:")
    results, data = _results(ROWS)
    from reka_nb.protocol.schema import make_schema

    schema = make_schema(CONCISE)
    timings: dict[str, list[float]] = {"table": [], "fields": [], "joined": [], "own": []}
    from reka_nb.batch import Results

    structured = Results(list(results), schema=schema)  # what describe_many(schema=) returns
    for _ in range(REPEATS):
        start = time.perf_counter()
        table = results.to_pandas()
        middle = time.perf_counter()
        fields = schema_frame(schema, data)  # type: ignore[arg-type]
        end = time.perf_counter()
        joined = pandas.concat([table, fields], axis=1)
        done = time.perf_counter()
        timings["table"].append(middle - start)
        timings["fields"].append(end - middle)
        timings["joined"].append(done - start)
        start = time.perf_counter()
        own = structured.to_pandas()
        timings["own"].append(time.perf_counter() - start)
    print(f"  {'Results.to_pandas() (no fields)':36} {min(timings['table']):7.3f} s")
    print(f"  {'typed columns of 10 fields':36} {min(timings['fields']):7.3f} s")
    print(f"  {'both, joined':36} {min(timings['joined']):7.3f} s"
          f"  (median {statistics.median(timings['joined']):.3f} s)")  # fmt: skip
    own_median = statistics.median(timings["own"])
    print(f"  {'Results(schema=).to_pandas()':36} {min(timings['own']):7.3f} s"
          f"  (median {own_median:.3f} s; {own.shape[1]} columns)")  # fmt: skip
    print("  target: at most 1 s")
    print("  dtypes:", ", ".join(f"{c} {t}" for c, t in joined.dtypes.items() if c in fields))


if __name__ == "__main__":
    main()
