#!/usr/bin/env python3
"""gen_tokenizer_fixtures.py — expected token ids for xelm's tokenizer tests, from Hugging Face
`tokenizers` on the Qwen3 tokenizer.json, for every text of tests/data/tokenizer/corpus.json plus two
long (~10 KB) documents assembled from the corpus.

Per case it stores:
  ids             tokenizer.encode(text, add_special_tokens=False).ids             (parse_special = true)
  ids_no_special  the same with encode_special_tokens = True                        (parse_special = false)
  decoded         tokenizer.decode(ids, skip_special_tokens=False), only where it differs from text
                  (NFC: text that is not in NFC decodes to its NFC form)

For ids_no_special, the added tokens' `special` flags are first aligned with the GGUF's token types
(tools/vendor_tokenizer.py, after llama.cpp's converter: special or shaped <|...|> is control), since
xelm only knows those types: stock tokenizer.json flags <|fim_prefix|>, <|fim_middle|>,
<|fim_suffix|>, <|fim_pad|>, <|repo_name|> and <|file_sep|> special = false, so stock HF would still
match them with encode_special_tokens = True; xelm (like llama.cpp) treats them as control.

Usage: python3 tools/gen_tokenizer_fixtures.py [--tokenizer ../shared/tokenizer/tokenizer.json]
"""
import argparse
import json
import os

import tokenizers
from tokenizers import Tokenizer


def looks_special(text: str) -> bool:
    return text.startswith("<|") and text.endswith("|>")


def long_documents(corpus: list) -> list:
    """Two ~10 KB texts: the prose, code and CJK/RTL cases joined into documents."""
    prose = [c["text"] for c in corpus if c["category"] in ("english", "contractions", "digits", "mixed")]
    code_and_scripts = [c["text"] for c in corpus if c["category"] in ("code", "cjk", "rtl_indic_thai", "emoji")]
    docs = []
    for category, parts, sep in (("long_prose", prose, "\n\n"), ("long_code_scripts", code_and_scripts, "\n")):
        text = ""
        while len(text.encode()) < 10_000:
            text += sep.join(parts) + sep
        docs.append({"category": category, "text": text})
    return docs


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default=os.path.join(root, "..", "shared", "tokenizer", "tokenizer.json"))
    ap.add_argument("--corpus", default=os.path.join(root, "tests", "data", "tokenizer", "corpus.json"))
    ap.add_argument("--out", default=os.path.join(root, "tests", "data", "tokenizer", "fixtures.json"))
    args = ap.parse_args()

    with open(args.tokenizer, encoding="utf-8") as f:
        spec = json.load(f)
    tok = Tokenizer.from_str(json.dumps(spec))
    for added in spec["added_tokens"]:
        added["special"] = added["special"] or looks_special(added["content"])
    plain = Tokenizer.from_str(json.dumps(spec))
    plain.encode_special_tokens = True

    with open(args.corpus, encoding="utf-8") as f:
        corpus = json.load(f)
    cases = []
    for case in corpus + long_documents(corpus):
        text = case["text"]
        ids = tok.encode(text, add_special_tokens=False).ids
        out = {"category": case["category"], "text": text, "ids": ids,
               "ids_no_special": plain.encode(text, add_special_tokens=False).ids}
        decoded = tok.decode(ids, skip_special_tokens=False)
        if decoded != text:
            out["decoded"] = decoded
        cases.append(out)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"generator": f"tokenizers {tokenizers.__version__}", "cases": cases}, f, ensure_ascii=False,
                  separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out}: {len(cases)} cases ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
