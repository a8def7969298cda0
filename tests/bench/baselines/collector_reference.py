"""The reference design's cycle collector, in Python, for
tests/bench/collector_bench.lua: cycles in a deque bounded by max_history,
and after every ended cycle the whole history rewritten as one JSON file.

    collector_reference.py PATH HISTORY CYCLES

writes PATH with HISTORY cycles (untimed: the state the reference reaches
after HISTORY cycles), opens a collector on it (which loads the file, as the
reference does on start), runs CYCLES more cycles with max_history =
HISTORY, and prints the seconds those cycles took.
"""
import json
import os
import statistics
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional


@dataclass
class CycleMetrics:
    cycle_id: str
    start_time: float
    end_time: Optional[float] = None
    duration: Optional[float] = None
    llm_calls: int = 0
    llm_cache_hits: int = 0
    llm_cache_misses: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    validation_time: float = 0.0
    validation_count: int = 0
    file_operations: int = 0
    success: bool = False
    error: Optional[str] = None
    metadata: Dict[str, Any] = field(default_factory=dict)
    score: Optional[float] = None
    best_score: Optional[float] = None


class MetricsCollector:
    def __init__(self, max_history=1000, path=None):
        self.max_history = max_history
        self.path = path
        self.cycles = deque(maxlen=max_history)
        self.active = {}
        if path and os.path.exists(path):
            with open(path) as f:
                for c in json.load(f)["cycles"]:
                    self.cycles.append(CycleMetrics(**c))

    def start_cycle(self, cycle_id, metadata=None):
        if cycle_id in self.active:
            raise ValueError(f"cycle {cycle_id} is already active")
        cycle = CycleMetrics(cycle_id=cycle_id, start_time=time.time(), metadata=metadata or {})
        self.active[cycle_id] = cycle
        return cycle

    def record_llm_call(self, cycle_id, cache_hit=False, tokens_in=0, tokens_out=0, cost=0.0, latency=0.0,
                        provider=None):
        c = self.active[cycle_id]
        c.llm_calls += 1
        if cache_hit:
            c.llm_cache_hits += 1
        else:
            c.llm_cache_misses += 1
            c.tokens_in += tokens_in
            c.tokens_out += tokens_out
            c.cost += cost

    def record_validation(self, cycle_id, duration, count=1):
        c = self.active[cycle_id]
        c.validation_time += duration
        c.validation_count += count

    def record_file_operation(self, cycle_id, n=1):
        self.active[cycle_id].file_operations += n

    def end_cycle(self, cycle_id, success, error=None):
        c = self.active.pop(cycle_id)
        c.end_time = time.time()
        c.duration = c.end_time - c.start_time
        c.success = success
        c.error = error
        self.cycles.append(c)
        self._save()
        return c

    def _save(self):
        if not self.path:
            return
        data = {"cycles": [asdict(c) for c in self.cycles]}
        with open(self.path, "w") as f:
            json.dump(data, f)

    def statistics(self):
        ok = [c.duration for c in self.cycles if c.success and c.duration is not None]
        return {
            "total_cycles": len(self.cycles),
            "successful_cycles": len(ok),
            "mean": statistics.mean(ok) if ok else 0,
            "median": statistics.median(ok) if ok else 0,
        }


def one_cycle(col, cycle_id):
    col.start_cycle(cycle_id, {"strategy": "bench", "round": cycle_id})
    col.record_llm_call(cycle_id, cache_hit=False, tokens_in=1200, tokens_out=300, cost=0.004, latency=0.8,
                        provider="openai")
    col.record_llm_call(cycle_id, cache_hit=True, tokens_in=1200, tokens_out=300, cost=0.004, latency=0.001,
                        provider="openai")
    col.record_validation(cycle_id, 0.25, 3)
    col.record_file_operation(cycle_id, 2)
    col.end_cycle(cycle_id, True)


def main():
    path, history, cycles = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    prefill = MetricsCollector(max_history=history)
    for i in range(history):
        one_cycle(prefill, f"prefill-{i}")
    prefill.path = path
    prefill._save()
    col = MetricsCollector(max_history=history, path=path)
    t0 = time.perf_counter()
    for i in range(cycles):
        one_cycle(col, f"timed-{i}")
    print(f"{time.perf_counter() - t0:.9f}")


if __name__ == "__main__":
    main()
