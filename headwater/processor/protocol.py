"""The wire between the trusted parent and the sandboxed worker.

The parent writes one job, as JSON, to the worker's stdin. The worker answers on a private pipe,
never on stdout (which it points at stderr, so a stray C-level write cannot forge an answer):

    MAGIC                      written first thing, so the parent knows the sandbox started
    8-byte big-endian length   then, once, the result
    JSON payload               {"status", "rows", "row_sources", "logs", "dropped_logs",
                                "error", "traceback"}

A warm worker (ProcessorSettings.warm_workers) starts before its job is known: it writes MAGIC,
imports its preload list, writes READY and blocks reading its job. Once the job has arrived it
writes MAGIC again, then the length and the payload; so for the job, as for a cold worker, a
frame that starts with MAGIC means the worker took it, and one without means it ran nothing.

The parent treats the payload as untrusted input: it caps its size and checks every field.
"""

from __future__ import annotations

MAGIC = b"HWR1"
LENGTH_BYTES = 8

# Job keys: statement, allowed_imports, max_statement_bytes, batches (row mode: one list per
# input row; bulk: one list with every row), processing, checkpoint, debug, limits (dict),
# seccomp (hex BPF program), seccomp_nr, wall_limit_s, max_rows, max_output_bytes, probe.

# The worker's entry point, passed to `python -I -S -B -c`. `-S` skips site (and its .pth
# processing, about 12 ms), so the import path is given explicitly as the remaining arguments:
# argv[1] is the result fd, argv[2:] the directories holding headwater and the libraries.
BOOTSTRAP = (
    "import sys; sys.path[0:0] = sys.argv[2:]; "
    "from headwater.processor.worker import main; main(int(sys.argv[1]))"
)

# A warm worker's entry point: argv[1] is the result fd, argv[2] the preload list (module names
# joined by commas, possibly empty), argv[3:] the import path.
WARM_BOOTSTRAP = (
    "import sys; sys.path[0:0] = sys.argv[3:]; "
    "from headwater.processor.worker import serve_warm; "
    "serve_warm(int(sys.argv[1]), [m for m in sys.argv[2].split(',') if m])"
)
READY = b"+"

DEBUG_PREVIEW_ROWS = 20
MAX_PROBLEMS = 100
MAX_ERROR_CHARS = 4000
MAX_TRACEBACK_CHARS = 16 * 1024


def length_header(size: int) -> bytes:
    return size.to_bytes(LENGTH_BYTES, "big")
