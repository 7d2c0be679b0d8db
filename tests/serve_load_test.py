"""serve_load_test.py — `xelm serve` under load and abuse, on loopback, with the standard library only.

tests/test_serve.cpp (ServeLoad.*) starts a server on a synthetic Qwen3 model and runs this with
  XELM_SERVE_PORT      the server's port on 127.0.0.1
  XELM_SERVE_PID       its process id (file descriptors and RSS are read from /proc)
  XELM_LOAD_REQUESTS   requests in the measured phase (default 2000)
  XELM_MAX_QUEUE       the server's --max-queue (the load must exceed it)
Phases: a warm-up; then 64 concurrent connections until XELM_LOAD_REQUESTS requests are done:
well-behaved clients (whole and streamed chat answers, completions), slow clients that send their
request byte by byte, clients that vanish mid-stream, oversized headers, oversized bodies and
invalid input (bad JSON, ill-formed UTF-8, bad fields). Checks: every well-behaved request gets a
correct 200 answer or a 503 `server_busy` error; every reply body, errors included, is valid UTF-8
JSON (SSE: every data line); the server sheds load with 503 at least once; the file descriptors
and RSS before and after the phase are printed, and fds must come back to where they were; the
server still answers; then SIGTERM with 32 streams running: every client's connection ends
(answer, 503 error or close) within 20 s. Exits non-zero when a check fails.
"""

import json
import os
import signal
import socket
import sys
import threading
import time

PORT = int(os.environ["XELM_SERVE_PORT"])
PID = int(os.environ["XELM_SERVE_PID"])
REQUESTS = int(os.environ.get("XELM_LOAD_REQUESTS", "2000"))
MAX_QUEUE = int(os.environ.get("XELM_MAX_QUEUE", "16"))
# The RSS growth allowed over the measured requests, MiB (0: reported only; the test passes 0 under
# AddressSanitizer, whose quarantine keeps freed memory resident).
RSS_LIMIT_MIB = int(os.environ.get("XELM_LOAD_RSS_LIMIT_MIB", "32"))
CONNECTIONS = 64
TIMEOUT_S = 60

failures = []
failures_lock = threading.Lock()


def fail(what):
    with failures_lock:
        if len(failures) < 20:
            print("FAIL:", what, flush=True)
        failures.append(what)


def fd_count():
    return len(os.listdir(f"/proc/{PID}/fd"))


def rss_kib():
    with open(f"/proc/{PID}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def connect():
    sock = socket.create_connection(("127.0.0.1", PORT), timeout=TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request_bytes(method, path, body=b"", extra_headers=""):
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra_headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def read_reply(sock):
    """(status, headers dict, body bytes) of one HTTP/1.1 reply on a Connection: close socket."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/1.1 "):
        return 0, {}, data
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return status, headers, body


def dechunk(body):
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def strict_json(raw, where):
    """The JSON value of raw bytes, which must be valid UTF-8 (None, with a failure, otherwise)."""
    try:
        return json.loads(raw.decode("utf-8", errors="strict"))
    except (UnicodeDecodeError, ValueError) as e:
        fail(f"{where}: reply is not valid UTF-8 JSON ({e}): {raw[:200]!r}")
        return None


def check_error(status, body, where, expect=None):
    value = strict_json(body, where)
    if value is None:
        return None
    if not isinstance(value, dict) or "error" not in value or "message" not in value["error"]:
        fail(f"{where}: {status} without an OpenAI error object: {body[:200]!r}")
        return None
    if expect is not None and status not in expect:
        fail(f"{where}: status {status}, expected one of {expect}: {body[:200]!r}")
    return value["error"]


def check_answer(status, body, stream, endpoint, where):
    """A well-behaved request: 200 with a correct answer, or 503 server_busy."""
    if status == 503:
        error = check_error(status, body, where)
        if error is not None and error.get("code") != "server_busy":
            fail(f"{where}: 503 with code {error.get('code')}")
        return "busy"
    if status != 200:
        fail(f"{where}: status {status}: {body[:200]!r}")
        return "bad"
    if stream:
        events = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]
        if not events or events[-1] != b"[DONE]":
            fail(f"{where}: stream does not end with [DONE]: {body[-200:]!r}")
            return "bad"
        finish = None
        for event in events[:-1]:
            chunk = strict_json(event, where)
            if chunk is None:
                return "bad"
            for choice in chunk.get("choices", []):
                finish = choice.get("finish_reason") or finish
        if finish not in ("stop", "length"):
            fail(f"{where}: stream without a finish_reason")
            return "bad"
        return "ok"
    value = strict_json(body, where)
    if value is None:
        return "bad"
    choice = value.get("choices", [{}])[0]
    text = choice.get("message", {}).get("content") if endpoint == "chat" else choice.get("text")
    if not isinstance(text, str) or choice.get("finish_reason") not in ("stop", "length"):
        fail(f"{where}: malformed answer {body[:200]!r}")
        return "bad"
    if value.get("usage", {}).get("completion_tokens", 0) < 1:
        fail(f"{where}: no completion tokens")
        return "bad"
    return "ok"


def chat_body(i, stream, max_tokens=3):
    return json.dumps({"messages": [{"role": "user", "content": f"Load test {i % 50}: say something"}],
                       "max_tokens": max_tokens, "temperature": 0.7, "seed": i, "stream": stream,
                       "chat_template_kwargs": {"enable_thinking": False}}).encode()


class Counter:
    def __init__(self, limit):
        self.limit, self.done, self.lock = limit, 0, threading.Lock()
        self.outcomes = {}

    def take(self):
        with self.lock:
            if self.done >= self.limit:
                return None
            self.done += 1
            return self.done

    def record(self, kind):
        with self.lock:
            self.outcomes[kind] = self.outcomes.get(kind, 0) + 1


def well_behaved(counter, worker):
    while (i := counter.take()) is not None:
        kind = i % 3
        stream = kind == 1
        endpoint = "completion" if kind == 2 else "chat"
        if endpoint == "chat":
            payload = request_bytes("POST", "/v1/chat/completions", chat_body(i, stream))
        else:
            payload = request_bytes("POST", "/v1/completions",
                                    json.dumps({"prompt": f"Count {i % 50}:", "max_tokens": 3, "seed": i}).encode())
        try:
            with connect() as sock:
                sock.sendall(payload)
                status, _, body = read_reply(sock)
        except OSError as e:
            fail(f"well-behaved {i}: {e}")
            continue
        counter.record(check_answer(status, body, stream, endpoint, f"well-behaved {i} ({endpoint}, stream {stream})"))


def slow_client(counter, worker):
    while (i := counter.take()) is not None:
        payload = request_bytes("POST", "/v1/chat/completions", chat_body(i, False))
        try:
            with connect() as sock:
                for b in payload[:200]:  # the header byte by byte
                    sock.sendall(bytes([b]))
                    time.sleep(0.002)
                sock.sendall(payload[200:])
                status, _, body = read_reply(sock)
        except OSError as e:
            fail(f"slow client {i}: {e}")
            continue
        counter.record("slow-" + check_answer(status, body, False, "chat", f"slow client {i}"))


def vanishing_client(counter, worker):
    while (i := counter.take()) is not None:
        try:
            with connect() as sock:
                sock.sendall(request_bytes("POST", "/v1/chat/completions", chat_body(i, True, max_tokens=200)))
                first = sock.recv(1024)  # the headers (and maybe the first chunk), then gone
                if not first.startswith(b"HTTP/1.1 "):
                    fail(f"vanishing client {i}: no reply before leaving: {first[:100]!r}")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        except OSError as e:
            fail(f"vanishing client {i}: {e}")
        counter.record("vanished")


def hostile_client(counter, worker):
    """Oversized headers and bodies, invalid input: a 4xx JSON error (or a closed connection for a
    header the server will not read), never a hang."""
    cases = [
        ("big header", request_bytes("POST", "/v1/chat/completions", chat_body(0, False),
                                     "X-Big: " + "a" * 20000 + "\r\n"), (400, 413, 431, None)),
        ("many headers", request_bytes("GET", "/health", b"", "".join(f"X-H{k}: v\r\n" for k in range(2000))),
         (400, 431, None)),
        ("big body", (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 500000000\r\n\r\n{\"messages\": ["), (413, None)),
        ("bad json", request_bytes("POST", "/v1/chat/completions", b"{\"messages\": [}"), (400,)),
        ("bad utf-8", request_bytes("POST", "/v1/chat/completions",
                                    b"{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\xc0\"}]}"), (400,)),
        ("bad utf-8 path", b"GET /v1/\xff\xfe\xed\xa0\x80 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", (404, 400)),
        ("deep json", request_bytes("POST", "/v1/completions", b"[" * 100000 + b"]" * 100000), (400, 413)),
        ("bad field", request_bytes("POST", "/v1/chat/completions", json.dumps(
            {"messages": [{"role": "user", "content": "x"}], "logit_bias": {"12": 1000}}).encode()), (400,)),
        ("unknown field", request_bytes("POST", "/v1/completions", b"{\"prompt\": \"x\", \"fr\xffob\": 1}"), (400,)),
        ("not http", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 100, (400, None)),
    ]
    while (i := counter.take()) is not None:
        name, payload, expect = cases[i % len(cases)]
        where = f"hostile {name} ({i})"
        try:
            with connect() as sock:
                try:
                    sock.sendall(payload)
                except OSError:
                    pass  # the server may answer and close before reading all of it
                status, _, body = read_reply(sock)
        except OSError as e:
            if None not in expect:
                fail(f"{where}: {e}")
            counter.record("hostile-closed")
            continue
        if status == 0 and None in expect:
            counter.record("hostile-closed")
            continue
        check_error(status, body, where, expect)
        counter.record(f"hostile-{status}")


def run_phase(requests):
    counter = Counter(requests)
    roles = [well_behaved] * 40 + [slow_client] * 8 + [vanishing_client] * 8 + [hostile_client] * 8
    assert len(roles) == CONNECTIONS
    threads = [threading.Thread(target=role, args=(counter, n), daemon=True) for n, role in enumerate(roles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        if t.is_alive():
            fail("a client thread hung")
    return counter.outcomes


def get(path):
    with connect() as sock:
        sock.sendall(request_bytes("GET", path))
        return read_reply(sock)


def settle():
    """Waits until the server holds no request (cancelled streams end at the next step)."""
    for _ in range(200):
        status, _, body = get("/health")
        if status == 200 and json.loads(body).get("requests_in_progress") == 0:
            break
        time.sleep(0.05)
    time.sleep(0.5)


def shutdown_under_load():
    results = []

    def streamer(i):
        try:
            with connect() as sock:
                sock.sendall(request_bytes("POST", "/v1/chat/completions", chat_body(i, True, max_tokens=1500)))
                status, _, body = read_reply(sock)
                results.append((status, body))
        except OSError as e:
            results.append((-1, str(e).encode()))

    threads = [threading.Thread(target=streamer, args=(i,), daemon=True) for i in range(32)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    running = sum(t.is_alive() for t in threads)
    os.kill(PID, signal.SIGTERM)
    if running == 0:
        fail("no stream was still running when SIGTERM was sent")
    start = time.monotonic()
    for t in threads:
        t.join(timeout=max(0.1, 20 - (time.monotonic() - start)))
    hung = sum(t.is_alive() for t in threads)
    if hung:
        fail(f"{hung} clients still connected 20 s after SIGTERM")
    for status, body in results:
        if status in (200, 503):
            for line in body.split(b"\n"):
                if line.startswith(b"data: ") and line != b"data: [DONE]":
                    strict_json(line[6:], f"stream during shutdown ({status})")
            if status == 503 and not body.startswith(b"data: "):
                check_error(status, body, "503 during shutdown")
    print(f"shutdown under load: SIGTERM with {running} of 32 clients connected; {len(results)} ended within "
          f"{time.monotonic() - start:.1f} s of SIGTERM (statuses "
          f"{sorted({s for s, _ in results})})", flush=True)


def main():
    start = time.monotonic()
    warm = run_phase(200)
    settle()
    fds_before, rss_before = fd_count(), rss_kib()
    phase_start = time.monotonic()
    outcomes = run_phase(REQUESTS)
    phase_s = time.monotonic() - phase_start
    settle()
    fds_after, rss_after = fd_count(), rss_kib()
    print(f"warm-up outcomes: {dict(sorted(warm.items()))}")
    print(f"load: {REQUESTS} requests over {CONNECTIONS} connections in {phase_s:.1f} s "
          f"({REQUESTS / phase_s:.0f} req/s); outcomes {dict(sorted(outcomes.items()))}")
    print(f"server fds before/after: {fds_before} / {fds_after}; RSS before/after: "
          f"{rss_before / 1024:.1f} / {rss_after / 1024:.1f} MiB ({(rss_after - rss_before) / 1024:+.1f} MiB)", flush=True)
    if outcomes.get("ok", 0) < REQUESTS // 10:
        fail(f"only {outcomes.get('ok', 0)} well-behaved requests were answered")
    if outcomes.get("busy", 0) + outcomes.get("slow-busy", 0) == 0:
        fail(f"no 503 under {CONNECTIONS} connections with --max-queue {MAX_QUEUE}: load was not shed")
    if fds_after > fds_before + 4:
        fail(f"file descriptors leaked: {fds_before} before, {fds_after} after")
    if RSS_LIMIT_MIB > 0 and rss_after - rss_before > RSS_LIMIT_MIB * 1024:
        fail(f"RSS grew by {(rss_after - rss_before) / 1024:.1f} MiB over {REQUESTS} requests")
    status, _, _ = get("/health")
    if status != 200:
        fail(f"/health answers {status} after the load")
    shutdown_under_load()
    print(f"load test: {len(failures)} failures in {time.monotonic() - start:.1f} s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
