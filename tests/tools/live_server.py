#!/usr/bin/env python3
"""Serves a live dashboard page for the browser test, from files the test
rewrites, on an ephemeral 127.0.0.1 port (printed on stdout, one line):

    python3 tests/tools/live_server.py DIR

    GET /page      DIR/page.html
    GET /fragment  DIR/fragment.html (read afresh at each request)
    GET /events    Server-Sent Events: an event "cycle" each time
                   DIR/fragment.html changes, a comment every second between;
                   while DIR/down exists the stream is closed and new ones
                   are answered 503 (the page must say "disconnected" and
                   reconnect when DIR/down is gone)

The server exits when DIR/quit exists. Python standard library only.
"""
import http.server
import os
import sys
import threading
import time

ROOT = sys.argv[1]


def path(name):
    return os.path.join(ROOT, name)


def stamp():
    try:
        st = os.stat(path("fragment.html"))
        return (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_file(self, name, ctype):
        try:
            with open(path(name), "rb") as f:
                body = f.read()
        except OSError:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/page":
            self.send_file("page.html", "text/html; charset=utf-8")
        elif self.path == "/fragment":
            self.send_file("fragment.html", "text/html; charset=utf-8")
        elif self.path == "/events":
            self.events()
        else:
            self.send_error(404)

    def events(self):
        if os.path.exists(path("down")):
            self.send_error(503)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        seen, last = stamp(), time.monotonic()
        try:
            self.wfile.write(b": hello\n\n")
            self.wfile.flush()
            while not os.path.exists(path("down")) and not os.path.exists(path("quit")):
                now = stamp()
                if now != seen:
                    seen = now
                    self.wfile.write(b"event: cycle\ndata: {}\n\n")
                    self.wfile.flush()
                elif time.monotonic() - last > 1:
                    last = time.monotonic()
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    while not os.path.exists(path("quit")):
        time.sleep(0.1)
    server.shutdown()


if __name__ == "__main__":
    main()
