"""`make bench`: the product's speed and memory, each figure side by side with its baseline.

Runs on PostgreSQL and Redis (bench/env.py: databases of its own), section by section:
render and memory (bench/render.py), apply latency, the email pipeline and end to end
(bench/pipeline.py), pages at 1,000 and 100,000 invoices (bench/pages.py). Prints one table
per section and writes every figure to ``var/bench/latest.json``. ``--quick`` runs a
one-minute version with smaller counts (its figures are noisier; the table says so).
"""

import argparse
import importlib
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench.env

# Module, and the top-level keys of the JSON document it fills.
SECTIONS: dict[str, tuple[str, ...]] = {
    "render": ("render", "memory"),
    "pipeline": ("apply_latency", "pipeline", "end_to_end"),
    "pages": ("pages",),
}
OUTPUT = bench.env.ROOT / "var" / "bench" / "latest.json"


def versions() -> dict[str, str]:
    from importlib.metadata import version

    import django
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (postgres,) = cursor.fetchone() or ("?",)
    return {
        "python": platform.python_version(),
        "django": django.get_version(),
        "weasyprint": version("weasyprint"),
        "celery": version("celery"),
        "postgresql": str(postgres),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a one-minute version, with smaller counts")
    parser.add_argument(
        "--only", choices=list(SECTIONS), action="append", help="run only this module's sections (repeatable)"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where the JSON goes (default {OUTPUT})")
    args = parser.parse_args()

    bench.env.ensure_database()
    started = time.monotonic()
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    lines: list[str] = []
    for name in args.only or SECTIONS:
        module = importlib.import_module(f"bench.{name}")
        print(f"==> {name} ({', '.join(SECTIONS[name])})", flush=True)
        section_started = time.monotonic()
        section = module.run(args.quick)
        seconds[name] = round(time.monotonic() - section_started, 1)
        results.update(section)
        table = module.table(section)
        print("\n".join(table), flush=True)
        lines.extend(["", *table])

    results["meta"] = {
        "quick": args.quick,
        "finished_at": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "seconds": {**seconds, "total": round(time.monotonic() - started, 1)},
        "cpus": os.cpu_count(),
        "versions": versions(),
        "command": " ".join(sys.argv[1:]),
    }
    print()
    print(f"make bench{' --quick' if args.quick else ''}: {results['meta']['seconds']['total']} s in all", end="")
    print(" (" + ", ".join(f"{name} {s} s" for name, s in seconds.items()) + ")")
    if args.quick:
        print("quick run: smaller counts, so noisier ratios; the goals are judged on a full run")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
