#!/usr/bin/env python3
"""The reference design's dashboard, in Python, for the dashboard benchmark.

The reference design renders its dashboards from the collector's in-memory
history: each render asks the collector for get_statistics() (statistics
module over every cycle) and formats a text summary or a Markdown report with
f-strings, with the same sections poengine's dashboard shows (overall, cycle
durations, LLM and cache with a per-provider table, validation with a
per-validator table, optimization progress, recent cycles).

Run as a server so that Python's start-up is not timed:

    python3 dashboard_reference.py CYCLES.json REPLY_FIFO

reads commands on stdin, one per line, "text N" or "markdown N": renders N
times and writes "ok BYTES\n" (the length of the last render) to REPLY_FIFO.
"""
import json
import statistics
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional


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
    tokens_saved: int = 0
    cost: float = 0.0
    cost_saved: float = 0.0
    validation_time: float = 0.0
    validation_count: int = 0
    file_operations: int = 0
    success: bool = False
    error: Optional[str] = None
    metadata: Dict[str, Any] = field(default_factory=dict)
    score: Optional[float] = None
    best_score: Optional[float] = None
    providers: Dict[str, Dict[str, float]] = field(default_factory=dict)
    validators: Dict[str, Dict[str, Any]] = field(default_factory=dict)


class MetricsCollector:
    def __init__(self, cycles: List[CycleMetrics]):
        self.history = cycles

    def get_statistics(self) -> Dict[str, Dict[str, float]]:
        ok = [c for c in self.history if c.success and c.duration is not None]
        durations = sorted(c.duration for c in ok)
        calls = sum(c.llm_calls for c in self.history)
        hits = sum(c.llm_cache_hits for c in self.history)
        vtimes = [c.validation_time for c in self.history if c.validation_count > 0]

        def pct(xs, p):
            if not xs:
                return 0.0
            import math
            return xs[max(1, math.ceil(p * len(xs) / 100)) - 1]

        hit_rate = hits / calls if calls else 0.0
        total = len(self.history)
        return {
            "cycle_stats": {
                "mean": statistics.mean(durations) if durations else 0.0,
                "median": statistics.median(durations) if durations else 0.0,
                "min": durations[0] if durations else 0.0,
                "max": durations[-1] if durations else 0.0,
                "stdev": statistics.stdev(durations) if len(durations) > 1 else 0.0,
                "p90": pct(durations, 90),
                "p99": pct(durations, 99),
            },
            "cache_stats": {
                "total_llm_calls": calls,
                "cache_hits": hits,
                "cache_misses": sum(c.llm_cache_misses for c in self.history),
                "hit_rate": hit_rate,
                "api_reduction": hit_rate * 100,
                "tokens_saved": sum(c.tokens_saved for c in self.history),
                "cost_saved": sum(c.cost_saved for c in self.history),
            },
            "validation_stats": {
                "mean_validation_time": statistics.mean(vtimes) if vtimes else 0.0,
                "median_validation_time": statistics.median(vtimes) if vtimes else 0.0,
                "total_validations": sum(c.validation_count for c in self.history),
            },
            "overall_stats": {
                "total_cycles": total,
                "successful_cycles": len([c for c in self.history if c.success]),
                "failed_cycles": len([c for c in self.history if not c.success]),
                "success_rate": len([c for c in self.history if c.success]) / total if total else 0.0,
                "active_cycles": 0,
                "total_file_operations": sum(c.file_operations for c in self.history),
            },
        }


def fmt_seconds(s):
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    if s < 60:
        return f"{s:.3g} s"
    if s < 3600:
        return f"{int(s // 60)}m {int(s % 60):02d}s"
    return f"{int(s // 3600)}h {int(s % 3600 // 60):02d}m"


class MetricsDashboard:
    def __init__(self, collector: MetricsCollector):
        self.collector = collector

    def _providers(self):
        out: Dict[str, Dict[str, float]] = {}
        for c in self.collector.history:
            for name, p in c.providers.items():
                a = out.setdefault(name, {"calls": 0, "cache_hits": 0, "tokens_in": 0, "tokens_out": 0,
                                          "cost": 0.0, "latency": 0.0, "latency_count": 0})
                for k in a:
                    a[k] += p.get(k, 0)
        return dict(sorted(out.items()))

    def _validators(self):
        out: Dict[str, Dict[str, float]] = {}
        for c in self.collector.history:
            for name, v in c.validators.items():
                a = out.setdefault(name, {"runs": 0, "passed": 0, "duration": 0.0})
                a["runs"] += v.get("runs", 0)
                a["passed"] += 1 if v.get("passed") else 0
                a["duration"] += v.get("duration", 0.0)
        return dict(sorted(out.items()))

    def _progress(self):
        first = last = best = None
        best_id, improvements, scored = None, 0, 0
        for c in self.collector.history:
            if c.score is not None:
                scored += 1
                first = c.score if first is None else first
                last = c.score
            b = c.best_score if c.best_score is not None else c.score
            if b is not None and (best is None or b > best):
                if best is not None:
                    improvements += 1
                best, best_id = b, c.cycle_id
        return first, last, best, best_id, improvements, scored

    def generate_text_summary(self) -> str:
        s = self.collector.get_statistics()
        o, c, k, v = s["overall_stats"], s["cycle_stats"], s["cache_stats"], s["validation_stats"]
        first, last, best, best_id, improvements, scored = self._progress()
        lines = [
            f"{'poengine dashboard':<56}{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S UTC}",
            f"{o['total_cycles']:,} cycles",
            "=" * 80,
            "",
            "-- Overall " + "-" * 69,
            f"  {'Cycles':<16}{o['total_cycles']:>9,}    {'Success rate':<16}{o['success_rate'] * 100:>8.1f}%",
            f"  {'Failed':<16}{o['failed_cycles']:>9,}    {'Active':<16}{o['active_cycles']:>9,}",
            f"  {'File operations':<16}{o['total_file_operations']:>9,}",
            "",
            "-- Cycle durations " + "-" * 61,
            f"  {'Mean':<8}{fmt_seconds(c['mean']):>10}    {'Median':<8}{fmt_seconds(c['median']):>10}"
            f"    {'p90':<8}{fmt_seconds(c['p90']):>10}",
            f"  {'p99':<8}{fmt_seconds(c['p99']):>10}    {'Min':<8}{fmt_seconds(c['min']):>10}"
            f"    {'Max':<8}{fmt_seconds(c['max']):>10}",
            "",
            "-- LLM and cache " + "-" * 63,
            f"  {'LLM calls':<18}{k['total_llm_calls']:>9,}    {'Cache hits':<18}{k['cache_hits']:>9,}",
            f"  {'Hit rate':<18}{k['hit_rate'] * 100:>8.1f}%    {'Tokens saved':<18}{k['tokens_saved']:>9,}",
            f"  {'Cost saved':<18}{'$' + format(k['cost_saved'], '.2f'):>9}",
            f"  {'provider':<10}{'calls':>7}{'hit rate':>10}{'tokens in':>11}{'tokens out':>12}{'cost':>9}{'latency':>9}",
        ]
        for name, p in self._providers().items():
            rate = p["cache_hits"] / p["calls"] * 100 if p["calls"] else 0.0
            lat = p["latency"] / p["latency_count"] if p["latency_count"] else 0.0
            lines.append(f"  {name[:10]:<10}{p['calls']:>7,}{rate:>9.1f}%{p['tokens_in']:>11,}{p['tokens_out']:>12,}"
                         f"{'$' + format(p['cost'], '.2f'):>9}{fmt_seconds(lat):>9}")
        lines += [
            "",
            "-- Validation " + "-" * 66,
            f"  {'Validations':<14}{v['total_validations']:>9,}    {'Mean':<8}{fmt_seconds(v['mean_validation_time']):>10}"
            f"    {'Median':<8}{fmt_seconds(v['median_validation_time']):>10}",
            f"  {'validator':<12}{'runs':>7}{'pass rate':>11}{'mean':>10}{'total':>10}",
        ]
        for name, x in self._validators().items():
            rate = x["passed"] / x["runs"] * 100 if x["runs"] else 0.0
            mean = x["duration"] / x["runs"] if x["runs"] else 0.0
            lines.append(f"  {name[:12]:<12}{x['runs']:>7,}{rate:>10.1f}%{fmt_seconds(mean):>10}"
                         f"{fmt_seconds(x['duration']):>10}")
        lines += [
            "",
            "-- Optimization progress " + "-" * 55,
            f"  {'Best score':<14}{best if best is not None else 0:>10.4g}    {'Best cycle':<12}{str(best_id)[:12]:>12}",
            f"  {'First score':<14}{first if first is not None else 0:>10.4g}    {'Last score':<12}"
            f"{last if last is not None else 0:>12.4g}",
            f"  {'Improvements':<14}{improvements:>10,}    {'Scored':<12}{scored:>12,}",
            "",
            "-- Recent cycles " + "-" * 63,
            f"  {'cycle':<12}{'duration':>10}  {'status':<7}{'LLM/hits':>9}{'cost':>9}{'score':>8}  error",
        ]
        for cyc in reversed(self.collector.history[-10:]):
            status = "ok" if cyc.success else "failed"
            score = f"{cyc.score:.4g}" if cyc.score is not None else "-"
            lines.append(f"  {cyc.cycle_id[:12]:<12}{fmt_seconds(cyc.duration or 0):>10}  {status:<7}"
                         f"{f'{cyc.llm_calls}/{cyc.llm_cache_hits}':>9}{'$' + format(cyc.cost, '.4f'):>9}"
                         f"{score:>8}  {(cyc.error or '')[:20]}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _md(value: Any) -> str:
        text = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
        for ch in "`*_[]":
            text = text.replace(ch, "\\" + ch)
        return text.replace("<", "&lt;").replace(">", "&gt;")

    def generate_markdown_report(self) -> str:
        s = self.collector.get_statistics()
        o, c, k, v = s["overall_stats"], s["cycle_stats"], s["cache_stats"], s["validation_stats"]
        first, last, best, best_id, improvements, scored = self._progress()
        md = self._md
        out = [
            "# poengine dashboard",
            "",
            f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S UTC} from {o['total_cycles']:,} cycles.",
            "",
            "## Overall",
            "",
            "| | |",
            "|---|---:|",
            f"| **Cycles** | {o['total_cycles']:,} |",
            f"| **Success rate** | {o['success_rate'] * 100:.1f}% ({o['successful_cycles']:,} succeeded) |",
            f"| **Failed** | {o['failed_cycles']:,} |",
            f"| **Active** | {o['active_cycles']:,} |",
            f"| **File operations** | {o['total_file_operations']:,} |",
            "",
            "## Cycle durations",
            "",
            "| | |",
            "|---|---:|",
        ]
        for key in ("mean", "median", "p90", "p99", "min", "max", "stdev"):
            out.append(f"| **{key}** | {fmt_seconds(c[key])} |")
        out += ["", "## LLM and cache", "", "| | |", "|---|---:|"]
        for key in ("total_llm_calls", "cache_hits", "cache_misses", "tokens_saved"):
            out.append(f"| **{key}** | {k[key]:,} |")
        out.append(f"| **hit_rate** | {k['hit_rate'] * 100:.1f}% |")
        out.append(f"| **cost_saved** | ${k['cost_saved']:.2f} |")
        out += ["", "| provider | calls | hit rate | tokens in | tokens out | cost | latency |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, p in self._providers().items():
            rate = p["cache_hits"] / p["calls"] * 100 if p["calls"] else 0.0
            lat = p["latency"] / p["latency_count"] if p["latency_count"] else 0.0
            out.append(f"| {md(name)} | {p['calls']:,} | {rate:.1f}% | {p['tokens_in']:,} | {p['tokens_out']:,} |"
                       f" ${p['cost']:.2f} | {fmt_seconds(lat)} |")
        out += ["", "## Validation", "", "| | |", "|---|---:|",
                f"| **Validations** | {v['total_validations']:,} |",
                f"| **Mean** | {fmt_seconds(v['mean_validation_time'])} |",
                f"| **Median** | {fmt_seconds(v['median_validation_time'])} |",
                "", "| validator | runs | pass rate | mean | total |", "| --- | ---: | ---: | ---: | ---: |"]
        for name, x in self._validators().items():
            rate = x["passed"] / x["runs"] * 100 if x["runs"] else 0.0
            mean = x["duration"] / x["runs"] if x["runs"] else 0.0
            out.append(f"| {md(name)} | {x['runs']:,} | {rate:.1f}% | {fmt_seconds(mean)} |"
                       f" {fmt_seconds(x['duration'])} |")
        out += ["", "## Optimization progress", "", "| | |", "|---|---:|",
                f"| **Best score** | {best if best is not None else 0:.4g} |",
                f"| **Best cycle** | {md(best_id)} |",
                f"| **First score** | {first if first is not None else 0:.4g} |",
                f"| **Last score** | {last if last is not None else 0:.4g} |",
                f"| **Improvements** | {improvements:,} |",
                f"| **Scored cycles** | {scored:,} |",
                "", "## Recent cycles", "",
                "| cycle | started | duration | status | LLM/hits | cost | score | error |",
                "| --- | --- | ---: | --- | ---: | ---: | ---: | --- |"]
        for cyc in reversed(self.collector.history[-10:]):
            started = datetime.fromtimestamp(cyc.start_time, timezone.utc).strftime("%H:%M:%S")
            score = f"{cyc.score:.4g}" if cyc.score is not None else "-"
            out.append(f"| {md(cyc.cycle_id)} | {started} | {fmt_seconds(cyc.duration or 0)} |"
                       f" {'ok' if cyc.success else 'failed'} | {cyc.llm_calls}/{cyc.llm_cache_hits} |"
                       f" ${cyc.cost:.4f} | {score} | {md(cyc.error or '')} |")
        return "\n".join(out) + "\n"


def load(path):
    fields = set(CycleMetrics.__dataclass_fields__)
    with open(path) as f:
        return [CycleMetrics(**{k: v for k, v in r.items() if k in fields}) for r in json.load(f)]


def main():
    dashboard = MetricsDashboard(MetricsCollector(load(sys.argv[1])))
    render = {"text": dashboard.generate_text_summary, "markdown": dashboard.generate_markdown_report}
    with open(sys.argv[2], "w") as reply:
        for line in sys.stdin:
            kind, n = line.split()
            out = ""
            for _ in range(int(n)):
                out = render[kind]()
            reply.write(f"ok {len(out)}\n")
            reply.flush()


if __name__ == "__main__":
    main()
