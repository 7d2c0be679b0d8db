#!/usr/bin/env python3
"""Generate xelm's fidelity oracle: tiny random Qwen3 / Qwen2 GGUF models plus golden logits.

For every fixture this script
  1. builds a tiny Qwen3ForCausalLM / Qwen2ForCausalLM from a config (random weights,
     deterministic seed, NO hub download), float32, eager attention;
  2. runs one forward pass over a fixed token sequence with Hugging Face `transformers`
     and keeps the logits of ALL positions;
  3. writes the model as GGUF the way llama.cpp's convert_hf_to_gguf.py does
     (same tensor names via gguf-py's TensorNameMap, same metadata keys, all F32, no Q/K permutation);
  4. reads the GGUF back with gguf.GGUFReader and runs an independent plain-numpy forward pass
     (the executable spec xelm's C++ follows), asserting max |numpy - HF| < 1e-4;
  5. writes tests/data/golden/<name>.{gguf,json,logits.f32}.

Regenerate:  python3 tools/make_golden.py            (from the repository root)

Versions used to produce the committed fixtures (the json files record them too):
  python 3.11.7, torch 2.15.0 (PyPI default wheel, run on CPU), transformers 5.23.0,
  gguf 0.19.0, numpy 2.4.6
Install:  pip install torch transformers gguf numpy

llama.cpp conventions this file follows (checked against llama.cpp's convert_hf_to_gguf.py,
gguf-py and src/llama-model.cpp):
  * Qwen2Model / Qwen3Model converters do not override tensor handling beyond the name map:
    HF Linear weights [out, in] are written as-is (GGUF ne0 = in), no Q/K permutation
    (only the LLaMA converter permutes).  llama_model_rope_type() returns NEOX for
    LLM_ARCH_QWEN2 and LLM_ARCH_QWEN3: rotate pairs (i, i + d/2).
  * TextModel.set_gguf_parameters writes {arch}.attention.key_length / value_length only when
    the HF config has a `head_dim` entry: Qwen3Config has it, Qwen2Config does not, so the
    qwen2 fixtures do NOT carry key_length/value_length (loader must default to n_embd/n_head).
  * Tied embeddings: the saved checkpoint has no lm_head.weight, so no `output.weight` tensor
    is written; llama.cpp then uses token_embd.weight as the output matrix.
  * GGUFWriter cannot write an empty array (it silently drops it) and llama.cpp's gpt2 vocab
    loader requires tokenizer.ggml.merges, so a small self-consistent byte-level BPE vocab with
    real merges is synthesised.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
import gguf
from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "tests" / "data" / "golden"
TOL = 1e-4

# --------------------------------------------------------------------------------------
# Fixture definitions
# --------------------------------------------------------------------------------------
VOCAB = 384
SPECS = [
    dict(
        name="qwen3-tiny", arch="qwen3", seed=1001,
        hf=dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                head_dim=32,  # deliberately != hidden/heads (16): key_length matters
                intermediate_size=96, vocab_size=VOCAB, rope_theta=1e6, rms_norm_eps=1e-6,
                tie_word_embeddings=True, max_position_embeddings=256),
    ),
    dict(
        name="qwen3-tiny-untied", arch="qwen3", seed=1002,
        hf=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                head_dim=16, intermediate_size=96, vocab_size=VOCAB, rope_theta=1e6, rms_norm_eps=1e-6,
                tie_word_embeddings=False, max_position_embeddings=256),
    ),
    dict(
        name="qwen2-tiny", arch="qwen2", seed=2001,
        hf=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=128, vocab_size=VOCAB, rope_theta=10000.0, rms_norm_eps=1e-6,
                tie_word_embeddings=False, max_position_embeddings=256),
    ),
    dict(
        name="qwen2-tiny-tied", arch="qwen2", seed=2002,
        hf=dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=128, vocab_size=VOCAB, rope_theta=10000.0, rms_norm_eps=1e-6,
                tie_word_embeddings=True, max_position_embeddings=256),
    ),
]

# Fixed token sequence (ids < VOCAB), shared by every fixture.  Drawn once from numpy seed 7.
TOKENS = [int(t) for t in np.random.default_rng(7).integers(0, VOCAB, size=12)]

# Special tokens of the synthetic vocabulary (Qwen style: <|endoftext|> is bos/pad, <|im_end|> eos).
TOK_ENDOFTEXT = VOCAB - 2
TOK_IM_END = VOCAB - 1


# --------------------------------------------------------------------------------------
# 1. Build the HF model with O(1) random weights
# --------------------------------------------------------------------------------------
def build_model(spec):
    torch.manual_seed(spec["seed"])
    cfg_cls, model_cls = (Qwen3Config, Qwen3ForCausalLM) if spec["arch"] == "qwen3" else (Qwen2Config, Qwen2ForCausalLM)
    config = cfg_cls(**spec["hf"], bos_token_id=TOK_ENDOFTEXT, eos_token_id=TOK_IM_END)
    config._attn_implementation = "eager"
    model = model_cls(config).to(torch.float32).eval()
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")

    # Re-initialise every parameter so activations are O(1) (HF's default std 0.02 makes a
    # 2-layer random model almost an identity map and leaves q/k norms irrelevant).
    g = torch.Generator().manual_seed(spec["seed"])
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied lm_head is the same Parameter: visited once
            if name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif name.endswith("lm_head.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            elif name.endswith("norm.weight"):  # input/post_attention/final norm and q_norm/k_norm
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):  # qwen2 q/k/v bias: clearly non-zero
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith(".weight") and p.dim() == 2:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))
            else:
                raise RuntimeError(f"unexpected parameter {name} {tuple(p.shape)}")

    tied = spec["hf"]["tie_word_embeddings"]
    same = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert same == tied, f"{spec['name']}: lm_head/embed tying is {same}, expected {tied}"
    return model


def hf_logits(model):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([TOKENS], dtype=torch.long))
    return out.logits[0].to(torch.float32).numpy()  # [n_tokens, vocab]


def checkpoint_tensors(model, tied):
    """Tensors as save_pretrained would store them (tied lm_head is not saved)."""
    sd = {k: v.detach().to(torch.float32).contiguous().numpy() for k, v in model.state_dict().items()}
    if tied:
        sd.pop("lm_head.weight", None)
    sd = {k: v for k, v in sd.items() if not k.endswith("rotary_emb.inv_freq")}
    return sd


# --------------------------------------------------------------------------------------
# 2. Synthetic byte-level BPE vocabulary (valid for llama.cpp's "gpt2" tokenizer model)
# --------------------------------------------------------------------------------------
def bytes_to_unicode():
    """GPT-2 byte -> printable unicode mapping (same table as transformers / tiktoken)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def make_vocab(n_vocab):
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]  # ids 0..255: single bytes, in byte order
    merges = []
    n_merged = n_vocab - 256 - 2
    space = b2u[ord(" ")]  # 'Ġ'
    letters = "abcdefghijklmnopqrstuvwxyz"
    pairs = [(space, c) for c in letters]
    pairs += [(a, b) for a in "tha" for b in letters if a != b]
    pairs += [(a, b) for a in letters[3:] for b in letters]
    seen = set(tokens)
    for a, b in pairs:
        if len(merges) == n_merged:
            break
        if a + b in seen:
            continue
        seen.add(a + b)
        tokens.append(a + b)
        merges.append(f"{a} {b}")
    assert len(merges) == n_merged
    tokens += ["<|endoftext|>", "<|im_end|>"]
    types = [int(gguf.TokenType.NORMAL)] * (n_vocab - 2) + [int(gguf.TokenType.CONTROL)] * 2
    assert len(tokens) == n_vocab and len(set(tokens)) == n_vocab
    return tokens, types, merges


# --------------------------------------------------------------------------------------
# 3. GGUF writer (mirrors convert_hf_to_gguf.py for Qwen2Model / Qwen3Model, outtype f32)
# --------------------------------------------------------------------------------------
def write_gguf(path, spec, hf_cfg: dict, tensors: dict):
    arch_enum = gguf.MODEL_ARCH.QWEN3 if spec["arch"] == "qwen3" else gguf.MODEL_ARCH.QWEN2
    arch = gguf.MODEL_ARCH_NAMES[arch_enum]
    n_layer = hf_cfg["num_hidden_layers"]
    w = GGUFWriter(str(path), arch)  # writes general.architecture

    # prepare_metadata
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(spec["name"])

    # TextModel.set_gguf_parameters
    w.add_block_count(n_layer)
    w.add_context_length(hf_cfg["max_position_embeddings"])
    w.add_embedding_length(hf_cfg["hidden_size"])
    w.add_feed_forward_length(hf_cfg["intermediate_size"])
    w.add_head_count(hf_cfg["num_attention_heads"])
    w.add_head_count_kv(hf_cfg["num_key_value_heads"])
    rope_theta = hf_cfg.get("rope_theta") or hf_cfg["rope_parameters"]["rope_theta"]
    w.add_rope_freq_base(float(rope_theta))
    w.add_layer_norm_rms_eps(hf_cfg["rms_norm_eps"])
    if hf_cfg.get("head_dim") is not None:  # Qwen3Config has it, Qwen2Config does not
        w.add_key_length(hf_cfg["head_dim"])
        w.add_value_length(hf_cfg["head_dim"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    # set_vocab -> _set_vocab_gpt2
    tokens, types, merges = make_vocab(hf_cfg["vocab_size"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(TOK_IM_END)
    w.add_pad_token_id(TOK_ENDOFTEXT)
    w.add_bos_token_id(TOK_ENDOFTEXT)
    w.add_add_bos_token(False)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    # tensors: HF name -> GGUF name through gguf-py's TensorNameMap, data as-is (F32)
    name_map = gguf.get_tensor_name_map(arch_enum, n_layer)
    written = []
    for hf_name, data in tensors.items():
        new_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise ValueError(f"cannot map tensor {hf_name}")
        w.add_tensor(new_name, np.ascontiguousarray(data, dtype=np.float32), raw_dtype=GGMLQuantizationType.F32)
        written.append(new_name)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return written


# --------------------------------------------------------------------------------------
# 4. Independent numpy reference forward pass, from the GGUF file only.
#    This is the executable spec for xelm's C++ implementation.
# --------------------------------------------------------------------------------------
def read_gguf(path):
    r = GGUFReader(str(path))
    kv = {}
    for f in r.fields.values():
        if f.name.startswith("tokenizer."):
            continue
        kv[f.name] = f.contents()
    ts = {}
    for t in r.tensors:
        assert t.tensor_type == GGMLQuantizationType.F32, t.name
        # GGUF shape is ne = [ne0, ne1] (ne0 fastest); the reader returns numpy [ne1, ne0],
        # i.e. exactly the HF [out, in] row-major layout.
        ts[t.name] = np.array(t.data, dtype=np.float32).reshape(tuple(reversed([int(x) for x in t.shape])))
    return kv, ts


def rms_norm(x, w, eps):
    # x * 1/sqrt(mean(x^2) + eps) * w, over the last axis (computed in float64 for a clean reference)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope_neox(x, pos, base):
    """NEOX-style RoPE (llama.cpp LLAMA_ROPE_TYPE_NEOX == HF rotate_half).
    x: [n_tokens, n_heads, d]. Element i (< d/2) is rotated together with element i + d/2
    by angle pos * base^(-2i/d)."""
    d = x.shape[-1]
    half = d // 2
    inv_freq = base ** (-np.arange(0, half, dtype=np.float64) * 2.0 / d)  # theta_i
    ang = pos[:, None].astype(np.float64) * inv_freq[None, :]              # [n_tokens, d/2]
    cos = np.cos(ang)[:, None, :]
    sin = np.sin(ang)[:, None, :]
    x0, x1 = x[..., :half], x[..., half:]
    return np.concatenate([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1)


def silu(x):
    return x / (1.0 + np.exp(-x))


def numpy_forward(path, tokens):
    kv, T = read_gguf(path)
    arch = kv["general.architecture"]
    n_layer = int(kv[f"{arch}.block_count"])
    n_embd = int(kv[f"{arch}.embedding_length"])
    n_head = int(kv[f"{arch}.attention.head_count"])
    n_head_kv = int(kv[f"{arch}.attention.head_count_kv"])
    head_dim = int(kv.get(f"{arch}.attention.key_length", n_embd // n_head))  # default n_embd/n_head
    eps = float(kv[f"{arch}.attention.layer_norm_rms_epsilon"])
    base = float(kv[f"{arch}.rope.freq_base"])
    g = n_head // n_head_kv  # query heads per kv head (GQA)
    f64 = lambda a: a.astype(np.float64)

    n = len(tokens)
    pos = np.arange(n)
    x = f64(T["token_embd.weight"])[tokens]                     # [n, n_embd]
    causal = np.triu(np.ones((n, n), dtype=bool), k=1)          # True above diagonal = masked

    for il in range(n_layer):
        p = f"blk.{il}."
        # ---- attention block ----
        h = rms_norm(x, f64(T[p + "attn_norm.weight"]), eps)
        q = h @ f64(T[p + "attn_q.weight"]).T                  # [n, n_head*head_dim]
        k = h @ f64(T[p + "attn_k.weight"]).T                  # [n, n_head_kv*head_dim]
        v = h @ f64(T[p + "attn_v.weight"]).T
        if p + "attn_q.bias" in T:                               # qwen2: q/k/v bias
            q = q + f64(T[p + "attn_q.bias"])
            k = k + f64(T[p + "attn_k.bias"])
            v = v + f64(T[p + "attn_v.bias"])
        q = q.reshape(n, n_head, head_dim)
        k = k.reshape(n, n_head_kv, head_dim)
        v = v.reshape(n, n_head_kv, head_dim)
        if p + "attn_q_norm.weight" in T:                        # qwen3: per-head RMSNorm BEFORE rope
            q = rms_norm(q, f64(T[p + "attn_q_norm.weight"]), eps)   # weight [head_dim], shared by heads
            k = rms_norm(k, f64(T[p + "attn_k_norm.weight"]), eps)
        q = rope_neox(q, pos, base)
        k = rope_neox(k, pos, base)
        out = np.empty((n, n_head, head_dim))
        for hq in range(n_head):
            hk = hq // g                                          # GQA: kv head for this q head
            s = (q[:, hq, :] @ k[:, hk, :].T) / np.sqrt(head_dim) # [n_q, n_k]
            s = np.where(causal, -np.inf, s)
            s = s - s.max(axis=-1, keepdims=True)
            a = np.exp(s)
            a = a / a.sum(axis=-1, keepdims=True)
            out[:, hq, :] = a @ v[:, hk, :]
        attn = out.reshape(n, n_head * head_dim) @ f64(T[p + "attn_output.weight"]).T
        x = x + attn                                              # residual
        # ---- feed-forward block (SwiGLU) ----
        h = rms_norm(x, f64(T[p + "ffn_norm.weight"]), eps)
        gate = h @ f64(T[p + "ffn_gate.weight"]).T
        up = h @ f64(T[p + "ffn_up.weight"]).T
        x = x + (silu(gate) * up) @ f64(T[p + "ffn_down.weight"]).T

    x = rms_norm(x, f64(T["output_norm.weight"]), eps)
    w_out = T["output.weight"] if "output.weight" in T else T["token_embd.weight"]  # tied -> token_embd
    return (x @ f64(w_out).T).astype(np.float32)                 # [n, n_vocab]


# --------------------------------------------------------------------------------------
# 5. Driver
# --------------------------------------------------------------------------------------
def main():
    torch.set_num_threads(1)  # bit-stable CPU results across runs
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    summary = []
    for spec in SPECS:
        name = spec["name"]
        model = build_model(spec)
        logits = hf_logits(model)
        hf_cfg = model.config.to_dict()
        tied = spec["hf"]["tie_word_embeddings"]

        gguf_path = OUT_DIR / f"{name}.gguf"
        names = write_gguf(gguf_path, spec, hf_cfg, checkpoint_tensors(model, tied))
        assert ("output.weight" in names) == (not tied)

        ref = numpy_forward(gguf_path, TOKENS)
        diff = float(np.max(np.abs(ref - logits)))
        print(f"{name:20s} layers={hf_cfg['num_hidden_layers']} tensors={len(names):3d} "
              f"logit std={logits.std():.3f} max|numpy-HF|={diff:.3e}")
        assert logits.shape == (len(TOKENS), VOCAB)
        assert diff < TOL, f"{name}: numpy reference deviates from HF by {diff}"
        # sanity: the model must actually do something position dependent
        assert logits.std() > 0.5 and len(set(np.argmax(logits, axis=-1).tolist())) > 1

        logits_file = f"{name}.logits.f32"
        logits.astype("<f4").tofile(OUT_DIR / logits_file)
        meta = {
            "tokens": TOKENS,
            "n_tokens": len(TOKENS),
            "n_vocab": VOCAB,
            "logits_file": logits_file,
            "logits_layout": "little-endian float32, row-major [n_tokens][n_vocab], all positions",
            "gguf_file": f"{name}.gguf",
            "architecture": spec["arch"],
            "seed": spec["seed"],
            "numpy_vs_hf_max_abs_diff": diff,
            "hf_config": json.loads(json.dumps(hf_cfg, default=str)),
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
            "gguf_version": _pkg_version("gguf"),
            "numpy_version": np.__version__,
        }
        (OUT_DIR / f"{name}.json").write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")
        summary.append((name, diff))

    total = sum(f.stat().st_size for f in OUT_DIR.iterdir() if f.is_file())
    print(f"wrote {len(summary)} fixtures to {OUT_DIR.relative_to(REPO_ROOT)} ({total / 1024:.0f} KiB total)")


def _pkg_version(pkg):
    from importlib.metadata import version
    return version(pkg)


if __name__ == "__main__":
    sys.exit(main())
