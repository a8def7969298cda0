"""The reference design of an LLM response cache, in Python, for the cache
benchmarks (tests/bench/cache_bench.lua, cache_store_bench.lua).

What such caches commonly do: an OrderedDict under an RLock (LRU by
move_to_end), the key the SHA-256 of the sorted JSON of the prompt and its
parameters, a semantic fallback that scans every entry linearly for the best
word-set Jaccard similarity on a miss, and persistence as one JSON file.

Run as a server for the benchmarks: it reads one command a line on stdin and
answers one line on stdout, so the timed work runs in a warm interpreter.
  load_requests PATH      JSON lines, one request each (model, params, messages)
  load_sequence PATH      JSON array of 0-based request indices
  fill                    set every loaded request (value = its index)
  gets                    get the requests of the sequence; answers the hit count
  sets N                  set N fresh string keys; answers N
  save PATH N             write a JSON store of N entries to PATH
  load PATH               json.load the store at PATH; answers its size
"""
import hashlib
import json
import sys
import threading
from collections import OrderedDict


class LLMCache:
    def __init__(self, max_entries=1000, threshold=0.95):
        self.max_entries = max_entries
        self.threshold = threshold
        self.lock = threading.RLock()
        self.entries = OrderedDict()  # key -> (words, value)
        self.hits = self.misses = 0

    @staticmethod
    def key(request):
        prompt = request.get("messages")
        params = {k: v for k, v in request.items() if k != "messages"}
        text = json.dumps({"prompt": prompt, "params": params}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    @staticmethod
    def words(request):
        msgs = request.get("messages") or []
        return frozenset(" ".join(m.get("content", "") for m in msgs).lower().split())

    def get(self, request):
        k = self.key(request)
        with self.lock:
            hit = self.entries.get(k)
            if hit is not None:
                self.entries.move_to_end(k)
                self.hits += 1
                return hit[1]
            words = self.words(request)
            best, best_score = None, 0.0
            for kk, (ww, value) in self.entries.items():
                union = len(words | ww)
                score = len(words & ww) / union if union else 0.0
                if score > best_score:
                    best, best_score = kk, score
            if best is not None and best_score >= self.threshold:
                self.entries.move_to_end(best)
                self.hits += 1
                return self.entries[best][1]
            self.misses += 1
            return None

    def set(self, request, value):
        k = self.key(request) if isinstance(request, dict) else hashlib.sha256(request.encode()).hexdigest()
        words = self.words(request) if isinstance(request, dict) else frozenset(request.lower().split())
        with self.lock:
            self.entries[k] = (words, value)
            self.entries.move_to_end(k)
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)

    def save(self, path):
        with self.lock:
            data = {k: {"words": sorted(w), "value": v} for k, (w, v) in self.entries.items()}
        with open(path, "w") as f:
            json.dump(data, f)

    def load(self, path):
        with open(path) as f:
            data = json.load(f)
        with self.lock:
            self.entries = OrderedDict((k, (frozenset(e["words"]), e["value"])) for k, e in data.items())


def main():
    requests, sequence = [], []
    cache = LLMCache(max_entries=1_000_000)
    counter = 0
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        op = cmd[0]
        if op == "load_requests":
            with open(cmd[1]) as f:
                requests = [json.loads(l) for l in f]
            out = len(requests)
        elif op == "load_sequence":
            with open(cmd[1]) as f:
                sequence = json.load(f)
            out = len(sequence)
        elif op == "fill":
            for i, r in enumerate(requests):
                cache.set(r, str(i))
            out = len(requests)
        elif op == "gets":
            out = sum(1 for i in sequence if cache.get(requests[i]) is not None)
        elif op == "sets":
            n = int(cmd[1])
            for _ in range(n):
                counter += 1
                cache.set("key %d" % counter, "value %d" % counter)
            out = n
        elif op == "save":
            big = LLMCache(max_entries=int(cmd[2]))
            for i in range(int(cmd[2])):
                big.set("prompt number %d about some topic" % i, "answer %d " % i + "x" * 64)
            big.save(cmd[1])
            out = len(big.entries)
        elif op == "load":
            fresh = LLMCache(max_entries=1_000_000)
            fresh.load(cmd[1])
            out = len(fresh.entries)
        else:
            out = "unknown command " + op
        sys.stdout.write("%s\n" % out)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
