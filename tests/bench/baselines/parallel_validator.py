"""Reference: the reference design's ParallelValidator, in Python.

A ThreadPoolExecutor (max_workers = 4) runs in-process validator functions
against a candidate and collects, in input order, one result per validator
with its duration, then the speedup (sum of durations / wall time).

Usage: parallel_validator.py trivial|busy10ms COUNT
Prints the seconds validate() took (interpreter start-up excluded), so that
tests/bench/validate_bench.lua compares like with like.
"""
import sys
import time
from concurrent.futures import ThreadPoolExecutor


class ParallelValidator:
    def __init__(self, max_workers=4):
        self.max_workers = max_workers

    @staticmethod
    def _run_one(validator, candidate):
        start = time.perf_counter()
        errors = []
        try:
            passed = bool(validator["run"](candidate))
        except Exception as exc:  # a validator's error is its result
            passed = False
            errors.append(repr(exc))
        return {
            "name": validator["name"],
            "passed": passed,
            "status": "ok" if passed else "failed",
            "duration": time.perf_counter() - start,
            "errors": errors,
            "warnings": [],
        }

    def validate(self, validators, candidate):
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            futures = [pool.submit(self._run_one, v, candidate) for v in validators]
            results = [f.result() for f in futures]
        wall = time.perf_counter() - start
        total = sum(r["duration"] for r in results)
        return {
            "passed": all(r["passed"] for r in results),
            "results": results,
            "duration": wall,
            "speedup": total / wall if wall > 0 else 1.0,
        }


def trivial(candidate):
    return True


def busy10ms(candidate):
    end = time.perf_counter() + 0.010
    while time.perf_counter() < end:
        pass
    return True


def main():
    kind, count = sys.argv[1], int(sys.argv[2])
    fn = {"trivial": trivial, "busy10ms": busy10ms}[kind]
    validators = [{"name": "v%d" % i, "run": fn} for i in range(count)]
    start = time.perf_counter()
    report = ParallelValidator(max_workers=4).validate(validators, {"dir": "."})
    elapsed = time.perf_counter() - start
    assert report["passed"] and len(report["results"]) == count
    print("%.9f" % elapsed)


if __name__ == "__main__":
    main()
