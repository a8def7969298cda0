#!/usr/bin/python3
"""The baseline of serve_bench.lua: Python's prometheus_client HTTP server
exposing the same metric families that poengine serve's /metrics gave
(parsed from a file of its Prometheus text), on 127.0.0.1:PORT.

    /usr/bin/python3 tests/bench/prom_client_server.py METRICS.txt PORT

The families are parsed once; each scrape formats them anew, as
prometheus_client does for its own registry."""
import sys
import time

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY
from prometheus_client.parser import text_string_to_metric_families


class Fixed:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return iter(self.families)


def main():
    with open(sys.argv[1]) as f:
        families = list(text_string_to_metric_families(f.read()))
    REGISTRY.register(Fixed(families))
    start_http_server(int(sys.argv[2]), addr="127.0.0.1")
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
