#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""attnkit generate keeps BF16 weights in place: on a 130 MB BF16 model folder written here
(random weights, 8 layers, hidden 512, vocabulary 32000, untied head), the peak resident set of
`generate` stays within the file size + the KV cache + 10%, where widening the weights to
float32 would double it. Registered only for builds without sanitizers (their shadow memory and
allocator change the resident set). Standard library only.
Usage: test_cli_generate_rss.py path/to/attnkit"""
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
LAYERS, HIDDEN, HEADS, KV_HEADS, HEAD_DIM, INTER, VOCAB = 8, 512, 8, 2, 64, 2048, 32000
NEW_TOKENS, PROMPT = 8, [1, 17, 5, 60]


def random_bf16(n):
    """n random BF16 values of magnitude in [2^-7, 2^-6): random mantissas and signs."""
    low = os.urandom(n)
    high = os.urandom(n).translate(bytes(0x3c if b & 1 else 0xbc for b in range(256)))
    buf = bytearray(2 * n)
    buf[0::2] = low
    buf[1::2] = high
    return bytes(buf)


def write_model(folder):
    tensors = [("model.embed_tokens.weight", [VOCAB, HIDDEN])]
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        tensors += [(p + "input_layernorm.weight", [HIDDEN]),
                    (p + "post_attention_layernorm.weight", [HIDDEN]),
                    (p + "self_attn.q_proj.weight", [HEADS * HEAD_DIM, HIDDEN]),
                    (p + "self_attn.k_proj.weight", [KV_HEADS * HEAD_DIM, HIDDEN]),
                    (p + "self_attn.v_proj.weight", [KV_HEADS * HEAD_DIM, HIDDEN]),
                    (p + "self_attn.o_proj.weight", [HIDDEN, HEADS * HEAD_DIM]),
                    (p + "mlp.gate_proj.weight", [INTER, HIDDEN]),
                    (p + "mlp.up_proj.weight", [INTER, HIDDEN]),
                    (p + "mlp.down_proj.weight", [HIDDEN, INTER])]
    tensors += [("model.norm.weight", [HIDDEN]), ("lm_head.weight", [VOCAB, HIDDEN])]
    header, offset = {}, 0
    for name, shape in tensors:
        n = 1
        for s in shape:
            n *= s
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + 2 * n]}
        offset += 2 * n
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    path = os.path.join(folder, "model.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for name, shape in tensors:
            n = header[name]["data_offsets"][1] // 2 - header[name]["data_offsets"][0] // 2
            f.write(b"\x80\x3f" * n if len(shape) == 1 else random_bf16(n))  # norms: 1.0
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "hidden_size": HIDDEN, "intermediate_size": INTER,
                   "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
                   "num_hidden_layers": LAYERS, "vocab_size": VOCAB, "head_dim": HEAD_DIM,
                   "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
                   "torch_dtype": "bfloat16"}, f)
    return os.path.getsize(path)


with tempfile.TemporaryDirectory() as tmp:
    size = write_model(tmp)
    # The peak resident set of the generate process alone: a child that runs it and reports
    # its children's maximum (in KiB on Linux).
    probe = ("import resource, subprocess, sys\n"
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
             "sys.stderr.write(r.stdout + r.stderr)\n")
    r = subprocess.run([sys.executable, "-c", probe, BIN, "generate", "--model", tmp, "--prompt-ids",
                        ",".join(map(str, PROMPT)), "--max-new-tokens", str(NEW_TOKENS), "--greedy"],
                       capture_output=True, text=True, timeout=600)
    fields = r.stdout.split()
    if r.returncode != 0 or len(fields) != 2 or fields[0] != "0":
        print(f"test_cli_generate_rss: generate failed: {r.stdout} {r.stderr}")
        sys.exit(1)
    out = json.loads(r.stderr.strip().splitlines()[-1])
    if len(out.get("ids", [])) != NEW_TOKENS:
        print(f"test_cli_generate_rss: expected {NEW_TOKENS} tokens: {out}")
        sys.exit(1)
    peak = int(fields[1]) * 1024
    kv = LAYERS * 2 * KV_HEADS * HEAD_DIM * (len(PROMPT) + NEW_TOKENS) * 4
    bound = 1.10 * (size + kv)
    print(f"file {size / 1e6:.1f} MB, KV cache {kv / 1e3:.1f} kB, peak RSS {peak / 1e6:.1f} MB, "
          f"bound {bound / 1e6:.1f} MB (float32 weights would take {2 * size / 1e6:.1f} MB)")
    if peak > bound:
        print("test_cli_generate_rss: peak RSS above the bound")
        sys.exit(1)
print("test_cli_generate_rss: passed")
