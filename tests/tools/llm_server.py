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
POST /v1/embeddings         OpenAI embeddings ("input": a string or a list)
POST /api/embed             Ollama embeddings ("input": a string or a list)
GET  /admin/stats           {"requests", "by_path", "by_model", "current",
                            "max_concurrent", "last_headers", "last_body"}
POST /admin/reset           zeroes the counts
POST /admin/shutdown        stops the server (it also exits by itself when
                            the process that started it goes away)

The reply is deterministic: "echo: " followed by the text of the last user
message (or the `text=` option below). Token counts: input = the number of
whitespace-separated words in every message and system prompt, output = the
number of words of the reply. Streams send one word per event.

What the request asks changes the default answer, in each vendor's shape:

Tool calls    When the request declares `tools` and the last user message
              says `call NAME with {JSON object}` (several such phrases:
              several calls, in order) for a declared NAME, the reply calls
              NAME with that object as its arguments: OpenAI
              `message.tool_calls` (ids "call_1", "call_2" ...,
              finish_reason "tool_calls"), Anthropic `tool_use` blocks (ids
              "toolu_1" ..., stop_reason "tool_use"), Ollama
              `message.tool_calls` (no ids, as Ollama documents; done_reason
              "stop"). Streamed: OpenAI's arguments in fragments of 8
              characters over several chunks (the first with the id and
              name), Anthropic's as `input_json_delta`s of 8 characters,
              Ollama's in one chunk. A forced tool (OpenAI `tool_choice`
              {"type": "function", ...} or "required", Anthropic
              {"type": "tool", "name"} or {"type": "any"}) is called even
              without the phrase (the first tool for "required"/"any"), with
              arguments made from its parameters' JSON schema (below);
              `tool_choice` "none" (Anthropic {"type": "none"}) calls nothing.
Tool results  When the conversation ends with tool results (OpenAI / Ollama
              `role: "tool"` messages, an Anthropic user turn of
              `tool_result` blocks), the reply is the text
              "tool result: " + their contents joined by " | ", so a
              two-step tool loop can be seen end to end.
JSON          OpenAI `response_format` {"type": "json_object"} and Ollama
              `format: "json"` answer {"answer": <the echo>}; a JSON schema
              (OpenAI `json_schema.schema`, Ollama `format` as an object,
              a forced tool's parameters) answers a value built from it:
              an object with every property, one array item, `enum[0]` or
              `const`, the echo for a string, the echo's word count for a
              number or integer, true for a boolean.
Reasoning     OpenAI `reasoning_effort` low/medium/high (minimal: 0) reports
              16/32/64 `completion_tokens_details.reasoning_tokens`, counted
              in `completion_tokens` as OpenAI counts them. Anthropic
              `thinking` {"type": "enabled", "budget_tokens"} opens the reply
              with a `thinking` block "thinking about: <the last user text>"
              (signature "sig-test"), streamed as `thinking_delta`s (one
              word each) and a `signature_delta`; Ollama `think: true` puts
              the same text in `message.thinking` (streamed word by word
              before the answer). The thinking words count as output.
Embeddings    A vector per input, in order, from the text alone: case-folded,
              whitespace-collapsed character 3-grams hashed (CRC-32) into
              signed dimensions, L2-normalized (all zeros for blank text),
              rounded to 6 decimals; so equal texts get equal vectors and
              near-duplicates close ones. Dimensions: `dimensions` when
              given, else 3072 for a model whose name contains "-large",
              1536 for other OpenAI models, 384 for Ollama's. OpenAI:
              `encoding_format: "base64"` sends little-endian float32s,
              `usage.prompt_tokens` = `total_tokens` = the inputs' words, an
              empty string is a 400. Ollama: `prompt_eval_count` = the words.

Faults, chosen per request
--------------------------
Options go after a '#' in the model name ("m1#fault=429;retry_after=1;times=2")
or, as the same "key=value;..." text, in an X-Test-Fault request header (the
header wins over the model name). The model name is echoed back without them.

    delay=S          wait S seconds before answering
    wait_for=N       answer only once N requests are open at once (at most
                     10 s): shows that a client sends N at the same time,
                     however slow the machine
    token_delay=S    wait S seconds between streamed events
    text=T           reply with T instead of the echo (verbatim, even when
                     JSON is asked: how a reply that does not parse is made)
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
import base64
import email.utils
import json
import math
import os
import re
import socket
import struct
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "streams")
WIRE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "wire")
LOCK = threading.Lock()
OPEN = threading.Condition(LOCK)  # notified as requests open, for wait_for
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
            OPEN.notify_all()
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
        if "wait_for" in opts:
            with LOCK:
                OPEN.wait_for(lambda: STATS["current"] >= int(opts["wait_for"]), timeout=10)
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

        path = self.path.split("?", 1)[0]
        if path in EMBED_PATHS or (path.startswith("/openai/deployments/") and path.endswith("/embeddings")):
            self.embed_reply(fmt, req, model, opts, fault)
            return
        messages = req.get("messages") or []
        last_user = ""
        input_words = words(content_text(req.get("system"))) if isinstance(req.get("system"), (str, list)) else 0
        for m in messages:
            if isinstance(m, dict):
                input_words += words(content_text(m.get("content")))
                if m.get("role") == "user":
                    last_user = content_text(m.get("content"))
        reply = plan_reply(fmt, req, opts, messages, last_user)
        usage = {
            "input": input_words,
            "output": reply_words(reply),
            "cached": int(opts.get("cached", 0)),
            "cache_write": int(opts.get("cache_write", 0)),
            "reasoning": int(opts.get("reasoning", 0)) + reply["reasoning_tokens"],
        }
        if req.get("stream", fmt == "ollama"):
            self.stream_reply(fmt, req, model, reply, usage, opts, fault)
        else:
            self.plain_reply(full_response(fmt, model, reply, usage), opts, fault)

    def embed_reply(self, fmt, req, model, opts, fault):
        inputs = req.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        # Azure's deployment path names the model; the body carries none.
        azure = self.path.startswith("/openai/deployments/")
        if ("model" not in req and not azure) or not isinstance(inputs, list) \
                or not all(isinstance(t, str) for t in inputs):
            self.send_json(400, error_body(fmt, 400, "model and input (a string or a list of strings) are required"))
            return
        if fmt == "openai" and any(t == "" for t in inputs):
            self.send_json(400, error_body(fmt, 400, "'$.input' is invalid: an input is an empty string"))
            return
        dims = req.get("dimensions")
        if not isinstance(dims, int) or isinstance(dims, bool) or dims < 1:
            dims = 384 if fmt == "ollama" else (3072 if "-large" in model else 1536)
        vectors = [embed_vector(t, dims) for t in inputs]
        n = sum(words(t) for t in inputs)
        if fmt == "ollama":
            obj = {"model": model, "embeddings": vectors, "total_duration": 1000000, "load_duration": 1000,
                   "prompt_eval_count": n}
        else:
            b64 = req.get("encoding_format") == "base64"
            obj = {"object": "list", "model": model, "usage": {"prompt_tokens": n, "total_tokens": n},
                   "data": [{"object": "embedding", "index": i,
                             "embedding": base64.b64encode(struct.pack("<%df" % len(v), *v)).decode() if b64 else v}
                            for i, v in enumerate(vectors)]}
        self.plain_reply(obj, opts, fault)

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

    def plain_reply(self, obj, opts, fault):
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

    def stream_reply(self, fmt, req, model, reply, usage, opts, fault):
        token_delay = float(opts.get("token_delay", 0))
        if opts.get("usage") == "none" and fmt == "openai":
            req = dict(req, stream_options=None)
        events = stream_events(fmt, req, model, reply, usage)
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


EMBED_PATHS = ("/v1/embeddings", "/api/embed")
TRIGGER = re.compile(r"call\s+([A-Za-z_][A-Za-z0-9_.-]*)\s+with\s+")
EFFORT_TOKENS = {"minimal": 0, "low": 16, "medium": 32, "high": 64}
FRAGMENT = 8  # bytes of a streamed tool call's arguments per event


def declared_tools(fmt, req):
    """[(name, parameters schema)] of the request's tools, in order."""
    out = []
    for t in req.get("tools") or []:
        if not isinstance(t, dict):
            continue
        if fmt == "anthropic":
            name, schema = t.get("name"), t.get("input_schema")
        else:
            fn = t.get("function") if isinstance(t.get("function"), dict) else {}
            name, schema = fn.get("name"), fn.get("parameters")
        if isinstance(name, str):
            out.append((name, schema if isinstance(schema, dict) else {}))
    return out


def trailing_tool_results(fmt, messages):
    """The contents of the tool results that end the conversation."""
    results = []
    if fmt == "anthropic":
        last = messages[-1] if messages else None
        if isinstance(last, dict) and last.get("role") == "user" and isinstance(last.get("content"), list):
            for block in last["content"]:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    c = block.get("content")
                    results.append(c if isinstance(c, str) else content_text(c))
        return results
    for m in reversed(messages):
        if not (isinstance(m, dict) and m.get("role") == "tool"):
            break
        c = m.get("content")
        results.insert(0, c if isinstance(c, str) else content_text(c))
    return results


def triggered_calls(text, names):
    """[(name, args)] for each "call NAME with {JSON}" in text naming a declared tool."""
    calls, dec = [], json.JSONDecoder()
    for m in TRIGGER.finditer(text or ""):
        try:
            args, _ = dec.raw_decode(text, m.end())
        except ValueError:
            continue
        if isinstance(args, dict) and m.group(1) in names:
            calls.append((m.group(1), args))
    return calls


def tool_choice(fmt, req, tools):
    """None (the model decides), "none", or the name of the tool it must call."""
    choice = req.get("tool_choice")
    first = tools[0][0] if tools else None
    if fmt == "anthropic":
        kind = choice.get("type") if isinstance(choice, dict) else None
        return {"tool": choice.get("name") if kind == "tool" else None, "any": first, "none": "none"}.get(kind)
    if choice == "none":
        return "none"
    if choice == "required":
        return first
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return choice["function"].get("name")
    return None


def example(schema, echo):
    """A value that fits a JSON schema (no $ref), made from the echo."""
    if not isinstance(schema, dict):
        return echo
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for k in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(k), list) and schema[k]:
            return example(schema[k][0], echo)
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t == "object" or (t is None and isinstance(schema.get("properties"), dict)):
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        return {k: example(v, echo) for k, v in props.items()}
    if t == "array":
        return [example(schema.get("items"), echo)]
    if t in ("integer", "number"):
        return words(echo)
    if t == "boolean":
        return True
    if t == "null":
        return None
    return echo


def json_asked(fmt, req):
    """(asked, schema or None) from OpenAI response_format / Ollama format."""
    if fmt == "openai" and isinstance(req.get("response_format"), dict):
        rf = req["response_format"]
        if rf.get("type") == "json_object":
            return True, None
        if rf.get("type") == "json_schema":
            js = rf.get("json_schema") if isinstance(rf.get("json_schema"), dict) else {}
            return True, js.get("schema") if isinstance(js.get("schema"), dict) else {}
    if fmt == "ollama":
        f = req.get("format")
        if f == "json":
            return True, None
        if isinstance(f, dict):
            return True, f
    return False, None


def plan_reply(fmt, req, opts, messages, last_user):
    """What the model says: text, thinking, tool calls [(id, name, args)], reasoning tokens."""
    echo = "echo: " + last_user
    tools = declared_tools(fmt, req)
    results = trailing_tool_results(fmt, messages)
    calls = []
    if tools and not results:
        calls = triggered_calls(last_user, {n for n, _ in tools})
        forced = tool_choice(fmt, req, tools)
        if forced == "none":
            calls = []
        elif forced in dict(tools):
            choice = req.get("tool_choice")
            any_tool = choice == "required" or (isinstance(choice, dict) and choice.get("type") == "any")
            if not any_tool:
                calls = [c for c in calls if c[0] == forced]
            calls = calls or [(forced, example(dict(tools)[forced], echo))]
    asked, schema = json_asked(fmt, req)
    if "text" in opts:
        text = opts["text"]
    elif results:
        text = "tool result: " + " | ".join(results)
    elif calls:
        text = ""
    elif asked:
        text = json.dumps(example(schema, echo) if schema is not None else {"answer": echo})
    else:
        text = echo
    thinking = None
    th = req.get("thinking")
    if (fmt == "anthropic" and isinstance(th, dict) and th.get("type") == "enabled") or \
            (fmt == "ollama" and req.get("think") not in (None, False)):
        thinking = "thinking about: " + last_user
    effort = req.get("reasoning_effort") if fmt == "openai" else None
    prefix = {"openai": "call_", "anthropic": "toolu_"}.get(fmt)
    return {"text": text, "thinking": thinking,
            "calls": [(prefix + str(i + 1) if prefix else None, n, a) for i, (n, a) in enumerate(calls)],
            "reasoning_tokens": EFFORT_TOKENS.get(effort, 0) if isinstance(effort, str) else 0}


def reply_words(r):
    return words(r["text"]) + words(r["thinking"]) + r["reasoning_tokens"] + \
        sum(words(json.dumps(a)) for _, _, a in r["calls"])


def word_pieces(text):
    """The text as streamed: one word (with its following space) per event."""
    pieces = text.split(" ")
    return [p + (" " if i < len(pieces) - 1 else "") for i, p in enumerate(pieces)]


def fragments(text):
    return [text[i:i + FRAGMENT] for i in range(0, len(text), FRAGMENT)] or [""]


def embed_vector(text, dims):
    """Signed hashed character 3-grams of the case-folded, whitespace-collapsed text, unit length."""
    t = " " + " ".join(text.lower().split()) + " "
    v = [0.0] * dims
    if t.strip():
        for i in range(len(t) - 2):
            h = zlib.crc32(t[i:i + 3].encode())
            v[h % dims] += 1.0 if (h >> 31) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in v))
    return [round(x / norm, 6) for x in v] if norm else v


def full_response(fmt, model, r, u):
    text, calls = r["text"], r["calls"]
    if fmt == "openai":
        msg = {"role": "assistant", "content": text if text or not calls else None, "refusal": None}
        if calls:
            msg["tool_calls"] = [{"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                                 for i, n, a in calls]
        return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": msg, "logprobs": None,
                             "finish_reason": "tool_calls" if calls else "stop"}],
                "usage": openai_usage(u), "system_fingerprint": "fp_test"}
    if fmt == "anthropic":
        content = []
        if r["thinking"] is not None:
            content.append({"type": "thinking", "thinking": r["thinking"], "signature": "sig-test"})
        if text or not calls:
            content.append({"type": "text", "text": text})
        content += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in calls]
        return {"id": "msg_test", "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": "tool_use" if calls else "end_turn", "stop_sequence": None,
                "usage": anthropic_usage(u, u["output"])}
    msg = {"role": "assistant", "content": text}
    if r["thinking"] is not None:
        msg["thinking"] = r["thinking"]
    if calls:
        msg["tool_calls"] = [{"function": {"name": n, "arguments": a}} for _, n, a in calls]
    return {"model": model, "created_at": now_iso(), "message": msg,
            "done": True, "done_reason": "stop", "total_duration": 1000000, "load_duration": 1000,
            "prompt_eval_count": u["input"], "prompt_eval_duration": 1000, "eval_count": u["output"],
            "eval_duration": 1000}


def sse(data, event=None):
    head = "event: %s\n" % event if event else ""
    return head + "data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n"


def openai_stream(req, model, r, u):
    base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "system_fingerprint": "fp_test"}
    include_usage = bool((req.get("stream_options") or {}).get("include_usage"))

    def chunk(delta, finish=None, usage=None):
        d = dict(base, choices=[] if delta is None else
                 [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])
        if include_usage:
            d["usage"] = usage
        return sse(d)
    out = [chunk({"role": "assistant", "content": ""})]
    if r["text"] or not r["calls"]:
        out += [chunk({"content": p}) for p in word_pieces(r["text"])]
    for k, (i, n, a) in enumerate(r["calls"]):
        out.append(chunk({"tool_calls": [{"index": k, "id": i, "type": "function",
                                          "function": {"name": n, "arguments": ""}}]}))
        out += [chunk({"tool_calls": [{"index": k, "function": {"arguments": f}}]}) for f in fragments(json.dumps(a))]
    out.append(chunk({}, "tool_calls" if r["calls"] else "stop"))
    if include_usage:
        out.append(chunk(None, usage=openai_usage(u)))
    out.append("data: [DONE]\n\n")
    return out


def anthropic_stream(model, r, u):
    out = [sse({"type": "message_start", "message": {
        "id": "msg_test", "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": None, "stop_sequence": None, "usage": anthropic_usage(u, 1)}}, "message_start")]
    blocks = []  # (the block as it starts, its deltas)
    if r["thinking"] is not None:
        deltas = [{"type": "thinking_delta", "thinking": p} for p in word_pieces(r["thinking"])]
        blocks.append(({"type": "thinking", "thinking": ""},
                       deltas + [{"type": "signature_delta", "signature": "sig-test"}]))
    if r["text"] or not r["calls"]:
        blocks.append(({"type": "text", "text": ""},
                       [{"type": "text_delta", "text": p} for p in word_pieces(r["text"])]))
    for i, n, a in r["calls"]:
        blocks.append(({"type": "tool_use", "id": i, "name": n, "input": {}},
                       [{"type": "input_json_delta", "partial_json": f} for f in fragments(json.dumps(a))]))
    for index, (start, deltas) in enumerate(blocks):
        out.append(sse({"type": "content_block_start", "index": index, "content_block": start}, "content_block_start"))
        if index == 0:
            out.append(sse({"type": "ping"}, "ping"))
        out += [sse({"type": "content_block_delta", "index": index, "delta": d}, "content_block_delta") for d in deltas]
        out.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    out.append(sse({"type": "message_delta", "delta": {"stop_reason": "tool_use" if r["calls"] else "end_turn",
                                                       "stop_sequence": None},
                    "usage": {"output_tokens": u["output"]}}, "message_delta"))
    out.append(sse({"type": "message_stop"}, "message_stop"))
    return out


def ollama_stream(model, r, u):
    def line(msg):
        return json.dumps({"model": model, "created_at": now_iso(), "message": dict(role="assistant", **msg),
                           "done": False}) + "\n"
    out = []
    if r["thinking"] is not None:
        out += [line({"content": "", "thinking": p}) for p in word_pieces(r["thinking"])]
    if r["text"] or not r["calls"]:
        out += [line({"content": p}) for p in word_pieces(r["text"])]
    if r["calls"]:
        out.append(line({"content": "", "tool_calls": [{"function": {"name": n, "arguments": a}}
                                                       for _, n, a in r["calls"]]}))
    out.append(json.dumps(full_response("ollama", model, {"text": "", "thinking": None, "calls": []}, u)) + "\n")
    return out


def stream_events(fmt, req, model, r, u):
    if fmt == "openai":
        return openai_stream(req, model, r, u)
    if fmt == "anthropic":
        return anthropic_stream(model, r, u)
    return ollama_stream(model, r, u)


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
