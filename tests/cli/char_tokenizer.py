# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""A character-level BPE tokenizer.json for the golden models' 97 ids, shared by the CLI tests:
"<unk>" is 0, the printable ASCII characters are 1..95, and one merge makes "he" (96).
Standard library only."""
import json
import os
import shutil

VOCAB = {"<unk>": 0, **{chr(c): c - 31 for c in range(32, 127)}, "he": 96}
SPELLING = {v: k for k, v in VOCAB.items()}


def model_folder(golden, folder):
    """Copies the golden model's config.json and weights into `folder` and writes the
    tokenizer.json there."""
    for f in ("config.json", "model.safetensors"):
        shutil.copy(os.path.join(golden, f), folder)
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump({"added_tokens": [], "normalizer": None, "pre_tokenizer": None,
                   "post_processor": None, "decoder": {"type": "Fuse"},
                   "model": {"type": "BPE", "vocab": VOCAB, "merges": ["h e"],
                             "unk_token": "<unk>"}}, f)


def encode(text):
    """The ids the tokenizer gives: "he" merged, every other character alone."""
    ids, i = [], 0
    while i < len(text):
        n = 2 if text[i:i + 2] == "he" else 1
        ids.append(VOCAB[text[i:i + n]])
        i += n
    return ids
