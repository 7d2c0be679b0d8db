"""serve_client_test.py — drives a running `xelm serve` with the real `openai` Python client.

tests/test_serve.cpp starts the server on a synthetic Qwen3 model (random weights, so the answers
are gibberish but deterministic under a seed) and runs this script with
  XELM_SERVE_URL  the API base, e.g. http://127.0.0.1:PORT/v1
  XELM_SERVE_LOG  the server's log file (to see that a disconnect cancelled the generation)
Checks: models, non-stream and stream (the seeded stream equals the seeded whole answer), thinking
on/off, stop sequences, bad requests as openai.BadRequestError, two concurrent clients, and a client
that closes its stream mid-way. Exits non-zero when any check fails.
"""

import os
import re
import threading
import time
import unittest

import openai

BASE_URL = os.environ["XELM_SERVE_URL"]
SERVER_LOG = os.environ.get("XELM_SERVE_LOG", "")
MODEL = "tiny"
NO_THINK = {"chat_template_kwargs": {"enable_thinking": False}}

client = openai.OpenAI(base_url=BASE_URL, api_key="not-needed", max_retries=0, timeout=120)


def server_log():
    with open(SERVER_LOG, encoding="utf-8", errors="replace") as log:
        return log.read()


def chat(text, **kwargs):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], **kwargs)


def streamed(text, **kwargs):
    """The joined content and reasoning deltas of a streamed chat answer, its finish_reason, the
    number of content chunks and the usage chunk."""
    content, reasoning, finish, chunks, usage = "", "", None, 0, None
    for chunk in chat(text, stream=True, **kwargs):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                content += choice.delta.content
                chunks += 1
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            if choice.finish_reason is not None:
                finish = choice.finish_reason
    return content, reasoning, finish, chunks, usage


class ServeWithOpenAiClient(unittest.TestCase):
    def test_models_list_the_served_model(self):
        self.assertEqual([m.id for m in client.models.list()], [MODEL])

    def test_non_stream_answer_and_usage(self):
        r = chat("Hello there", temperature=0, max_tokens=8, extra_body=NO_THINK)
        self.assertEqual(r.object, "chat.completion")
        self.assertEqual(r.choices[0].message.role, "assistant")
        self.assertIsInstance(r.choices[0].message.content, str)
        self.assertIn(r.choices[0].finish_reason, ("stop", "length"))
        self.assertLessEqual(r.usage.completion_tokens, 8)
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens)
        again = chat("Hello there", temperature=0, max_tokens=8, extra_body=NO_THINK)
        self.assertEqual(again.choices[0].message.content, r.choices[0].message.content)  # greedy is repeatable

    def test_seeded_stream_equals_seeded_whole_answer(self):
        params = dict(temperature=0.9, seed=77, max_tokens=20, extra_body=NO_THINK)
        whole = chat("Tell me something", **params)
        content, _, finish, chunks, usage = streamed("Tell me something", stream_options={"include_usage": True}, **params)
        self.assertEqual(content, whole.choices[0].message.content)
        self.assertEqual(finish, whole.choices[0].finish_reason)
        self.assertGreater(chunks, 3)
        self.assertEqual(usage.completion_tokens, whole.usage.completion_tokens)
        self.assertGreater(usage.prompt_tokens_details.cached_tokens, 0)  # the same prompt again: from the KV cache

    def test_thinking_on_and_off(self):
        on = chat("Why is the sky blue?", max_tokens=4, extra_body={"chat_template_kwargs": {"enable_thinking": True}})
        off = chat("Why is the sky blue?", max_tokens=4, extra_body=NO_THINK)
        # Thinking off closes the generation prompt with an empty think block (4 tokens).
        self.assertEqual(off.usage.prompt_tokens, on.usage.prompt_tokens + 4)
        # A random model never opens a think block: the whole answer is content, no reasoning_content.
        for r in (on, off):
            self.assertIsNone(getattr(r.choices[0].message, "reasoning_content", None))
        _, reasoning, _, _, _ = streamed("Why is the sky blue?", max_tokens=4, extra_body=NO_THINK)
        self.assertEqual(reasoning, "")

    def test_stop_sequence_cuts_whole_and_streamed_answers(self):
        params = dict(temperature=0, max_tokens=24, extra_body=NO_THINK)
        full = chat("Count with me", **params).choices[0].message.content
        self.assertGreater(len(full), 4, full)
        stop = full[len(full) // 2 : len(full) // 2 + 2]
        expected = full[: full.find(stop)]
        cut = chat("Count with me", stop=[stop], **params)
        self.assertEqual(cut.choices[0].message.content, expected)
        self.assertEqual(cut.choices[0].finish_reason, "stop")
        content, _, finish, _, _ = streamed("Count with me", stop=stop, **params)
        self.assertEqual(content, expected)
        self.assertEqual(finish, "stop")

    def test_bad_requests_raise_bad_request_error(self):
        cases = [
            (dict(messages=[]), "messages"),
            (dict(messages=[{"role": "wizard", "content": "hi"}]), "messages[0].role"),
            (dict(messages=[{"role": "user", "content": "hi"}], temperature="hot"), "temperature"),
            (dict(messages=[{"role": "user", "content": "hi"}], max_tokens=10**6), "max_tokens"),
            (dict(messages=[{"role": "user", "content": "hi"}], n=3), "n"),
        ]
        for kwargs, param in cases:
            with self.assertRaises(openai.BadRequestError) as caught:
                client.chat.completions.create(model=MODEL, **kwargs)
            self.assertEqual(caught.exception.status_code, 400)
            error = caught.exception.body
            self.assertEqual(error["param"], param, error)
            self.assertEqual(error["type"], "invalid_request_error")
            self.assertTrue(error["message"])

    def test_completions_endpoint(self):
        r = client.completions.create(model=MODEL, prompt="The quick brown fox", max_tokens=6, temperature=0)
        self.assertEqual(r.object, "text_completion")
        self.assertLessEqual(r.usage.completion_tokens, 6)
        pieces = [c.choices[0].text for c in client.completions.create(
            model=MODEL, prompt="The quick brown fox", max_tokens=6, temperature=0, stream=True) if c.choices]
        self.assertEqual("".join(pieces), r.choices[0].text)

    def test_two_concurrent_clients(self):
        params = dict(temperature=0.8, max_tokens=120, extra_body=NO_THINK)
        results = {}
        start = threading.Barrier(2)

        def run(name, seed):
            start.wait()
            results[name] = streamed("Client " + name, seed=seed, **params)

        threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("A", 1), ("B", 2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name, seed in (("A", 1), ("B", 2)):
            self.assertIsNotNone(results[name][2], "no finish_reason for client " + name)
            alone = streamed("Client " + name, seed=seed, **params)
            self.assertEqual(results[name][0], alone[0], "client %s got another answer when served concurrently" % name)

    def test_disconnect_mid_stream_stops_generation(self):
        before = server_log().count("client disconnected") if SERVER_LOG else 0
        stream = chat("Keep talking", stream=True, max_tokens=4000, temperature=0.8, seed=9, extra_body=NO_THINK)
        received = 0
        for chunk in stream:
            received += 1
            if received == 3:
                break
        stream.close()
        if SERVER_LOG:
            deadline = time.time() + 60
            while time.time() < deadline and server_log().count("client disconnected") == before:
                time.sleep(0.05)
            stops = re.findall(r"client disconnected; generation stopped after (\d+) tokens", server_log())
            self.assertGreater(len(stops), before, "the server did not log the cancelled generation")
            self.assertLess(int(stops[-1]), 4000)
        # The server goes on serving.
        r = chat("Are you still there?", max_tokens=3, extra_body=NO_THINK)
        self.assertLessEqual(r.usage.completion_tokens, 3)


if __name__ == "__main__":
    print("openai client", openai.__version__, "against", BASE_URL)
    unittest.main(verbosity=2)
