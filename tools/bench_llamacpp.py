#!/usr/bin/env python3
"""Peer figures for `xelm bench`: llama.cpp's prompt-processing and generation speed on the same
model and machine, measured the way xelm bench measures (random tokens, one warm-up run excluded,
mean ± sd over the timed runs, tok/s).

Needs llama-cpp-python, which PyPI ships as a source package (pip builds llama.cpp, with its CPU
repacking and -march=native: about 20 minutes on 2 cores):
    CMAKE_ARGS="-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DGGML_NATIVE=ON" \\
        pip install llama-cpp-python
    python3 tools/bench_llamacpp.py -m models/q06-q4km.gguf -t 2 -p 512 -n 128 -r 3
Neither the build nor the test suite depends on this script.
"""

import argparse
import random
import statistics
import time

from llama_cpp import Llama


def timed(fn, runs):
    fn()  # warm-up, excluded
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("-p", "--n-prompt", type=int, default=512)
    parser.add_argument("-n", "--n-gen", type=int, default=128)
    parser.add_argument("-r", "--repetitions", type=int, default=3)
    args = parser.parse_args()

    llm = Llama(model_path=args.model, n_ctx=args.n_prompt + args.n_gen + 8, n_batch=max(args.n_prompt, 1),
                n_ubatch=max(args.n_prompt, 1), n_threads=args.threads, n_threads_batch=args.threads,
                verbose=False)
    rng = random.Random(1234)
    tokens = [rng.randrange(llm.n_vocab()) for _ in range(args.n_prompt + args.n_gen)]

    def prompt():
        llm.reset()
        llm.eval(tokens[: args.n_prompt])

    def generate():
        llm.reset()
        for token in tokens[: args.n_gen]:  # one token per step, as decoding does
            llm.eval([token])

    for name, fn, count in (("pp", prompt, args.n_prompt), ("tg", generate, args.n_gen)):
        if count == 0:
            continue
        rates = [count / s for s in timed(fn, args.repetitions)]
        sd = statistics.stdev(rates) if len(rates) > 1 else 0.0
        print(f"llama.cpp t={args.threads} {name}{count}: {statistics.mean(rates):.2f} ± {sd:.2f} tok/s")


if __name__ == "__main__":
    main()
