"""`make bench`: the product's speed and memory, each figure side by side with its baseline.

Runs on PostgreSQL and Redis (bench/env.py: databases of its own), section by section:
render and memory (bench/render.py), pages at 1,000 and 100,000 invoices (bench/pages.py),
apply latency (the memory children finish in the background meanwhile), the email pipeline and
end to end (bench/pipeline.py, with the machine to themselves). Prints one table
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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench.env

# Module, and the top-level keys of the JSON document it fills, in the order they run. A module
# with ``start(quick)`` leaves work running in the background (the render module's memory
# children: they only read their own RSS), which the pages and apply_latency sections
# tolerate, since each times its two sides in turn; a module in NEEDS_WHOLE_MACHINE is given
# ``before_whole_machine``, which waits for that work, to call before its other sections.
SECTIONS: dict[str, tuple[str, ...]] = {
    "render": ("render", "memory"),
    "pages": ("pages",),
    "pipeline": ("apply_latency", "pipeline", "end_to_end"),
}
NEEDS_WHOLE_MACHINE = {"pipeline"}  # its ceiling is what 2 processes render with nothing else running
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
        "font_subsetting": font_subsetting(),
    }


def font_subsetting() -> str:
    """What subsets the fonts of every PDF, the project's and the naive baseline's alike (one
    process, the same libraries): HarfBuzz when libharfbuzz-subset0 is there, else WeasyPrint
    falls back on fontTools, which made a full page render 2-3x slower on this machine."""
    from weasyprint.text.ffi import harfbuzz, harfbuzz_subset

    return "HarfBuzz" if harfbuzz_subset is not None and harfbuzz.hb_version_atleast(4, 1, 0) else "fontTools"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a one-minute version, with smaller counts")
    parser.add_argument(
        "--only", choices=list(SECTIONS), action="append", help="run only this module's sections (repeatable)"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where the JSON goes (default {OUTPUT})")
    args = parser.parse_args()

    bench.env.ensure_database()
    if font_subsetting() == "fontTools":
        print(
            "warning: fonts are subset by fontTools, libharfbuzz-subset0 is missing: every render, the baselines' "
            "too, is 2-3x slower than in production (scripts/system-deps run installs it; make bench does)",
            file=sys.stderr,
            flush=True,
        )
    started = time.monotonic()
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    lines: list[str] = []
    pending: list[tuple[str, Any, Callable[[], dict[str, Any]]]] = []

    def report(module: Any, section: dict[str, Any]) -> None:
        results.update(section)
        table = module.table(section)
        print("\n".join(table), flush=True)
        lines.extend(["", *table])

    def wait_for_background() -> None:
        for name, module, finish in pending:
            waited = time.monotonic()
            section = finish()
            seconds[f"{name} (background, waited)"] = round(time.monotonic() - waited, 1)
            print(f"==> {name}, finished in the background ({', '.join(section)})", flush=True)
            report(module, section)
        pending.clear()

    chosen = args.only or list(SECTIONS)
    for name in [name for name in SECTIONS if name in chosen]:
        module = importlib.import_module(f"bench.{name}")
        print(f"==> {name} ({', '.join(SECTIONS[name])})", flush=True)
        section_started = time.monotonic()
        if hasattr(module, "start"):
            section, finish = module.start(args.quick)
            pending.append((name, module, finish))
        elif name in NEEDS_WHOLE_MACHINE:
            section = module.run(args.quick, before_whole_machine=wait_for_background)
        else:
            section = module.run(args.quick)
        seconds[name] = round(time.monotonic() - section_started, 1)
        report(module, section)
    wait_for_background()

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
