#!/usr/bin/env python3
"""Optional cross-check: load every golden GGUF with real llama.cpp and compare its logits
with the HF golden logits in tests/data/golden.

This proves that the fixtures follow llama.cpp's conventions (key names, tensor names and layout,
missing key_length for qwen2, tied output, NEOX RoPE, q/k norm), and not only those of our own
numpy reference.

Needs llama-cpp-python (PyPI ships it only as a source package, so pip builds llama.cpp: about
15 minutes on 2 cores):
    CMAKE_ARGS="-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF" \
        pip install llama-cpp-python
    python3 tools/check_golden_llamacpp.py
Neither the build nor the test suite depends on this script.
"""

import json
import sys
from pathlib import Path

import numpy as np
from llama_cpp import Llama

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "data" / "golden"
TOL = 1e-3  # llama.cpp's F32 CPU path uses float32 accumulation and its own exp/silu
GGML_TYPE_F32 = 0


def main():
    worst = 0.0
    for meta_path in sorted(GOLDEN.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        golden = np.fromfile(GOLDEN / meta["logits_file"], dtype="<f4").reshape(meta["n_tokens"], meta["n_vocab"])
        llm = Llama(model_path=str(GOLDEN / meta["gguf_file"]), n_ctx=64, n_batch=64, n_threads=1,
                    logits_all=True, verbose=False,
                    # keep the whole pass in F32: the default KV cache type is F16, which alone costs ~1e-2
                    type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32, flash_attn=False)
        llm.eval(meta["tokens"])
        got = np.array(llm.scores[: meta["n_tokens"]], dtype=np.float32)
        diff = float(np.max(np.abs(got - golden)))
        worst = max(worst, diff)
        print(f"{meta_path.stem:20s} max|llama.cpp-HF|={diff:.3e}")
        del llm
    print("OK" if worst < TOL else "FAIL", f"(worst {worst:.3e}, tol {TOL})")
    return 0 if worst < TOL else 1


if __name__ == "__main__":
    sys.exit(main())
