"""`make bench`, rendering part: the project's renderer against a naive WeasyPrint call.

Both sides render the same HTML and CSS, produced by the project's templates for a sample
invoice, side by side in one run, so the ratios hold on a shared, noisy machine:
- project: ``invoices.reports.render_sample_pdf`` (one FontConfiguration, fetcher and parsed
  stylesheet per process, a render thread);
- naive: ``HTML(string=html).write_pdf()`` in a fresh call each time, the CSS inlined, with a
  new URL fetcher (the same policy, so both read the same shipped fonts).
Memory: RSS growth per render over N renders, each side in a fresh process.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finanzapro.settings")
django.setup()

from weasyprint import HTML  # noqa: E402 - after django.setup()

from invoices import reports  # noqa: E402
from invoices.models import ReportFormat  # noqa: E402
from stores.models import Store  # noqa: E402

SAMPLE_STORE = Store(
    name="Tienda Central", legal_id="3-101-000001", address="Avenida 2, San José", phone="2222-0000", currency="CRC"
)


def built_in_format(code: str) -> ReportFormat:
    template_name, page_size = reports.BUILT_IN_FORMATS[code]
    return ReportFormat(code=code, template_name=template_name, page_size=page_size)


def project_renderer(code: str) -> Callable[[], bytes]:
    report_format = built_in_format(code)
    return lambda: reports.render_sample_pdf(store=SAMPLE_STORE, report_format=report_format)


def naive_renderer(code: str) -> Callable[[], bytes]:
    report_format = built_in_format(code)
    document = reports.sample_document(SAMPLE_STORE, report_format)
    html, stylesheet = reports._markup(document, report_format, "es")
    fonts_css = reports.report_url_fetcher().fetch(reports.FONTS_STYLESHEET_URL).read().decode()
    page = html.replace("</head>", f"<style>{fonts_css}\n{stylesheet}</style></head>", 1)

    def render() -> bytes:
        return HTML(string=page, url_fetcher=reports.ReportURLFetcher()).write_pdf()  # type: ignore[no-any-return]

    return render


def warm_median_ms(render: Callable[[], bytes], runs: int) -> float:
    for _ in range(3):  # warm-up: caches, fonts, imports
        render()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        render()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def rss_kb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


def memory_child(side: str, code: str, renders: int) -> None:
    """Runs in its own process: prints the RSS growth per render, in KB."""
    render = project_renderer(code) if side == "project" else naive_renderer(code)
    for _ in range(20):
        render()
    before = rss_kb()
    for _ in range(renders):
        render()
    print(json.dumps({"kb_per_render": (rss_kb() - before) / renders}))


def memory(side: str, code: str, renders: int) -> float:
    result = subprocess.run(  # noqa: S603 - this module, run again with its own arguments
        [sys.executable, "-m", "bench.render", "--memory-child", side, code, str(renders)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(result.stdout.strip().splitlines()[-1])["kb_per_render"])


def run(quick: bool) -> dict[str, Any]:
    runs = 10 if quick else 40
    renders = 100 if quick else 1000
    results: dict[str, Any] = {"render": {}, "memory": {}}
    for code in reports.BUILT_IN_FORMATS:
        project = project_renderer(code)
        naive = naive_renderer(code)
        # Interleaved halves so a burst of load on the machine hits both sides alike.
        project_ms = statistics.median([warm_median_ms(project, runs // 2), warm_median_ms(project, runs // 2)])
        naive_ms = statistics.median([warm_median_ms(naive, runs // 2), warm_median_ms(naive, runs // 2)])
        results["render"][code] = {
            "project_ms": round(project_ms, 1),
            "naive_ms": round(naive_ms, 1),
            "ratio": round(naive_ms / project_ms, 2),
        }
    results["memory"] = {
        "format": "pos-ticket-80mm",
        "renders": renders,
        "project_kb_per_render": round(memory("project", "pos-ticket-80mm", renders), 1),
        "naive_kb_per_render": round(memory("naive", "pos-ticket-80mm", renders), 1),
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs: about a minute")
    parser.add_argument("--memory-child", nargs=3, metavar=("SIDE", "FORMAT", "RENDERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        side, code, renders = args.memory_child
        memory_child(side, code, int(renders))
        return
    results = run(args.quick)
    print(f"{'render (warm median)':<24}{'project ms':>12}{'naive ms':>10}{'naive/project':>15}  goal")
    goals = {"pos-ticket-80mm": 2.0, "invoice-letter": 1.3, "invoice-a4": 1.3}
    for code, row in results["render"].items():
        met = "met" if row["ratio"] >= goals[code] else "NOT met"
        print(f"{code:<24}{row['project_ms']:>12}{row['naive_ms']:>10}{row['ratio']:>15}  >= {goals[code]} {met}")
    mem = results["memory"]
    print(
        f"memory, {mem['format']}, {mem['renders']} renders: project {mem['project_kb_per_render']} KB/render, "
        f"naive {mem['naive_kb_per_render']} KB/render (goal: project < 10)"
    )
    out = Path(__file__).resolve().parent.parent / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    latest = out / "latest.json"
    merged = json.loads(latest.read_text()) if latest.exists() else {}
    merged.update(results)
    latest.write_text(json.dumps(merged, indent=2))
    print(f"written to {latest}")


if __name__ == "__main__":
    main()
