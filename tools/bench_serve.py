#!/usr/bin/env python3
"""Concurrent-client throughput of an OpenAI-compatible chat server: `xelm serve` or llama.cpp's
`llama-server`, started here on the same model file and threads, or one already running (--url).

For each client count in --clients (e.g. 1,4) it runs N chat clients at once, each with its own
user prompt (distinct prompts: nothing shared but the chat template), temperature 0 and
--max-tokens answer tokens (64), and measures the wall time from the first request sent to the
last answer received. One warm-up request before the timed rounds is excluded. Reported:
aggregate completion tok/s (all answers' tokens / wall time), mean per-client tok/s (a client's
tokens / its own request time), mean time to first token (streaming), and the aggregate as a
multiple of the 1-client aggregate. Completion tokens are those the server's `usage` reports;
requests ask for "ignore_eos": true (llama-server honours it; servers that do not know it ignore
it) so that answers normally have exactly --max-tokens tokens; the table shows the counts.

Examples (build llama-server with scripts/build-llama-server.sh, xelm with the ci preset):
    python3 tools/bench_serve.py --server xelm,llama -m models/qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf \\
        -t 2 --clients 1,4
    python3 tools/bench_serve.py --server xelm --server-args "--parallel 4" -m MODEL -t 2
    python3 tools/bench_serve.py --url http://127.0.0.1:8080 --clients 1,2,4
    python3 tools/bench_serve.py --cmd "path/to/server -m MODEL --port {port}" --clients 1,4

Presets (same -m and -t for both):
    xelm:  build/ci/xelm serve -m MODEL -t THREADS --port P [--server-args ...]
    llama: llama-server -m MODEL -t THREADS -np NP -c CTX*NP --port P [--server-args ...]
llama-server splits its -c context evenly over its -np slots, so it gets --ctx (4096, xelm serve's
default -c) times NP, NP = --np or the largest client count: each conversation has the same
context on both servers. Python 3 standard library only; neither the build nor the tests depend
on this script.
"""

import argparse
import http.client
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SYSTEM = "You are a helpful coding assistant."
# Distinct tasks of similar length, each asking for more than 64 tokens of code.
TASKS = [
    "Write a Python function that parses a CSV file and returns the average of each numeric column.",
    "Write a C function that reverses a singly linked list in place and explain each step briefly.",
    "Write a JavaScript class for a min-heap with push, pop and peek, with comments on each method.",
    "Write a Go program that reads lines from stdin and prints the ten most frequent words in them.",
    "Write a Rust function that checks whether a string of brackets is balanced, with unit tests.",
    "Write a SQL schema for a library with books, authors and loans, then a query for overdue loans.",
    "Write a Bash script that finds files larger than 100 MB under a directory and sorts them by size.",
    "Write a Java method that merges two sorted integer arrays into one sorted array without duplicates.",
    "Write a Python class implementing an LRU cache with get and put in O(1), using a dict and a list.",
    "Write a C++ function that computes the longest common subsequence of two strings with dynamic programming.",
    "Write a TypeScript function that debounces another function and explain how the timer is reset.",
    "Write a Python script that downloads nothing but walks a directory tree and prints a size summary.",
    "Write a Haskell function that generates all permutations of a list and explain its recursion.",
    "Write a Python generator that yields prime numbers forever using an incremental sieve.",
    "Write a C program that counts lines, words and characters of a file like the wc command does.",
    "Write a Kotlin data class for a 2D vector with addition, scaling and a dot product method.",
    "Write a Python function that validates an email address with a regular expression and tests it.",
    "Write a Ruby method that flattens a nested array without using the built-in flatten method.",
    "Write a Python function that performs binary search on a sorted list and returns the insertion point.",
    "Write a C# method that reads a JSON file into a dictionary and handles a missing file gracefully.",
]


class Prompts:
    """Hands out a different user prompt for every request of a run (thread-safe)."""

    def __init__(self):
        self._next = 0
        self._lock = threading.Lock()

    def take(self):
        with self._lock:
            i = self._next
            self._next += 1
        task = TASKS[i % len(TASKS)]
        # Past one lap the request number keeps prompts distinct; it goes at the end so the
        # prompts share nothing but the chat template and system message.
        return task if i < len(TASKS) else f"{task} (variant {i // len(TASKS)})"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process started from a command line, output to a log file."""

    def __init__(self, argv, log_path):
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, n=30):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def request(base, method, path, body=None, timeout=600):
    """One HTTP request; returns (status, HTTPResponse) with the response unread."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    return conn, resp


def wait_healthy(base, server, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server is not None and not server.alive():
            raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            conn, resp = request(base, "GET", "/health", timeout=5)
            resp.read()
            conn.close()
            if resp.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{base}/health not ready after {timeout} s")


def model_id(base):
    conn, resp = request(base, "GET", "/v1/models", timeout=30)
    data = json.loads(resp.read())
    conn.close()
    models = data.get("data") or []
    return models[0]["id"] if models else None


def chat(base, model, prompt, args):
    """One chat request. Returns dict(tokens, elapsed, ttft, text, finish)."""
    body = {
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": args.max_tokens,
        "stream": args.stream,
    }
    if model:
        body["model"] = model
    if args.ignore_eos:
        body["ignore_eos"] = True
    if args.stream:
        body["stream_options"] = {"include_usage": True}
    start = time.perf_counter()
    conn, resp = request(base, "POST", "/v1/chat/completions", body, timeout=args.request_timeout)
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:500]!r}")
    ttft, text, finish, usage, chunks = None, "", None, None, 0
    if args.stream:
        for raw in resp:  # server-sent events, one "data: ..." line each
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            event = json.loads(payload)
            if event.get("usage"):
                usage = event["usage"]
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                piece = (delta.get("content") or "") + (delta.get("reasoning_content") or "")
                if piece:
                    if ttft is None:
                        ttft = time.perf_counter() - start
                    text += piece
                    chunks += 1
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
    else:
        data = json.loads(resp.read())
        usage = data.get("usage")
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
        finish = choice.get("finish_reason")
    elapsed = time.perf_counter() - start
    conn.close()
    tokens = usage["completion_tokens"] if usage and "completion_tokens" in usage else chunks
    return {"tokens": tokens, "elapsed": elapsed, "ttft": ttft, "text": text, "finish": finish,
            "start": start, "end": start + elapsed}


def run_round(base, model, prompts, n, args):
    """N clients at once; returns (wall seconds, list of per-client results)."""
    barrier = threading.Barrier(n)
    results = [None] * n
    errors = []

    def client(i):
        prompt = prompts.take()
        barrier.wait()
        try:
            results[i] = chat(base, model, prompt, args)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {i}: {e}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("; ".join(errors))
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    return wall, results


def bench(name, base, args, server=None):
    """Runs warm-up + every client count against one server; returns table rows."""
    wait_healthy(base, server, args.start_timeout)
    model = model_id(base)
    prompts = Prompts()
    chat(base, model, prompts.take(), args)  # warm-up, excluded
    rows = []
    for n in args.clients:
        walls, aggs, per_client, ttfts, tokens, finishes = [], [], [], [], [], []
        for _ in range(args.rounds):
            wall, results = run_round(base, model, prompts, n, args)
            total = sum(r["tokens"] for r in results)
            walls.append(wall)
            aggs.append(total / wall)
            tokens.append(total)
            per_client += [r["tokens"] / r["elapsed"] for r in results]
            ttfts += [r["ttft"] for r in results if r["ttft"] is not None]
            finishes += [r["finish"] for r in results]
            if args.verbose:
                for r in results:
                    print(f"  [{name} n={n}] {r['tokens']} tok {r['elapsed']:.2f} s "
                          f"ttft {r['ttft'] if r['ttft'] is None else round(r['ttft'] * 1000)} ms "
                          f"{r['finish']}: {r['text'][:70]!r}", file=sys.stderr)
        row = {
            "server": name, "clients": n, "tokens": statistics.mean(tokens), "wall": statistics.mean(walls),
            "agg": statistics.mean(aggs), "agg_sd": statistics.stdev(aggs) if len(aggs) > 1 else 0.0,
            "per_client": statistics.mean(per_client),
            "ttft": statistics.mean(ttfts) * 1000 if ttfts else None,
            "length_share": sum(f == "length" for f in finishes) / len(finishes),
        }
        rows.append(row)
        print(f"{name}: {n} client(s): {row['agg']:.1f} tok/s aggregate, {row['tokens']:.0f} tokens "
              f"in {row['wall']:.2f} s", file=sys.stderr)
    base_agg = next((r["agg"] for r in rows if r["clients"] == 1), None)
    for r in rows:
        r["ratio"] = r["agg"] / base_agg if base_agg else None
    return rows


def preset_argv(kind, args, port):
    extra = shlex.split(args.server_args or "")
    if kind == "xelm":
        return [args.xelm_bin, "serve", "-m", args.model, "-t", str(args.threads), "--port", str(port)] + extra
    if kind == "llama":
        np_ = args.np or max(args.clients)
        return [args.llama_bin, "-m", args.model, "-t", str(args.threads), "-np", str(np_),
                "-c", str(args.ctx * np_), "--port", str(port), "--host", "127.0.0.1"] + extra
    raise ValueError(kind)


def default_llama_bin():
    if os.environ.get("LLAMA_SERVER"):
        return os.environ["LLAMA_SERVER"]
    try:
        out = subprocess.run(["bash", os.path.join(REPO, "scripts", "build-llama-server.sh"), "--print-path"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "llama-server"


def fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def print_table(rows, args):
    print()
    print(f"max_tokens {args.max_tokens}, temperature 0, {'streamed' if args.stream else 'whole answers'}, "
          f"ignore_eos {'sent' if args.ignore_eos else 'not sent'}, {args.rounds} round(s) per row, "
          f"threads {args.threads}")
    print()
    print("| server | clients | tokens | wall s | aggregate tok/s | per-client tok/s | mean TTFT ms "
          "| vs 1 client | hit max_tokens |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        agg = f"{r['agg']:.1f}" + (f" ± {r['agg_sd']:.1f}" if args.rounds > 1 else "")
        print(f"| {r['server']} | {r['clients']} | {r['tokens']:.0f} | {r['wall']:.2f} | {agg} "
              f"| {r['per_client']:.1f} | {fmt(r['ttft'], '.0f')} | {fmt(r['ratio'], '.2f')}x "
              f"| {r['length_share'] * 100:.0f}% |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--server", help="preset(s) to start, comma-separated, run back to back: xelm, llama")
    src.add_argument("--url", help="a server already running, e.g. http://127.0.0.1:8080")
    src.add_argument("--cmd", help="a server command line to start; {port} is replaced by a free port")
    p.add_argument("-m", "--model", help="GGUF model file (presets)")
    p.add_argument("-t", "--threads", type=int, default=2, help="server threads (presets; default 2)")
    p.add_argument("--clients", default="1,4", help="client counts to run, e.g. 1,4 (default 1,4)")
    p.add_argument("--max-tokens", type=int, default=64, help="answer tokens per request (default 64)")
    p.add_argument("--rounds", type=int, default=1, help="timed rounds per client count (default 1)")
    p.add_argument("--no-stream", dest="stream", action="store_false", help="whole answers (no TTFT)")
    p.add_argument("--no-ignore-eos", dest="ignore_eos", action="store_false",
                   help="do not send ignore_eos: true")
    p.add_argument("--server-args", default="", help="extra arguments appended to the preset's command line")
    p.add_argument("--xelm-bin", default=os.path.join(REPO, "build", "ci", "xelm"))
    p.add_argument("--llama-bin", default=None,
                   help="llama-server binary (default $LLAMA_SERVER, else scripts/build-llama-server.sh --print-path)")
    p.add_argument("--np", type=int, default=0, help="llama-server -np (default: the largest client count)")
    p.add_argument("--ctx", type=int, default=4096, help="context per conversation (llama: -c CTX*NP; default 4096)")
    p.add_argument("--port", type=int, default=0, help="port for started servers (default: a free one)")
    p.add_argument("--log-dir", default="/tmp", help="where started servers' logs go (default /tmp)")
    p.add_argument("--start-timeout", type=float, default=180)
    p.add_argument("--request-timeout", type=float, default=600)
    p.add_argument("-v", "--verbose", action="store_true", help="print every answer's start")
    args = p.parse_args()
    args.clients = [int(c) for c in args.clients.split(",") if c]
    if args.server and not args.model:
        p.error("--server needs -m MODEL")
    if args.llama_bin is None:
        args.llama_bin = default_llama_bin()

    rows = []
    if args.url:
        rows += bench(args.url, args.url.rstrip("/"), args)
    else:
        runs = [(k.strip(), None) for k in args.server.split(",")] if args.server else [("cmd", args.cmd)]
        for kind, cmd in runs:
            port = args.port or free_port()
            argv = shlex.split(cmd.replace("{port}", str(port))) if cmd else preset_argv(kind, args, port)
            log = os.path.join(args.log_dir, f"bench_serve-{kind}-{port}.log")
            print(f"starting: {shlex.join(argv)}  (log {log})", file=sys.stderr)
            server = Server(argv, log)
            try:
                rows += bench(kind, f"http://127.0.0.1:{port}", args, server)
            except Exception:
                print(server.log_tail(), file=sys.stderr)
                raise
            finally:
                server.stop()
    print_table(rows, args)


if __name__ == "__main__":
    main()
