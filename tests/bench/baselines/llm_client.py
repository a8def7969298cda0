#!/usr/bin/env python3
"""Reference client for the LLM benchmark: the same batch of POST requests
that poengine sends, with the standard library only (urllib.request on a
ThreadPoolExecutor, one thread per request of the batch).

    python3 llm_client.py URL BODY_FILE N DONE_FIFO

Reads one line from stdin per batch ("go"), sends N identical requests at
once, waits for all, checks every status is 200, then writes "done" to the
FIFO (so the caller times exactly one batch, with this process already warm).
"""
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def main():
    url, body_file, n, fifo = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with open(body_file, "rb") as f:
        body = f.read()
    headers = {"Content-Type": "application/json"}

    def one(_):
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
            return resp.status

    pool = ThreadPoolExecutor(max_workers=n)
    done = open(fifo, "w")
    for line in sys.stdin:
        if line.strip() != "go":
            break
        statuses = list(pool.map(one, range(n)))
        assert all(s == 200 for s in statuses), statuses
        done.write("done\n")
        done.flush()


if __name__ == "__main__":
    main()
