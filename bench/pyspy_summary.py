"""Sum a `py-spy record --format raw` file per process: the top functions by inclusive time.

    python bench/pyspy_summary.py PROFILE.txt [RATE_HZ=100] [TOP=20]

cProfile cannot see the process executor's workers (or what they do before any function of
Headwater runs: starting Python, importing modules), so run.sh samples the whole process tree
with py-spy and this prints, for each process, where its CPU seconds went.
"""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict

PROCESS = re.compile(r'process \d+:"[^"]*"(;|$)')  # its quoted command line may hold ";"
LINE_NUMBER = re.compile(r":\d+\)$")
# Plumbing under every stack; listing it would fill the top of every process's list.
PLUMBING = ("<frozen ", "(threading.py)", "(multiprocessing/spawn.py)", "(<string>)")


def summarize(path: str, rate: float, top: int) -> str:
    samples: Counter[str] = Counter()
    inclusive: defaultdict[str, Counter[str]] = defaultdict(Counter)
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            process, rest = "the process", stack
            while found := PROCESS.match(rest):  # the innermost process is the one sampled
                process, rest = found.group(0).rstrip(";"), rest[found.end() :]
            frames = [LINE_NUMBER.sub(")", frame) for frame in rest.split(";") if frame]
            frames = [f for f in frames if not f.startswith("thread ")]
            samples[process] += int(count)
            for frame in dict.fromkeys(frames):  # a recursive function counts once per sample
                if not any(p in frame for p in PLUMBING):
                    inclusive[process][frame] += int(count)
    out = [f"# py-spy, {rate:g} samples/s per thread; seconds on CPU (idle threads not sampled)"]
    for process, n in samples.most_common():
        label = process[:120] if not process.endswith(':""') else f"{process} (the command run)"
        out.append(f"\n## {label}: {n / rate:.2f} s of samples\n")
        out += [f"{c / rate:8.2f} s  {call}" for call, c in inclusive[process].most_common(top)]
    return "\n".join(out)


if __name__ == "__main__":
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 100.0
    print(summarize(sys.argv[1], rate, int(sys.argv[3]) if len(sys.argv) > 3 else 20))
