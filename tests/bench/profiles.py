"""Summaries of ``py-spy record --format raw`` output (collapsed stacks, one
``frame;frame;...;leaf COUNT`` line per distinct stack): where the gateway's time goes.

    python -m tests.bench.profiles tests/bench/profiles/dispatch.txt
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

# "function (path/to/file.py:123)" -> ("function", "path/to/file.py")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")
_SITE = re.compile(r".*/(?:site|dist)-packages/")
_STDLIB = re.compile(r".*/lib/python3\.\d+/")
# Leaf functions that mean "waiting for I/O": time the process spent blocked in a syscall.
_WAITING = {"epoll_wait", "poll", "select", "_run_once", "get_events", "wait", "recv",
            "recv_into", "sendall", "send", "read", "write", "acquire"}


def _short(path: str) -> str:
    path = _SITE.sub("", path)
    path = _STDLIB.sub("<stdlib>/", path)
    for root in ("/work/main/",):
        path = path.replace(root, "")
    return path


def _frame(text: str) -> str:
    match = _FRAME.match(text.strip())
    if not match:
        return text.strip()
    return f"{match['func']} ({_short(match['file'])})"


def _package(frame: str) -> str:
    """The top-level package or stdlib module a frame belongs to."""
    match = re.search(r"\(([^)]*)\)$", frame)
    path = match.group(1) if match else frame
    if path.startswith("<stdlib>/"):
        rest = path[len("<stdlib>/"):]
        return "stdlib:" + rest.split("/")[0].removesuffix(".py")
    if path.startswith("gateway/"):
        parts = path.split("/")
        return "/".join(parts[:2]).removesuffix(".py") if len(parts) > 1 else "gateway"
    return path.split("/")[0].removesuffix(".py") or "?"


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        # --threads puts the thread name first: keep it out of the frames
        if frames and (frames[0].startswith("thread") or frames[0].startswith("process")):
            frames = frames[1:]
        stacks.append((frames, int(count)))
    return stacks


def summarise(path: Path, top: int = 25) -> str:
    stacks = load(path)
    total = sum(count for _, count in stacks)
    if not total:
        return f"{path}: no samples\n"
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    gateway_inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        if not frames:
            continue
        self_time[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
            if "(gateway/" in frame:
                gateway_inclusive[frame] += count

    def table(title: str, counter: Counter[str]) -> list[str]:
        lines = [title]
        for name, count in counter.most_common(top):
            lines.append(f"  {100 * count / total:5.1f}%  {name}")
        return lines

    out = [f"{path.name}: {total} samples (non-idle, all threads)"]
    out += table("self time by package (leaf frame's package):", packages)
    out += table("self time by function (leaf frames):", self_time)
    out += table("inclusive time, gateway frames:", gateway_inclusive)
    out += table("inclusive time, all frames:", inclusive)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(summarise(Path(name)))
