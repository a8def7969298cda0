#!/usr/bin/env python3
"""Loads a page in headless Chromium and reports what a person's browser would
have done with it, as one JSON object on stdout.

    python3 tests/tools/browser.py PAGE.html [--dark] [--eval NAME=EXPR ...]
                                   [--wait NAME=EXPR ...] [--sh COMMAND ...]

Chromium is driven over the DevTools protocol through a pipe
(--remote-debugging-pipe: commands on fd 3, replies and events on fd 4, each
message JSON ended by a NUL byte), so nothing listens on a port and no
third-party client library is needed. The report:

    {"console": [...],      every console message and log entry of level error or warning
     "exceptions": [...],   uncaught JavaScript exceptions
     "dialogs": [...],      alert/confirm/prompt dialogs the page opened (none may)
     "results": {NAME: value, ...}}   each --eval expression's value, evaluated
                                      in the loaded page (DevTools evaluation is
                                      not bound by the page's CSP)

The steps run in the order given, once the page has loaded: --eval records
an expression's value; --wait evaluates one every 100 ms until it is truthy
and records that value (false if the deadline passes first); --sh runs a
shell command (a test rewriting what a server serves, between two looks at
a page that updates itself).

--dark emulates prefers-color-scheme: dark before loading. The process exits
non-zero (with a message on stderr) if Chromium cannot be started or the page
does not load within the deadline.
"""
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

DEADLINE = 60.0

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--remote-debugging-pipe",
]


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("browser.py: chromium is not installed (Debian: apt-get install chromium)")


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="po-chromium-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()

        def wire_fds():
            # Move both ends out of the way first, in case either is 3 or 4.
            r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [chromium_binary(), *FLAGS, "--user-data-dir=" + self.profile, "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds,
            pass_fds=(3, 4),  # kept open across exec (the rest are closed)
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def read_message(self, deadline):
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no reply from chromium before the deadline")
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the pipe (exit status %s)" % self.proc.poll())
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, params=None, session=None, deadline=None):
        want = self.send(method, params, session)
        while True:
            msg = self.read_message(deadline)
            if msg.get("id") == want:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method, session, deadline):
        for i, msg in enumerate(self.events):
            if msg.get("method") == method and msg.get("sessionId") == session:
                del self.events[i]
                return msg
        while True:
            msg = self.read_message(deadline)
            if msg.get("method") == method and msg.get("sessionId") == session:
                return msg
            self.events.append(msg)
            if msg.get("method") == "Page.javascriptDialogOpening":
                # A dialog blocks the page: record it (in events) and close it.
                self.send("Page.handleJavaScriptDialog", {"accept": True}, msg.get("sessionId"))

    def close(self):
        try:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def main(argv):
    page, dark, evals = None, False, []
    args = iter(argv)
    for a in args:
        if a == "--dark":
            dark = True
        elif a in ("--eval", "--wait"):
            name, _, expr = next(args).partition("=")
            evals.append((a, name, expr))
        elif a == "--sh":
            evals.append((a, None, next(args)))
        elif page is None:
            page = a
        else:
            sys.exit("usage: browser.py PAGE.html [--dark] [--eval NAME=EXPR ...] [--wait NAME=EXPR ...] [--sh CMD ...]")
    if page is None:
        sys.exit("usage: browser.py PAGE.html [--dark] [--eval NAME=EXPR ...]")
    url = page if "://" in page else "file://" + os.path.abspath(page)

    deadline = time.monotonic() + DEADLINE
    b = Browser()
    report = {"console": [], "exceptions": [], "dialogs": [], "results": {}}
    try:
        target = b.call("Target.createTarget", {"url": "about:blank"}, deadline=deadline)["targetId"]
        session = b.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                         deadline=deadline)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            b.call(domain + ".enable", session=session, deadline=deadline)
        if dark:
            b.call("Emulation.setEmulatedMedia",
                   {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
                   session=session, deadline=deadline)
        b.call("Page.navigate", {"url": url}, session=session, deadline=deadline)
        b.wait_event("Page.loadEventFired", session, deadline)
        # A moment for anything the page might still log after load.
        b.call("Runtime.evaluate", {"expression": "new Promise(r => setTimeout(r, 200))", "awaitPromise": True},
               session=session, deadline=deadline)
        for step, name, expr in evals:
            if step == "--sh":
                subprocess.run(expr, shell=True, check=True, stdout=sys.stderr)  # the report alone on stdout
                continue
            while True:
                res = b.call("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                             session=session, deadline=deadline)
                if "exceptionDetails" in res:
                    raise RuntimeError("%s %s raised: %s" % (step, name, res["exceptionDetails"].get("text")))
                value = res["result"].get("value")
                if step == "--eval" or value or time.monotonic() > deadline - 5:
                    break
                time.sleep(0.1)
            report["results"][name] = value
        for msg in b.events:
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                report["console"].append(" ".join(str(a.get("value", a.get("description", "")))
                                                  for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
                report["console"].append(params["entry"].get("text", ""))
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                report["exceptions"].append(" ".join(filter(None, [
                    details.get("text"), details.get("exception", {}).get("description")])))
            elif method == "Page.javascriptDialogOpening":
                report["dialogs"].append(params.get("message", ""))
    except (TimeoutError, RuntimeError) as e:
        b.close()
        sys.exit("browser.py: " + str(e))
    b.close()
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
