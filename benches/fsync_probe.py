#!/usr/bin/env python3
"""How long this disk takes to `fdatasync` 16 KiB appends, for SECONDS (default 10).

    python3 benches/fsync_probe.py [SECONDS] [DIR]

A baseline for the webhook latency figures: a group commit cannot be faster than this.
"""
import os
import sys
import tempfile
import time

secs = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
fd, path = tempfile.mkstemp(dir=sys.argv[2] if len(sys.argv) > 2 else ".")
took = []
try:
    end = time.time() + secs
    while time.time() < end:
        os.write(fd, b"x" * 16384)
        t = time.perf_counter()
        os.fdatasync(fd)
        took.append(time.perf_counter() - t)
finally:
    os.close(fd)
    os.unlink(path)
took.sort()
n = len(took)
print(f"{n} fdatasync calls in {secs:.0f} s: median {took[n // 2] * 1e3:.3f} ms,"
      f" p99 {took[int(n * 0.99)] * 1e3:.3f} ms, max {took[-1] * 1e3:.1f} ms")
