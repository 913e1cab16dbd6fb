"""The CSV parser's cost in instructions per row, counted by valgrind (callgrind), not timed.

Wall and CPU times of the parser move by ±30% on a shared 2-vCPU machine within minutes;
an instruction count is the same from run to run whatever else the machine does, so two
versions of the parser can be compared one after the other. Run from the repository root:

    .venv/bin/python -m tests.bench.parse_cost [--rows 20000] [--root PATH] [--scattered]

``--root`` points at another checkout (e.g. a ``git worktree`` of an older commit) to count
its parser instead. It parses the benchmark's two files (E.164 numbers, and national ones
in the three usual US styles, same custom columns as ``ingest``), each once and then twice
under callgrind in a child process, and prints the difference divided by the rows: one
parse, without start-up, imports or the regexes compiled on first use. ~1 minute.

The benchmark's numbers are consecutive, in one area code, as a sorted export would be;
``--scattered`` also counts a file of numbers of every US area code in random order (a
zone looked up for nearly every row, where the others find it for a whole run).
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import phonenumbers

from tests.bench.harness import contacts_csv
from tests.bench.ingest import national_csv

_CHILD = """
import io, sys, uuid
sys.path.insert(0, sys.argv[1])
from gateway.contacts_csv import ContactsImport
data = open(sys.argv[2], "rb").read()
for _ in range(int(sys.argv[3])):
    parsed = ContactsImport(io.BytesIO(data), campaign_id=uuid.UUID(int=1), default_region="US")
    for _chunk in parsed.chunks():
        pass
"""


def instructions(root: Path, csv: Path, parses: int) -> int:
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-c", _CHILD, str(root), str(csv), str(parses)],
        capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def scattered_csv(count: int) -> bytes:
    """`contacts_csv(count, wide=True)` with valid US numbers of any area code, shuffled."""
    rng = random.Random(count)
    lines = contacts_csv(count, wide=True).decode().split("\n")
    numbers: set[str] = set()
    while len(numbers) < count:
        number = f"+1{rng.randint(200, 999)}{rng.randint(2000000, 9999999)}"
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            numbers.add(number)
    shuffled = sorted(numbers)
    rng.shuffle(shuffled)
    rows = [f"{number},{line.split(',', 1)[1]}"
            for number, line in zip(shuffled, lines[1:], strict=False)]
    return ("\n".join([lines[0], *rows]) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--scattered", action="store_true",
                        help="also numbers of every area code in random order")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    files = {"E.164": contacts_csv(args.rows, wide=True), "national": national_csv(args.rows)}
    if args.scattered:
        files["scattered"] = scattered_csv(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        for label, content in files.items():
            path = Path(tmp) / f"{label}.csv"
            path.write_bytes(content)
            once = instructions(args.root, path, 1)
            twice = instructions(args.root, path, 2)
            print(f"{label:9} {(twice - once) / args.rows:9,.0f} instructions per row "
                  f"({args.rows:,} rows, parser of {args.root})")


if __name__ == "__main__":
    main()
