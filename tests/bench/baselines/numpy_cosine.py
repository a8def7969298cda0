"""Brute-force cosine top-1 with numpy, the baseline of tests/bench/semantic_bench.lua.

Usage: numpy_cosine.py VECTORS QUERIES DIM
VECTORS and QUERIES are raw little-endian float32 files of unit-length rows.
It loads both once, prints one JSON line {"numpy", "blas"} and then answers
each command line "run N FIRST COUNT" on stdin: queries FIRST..FIRST+COUNT-1
against the first N vectors, each timed alone (scores = M @ q, then argmax;
the rows have unit length, so the dot product is the cosine), with one JSON
line {"times": [seconds...], "ids": [row...]}. Only the queries are timed:
no process start-up, no loading.
"""
import json
import os
import sys
import time

import numpy as np


def blas_libraries():
    """The BLAS shared libraries this process has mapped (real paths)."""
    found = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "blas" in os.path.basename(path).lower() or "mkl" in path.lower():
                found.add(os.path.realpath(path))
    return sorted(found)


def main():
    vectors_path, queries_path, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
    m = np.fromfile(vectors_path, dtype="<f4").reshape(-1, dim)
    q = np.fromfile(queries_path, dtype="<f4").reshape(-1, dim)
    m @ q[0]  # load the BLAS before reporting it
    print(json.dumps({"numpy": np.__version__, "blas": blas_libraries()}), flush=True)
    clock = time.perf_counter
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        n, first, count = int(cmd[1]), int(cmd[2]), int(cmd[3])
        sub = m[:n]
        times, ids = [], []
        for i in range(first, first + count):
            query = q[i]
            t0 = clock()
            best = int(np.argmax(sub @ query))
            times.append(clock() - t0)
            ids.append(best)
        print(json.dumps({"times": times, "ids": ids}), flush=True)


if __name__ == "__main__":
    main()
