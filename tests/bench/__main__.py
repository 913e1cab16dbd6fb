"""``python -m tests.bench [--quick] [--only NAME[,NAME]] [--output FILE] [--profile [DIR]]``

Runs the benchmarks in order, prints a table (benchmark | metric | figure |
floor/reference | ratio | target | holds) with notes, and writes every row as JSON.
A benchmark that fails is reported as a row that does not hold; the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import resource
import shutil
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import attrs
import trio
import trio_asyncio

from tests.bench.harness import HERE, LOGS, Row, machine

# name -> module (tests.bench.<module>); run in this order.
BENCHMARKS = {"ingest": "ingest", "dispatch": "dispatch", "scale": "scale", "sse": "sse",
              "sip": "sip", "api": "api_load", "cluster": "cluster", "compliance": "compliance",
              "webhooks": "webhooks", "export": "export"}


@attrs.define
class Context:
    quick: bool
    profile_dir: Path | None
    started: float = attrs.field(factory=time.perf_counter)

    def size(self, *, full, quick):
        return quick if self.quick else full

    def log(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f} s] {message}", file=sys.stderr,
              flush=True)


def _number(value) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) >= 0.001 else f"{value:.2g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _with_unit(value, unit: str) -> str:
    text = _number(value)
    return f"{text} {unit}".strip() if text and value is not None else text


def render(rows: list[Row]) -> str:
    header = ("#", "benchmark", "metric", "figure", "floor/reference", "ratio", "target",
              "holds")
    lines = []
    for index, row in enumerate(rows, 1):
        reference = _with_unit(row.reference, row.unit)
        if row.reference_label:
            reference = f"{reference} ({row.reference_label})" if reference else \
                row.reference_label
        lines.append((str(index), row.benchmark, row.metric, _with_unit(row.figure, row.unit),
                      reference or "-", f"{row.ratio:.2f}×" if row.ratio is not None else "-",
                      row.target or "-",
                      {True: "yes", False: "NO", None: "-"}[row.holds]))
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

    def fmt(cells) -> str:
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    out = [fmt(header), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    out += [fmt(line) for line in lines]
    notes = [f"  [{index}] {row.note}" for index, row in enumerate(rows, 1) if row.note]
    if notes:
        out += ["", "Notes:", *notes]
    return "\n".join(out)


def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


# Signals that end a run early (``timeout``, a CI job's end, a closed terminal): the run is
# cancelled, so every gateway, helper process and database it made is stopped and removed
# on the way out, as at a normal end. (SIGINT is trio's KeyboardInterrupt: the same.)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(Exception):
    """The run was ended by one of STOP_SIGNALS (its number), after cleaning up."""


async def _run_all(names: list[str], ctx: Context) -> tuple[list[Row], list[dict]]:
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            received: list[int] = []

            async def stop_on_signal() -> None:
                async for number in signals:
                    received.append(number)
                    ctx.log(f"{signal.Signals(number).name}: stopping, cleaning up")
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(stop_on_signal)
            result = await _benchmarks(names, ctx)
            nursery.cancel_scope.cancel()
    if received:
        raise Stopped(received[0])
    return result


async def _benchmarks(names: list[str], ctx: Context) -> tuple[list[Row], list[dict]]:
    rows: list[Row] = []
    runs: list[dict] = []
    async with trio_asyncio.open_loop():
        for name in names:
            ctx.log(f"{name}: starting")
            load_before = os.getloadavg()[0]
            began = time.perf_counter()
            try:
                module = importlib.import_module(f"tests.bench.{BENCHMARKS[name]}")
                produced = await module.run(ctx)
                error = None
            except Exception as exc:  # one broken benchmark must not hide the others
                error = "".join(traceback.format_exception(exc))
                ctx.log(f"{name}: FAILED\n{error}")
                leaf = _leaf(exc)
                produced = [Row(name, "benchmark failed", type(leaf).__name__, holds=False,
                                note=" ".join(str(leaf).split())[:400])]
            seconds = time.perf_counter() - began
            rows += produced
            runs.append({"benchmark": name, "seconds": round(seconds, 1),
                         "loadavg_1m_before": load_before,
                         "loadavg_1m_after": os.getloadavg()[0], "error": error})
            ctx.log(f"{name}: done in {seconds:.0f} s")
    return rows, runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="Run the gateway's benchmarks (each against its own gateway process and "
                    "database), print a table of figures, references, ratios and targets, "
                    "and write it as JSON. Not part of CI's pass/fail.")
    parser.add_argument("--only", metavar="NAME[,NAME]",
                        help=f"a subset of: {', '.join(BENCHMARKS)} (run in that order)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes for a smoke run (10k rows/contacts, 1k live "
                             "calls, 100 subscribers, 500 SIP calls)")
    parser.add_argument("--output", type=Path, default=HERE / "results.json",
                        help="where to write the results as JSON (default: %(default)s)")
    parser.add_argument("--profile", nargs="?", const=HERE / "profiles", type=Path,
                        help="record the gateway with py-spy during each measurement, into "
                             "DIR (default tests/bench/profiles); figures of a profiled run "
                             "are not the ones to report")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS)
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in BENCHMARKS]
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(unknown)}; "
                         f"known: {', '.join(BENCHMARKS)}")
        names = [name for name in BENCHMARKS if name in wanted]
    _raise_open_files()
    shutil.rmtree(LOGS, ignore_errors=True)  # the gateways' logs of the last run only
    ctx = Context(quick=args.quick, profile_dir=args.profile)
    info = machine()
    ctx.log(f"machine: {info['nproc']} CPUs, {info['cpu']}, {info['memory_gib']} GiB; "
            f"load {os.getloadavg()[0]:.2f}; mode {'quick' if args.quick else 'full'}")
    try:
        rows, runs = trio.run(_run_all, names, ctx)
    except Stopped as stopped:
        # No partial table or results file: a cut run's figures would read as a full one's.
        ctx.log("stopped early; no results written")
        return 128 + stopped.args[0]
    table = render(rows)
    total = time.perf_counter() - ctx.started
    print()
    print(f"Benchmarks ({'quick' if args.quick else 'full'} mode, {total:.0f} s) on "
          f"{info['nproc']} × {info['cpu']}, {info['memory_gib']} GiB RAM, "
          f"Python {info['python']}; 1-min load average "
          + ", ".join(f"{r['benchmark']} {r['loadavg_1m_before']:.1f}" for r in runs))
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full", "seconds": round(total, 1),
        "machine": info, "profiled": args.profile is not None, "runs": runs,
        "rows": [attrs.asdict(row) for row in rows], "table": table,
    }, indent=2, default=str) + "\n")
    print(f"\nResults written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
