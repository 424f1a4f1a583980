"""exportsync benchmarks: `make bench`, or `.venv/bin/python bench/run.py [--quick] [--only ...]`.

Every figure is a ratio against a baseline measured in the same run (see bench/README.md). The
full results go to bench/results/latest.json; a summary is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_batching import run_batching
from bench_common import REPO, quiet_daemon_logs
from bench_day import run_day
from bench_e2e import run_e2e
from bench_economy import run_economy
from bench_intake import run_intake
from bench_live import run_live, summary_lines
from bench_local import run_local
from bench_memory import run_memory
from bench_pacing import pacing_line, run_pacing

Bench = Callable[[Path], dict[str, Any]]
BENCHES = ("intake", "batching", "day", "pacing", "memory", "e2e", "economy", "local", "live")
RESULTS = REPO / "bench" / "results" / "latest.json"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller inputs (a smoke run)")
    parser.add_argument(
        "--only", default=",".join(BENCHES), help=f"comma-separated subset of {','.join(BENCHES)}"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument(
        "--scratch",
        type=Path,
        default=None,
        help="folder for files and spools (default: the system temp dir; use a real disk)",
    )
    parser.add_argument(
        "--spool",
        type=Path,
        default=None,
        help="pacing: replay this state folder's (or spool file's) history too"
        " (default: the 14-day mix's own spool)",
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    args.only = chosen
    return args


def _fast_scratch(base: Path) -> Path:
    """tmpfs when there is one: the batching bench only counts requests, so fsyncs are waste."""
    shm = Path("/dev/shm")  # noqa: S108 -- mkdtemp below makes a private 0700 folder in it
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else base
    return Path(tempfile.mkdtemp(prefix="exportsync-bench-", dir=parent))


def _mb(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def _summary_intake(r: dict[str, Any]) -> list[str]:
    lines = [f"Intake (spool on {r['scratch_filesystem']}, median of {r['rounds']} rounds)"]
    for name, s in r["sets"].items():
        rate = s["files_per_s"]
        lines += [
            f"  {name}: {s['files']} files x {s['file_bytes']} B",
            f"    first pass  {s['first_pass_vs_hash_only']:>8.2f} x the time of hashing alone"
            f"  ({rate['first_pass']:.0f} vs {rate['hash_only']:.0f} files/s)",
            f"    restart scan {s['second_pass_vs_first_pass']:>7.3f} x the first pass"
            f"  ({rate['second_pass']:.0f} files/s, known() skips the hash)",
        ]
    return lines


def _summary_batching(r: dict[str, Any]) -> list[str]:
    lines = [
        f"Batching ({r['csv_files']} CSVs of 1-20 KB + {r['session_files']} session files"
        f" + {r['large_files']} large, {r['daily_requests']} requests/day, simulated clock)"
    ]
    for name, v in r["variants"].items():
        lines.append(
            f"  {name:<22} {v['requests']:>5} requests, {v['files_per_request']:>6} files per"
            f" request -> {v['quota_days']} day(s); inline bytes sent"
            f" {v['inline_bytes_sent_vs_file_bytes']:.2f} x the files'"
        )
    lines.append(
        f"  files per request: {r['files_per_request_vs_batch_max_files_100']:.1f} x"
        " the previous cap of 100 (goal: >= 500 files per request)"
    )
    return lines


def _summary_day(r: dict[str, Any]) -> list[str]:
    lines = [
        f"Day simulation ({r['exports_per_day']} exports of a CSV + session between 08:00 and"
        f" 20:00, {r['daily_requests']} requests/day, simulated clock)"
    ]
    for name, v in r["variants"].items():
        lines.append(
            f"  {name:<8} {v['delivered_same_day']}/{v['items']} files delivered the same day,"
            f" requests that day {v['requests_same_day']}, refused {v['refused']},"
            f" hold median {v['median_hold_minutes']} min, max {v['max_hold_minutes']} min"
        )
    return lines


def _summary_pacing(r: dict[str, Any]) -> list[str]:
    lines = [
        f"Pacing against the offline optimum ({r['daily_requests']} requests/day, simulated clock;"
        f" replay: {r['replay_source']})"
    ]
    for trace, mine in r["traces"]["learned"].items():
        today = r["traces"]["today"][trace]
        lines.append(
            f"  {trace:<14} median {mine['median_hold_s']:>7.0f} s"
            f" (today {today['median_hold_s']:.0f}, optimum {mine['optimum_median_hold_s']:.0f},"
            f" opt9 {mine['optimum_9_median_hold_s']:.0f}),"
            f" p95 {mine['p95_hold_s']:>7.0f} s"
            f" (today {today['p95_hold_s']:.0f}, optimum {mine['optimum_p95_hold_s']:.0f},"
            f" opt9 {mine['optimum_9_p95_hold_s']:.0f}),"
            f" same day {mine['same_day']}/{mine['exports']} (today {today['same_day']})"
        )
    least = ", ".join(
        f"{trace} {mine['least_keeping_last_call_median_vs_optimum']:.2f}"
        f"/{mine['least_keeping_last_call_p95_vs_optimum']:.2f}"
        for trace, mine in r["traces"]["learned"].items()
    )
    lines.append(
        "  the least any schedule keeping the last call's request can give, knowing each day in"
        f" advance (median/p95, x optimum): {least}"
    )
    for size, c in r["plan_cost"].items():
        lines.append(
            f"  one decision, 14 past days of {size.split('_')[0]} exports:"
            f" {c['new_export_median_ms']:.2f} ms median (max {c['new_export_max_ms']:.1f})"
            f" after a new export, {c['again_median_ms']:.2f} ms (max {c['again_max_ms']:.1f})"
            f" again; the fixed policy {c['today_median_ms']:.3f} ms"
        )
    lines.append(pacing_line(r))
    return lines


def _summary_economy(r: dict[str, Any]) -> list[str]:
    lat, b = r["latency"], r["backlog"]
    return [
        "Quota economy (devstack, exportsync run)",
        f"  close -> answer, no daily limit  {lat['close_to_answer_no_daily_limit_median_s']:.3f} s"
        f" median = {lat['no_daily_limit_vs_direct']:.1f} x one direct POST /batch"
        f" ({lat['direct_batch_median_s']:.3f} s)",
        f"  close -> answer, 10 a day        {lat['close_to_answer_daily_limit_median_s']:.3f} s"
        f" median = {lat['daily_limit_vs_direct']:.1f} x (the 2 s quiet window)",
        f"  backlog {b['files']} files incl. {_mb(b['large_file_bytes'])}: {b['requests']} requests"
        f" ({b['files_per_request']} files each), throttled {b['throttled']},"
        f" quota_exceeded {b['quota_exceeded']}, all delivered {b['all_delivered']} in"
        f" {b['seconds']} s",
        f"  daemon peak RSS {_mb(b['peak_rss_bytes'])} = {b['peak_rss_vs_idle']:.2f} x idle"
        f" ({_mb(b['idle_peak_rss_bytes'])})",
    ]


def _summary_memory(r: dict[str, Any]) -> list[str]:
    c = r["cases"]
    lines = [f"Memory (tracemalloc peak; chunk {_mb(r['chunk_bytes'])}; one process per case)"]
    for name, case in c.items():
        peak = _mb(case["tracemalloc_peak_bytes"])
        lines.append(
            f"  {name:<14} file {_mb(case['file_bytes']):>9}  peak {peak}"
            f" = {case['tracemalloc_peak_vs_file']:.3f} x file;"
            f" RSS growth {_mb(case['rss_growth_bytes'])}"
        )
    lines.append(
        f"  file {r['file_size_large_vs_inline']:.0f} x larger -> stream peak"
        f" {r['stream_peak_large_vs_inline']:.2f} x; streaming the large file peaks at"
        f" {r['stream_large_peak_vs_read_inline_peak']:.2f} x an inline read"
    )
    return lines


def _summary_e2e(r: dict[str, Any]) -> list[str]:
    d, n = r["daemon"], r["naive"]
    return [
        f"End to end ({r['csv_files']} CSVs + {r['session_files']} sessions, devstack without a"
        f" usage plan, median of {r['rounds']} rounds; daemon at its defaults: quiet"
        f" {r['daemon_quiet_s']:g} s, {r['daemon_requests_per_s']:g} request/s; both keep-alive)",
        f"  exportsync run   {d['median_s']:>7.2f} s  {d['median_requests']:>4.0f} requests",
        f"  naive per-file   {n['median_s']:>7.2f} s  {n['median_requests']:>4.0f} requests",
        f"  daemon time = {r['daemon_time_vs_naive']:.2f} x naive;"
        f" naive spends {r['naive_requests_vs_daemon']:.0f} x the requests",
    ]


def _summary_local(r: dict[str, Any]) -> list[str]:
    if "skipped" in r:
        return [f"Local side: skipped ({r['skipped']})"]
    lat, burst, ready, spool, idle = r["latency"], r["burst"], r["ready"], r["spool"], r["idle"]
    return [
        f"Local side (spool on {r['scratch_filesystem']})",
        f"  close -> spooled  p50 {lat['spooled_p50_ms']:.2f} ms"
        f"  p99 {lat['spooled_p99_ms']:.2f} ms"
        f"  ({lat['files']} files; bare inotify sees the close in p50"
        f" {lat['inotify_p50_ms']:.3f} ms, p99 {lat['inotify_p99_ms']:.3f} ms:"
        f" {lat['p50_vs_inotify']:.1f} x / {lat['p99_vs_inotify']:.1f} x)",
        f"  burst of {burst['files']}: last spooled {burst['last_close_to_spooled_s']:.3f} s after"
        f" the last close, {burst['missed']} missed, {burst['transactions']} transactions;"
        f" {burst['spooled_vs_writer']:.2f} x the writer's own time",
        f"  READY over {ready['files']} delivered files: scan {ready['scan_s']:.3f} s"
        f" (READY {ready['ready_full_s']:.3f} s - process start {ready['ready_empty_s']:.3f} s)"
        f" = {ready['scan_vs_walk']:.2f} x a bare scandir+stat walk ({ready['walk_s']:.3f} s)",
        f"  status --json over {spool['rows']} rows: {spool['status_full_s']:.3f} s"
        f" = {spool['status_full_vs_empty']:.2f} x over an empty spool"
        f" ({spool['status_empty_s']:.3f} s)",
        f"  spool on disk: {_mb(spool['bytes_before_prune'])} -> {_mb(spool['bytes_after_prune'])}"
        f" after pruning {spool['pruned']} delivered rows ({spool['prune_s']:.1f} s)"
        f" = {spool['size_after_vs_before']:.4f} x",
        f"  idle {idle['seconds']:.0f} s: {idle['cpu_ticks']} CPU ticks;"
        f" RSS {_mb(idle['rss_bytes'])} = {idle['rss_vs_bare_python']:.2f} x a bare python",
    ]


_SUMMARIES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "intake": _summary_intake,
    "batching": _summary_batching,
    "day": _summary_day,
    "pacing": _summary_pacing,
    "memory": _summary_memory,
    "e2e": _summary_e2e,
    "economy": _summary_economy,
    "local": _summary_local,
    "live": lambda r: summary_lines(r, _mb),
}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    quiet_daemon_logs()
    base = Path(tempfile.mkdtemp(prefix="exportsync-bench-", dir=args.scratch))
    fast = _fast_scratch(base)
    benches: dict[str, Bench] = {
        "intake": lambda s: run_intake(s, quick=args.quick),
        "batching": lambda _s: run_batching(fast, quick=args.quick),
        "day": lambda _s: run_day(fast, quick=args.quick),
        "pacing": lambda s: run_pacing(fast / "pacing", quick=args.quick, spool=args.spool),
        "memory": lambda s: run_memory(s, quick=args.quick),
        "e2e": lambda s: run_e2e(s, quick=args.quick),
        "economy": lambda s: run_economy(s, quick=args.quick),
        "local": lambda s: run_local(s, quick=args.quick),
        "live": lambda s: run_live(s, quick=args.quick),
    }
    started = time.perf_counter()
    results: dict[str, Any] = {}
    try:
        for name in args.only:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            results[name] = benches[name](base / name)
            results[name]["bench_seconds"] = round(time.perf_counter() - t0, 2)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(fast, ignore_errors=True)
    doc = {
        "meta": {
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "quick": args.quick,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "total_seconds": round(time.perf_counter() - started, 2),
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print()
    for name, result in results.items():
        print("\n".join(_SUMMARIES[name](result)))
        print()
    print(f"({doc['meta']['total_seconds']} s; full results in {args.out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
