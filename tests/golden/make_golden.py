#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""Writes the golden files of tests/golden/data/ from plain PyTorch code (run with /usr/bin/python3,
Debian's python3-torch and numpy; the C++ tests need neither).

For every attention variant: a tiny LLaMA (2 layers, hidden 64, 4 heads, 2 kv heads, head_dim 16,
intermediate 96, vocab 97) with fixed seeds, stored as DIR/config.json + DIR/model.safetensors
(the safetensors format written by hand below), plus the prompt ids (input_ids.npy), the logits of
every prompt position computed in float64 from the stored (rounded) weights (logits.npy, float32)
and the greedy continuation of 8 tokens (greedy.json: recomputing the whole prefix each step, and
with a KV cache, which differs for sigmoid-bias only).
The forward pass is a faithful Hugging Face LlamaForCausalLM forward written out here, with the
attention weights P defined as docs/CLI.md's activation table says (an invisible pair has P = 0).
With the KV cache, the logits of every cached step are stored too (cached_logits.npy, [8, V]).

Layer recipes (recipe-*): the same model with the config keys of docs/CLI.md's "Model folders"
choosing another layer: LayerNorm (F.layer_norm, with biases) or RMSNorm, pre or post placement,
the GELU MLP (F.gelu, exact or tanh, with biases) or a Mixtral-style MoE (softmax router,
torch.topk, renormalized) instead of SwiGLU, and RoPE, ALiBi (the paper's slopes, computed here
for a head count that is not a power of two) or no positions.

Model families (family-*, `make_golden.py families` writes only these): Hugging Face configs of
the llama (LLaMA 3.1's, linear and dynamic rope_scaling; attention_bias), mistral, qwen2 (q/k/v
biases, tied embeddings, one checkpoint sharded with model.safetensors.index.json) and qwen3
(per-head q/k RMSNorm, head_dim != hidden / heads) model types, each with F32, F16 and BF16
weights, the forward pass written out as each transformers class computes it.

Attention gradients (grads/, `make_golden.py grads` writes only these): dq, dk, dv (and the
gate values' and sink logits' gradients) of one attention call by autograd in float64, for every
activation x mask family.

Module checks (tests/golden/data/modules/): RMSNorm, LayerNorm, RoPE in both forms, SwiGLU, the
GELU MLP, a Mixtral-style MoE and an attention layer with headwise and elementwise output gates,
each through torch's own functions (F.layer_norm, F.silu, F.gelu, torch.topk,
torch.softmax, torch.view_as_complex); and the encoder-decoder attentions (s2s_*): Bahdanau
additive attention and Luong's dot, general and concat scores over a padded encoder memory.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, INTER = 64, 2, 4, 2, 97, 96
HEAD_DIM = HIDDEN // HEADS
EPS, LN_EPS, THETA = 1e-5, 1e-5, 10000.0
NEW_TOKENS = 8

# The LLaMA recipe; RECIPES override it.
LLAMA = {"norm": "rms_norm", "placement": "pre", "mlp": "swiglu", "hidden_act": "silu",
         "positions": "rope", "heads": HEADS, "kv_heads": KV_HEADS, "head_dim": HEAD_DIM,
         "experts": 0, "top_k": 0}

# folder name -> (activation, gate, dtype, tied, seed)
VARIANTS = {
    "softmax": ("softmax", "none", "F32", False, 1),
    "sigmoid": ("sigmoid", "none", "F16", False, 2),
    "sigmoid-bias": ("sigmoid-bias", "none", "F16", False, 3),
    "head-softmax": ("head-softmax", "none", "F16", False, 4),
    "linear": ("linear", "none", "F16", True, 5),
    "normalized-sigmoid": ("normalized-sigmoid", "none", "F16", False, 6),
    "relu": ("relu", "none", "BF16", False, 7),
    "gated-headwise": ("softmax", "headwise", "F16", False, 8),
    "gated-elementwise": ("softmax", "elementwise", "F16", False, 9),
}

# folder name -> (activation, dtype, seed, recipe keys over LLAMA); the gate is none, untied.
RECIPES = {
    "recipe-layernorm-post-gelu": ("softmax", "F32", 21,
                                   {"norm": "layer_norm", "placement": "post", "mlp": "gelu",
                                    "hidden_act": "gelu"}),
    "recipe-moe": ("sigmoid-bias", "F16", 22, {"mlp": "moe", "experts": 4, "top_k": 2}),
    "recipe-alibi-gelu-tanh": ("softmax", "BF16", 23,
                               {"norm": "layer_norm", "mlp": "gelu", "hidden_act": "gelu_new",
                                "positions": "alibi", "heads": 6, "kv_heads": 3}),
    "recipe-nopos-post-rms": ("normalized-sigmoid", "F16", 24,
                              {"placement": "post", "positions": "none"}),
}

# Model families: Hugging Face configs (model_type, no attnkit_* keys) whose classes compute more
# than the LLaMA layer. folder prefix -> (seed, recipe keys over LLAMA); each is written with F32,
# F16 and BF16 weights (PREFIX-f32, -f16, -bf16), and family-qwen2-bf16 as two shards with a
# model.safetensors.index.json.
FAMILIES = {
    # LLaMA 3.1's rope_scaling; an original context of 64 puts the 8 frequencies of head_dim 16
    # in all three bands (kept, blended, divided by the factor).
    "family-llama3": (31, {"family": "llama", "theta": 500000.0,
                           "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                                            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                            "original_max_position_embeddings": 64}}),
    # attention_bias (q, k, v and o biases) and linear scaling, spelled with the older "type" key.
    "family-llama-linear": (32, {"family": "llama", "attention_bias": True,
                                 "rope_scaling": {"type": "linear", "factor": 4.0}}),
    # Dynamic NTK scaling past max_position_embeddings = 12: the 11-token prompt is below it, the
    # continuation's calls above it (each call rotates its rows with its own base).
    "family-llama-dynamic": (36, {"family": "llama", "max_pos": 12,
                                  "rope_scaling": {"type": "dynamic", "factor": 2.0}}),
    # A sliding window longer than every sequence here: the model is exact up to it.
    "family-mistral": (33, {"family": "mistral", "theta": 1000000.0, "sliding_window": 4096}),
    # Qwen2: q, k, v biases (o none), tied embeddings, a window that is off.
    # (Tied families take small embeddings, so the input token does not dominate the logits.)
    "family-qwen2": (34, {"family": "qwen2", "tied": True, "embed_std": 0.1, "theta": 1000000.0,
                          "sliding_window": 32768, "use_sliding_window": False}),
    # Qwen3: per-head RMSNorm of q and k before RoPE, a head_dim that is not hidden / heads.
    "family-qwen3": (35, {"family": "qwen3", "tied": True, "embed_std": 0.1, "head_dim": 32,
                          "theta": 1000000.0}),
}
FAMILY_CLASSES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                  "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
SHARDED = {"family-qwen2-bf16"}


def attention_bias(r):
    """Which projections have biases: (q, k, v), o."""
    fam = r.get("family")
    if fam == "qwen2":
        return True, False
    if fam in ("llama", "qwen3") and r.get("attention_bias", False):
        return True, True
    return False, False


# --------------------------------------------------------------------------------------------
# storage formats


def round_to(t, dtype):
    """The values a tensor takes when stored as dtype (returned in float64)."""
    if dtype == "F32":
        return t.to(torch.float32).to(torch.float64)
    if dtype == "F16":
        return t.to(torch.float16).to(torch.float64)
    if dtype == "BF16":
        return t.to(torch.bfloat16).to(torch.float64)
    raise ValueError(dtype)


def tensor_bytes(t, dtype):
    if dtype == "F64":
        return t.detach().to(torch.float64).numpy().astype("<f8").tobytes()
    if dtype == "F32":
        return t.to(torch.float32).numpy().astype("<f4").tobytes()
    if dtype == "F16":
        return t.to(torch.float32).numpy().astype("<f2").tobytes()
    if dtype == "BF16":
        return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype):
    """The safetensors layout: u64 LE header length, JSON header, data; header padded with spaces
    to a multiple of 8 so every tensor is aligned for zero-copy views."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        b = tensor_bytes(t, dtype)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = {"format": "pt", "generator": "attnkit tests/golden/make_golden.py"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def save_npy(path, a):
    np.save(path, np.ascontiguousarray(a))


# --------------------------------------------------------------------------------------------
# the model


def make_weights(seed, gate, tied, r=LLAMA):
    g = torch.Generator().manual_seed(seed)

    def normal(*shape, std):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * std

    hq, hkv, d = r["heads"], r["kv_heads"], r["head_dim"]
    layer_norm = r["norm"] == "layer_norm"
    w = {"model.embed_tokens.weight": normal(VOCAB, HIDDEN, std=r.get("embed_std", 1.0))}
    s = 1.0 / math.sqrt(HIDDEN)
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = 1.0 + normal(HIDDEN, std=0.1)
        if layer_norm:
            w[p + "input_layernorm.bias"] = normal(HIDDEN, std=0.1)
        w[p + "self_attn.q_proj.weight"] = normal(hq * d, HIDDEN, std=2 * s)
        w[p + "self_attn.k_proj.weight"] = normal(hkv * d, HIDDEN, std=2 * s)
        w[p + "self_attn.v_proj.weight"] = normal(hkv * d, HIDDEN, std=s)
        w[p + "self_attn.o_proj.weight"] = normal(HIDDEN, hq * d, std=s)
        qkv_bias, o_bias = attention_bias(r)
        if qkv_bias:
            w[p + "self_attn.q_proj.bias"] = normal(hq * d, std=0.3)
            w[p + "self_attn.k_proj.bias"] = normal(hkv * d, std=0.3)
            w[p + "self_attn.v_proj.bias"] = normal(hkv * d, std=0.3)
        if o_bias:
            w[p + "self_attn.o_proj.bias"] = normal(HIDDEN, std=0.3)
        if r.get("family") == "qwen3":
            w[p + "self_attn.q_norm.weight"] = 1.0 + normal(d, std=0.2)
            w[p + "self_attn.k_norm.weight"] = 1.0 + normal(d, std=0.2)
        if gate == "headwise":
            w[p + "self_attn.g_proj.weight"] = normal(hq, HIDDEN, std=2 * s)
        elif gate == "elementwise":
            w[p + "self_attn.g_proj.weight"] = normal(hq * d, HIDDEN, std=2 * s)
        w[p + "post_attention_layernorm.weight"] = 1.0 + normal(HIDDEN, std=0.1)
        if layer_norm:
            w[p + "post_attention_layernorm.bias"] = normal(HIDDEN, std=0.1)
        if r["mlp"] == "swiglu":
            w[p + "mlp.gate_proj.weight"] = normal(INTER, HIDDEN, std=s)
            w[p + "mlp.up_proj.weight"] = normal(INTER, HIDDEN, std=s)
            w[p + "mlp.down_proj.weight"] = normal(HIDDEN, INTER, std=1.0 / math.sqrt(INTER))
        elif r["mlp"] == "gelu":
            w[p + "mlp.fc1.weight"] = normal(INTER, HIDDEN, std=2 * s)
            w[p + "mlp.fc1.bias"] = normal(INTER, std=0.1)
            w[p + "mlp.fc2.weight"] = normal(HIDDEN, INTER, std=1.0 / math.sqrt(INTER))
            w[p + "mlp.fc2.bias"] = normal(HIDDEN, std=0.1)
        else:
            q = p + "block_sparse_moe."
            w[q + "gate.weight"] = normal(r["experts"], HIDDEN, std=2 * s)
            for e in range(r["experts"]):
                x = q + f"experts.{e}."
                w[x + "w1.weight"] = normal(INTER, HIDDEN, std=s)
                w[x + "w3.weight"] = normal(INTER, HIDDEN, std=s)
                w[x + "w2.weight"] = normal(HIDDEN, INTER, std=1.0 / math.sqrt(INTER))
    w["model.norm.weight"] = 1.0 + normal(HIDDEN, std=0.1)
    if layer_norm:
        w["model.norm.bias"] = normal(HIDDEN, std=0.1)
    if not tied:
        w["lm_head.weight"] = normal(VOCAB, HIDDEN, std=2 * s)
    return w


def rms_norm(x, weight, eps):
    # LlamaRMSNorm
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def norm(w, name, x, r):
    if r["norm"] == "layer_norm":
        return F.layer_norm(x, (x.shape[-1],), w[name + ".weight"], w[name + ".bias"], LN_EPS)
    return rms_norm(x, w[name + ".weight"], EPS)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def rope_inv_freq(dim, theta, scaling=None, seq_len=0):
    """RoPE's inverse frequencies, scaled as transformers' ROPE_INIT_FUNCTIONS do for the "linear",
    "llama3" and "dynamic" rope types (in float64 here). Dynamic: seq_len is the largest position
    of the call + 1, and the base grows once it passes max_position_embeddings (a freshly loaded
    model's dynamic_rope_update, call by call)."""
    kind = None if scaling is None else scaling.get("rope_type", scaling.get("type"))
    if kind == "dynamic" and seq_len > scaling["max_position_embeddings"]:
        factor, m = scaling["factor"], scaling["max_position_embeddings"]
        theta = theta * ((factor * seq_len / m) - (factor - 1)) ** (dim / (dim - 2))
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    if kind in (None, "default", "dynamic"):
        return inv_freq
    if kind == "linear":
        return inv_freq / scaling["factor"]
    assert kind == "llama3", kind
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_len = scaling["original_max_position_embeddings"]
    low_freq_wavelen, high_freq_wavelen = old_len / low, old_len / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return torch.where(medium, smoothed, scaled)


def rope_cos_sin(positions, dim, theta, scaling=None):
    inv_freq = rope_inv_freq(dim, theta, scaling, int(positions.max()) + 1)
    freqs = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def alibi_slopes(n):
    """The ALiBi paper's get_slopes: a geometric sequence for a power of two, else the slopes of
    the largest power of two below n, then every other slope of twice that many heads."""
    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]
    if math.log2(n).is_integer():
        return power_of_2(n)
    c = 2 ** math.floor(math.log2(n))
    return power_of_2(c) + alibi_slopes(2 * c)[0::2][: n - c]


def attention_probs(scores, visible, activation):
    """scores [H, N, Nk]; visible [N, Nk] bool; P per docs/CLI.md's table."""
    nk = scores.shape[-1]
    vis = visible[None].expand_as(scores)
    if activation == "softmax":
        p = torch.softmax(scores.masked_fill(~vis, float("-inf")), dim=-1)
    elif activation == "sigmoid":
        p = torch.sigmoid(scores)
    elif activation == "sigmoid-bias":
        p = torch.sigmoid(scores - math.log(nk))
    elif activation == "normalized-sigmoid":
        p = torch.sigmoid(scores) * vis
        p = p / p.sum(-1, keepdim=True)
    elif activation == "head-softmax":
        # softmax over the heads (dim 0 here; PyTorch's dim=1 of [B, H, N, Nk])
        p = torch.softmax(scores.masked_fill(~vis, float("-inf")), dim=0)
    elif activation == "linear":
        p = scores.clone()
    elif activation == "relu":
        p = torch.relu(scores)
    else:
        raise ValueError(activation)
    return torch.where(vis, p, torch.zeros_like(p))


def mlp(w, p, x, r, route_gaps):
    if r["mlp"] == "swiglu":
        return (F.silu(x @ w[p + "mlp.gate_proj.weight"].T) * (x @ w[p + "mlp.up_proj.weight"].T)) @ w[
            p + "mlp.down_proj.weight"
        ].T
    if r["mlp"] == "gelu":
        approximate = "none" if r["hidden_act"] == "gelu" else "tanh"
        hid = F.gelu(x @ w[p + "mlp.fc1.weight"].T + w[p + "mlp.fc1.bias"], approximate=approximate)
        return hid @ w[p + "mlp.fc2.weight"].T + w[p + "mlp.fc2.bias"]
    # MixtralSparseMoeBlock: softmax router, top-k, weights renormalized over the chosen k
    q = p + "block_sparse_moe."
    probs = torch.softmax(x @ w[q + "gate.weight"].T, dim=-1)
    top = torch.topk(probs, r["top_k"] + 1, dim=-1)
    # the gap between the k-th and the next expert: a float32 model must route the same way
    route_gaps.append(float((top.values[:, -2] - top.values[:, -1]).min()))
    weights = top.values[:, :-1] / top.values[:, :-1].sum(-1, keepdim=True)
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(r["top_k"]):
            e = int(top.indices[t, j])
            xe = q + f"experts.{e}."
            y = (F.silu(x[t] @ w[xe + "w1.weight"].T) * (x[t] @ w[xe + "w3.weight"].T)) @ w[
                xe + "w2.weight"
            ].T
            out[t] += weights[t, j] * y
    return out


def llama_forward(w, ids, activation, tied, cache=None, r=LLAMA, route_gaps=None):
    """LlamaForCausalLM.forward in float64 for one sequence, with the layer recipe r; returns
    logits [N, V] of `ids`. With a cache (a dict filled by earlier calls) the ids continue the
    cached sequence: their rows attend to every cached key (bottom-right causal alignment), and
    sigmoid-bias uses n = the key count of this call, as docs/CLI.md defines it for decode steps."""
    route_gaps = [] if route_gaps is None else route_gaps
    hq, hkv, d = r["heads"], r["kv_heads"], r["head_dim"]
    n = len(ids)
    p0 = cache.get("length", 0) if cache is not None else 0
    h = w["model.embed_tokens.weight"][torch.tensor(ids)]
    scaling = r.get("rope_scaling")
    if scaling is not None and scaling.get("type") == "dynamic":
        scaling = dict(scaling, max_position_embeddings=r["max_pos"])
    cos, sin = rope_cos_sin(torch.arange(p0, p0 + n), d, r.get("theta", THETA), scaling)
    qkv_bias, o_bias = attention_bias(r)
    nk = p0 + n
    qpos, kpos = torch.arange(p0, p0 + n), torch.arange(nk)
    visible = kpos[None, :] <= qpos[:, None]
    alibi = torch.tensor(alibi_slopes(hq), dtype=torch.float64)[:, None, None] * (
        qpos[:, None] - kpos[None, :]
    ).to(torch.float64)[None]
    post = r["placement"] == "post"
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        residual = h
        x = h if post else norm(w, p + "input_layernorm", h, r)
        q = x @ w[p + "self_attn.q_proj.weight"].T
        k = x @ w[p + "self_attn.k_proj.weight"].T
        v = x @ w[p + "self_attn.v_proj.weight"].T
        if qkv_bias:
            q = q + w[p + "self_attn.q_proj.bias"]
            k = k + w[p + "self_attn.k_proj.bias"]
            v = v + w[p + "self_attn.v_proj.bias"]
        q, k, v = q.view(n, hq, d), k.view(n, hkv, d), v.view(n, hkv, d)
        if r.get("family") == "qwen3":  # Qwen3RMSNorm over head_dim, before the transpose
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], EPS)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], EPS)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        if r["positions"] == "rope":
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        if cache is not None:
            if l in cache:
                k = torch.cat((cache[l][0], k), dim=1)
                v = torch.cat((cache[l][1], v), dim=1)
            cache[l] = (k, v)
        k = k.repeat_interleave(hq // hkv, dim=0)  # repeat_kv
        v = v.repeat_interleave(hq // hkv, dim=0)
        scores = q @ k.transpose(1, 2) / math.sqrt(d)
        if r["positions"] == "alibi":
            scores = scores - alibi
        probs = attention_probs(scores, visible, activation)
        o = probs @ v  # [H, N, D]
        gk = p + "self_attn.g_proj.weight"
        if gk in w:
            g = x @ w[gk].T
            if w[gk].shape[0] == hq:
                o = o * torch.sigmoid(g).T[:, :, None]
            else:
                o = o * torch.sigmoid(g.view(n, hq, d).transpose(0, 1))
        o = o.transpose(0, 1).reshape(n, hq * d)
        o = o @ w[p + "self_attn.o_proj.weight"].T
        if o_bias:
            o = o + w[p + "self_attn.o_proj.bias"]
        h = residual + o
        if post:
            h = norm(w, p + "input_layernorm", h, r)
        residual = h
        x = h if post else norm(w, p + "post_attention_layernorm", h, r)
        h = residual + mlp(w, p, x, r, route_gaps)
        if post:
            h = norm(w, p + "post_attention_layernorm", h, r)
    if cache is not None:
        cache["length"] = nk
    h = norm(w, "model.norm", h, r)
    head = w["model.embed_tokens.weight"] if tied else w["lm_head.weight"]
    return h @ head.T


def greedy_cached(w, prompt, activation, tied, steps, r=LLAMA, route_gaps=None):
    """Greedy decoding with a KV cache: the prompt in one call, then one token per call.
    Returns the tokens, the smallest top-2 margin and the logits of each step [steps, V]."""
    cache, out, margins, rows = {}, [], [], []
    logits = llama_forward(w, prompt, activation, tied, cache, r, route_gaps)[-1]
    for _ in range(steps):
        rows.append(logits)
        top2 = torch.topk(logits, 2).values
        margins.append(float(top2[0] - top2[1]))
        out.append(int(torch.argmax(logits)))
        logits = llama_forward(w, [out[-1]], activation, tied, cache, r, route_gaps)[-1]
    return out, min(margins), torch.stack(rows)


def greedy(w, prompt, activation, tied, steps, r=LLAMA, route_gaps=None):
    ids, margins = list(prompt), []
    for _ in range(steps):
        logits = llama_forward(w, ids, activation, tied, None, r, route_gaps)[-1]
        top2 = torch.topk(logits, 2).values
        margins.append(float(top2[0] - top2[1]))
        ids.append(int(torch.argmax(logits)))
    return ids[len(prompt):], min(margins)


def write_variant(name, activation, gate, dtype, tied, seed, recipe=None):
    out = os.path.join(DATA, name)
    os.makedirs(out, exist_ok=True)
    r = dict(LLAMA, **(recipe or {}))
    w = {k: round_to(v, dtype) for k, v in make_weights(seed, gate, tied, r).items()}
    fam = r.get("family")
    config = {
        "architectures": [FAMILY_CLASSES.get(fam, "LlamaForCausalLM")],
        "model_type": fam or "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "num_attention_heads": r["heads"],
        "num_key_value_heads": r["kv_heads"],
        "num_hidden_layers": LAYERS,
        "rms_norm_eps": EPS,
        "rope_theta": r.get("theta", THETA),
        "vocab_size": VOCAB,
        "tie_word_embeddings": tied,
        "hidden_act": r["hidden_act"],
        "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype],
        "attnkit_activation": activation,
    }
    if fam is not None:
        # A Hugging Face config of the family: no attnkit_* keys.
        del config["attnkit_activation"]
        config.update({"head_dim": r["head_dim"], "max_position_embeddings": r.get("max_pos", 32768),
                       "rope_scaling": r.get("rope_scaling")})
        for key in ("attention_bias", "sliding_window", "use_sliding_window"):
            if key in r:
                config[key] = r[key]
    elif recipe is not None:
        config.update({"head_dim": r["head_dim"], "attnkit_norm": r["norm"],
                       "attnkit_norm_placement": r["placement"], "attnkit_mlp": r["mlp"],
                       "attnkit_positions": r["positions"]})
        if r["norm"] == "layer_norm":
            config["layer_norm_eps"] = LN_EPS
        if r["mlp"] == "moe":
            config.update({"num_local_experts": r["experts"], "num_experts_per_tok": r["top_k"],
                           "norm_topk_prob": True})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    for stale in os.listdir(out):
        if stale.endswith(".safetensors") or stale.endswith(".index.json"):
            os.remove(os.path.join(out, stale))
    if name in SHARDED:
        # Two shards in Hugging Face's layout, split in the middle of the tensor list.
        names = list(w)
        shards = [names[: len(names) // 2], names[len(names) // 2:]]
        weight_map = {}
        for i, part in enumerate(shards):
            file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            write_safetensors(os.path.join(out, file), {k: w[k] for k in part}, dtype)
            weight_map.update({k: file for k in part})
        total = sum(len(tensor_bytes(t, dtype)) for t in w.values())
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
            f.write("\n")
    else:
        write_safetensors(os.path.join(out, "model.safetensors"), w, dtype)
    # A prompt whose greedy continuation has a clear winner at every step (float32 rounding in
    # the C++ model must not flip an argmax), and whose MoE routing has no near tie.
    g = torch.Generator().manual_seed(1000 + seed)
    for attempt in range(50):
        prompt = torch.randint(0, VOCAB, (11,), generator=g).tolist()
        gaps = []
        cont, margin = greedy(w, prompt, activation, tied, NEW_TOKENS, r, gaps)
        cached, cmargin, cached_logits = greedy_cached(w, prompt, activation, tied, NEW_TOKENS, r,
                                                       gaps)
        if min(margin, cmargin) > 2e-3 and min(gaps, default=1.0) > 1e-4:
            break
    else:
        sys.exit(f"{name}: no prompt with a clear greedy margin")
    logits = llama_forward(w, prompt, activation, tied, None, r)
    save_npy(os.path.join(out, "input_ids.npy"), np.array(prompt, dtype=np.int64))
    save_npy(os.path.join(out, "logits.npy"), logits.numpy().astype(np.float32))
    save_npy(os.path.join(out, "cached_logits.npy"), cached_logits.numpy().astype(np.float32))
    with open(os.path.join(out, "greedy.json"), "w") as f:
        # greedy: recomputing the whole prefix each step; greedy_cached: with a KV cache. They
        # differ only for sigmoid-bias, whose b = -ln n depends on each call's key count.
        json.dump({"prompt_ids": prompt, "greedy": cont, "greedy_cached": cached,
                   "min_margin": min(margin, cmargin),
                   "activation": activation, "gate": gate, "dtype": dtype, "tied": tied}, f)
        f.write("\n")
    print(f"{name:26s} dtype {dtype:4s} tied {tied!s:5s} logits std {float(logits.std()):.3f} "
          f"greedy {cont} cached {cached} margin {min(margin, cmargin):.4f}"
          + (f" route gap {min(gaps):.2e}" if gaps else ""))


# --------------------------------------------------------------------------------------------
# module checks


def write_modules():
    out = os.path.join(DATA, "modules")
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(77)

    def f32(*shape, std=1.0, mean=0.0):  # float32-exact values, kept in float64
        return (mean + std * torch.randn(*shape, generator=g, dtype=torch.float64)).float().double()

    def save(name, t):  # inputs are float32-exact and stored as float32; results as float64
        a = t.numpy()
        if a.dtype == np.float64 and not name.endswith("_y"):
            assert np.array_equal(a.astype(np.float32).astype(np.float64), a), name
            a = a.astype(np.float32)
        save_npy(os.path.join(out, name + ".npy"), a)

    # norms (torch's LayerNorm; LlamaRMSNorm as in transformers)
    x = f32(7, 37, std=2.0, mean=0.5)
    wn, bn = f32(37, std=0.2, mean=1.0), f32(37, std=0.3)
    save("norm_x", x), save("norm_w", wn), save("norm_b", bn)
    save("rmsnorm_y", rms_norm(x, wn, 1e-6))
    save("layernorm_y", F.layer_norm(x, (37,), wn, bn, 1e-5))

    # RoPE: HF rotate-half and Meta's interleaved complex form, positions not 0..N-1
    q = f32(2, 3, 5, 16)  # [B, H, N, D]
    pos = torch.tensor([0, 3, 7, 1, 100])
    save("rope_x", q), save("rope_pos", pos.to(torch.int64))
    cos, sin = rope_cos_sin(pos, 16, 10000.0)
    save("rope_half_y", q * cos + rotate_half(q) * sin)
    freqs = pos.double()[:, None] * (1.0 / (10000.0 ** (torch.arange(0, 16, 2).double() / 16)))[None]
    qc = torch.view_as_complex(q.reshape(2, 3, 5, 8, 2).contiguous())
    save("rope_interleaved_y", torch.view_as_real(qc * torch.polar(torch.ones_like(freqs), freqs)).reshape(2, 3, 5, 16))

    # SwiGLU (LlamaMLP) and GELU MLPs
    xm = f32(9, 24)
    gw, uw, dw = f32(40, 24, std=0.3), f32(40, 24, std=0.3), f32(24, 40, std=0.2)
    for n, t in [("ffn_x", xm), ("swiglu_gate", gw), ("swiglu_up", uw), ("swiglu_down", dw)]:
        save(n, t)
    save("swiglu_y", F.linear(F.silu(F.linear(xm, gw)) * F.linear(xm, uw), dw))
    b1, b2 = f32(40), f32(24)
    save("gelu_b1", b1), save("gelu_b2", b2)
    save("gelu_exact_y", F.linear(F.gelu(F.linear(xm, gw, b1)), dw, b2))
    save("gelu_tanh_y", F.linear(F.gelu(F.linear(xm, gw, b1), approximate="tanh"), dw, b2))

    # Mixtral's sparse MoE block: softmax router, top-2 of 4, renormalized
    e, k = 4, 2
    router = f32(e, 24, std=0.5)
    experts = [(f32(16, 24, std=0.3), f32(16, 24, std=0.3), f32(24, 16, std=0.3)) for _ in range(e)]
    save("moe_router", router)
    for i, (a, b, c) in enumerate(experts):
        save(f"moe_gate{i}", a), save(f"moe_up{i}", b), save(f"moe_down{i}", c)
    rw = torch.softmax(F.linear(xm, router), dim=1)
    rw, sel = torch.topk(rw, k, dim=-1)
    rw = rw / rw.sum(dim=-1, keepdim=True)
    y = torch.zeros_like(xm)
    for t in range(xm.shape[0]):
        for j in range(k):
            a, b, c = experts[int(sel[t, j])]
            y[t] += rw[t, j] * F.linear(F.silu(F.linear(xm[t], a)) * F.linear(xm[t], b), c)
    save("moe_y", y)

    # Gated attention layer: SDPA (causal) with GQA, RoPE, then sigmoid gate, then o_proj
    n, hid, hq, hkv, d = 6, 32, 4, 2, 8
    xa = f32(n, hid)
    wq, wk, wv, wo = f32(hq * d, hid, std=0.3), f32(hkv * d, hid, std=0.3), f32(hkv * d, hid, std=0.2), f32(hid, hq * d, std=0.2)
    save("gate_x", xa)
    for nm, t in [("gate_wq", wq), ("gate_wk", wk), ("gate_wv", wv), ("gate_wo", wo)]:
        save(nm, t)
    cos, sin = rope_cos_sin(torch.arange(n), d, 10000.0)
    qh = F.linear(xa, wq).view(n, hq, d).transpose(0, 1)
    kh = F.linear(xa, wk).view(n, hkv, d).transpose(0, 1)
    vh = F.linear(xa, wv).view(n, hkv, d).transpose(0, 1)
    qh, kh = qh * cos + rotate_half(qh) * sin, kh * cos + rotate_half(kh) * sin
    kh, vh = kh.repeat_interleave(hq // hkv, 0), vh.repeat_interleave(hq // hkv, 0)
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    o = torch.softmax((qh @ kh.transpose(1, 2) / math.sqrt(d)).masked_fill(~causal, float("-inf")), -1) @ vh
    for kind, rows in [("headwise", hq), ("elementwise", hq * d)]:
        wg = f32(rows, hid, std=0.4)
        gl = F.linear(xa, wg)
        gate = torch.sigmoid(gl).T[:, :, None] if kind == "headwise" else torch.sigmoid(gl.view(n, hq, d).transpose(0, 1))
        save(f"gate_{kind}_wg", wg)
        save(f"gate_{kind}_y", F.linear((o * gate).transpose(0, 1).reshape(n, hq * d), wo))
    save("gate_none_y", F.linear(o.transpose(0, 1).reshape(n, hq * d), wo))


def write_seq2seq():
    """Bahdanau and Luong attention of decoder states over a padded encoder memory, written the
    way the usual PyTorch seq2seq code writes them (nn.Linear weights, masked_fill(-inf) and
    softmax over the source keys, bmm with the memory). Own generator: the files above do not
    change when this part does."""
    out = os.path.join(DATA, "modules")
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(4242)

    def f32(*shape, std=1.0):
        return (std * torch.randn(*shape, generator=g, dtype=torch.float64)).float().double()

    def save(name, t):  # inputs float32-exact, stored as float32; results (_y) as float64
        a = t.numpy()
        if a.dtype == np.float64 and not name.endswith("_y"):
            a = a.astype(np.float32)
        save_npy(os.path.join(out, "s2s_" + name + ".npy"), a)

    b, nq, nk, dq, dk, att = 3, 4, 7, 6, 10, 8
    query, query_dot, memory = f32(b, nq, dq), f32(b, nq, dk, std=0.5), f32(b, nk, dk)
    lengths = torch.tensor([7, 3, 5])
    visible = (torch.arange(nk)[None, :] < lengths[:, None])[:, None, :]  # [B, 1, Nk]
    for n, t in [("query", query), ("query_dot", query_dot), ("memory", memory)]:
        save(n, t)
    save("lengths", lengths.to(torch.int64))

    def attend(e, name):
        p = torch.softmax(e.masked_fill(~visible, float("-inf")), dim=-1)
        save(name + "_weights_y", p)
        save(name + "_context_y", torch.bmm(p, memory))

    # Bahdanau: e = v . tanh(W_q s + b_q + W_k h + b_k)
    wq, bq, wk, bk, v = f32(att, dq, std=0.5), f32(att, std=0.3), f32(att, dk, std=0.5), f32(att, std=0.3), f32(att)
    for n, t in [("bahdanau_wq", wq), ("bahdanau_bq", bq), ("bahdanau_wk", wk), ("bahdanau_bk", bk), ("bahdanau_v", v)]:
        save(n, t)
    e = torch.tanh(F.linear(query, wq, bq)[:, :, None, :] + F.linear(memory, wk, bk)[:, None, :, :]) @ v
    attend(e, "bahdanau")
    # Luong dot: e = s . h
    attend(torch.bmm(query_dot, memory.transpose(1, 2)), "luong_dot")
    # Luong general: e = (W s) . h, W = nn.Linear(Dq, Dk, bias=False).weight
    wg = f32(dk, dq, std=0.4)
    save("luong_general_w", wg)
    attend(torch.bmm(F.linear(query, wg), memory.transpose(1, 2)), "luong_general")
    # Luong concat: e = v . tanh(W [s; h]), the concatenation built literally
    wc, vc = f32(att, dq + dk, std=0.4), f32(att)
    save("luong_concat_w", wc), save("luong_concat_v", vc)
    cat = torch.cat((query[:, :, None, :].expand(b, nq, nk, dq), memory[:, None, :, :].expand(b, nq, nk, dk)), dim=-1)
    attend(torch.tanh(F.linear(cat, wc)) @ vc, "luong_concat")


def grad_probs(s, vis, activation, cap=2.0, sinks=None):
    """P for the attention gradients' goldens: docs/CLI.md's table, with masked scores filled
    by a finite -1e30 (a row or head set with no visible pair then has finite, zeroed P, and
    autograd gives its scores a zero gradient instead of NaN). s [B, H, Nq, Nk], vis likewise."""
    nk = s.shape[-1]
    fill = torch.full_like(s, -1e30)
    if activation in ("softmax", "softcap"):
        z = cap * torch.tanh(s / cap) if activation == "softcap" else s
        z = torch.where(vis, z, fill)
        if sinks is not None:  # one more column per row: the sink logit, which takes no value
            zs = sinks[None, :, None, None].expand(*z.shape[:-1], 1)
            p = torch.softmax(torch.cat([z, zs], -1), -1)[..., :-1]
        else:
            p = torch.softmax(z, -1)
    elif activation == "sigmoid":
        p = torch.sigmoid(s)
    elif activation == "sigmoid-bias":
        p = torch.sigmoid(s - math.log(nk))
    elif activation == "normalized-sigmoid":
        p = torch.sigmoid(s) * vis
        p = p / p.sum(-1, keepdim=True).clamp_min(1e-300)
    elif activation == "head-softmax":
        p = torch.softmax(torch.where(vis, s, fill), dim=1)
    elif activation == "linear":
        p = s.clone()
    elif activation == "relu":
        p = torch.relu(s)
    else:
        raise ValueError(activation)
    return torch.where(vis, p, torch.zeros_like(p))


GRAD_ACTIVATIONS = ["softmax", "softcap", "sigmoid", "sigmoid-bias", "normalized-sigmoid",
                    "head-softmax", "linear", "relu"]


def write_grads():
    """tests/golden/data/grads/: attention's gradients by autograd in float64, for every
    activation x mask family (none, causal, sliding=17, padding, document), and softmax + causal
    with a headwise gate, an elementwise gate and sink logits. B=2, Hq=4, Hkv=2, Nq=67, Nk=70,
    D=Dv=4 (several 64-row and 64-key tiles, GQA); q, k, v, dout float32-exact, stored float32;
    the gradients (d*_<case>) float64. The loss is sum(dout * out)."""
    out = os.path.join(DATA, "grads")
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(123)
    B, HQ, HKV, NQ, NK, D = 2, 4, 2, 67, 70, 4

    def f32(*shape, std=1.0):
        return (std * torch.randn(*shape, generator=g, dtype=torch.float64)).float().double()

    def save(name, t):
        a = t.detach().numpy()
        if name in ("q", "k", "v", "dout", "gate_heads", "gate", "sinks"):
            assert np.array_equal(a.astype(np.float32).astype(np.float64), a), name
            a = a.astype(np.float32)
        save_npy(os.path.join(out, name + ".npy"), a)

    q, k, v, dout = f32(B, HQ, NQ, D, std=1.5), f32(B, HKV, NK, D, std=1.5), f32(B, HKV, NK, D), f32(B, HQ, NQ, D)
    gh, ge, zs = f32(B, HQ, NQ, std=1.5), f32(B, HQ, NQ, D, std=1.5), f32(HQ)
    lengths = [NK, 30]
    seg = torch.zeros(B, NK, dtype=torch.int64)
    seg[0, 20:], seg[0, 45:] = 1, 2
    seg[1, 33:] = 1
    for n, t in [("q", q), ("k", k), ("v", v), ("dout", dout), ("gate_heads", gh), ("gate", ge), ("sinks", zs)]:
        save(n, t)
    save_npy(os.path.join(out, "lengths.npy"), np.array(lengths, dtype=np.int64))
    save_npy(os.path.join(out, "segments.npy"), seg.numpy())
    i = torch.arange(NQ)[:, None] + (NK - NQ)  # bottom-right aligned positions
    j = torch.arange(NK)[None, :]
    masks = {
        "none": torch.ones(B, 1, NQ, NK, dtype=torch.bool),
        "causal": (j <= i)[None, None].expand(B, 1, NQ, NK),
        "sliding": ((j <= i) & (i - j < 17))[None, None].expand(B, 1, NQ, NK),
        "padding": torch.stack([(j < n).expand(NQ, NK) for n in lengths])[:, None],
        "document": torch.stack([seg[b][i.clamp(0, NK - 1)] == seg[b][j] for b in range(B)])[:, None],
    }

    def run(name, activation, mask, gate=None, sinks=False):
        qq, kk, vv = q.clone().requires_grad_(), k.clone().requires_grad_(), v.clone().requires_grad_()
        ghh, gee, zz = gh.clone().requires_grad_(), ge.clone().requires_grad_(), zs.clone().requires_grad_()
        kr, vr = kk.repeat_interleave(HQ // HKV, 1), vv.repeat_interleave(HQ // HKV, 1)
        s = qq @ kr.transpose(-1, -2) / math.sqrt(D)
        vis = masks[mask].expand(B, HQ, NQ, NK)
        p = grad_probs(s, vis, activation, sinks=zz if sinks else None)
        o = p @ vr
        if gate == "headwise":
            o = o * torch.sigmoid(ghh)[..., None]
        elif gate == "elementwise":
            o = o * torch.sigmoid(gee)
        (o * dout).sum().backward()
        save("dq_" + name, qq.grad), save("dk_" + name, kk.grad), save("dv_" + name, vv.grad)
        if gate == "headwise":
            save("dgate_" + name, ghh.grad)
        if gate == "elementwise":
            save("dgate_" + name, gee.grad)
        if sinks:
            save("dsinks_" + name, zz.grad)

    for a in GRAD_ACTIVATIONS:
        for m in masks:
            run(f"{a}_{m}", a, m)
    run("softmax_causal_headwise", "softmax", "causal", gate="headwise")
    run("softmax_causal_elementwise", "softmax", "causal", gate="elementwise")
    run("softmax_causal_sinks", "softmax", "causal", sinks=True)


TRAIN_CASES = {
    # name -> (activation, norm, mlp, headwise gate, tied, seed)
    "softmax_rms_swiglu": ("softmax", "rms_norm", "swiglu", False, False, 301),
    "sigmoid_ln_gelu_gate": ("sigmoid", "layer_norm", "gelu", True, True, 302),
}


def write_train():
    """tests/golden/data/train/: train::Model's loss and parameter gradients by autograd in
    float64, and the parameters after one clip_grad_norm_(1.0) + AdamW step, for two tiny
    2-layer decoders (vocab 13, hidden 8, 2 heads, 1 kv head, intermediate 12, RoPE theta 1e4,
    eps 1e-5), B=2 sequences of N=7 tokens:
    softmax_rms_swiglu: softmax + causal, RMSNorm, SwiGLU, untied LM head;
    sigmoid_ln_gelu_gate: sigmoid + causal (P = sigmoid(s), masked pairs 0), LayerNorm with
    biases, tanh-GELU MLP with biases, a headwise sigmoid output gate (g_proj [Hq, H]), tied
    embeddings.
    Per case: params.safetensors, grads.safetensors and stepped.safetensors (F64, HF names), ids.npy
    and targets.npy (int32 [B*N], some targets -1: ignored) and loss.npy (float64 [1], the mean
    cross-entropy over the counted targets). AdamW: lr 1e-2, betas (0.9, 0.999), eps 1e-8, weight
    decay 0.1 on the 2-D weight matrices only (norm weights and biases in a group without)."""
    B, N, V, H, HQ, HKV, I, L = 2, 7, 13, 8, 2, 1, 12, 2
    D, THETA_T, EPS_T = H // HQ, 10000.0, 1e-5
    for name, (activation, norm_kind, mlp, gated, tied, seed) in TRAIN_CASES.items():
        out = os.path.join(DATA, "train", name)
        os.makedirs(out, exist_ok=True)
        g = torch.Generator().manual_seed(seed)

        def normal(*shape, std=0.3, mean=0.0):
            return mean + std * torch.randn(*shape, generator=g, dtype=torch.float64)

        ln = norm_kind == "layer_norm"
        w = {"model.embed_tokens.weight": normal(V, H)}  # the model's order (train/model.hpp)
        for l in range(L):
            p = f"model.layers.{l}."
            w[p + "input_layernorm.weight"] = normal(H, std=0.1, mean=1.0)
            if ln:
                w[p + "input_layernorm.bias"] = normal(H, std=0.1)
            w[p + "self_attn.q_proj.weight"] = normal(HQ * D, H)
            w[p + "self_attn.k_proj.weight"] = normal(HKV * D, H)
            w[p + "self_attn.v_proj.weight"] = normal(HKV * D, H)
            if gated:
                w[p + "self_attn.g_proj.weight"] = normal(HQ, H)
            w[p + "self_attn.o_proj.weight"] = normal(H, HQ * D)
            w[p + "post_attention_layernorm.weight"] = normal(H, std=0.1, mean=1.0)
            if ln:
                w[p + "post_attention_layernorm.bias"] = normal(H, std=0.1)
            if mlp == "swiglu":
                w[p + "mlp.gate_proj.weight"] = normal(I, H)
                w[p + "mlp.up_proj.weight"] = normal(I, H)
                w[p + "mlp.down_proj.weight"] = normal(H, I)
            else:
                w[p + "mlp.fc1.weight"] = normal(I, H)
                w[p + "mlp.fc1.bias"] = normal(I, std=0.1)
                w[p + "mlp.fc2.weight"] = normal(H, I)
                w[p + "mlp.fc2.bias"] = normal(H, std=0.1)
        w["model.norm.weight"] = normal(H, std=0.1, mean=1.0)
        if ln:
            w["model.norm.bias"] = normal(H, std=0.1)
        if not tied:
            w["lm_head.weight"] = normal(V, H)
        ids = torch.randint(0, V, (B * N,), generator=g)
        targets = torch.randint(0, V, (B * N,), generator=g)
        targets[[3, 9, 13]] = -1
        write_safetensors(os.path.join(out, "params.safetensors"), w, "F64")
        save_npy(os.path.join(out, "ids.npy"), ids.numpy().astype(np.int32))
        save_npy(os.path.join(out, "targets.npy"), targets.numpy().astype(np.int32))

        params = {k: v.clone().requires_grad_() for k, v in w.items()}

        def nrm(prefix, x):
            if ln:
                return F.layer_norm(x, (H,), params[prefix + ".weight"], params[prefix + ".bias"],
                                    EPS_T)
            return rms_norm(x, params[prefix + ".weight"], EPS_T)

        cos, sin = rope_cos_sin(torch.arange(N), D, THETA_T)
        causal = torch.ones(N, N, dtype=torch.bool).tril()
        x = params["model.embed_tokens.weight"][ids]  # [B*N, H]
        for l in range(L):
            p = f"model.layers.{l}."
            a = nrm(p + "input_layernorm", x)
            q = F.linear(a, params[p + "self_attn.q_proj.weight"]).view(B, N, HQ, D).transpose(1, 2)
            k = F.linear(a, params[p + "self_attn.k_proj.weight"]).view(B, N, HKV, D).transpose(1, 2)
            v = F.linear(a, params[p + "self_attn.v_proj.weight"]).view(B, N, HKV, D).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            k, v = k.repeat_interleave(HQ // HKV, 1), v.repeat_interleave(HQ // HKV, 1)
            s = q @ k.transpose(-1, -2) / math.sqrt(D)
            if activation == "softmax":
                pr = torch.softmax(s.masked_fill(~causal, float("-inf")), -1)
            else:
                pr = torch.where(causal, torch.sigmoid(s), torch.zeros_like(s))
            o = pr @ v  # [B, HQ, N, D]
            if gated:
                gl = F.linear(a, params[p + "self_attn.g_proj.weight"]).view(B, N, HQ)
                o = o * torch.sigmoid(gl).transpose(1, 2)[..., None]
            o = o.transpose(1, 2).reshape(B * N, HQ * D)
            h1 = x + F.linear(o, params[p + "self_attn.o_proj.weight"])
            m = nrm(p + "post_attention_layernorm", h1)
            if mlp == "swiglu":
                f = F.linear(F.silu(F.linear(m, params[p + "mlp.gate_proj.weight"]))
                             * F.linear(m, params[p + "mlp.up_proj.weight"]),
                             params[p + "mlp.down_proj.weight"])
            else:
                f = F.linear(F.gelu(F.linear(m, params[p + "mlp.fc1.weight"], params[p + "mlp.fc1.bias"]),
                                    approximate="tanh"),
                             params[p + "mlp.fc2.weight"], params[p + "mlp.fc2.bias"])
            x = h1 + f
        fin = nrm("model.norm", x)
        logits = F.linear(fin, params["model.embed_tokens.weight" if tied else "lm_head.weight"])
        loss = F.cross_entropy(logits, targets, ignore_index=-1, reduction="mean")
        loss.backward()
        save_npy(os.path.join(out, "loss.npy"), np.array([loss.item()], dtype=np.float64))
        write_safetensors(os.path.join(out, "grads.safetensors"),
                          {k: t.grad for k, t in params.items()}, "F64")
        plist = list(params.values())
        gnorm = torch.nn.utils.clip_grad_norm_(plist, 1.0)
        opt = torch.optim.AdamW(
            [{"params": [t for t in plist if t.dim() == 2], "weight_decay": 0.1},
             {"params": [t for t in plist if t.dim() != 2], "weight_decay": 0.0}],
            lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
        opt.step()
        write_safetensors(os.path.join(out, "stepped.safetensors"),
                          {k: t.detach() for k, t in params.items()}, "F64")
        print(f"train/{name:22s} loss {loss.item():.6f} grad norm {float(gnorm):.4f} "
              f"max |grad| {max(float(t.grad.abs().max()) for t in plist):.4f}")


def write_families():
    for prefix, (seed, recipe) in FAMILIES.items():
        for dtype in ("F32", "F16", "BF16"):
            write_variant(f"{prefix}-{dtype.lower()}", "softmax", "none", dtype,
                          recipe.get("tied", False), seed, recipe)


def main():
    """Writes every golden folder; `make_golden.py families` writes the model families only."""
    torch.set_num_threads(1)
    if sys.argv[1:] == ["families"]:
        write_families()
        return
    if sys.argv[1:] == ["grads"]:
        write_grads()
        return
    if sys.argv[1:] == ["train"]:
        write_train()
        return
    for name, spec in VARIANTS.items():
        write_variant(name, *spec)
    for name, (activation, dtype, seed, recipe) in RECIPES.items():
        write_variant(name, activation, "none", dtype, False, seed, recipe)
    write_families()
    write_modules()
    write_seq2seq()
    write_grads()
    write_train()
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(DATA) for f in fs)
    print(f"total {total / 1e6:.2f} MB in {DATA}")


if __name__ == "__main__":
    main()
