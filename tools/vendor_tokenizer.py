#!/usr/bin/env python3
"""vendor_tokenizer.py — turn the Hugging Face Qwen3 tokenizer files into the GGUF tokenizer
metadata llama.cpp's converter writes, stored as a tensor-less GGUF (gzip-compressed) under
tests/data/tokenizer/, so `xelm make-test-model` can give synthetic models the real tokenizer
from a plain clone.

Conventions follow llama.cpp's convert_hf_to_gguf.py for Qwen2/Qwen3 (gpt2-style BPE):
  tokenizer.ggml.model = "gpt2", tokenizer.ggml.pre = "qwen2";
  tokens by id; token_type 1 = normal, 3 = control (added tokens marked special or shaped <|...|>),
  4 = user-defined (other added tokens, e.g. <think>); merges as "left right" strings;
  eos = <|im_end|>, padding and bos = <|endoftext|>, add_bos_token = false; chat template verbatim.
Padding rows up to a model's vocabulary size ([PAD<i>], type 5 = unused) are added by make-test-model.

Usage: python3 tools/vendor_tokenizer.py [--src ../shared/tokenizer] [--out tests/data/tokenizer/qwen3-tokenizer.gguf.gz]
"""
import argparse
import gzip
import json
import os
import shutil
import tempfile

import importlib.metadata

import gguf

NORMAL, CONTROL, USER_DEFINED = 1, 3, 4


def looks_special(text: str) -> bool:
    return text.startswith("<|") and text.endswith("|>")


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=os.path.join(root, "..", "shared", "tokenizer"))
    ap.add_argument("--out", default=os.path.join(root, "tests", "data", "tokenizer", "qwen3-tokenizer.gguf.gz"))
    args = ap.parse_args()

    with open(os.path.join(args.src, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    with open(os.path.join(args.src, "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)

    by_id = {i: (text, NORMAL) for text, i in tok["model"]["vocab"].items()}
    for added in tok["added_tokens"]:
        kind = CONTROL if added["special"] or looks_special(added["content"]) else USER_DEFINED
        by_id[added["id"]] = (added["content"], kind)
    n = max(by_id) + 1
    missing = [i for i in range(n) if i not in by_id]
    assert not missing, f"token ids without a token: {missing[:10]}"
    tokens = [by_id[i][0] for i in range(n)]
    types = [by_id[i][1] for i in range(n)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    ids = {t: i for i, t in enumerate(tokens)}

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tokenizer.gguf")
        w = gguf.GGUFWriter(path, arch="qwen3")
        w.add_name("Qwen3 tokenizer")
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("qwen2")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_eos_token_id(ids[cfg["eos_token"]])
        w.add_pad_token_id(ids[cfg["pad_token"]])
        w.add_bos_token_id(ids["<|endoftext|>"])
        w.add_add_bos_token(bool(cfg.get("add_bos_token", False)))
        w.add_chat_template(cfg["chat_template"])
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(path, "rb") as src, gzip.GzipFile(args.out, "wb", compresslevel=9, mtime=0) as dst:
            shutil.copyfileobj(src, dst)
    print(f"wrote {args.out}: {n} tokens, {len(merges)} merges, gguf {importlib.metadata.version('gguf')} "
          f"({os.path.getsize(args.out)} bytes compressed)")


if __name__ == "__main__":
    main()
