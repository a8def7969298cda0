#!/usr/bin/env python3
"""A test LLM server: OpenAI, Anthropic and Ollama wire formats, with faults.

Python standard library only. Started by the specs and benchmarks:

    python3 tests/tools/llm_server.py [--port N]

It listens on 127.0.0.1 (an ephemeral port unless --port is given) and prints
the port alone on its first line of stdout, then serves until killed.

Endpoints
---------
POST /v1/chat/completions   OpenAI Chat Completions (SSE when "stream": true,
                            with a usage chunk when stream_options.include_usage)
POST /v1/messages           Anthropic Messages (SSE events when "stream": true)
POST /api/chat              Ollama chat (NDJSON unless "stream": false;
                            Ollama streams by default)
GET  /admin/stats           {"requests", "by_path", "by_model", "current",
                            "max_concurrent", "last_headers", "last_body"}
POST /admin/reset           zeroes the counts
POST /admin/shutdown        stops the server (it also exits by itself when
                            the process that started it goes away)

The reply is deterministic: "echo: " followed by the text of the last user
message (or the `text=` option below). Token counts: input = the number of
whitespace-separated words in every message and system prompt, output = the
number of words of the reply. Streams send one word per event.

Faults, chosen per request
--------------------------
Options go after a '#' in the model name ("m1#fault=429;retry_after=1;times=2")
or, as the same "key=value;..." text, in an X-Test-Fault request header (the
header wins over the model name). The model name is echoed back without them.

    delay=S          wait S seconds before answering
    token_delay=S    wait S seconds between streamed events
    text=T           reply with T instead of the echo
    cached=N         report N cached prompt tokens (cache reads)
    cache_write=N    report N cache-creation tokens (Anthropic)
    reasoning=N      report N reasoning tokens (OpenAI)
    usage=none       send no token counts (OpenAI: no "usage", streamed or
                     not; Ollama: no eval counts)
    times=N          apply the fault only to the first N requests that carry
                     this exact option string; later ones are answered normally
    fault=F          one of:
      status         an error status (status=500 by default; any code) with the
                     provider's error body
      429            429 with Retry-After: retry_after=N seconds (default 1), or
                     retry_after_date=N for an HTTP date N seconds from now
      malformed      200 with a body (or a stream event) that is not valid JSON
      truncated      the body stops half-way and the connection closes
                     (a stream stops after two events)
      reset          the connection is reset (RST) before any response byte
                     (a stream: after two events)
      stall          the response stalls for stall=S seconds (default 30): a
                     stream after two events, a plain reply after its headers
      wrong_type     200 with Content-Type text/html and an HTML page
      context        400 with the provider's context-window error shape
      replay         200 with the bytes of tests/fixtures/streams/<file=NAME>
                     as the body, as they are: streamed (the format's stream
                     type, in one chunk) when the request streams, else as
                     application/json
      wire           a documented vendor exchange from tests/fixtures/wire:
                     wire=VENDOR/NAME sends NAME.response.* byte for byte
                     (in chunk=N byte pieces, default 64, so parsers see
                     events split anywhere) with the status and
                     Content-Type of NAME.meta.json; works on every
                     endpoint, whatever the request asks

Fixtures in tests/fixtures/wire/VENDOR/: NAME.meta.json ({"source": the URL of
the vendor's page the exchange was transcribed from, "endpoint", "status",
"content_type"}), NAME.request.json (the request body as documented) and
NAME.response.json | .sse | .ndjson (the reply's bytes as documented).
"""

import argparse
import email.utils
import json
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "streams")
WIRE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "wire")
LOCK = threading.Lock()
STATS = {}
FAULT_COUNTS = {}


def reset_stats():
    with LOCK:
        STATS.clear()
        STATS.update(requests=0, by_path={}, by_model={}, current=0, max_concurrent=0,
                     last_headers={}, last_body=None)
        FAULT_COUNTS.clear()


reset_stats()


def parse_options(text):
    opts = {}
    for part in (text or "").split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            opts[k.strip()] = v.strip()
    return opts


def words(s):
    return len(s.split()) if isinstance(s, str) else 0


def content_text(content):
    """Text of a message content: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "llm-test-server/1"

    def log_message(self, fmt, *args):
        pass

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    # ---- plumbing ----

    def send_json(self, status, obj, headers=None, content_type="application/json"):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def start_stream(self, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.flush()

    def chunk(self, data):
        data = data.encode() if isinstance(data, str) else data
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def reset_connection(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def close_now(self):
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()
        self.close_connection = True

    # ---- admin ----

    def do_GET(self):
        if self.path == "/admin/stats":
            with LOCK:
                snapshot = json.loads(json.dumps(STATS))
            self.send_json(200, snapshot)
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path == "/admin/reset":
            reset_stats()
            self.send_json(200, {"ok": True})
            return
        if self.path == "/admin/shutdown":
            self.send_json(200, {"ok": True})
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return
        formats = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic", "/api/chat": "ollama",
                   "/v1/embeddings": "openai", "/api/embed": "ollama"}
        path = self.path.split("?", 1)[0]
        fmt = formats.get(path)
        if not fmt and path.startswith("/openai/deployments/"):
            fmt = "openai"  # Azure OpenAI's deployment-scoped paths
        if not fmt:
            self.send_json(404, {"error": "no such endpoint: " + self.path})
            return
        try:
            req = json.loads(raw or b"null")
            assert isinstance(req, dict)
        except (ValueError, AssertionError):
            self.send_json(400, error_body(fmt, 400, "the request body is not a JSON object"))
            return
        required = REQUIRED[fmt] if path in ("/v1/chat/completions", "/v1/messages", "/api/chat") else []
        missing = [f for f in required if f not in req]
        if missing:
            self.send_json(400, error_body(fmt, 400, "%s: Field required" % missing[0]))
            return
        model_field = str(req.get("model", ""))
        model, _, model_opts = model_field.partition("#")
        header_opts = self.headers.get("X-Test-Fault")
        opt_text = header_opts if header_opts is not None else model_opts
        opts = parse_options(opt_text)
        with LOCK:
            STATS["requests"] += 1
            STATS["by_path"][self.path] = STATS["by_path"].get(self.path, 0) + 1
            STATS["by_model"][model_field] = STATS["by_model"].get(model_field, 0) + 1
            STATS["current"] += 1
            STATS["max_concurrent"] = max(STATS["max_concurrent"], STATS["current"])
            STATS["last_headers"] = {k.lower(): v for k, v in self.headers.items()}
            STATS["last_body"] = req
            fault = opts.get("fault")
            if fault and "times" in opts:
                seen = FAULT_COUNTS.get(opt_text, 0)
                FAULT_COUNTS[opt_text] = seen + 1
                if seen >= int(opts["times"]):
                    fault = None
        try:
            self.answer(fmt, req, model, opts, fault)
        finally:
            with LOCK:
                STATS["current"] -= 1

    # ---- the three formats ----

    def answer(self, fmt, req, model, opts, fault):
        delay = float(opts.get("delay", 0))
        if delay:
            time.sleep(delay)
        if fault == "reset" and not req.get("stream", fmt == "ollama"):
            self.reset_connection()
            return
        if fault == "429":
            headers = {}
            if "retry_after_date" in opts:
                headers["Retry-After"] = email.utils.formatdate(time.time() + float(opts["retry_after_date"]),
                                                                usegmt=True)
            else:
                headers["Retry-After"] = opts.get("retry_after", "1")
            self.send_json(429, error_body(fmt, 429, "rate limit reached, slow down"), headers)
            return
        if fault == "status":
            code = int(opts.get("status", 500))
            self.send_json(code, error_body(fmt, code, "injected failure"))
            return
        if fault == "context":
            self.send_json(400, context_error(fmt))
            return
        if fault == "wire":
            self.replay_wire(opts.get("wire", ""), int(opts.get("chunk", 64)))
            return
        if fault == "replay":
            self.replay(fmt, req, opts.get("file", ""))
            return
        if fault == "wrong_type":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return

        messages = req.get("messages") or []
        last_user = ""
        input_words = words(content_text(req.get("system"))) if isinstance(req.get("system"), (str, list)) else 0
        for m in messages:
            if isinstance(m, dict):
                input_words += words(content_text(m.get("content")))
                if m.get("role") == "user":
                    last_user = content_text(m.get("content"))
        text = opts.get("text", "echo: " + last_user)
        pieces = text.split(" ")
        pieces = [p + (" " if i < len(pieces) - 1 else "") for i, p in enumerate(pieces)]
        usage = {
            "input": input_words,
            "output": words(text),
            "cached": int(opts.get("cached", 0)),
            "cache_write": int(opts.get("cache_write", 0)),
            "reasoning": int(opts.get("reasoning", 0)),
        }
        stream = req.get("stream", fmt == "ollama")
        if stream:
            self.stream_reply(fmt, req, model, pieces, usage, opts, fault)
        else:
            self.plain_reply(fmt, model, text, usage, opts, fault)

    def replay(self, fmt, req, name):
        path = os.path.join(FIXTURES, os.path.basename(name))
        with open(path, "rb") as f:
            body = f.read()
        if req.get("stream", fmt == "ollama"):
            self.start_stream("application/x-ndjson" if fmt == "ollama" else "text/event-stream")
            self.chunk(body)
            self.end_stream()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def replay_wire(self, name, chunk):
        vendor, _, base = name.partition("/")
        folder = os.path.join(WIRE, os.path.basename(vendor))
        base = os.path.basename(base)
        with open(os.path.join(folder, base + ".meta.json")) as f:
            meta = json.load(f)
        body = None
        for ext in ("sse", "ndjson", "json"):
            path = os.path.join(folder, base + ".response." + ext)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    body = f.read()
                break
        if body is None:
            self.send_json(500, {"error": "no response file for wire fixture " + name})
            return
        self.send_response(int(meta.get("status", 200)))
        self.send_header("Content-Type", meta.get("content_type", "application/json"))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(body), max(1, chunk)):
            self.chunk(body[i:i + max(1, chunk)])
        self.end_stream()

    def plain_reply(self, fmt, model, text, usage, opts, fault):
        obj = full_response(fmt, model, text, usage)
        if opts.get("usage") == "none":
            for k in ("usage", "prompt_eval_count", "eval_count"):
                obj.pop(k, None)
        body = json.dumps(obj).encode()
        if fault == "malformed":
            body = body[: len(body) // 2] + b"<<not json"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if fault == "truncated":
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_now()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "stall":
            self.wfile.flush()
            time.sleep(float(opts.get("stall", 30)))
        self.wfile.write(body)

    def stream_reply(self, fmt, req, model, pieces, usage, opts, fault):
        token_delay = float(opts.get("token_delay", 0))
        if opts.get("usage") == "none" and fmt == "openai":
            req = dict(req, stream_options=None)
        events = stream_events(fmt, req, model, pieces, usage)
        self.start_stream("application/x-ndjson" if fmt == "ollama" else "text/event-stream")
        for i, ev in enumerate(events):
            if i == 2 and fault in ("truncated", "reset", "stall"):
                if fault == "truncated":
                    self.close_now()
                elif fault == "reset":
                    self.reset_connection()
                else:
                    time.sleep(float(opts.get("stall", 30)))
                    self.close_now()
                return
            if i == 2 and fault == "malformed":
                ev = "data: {\"choices\": [{\"delta\": {\"content\": \"oops\"\n\n" if fmt != "ollama" else "{\"message\": {\n"
            self.chunk(ev)
            if token_delay:
                time.sleep(token_delay)
        self.end_stream()


REQUIRED = {"openai": ("model", "messages"), "anthropic": ("model", "messages", "max_tokens"),
            "ollama": ("model", "messages")}


def error_body(fmt, status, message):
    if fmt == "openai":
        kinds = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
                 429: "requests", 500: "server_error", 502: "server_error", 503: "server_error"}
        return {"error": {"message": message, "type": kinds.get(status, "server_error"), "param": None,
                          "code": "rate_limit_exceeded" if status == 429 else None}}
    if fmt == "anthropic":
        kinds = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
        return {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message}}
    return {"error": message}


def context_error(fmt):
    if fmt == "openai":
        return {"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages "
                                     "resulted in 9100 tokens. Please reduce the length of the messages.",
                          "type": "invalid_request_error", "param": "messages",
                          "code": "context_length_exceeded"}}
    if fmt == "anthropic":
        return {"type": "error", "error": {"type": "invalid_request_error",
                                           "message": "prompt is too long: 210000 tokens > 200000 maximum"}}
    return {"error": "the input length exceeds the context length"}


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def openai_usage(u):
    return {"prompt_tokens": u["input"], "completion_tokens": u["output"],
            "total_tokens": u["input"] + u["output"],
            "prompt_tokens_details": {"cached_tokens": u["cached"], "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": u["reasoning"], "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def anthropic_usage(u, output):
    return {"input_tokens": u["input"], "output_tokens": output,
            "cache_creation_input_tokens": u["cache_write"], "cache_read_input_tokens": u["cached"]}


def full_response(fmt, model, text, u):
    if fmt == "openai":
        return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": openai_usage(u), "system_fingerprint": "fp_test"}
    if fmt == "anthropic":
        return {"id": "msg_test", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": anthropic_usage(u, u["output"])}
    return {"model": model, "created_at": now_iso(), "message": {"role": "assistant", "content": text},
            "done": True, "done_reason": "stop", "total_duration": 1000000, "load_duration": 1000,
            "prompt_eval_count": u["input"], "prompt_eval_duration": 1000, "eval_count": u["output"],
            "eval_duration": 1000}


def sse(data, event=None):
    head = "event: %s\n" % event if event else ""
    return head + "data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n"


def stream_events(fmt, req, model, pieces, u):
    out = []
    if fmt == "openai":
        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "system_fingerprint": "fp_test"}
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))

        def chunk(choices, usage=None):
            d = dict(base, choices=choices)
            if include_usage:
                d["usage"] = usage
            return sse(d)
        out.append(chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                           "finish_reason": None}]))
        for p in pieces:
            out.append(chunk([{"index": 0, "delta": {"content": p}, "logprobs": None, "finish_reason": None}]))
        out.append(chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
        if include_usage:
            out.append(chunk([], openai_usage(u)))
        out.append("data: [DONE]\n\n")
    elif fmt == "anthropic":
        start_usage = anthropic_usage(u, 1)
        out.append(sse({"type": "message_start", "message": {
            "id": "msg_test", "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}}, "message_start"))
        out.append(sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                       "content_block_start"))
        out.append(sse({"type": "ping"}, "ping"))
        for p in pieces:
            out.append(sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
                           "content_block_delta"))
        out.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        out.append(sse({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": u["output"]}}, "message_delta"))
        out.append(sse({"type": "message_stop"}, "message_stop"))
    else:
        for p in pieces:
            out.append(json.dumps({"model": model, "created_at": now_iso(),
                                   "message": {"role": "assistant", "content": p}, "done": False}) + "\n")
        final = full_response("ollama", model, "", u)
        out.append(json.dumps(final) + "\n")
    return out


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        pass  # resets and client aborts are part of the job


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    sys.stdout.write("%d\n" % server.server_address[1])
    sys.stdout.flush()
    parent = os.getppid()

    def watch_parent():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)
    threading.Thread(target=watch_parent, daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
