// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The tokenizer oracle: the JavaScript port of the Hugging Face tokenizers (@lenml/tokenizers)
// encodes every line of a corpus, and the whole corpus, with each packaged tokenizer.
// Usage: node oracle.mjs NODE_MODULES CORPUS OUT.json NAME...   (NAME: llama3, qwen3, llama2,
// llama2-metaspace: llama2's file with the Metaspace pre-tokenizer and decoder in place of its
// "▁" normalizers, as newer conversions of SentencePiece models write it; the derived file is
// written beside OUT.json)
// Writes {"NAME": {"file": tokenizer.json path, "texts": [...], "ids": [[...]],
// "ids_special": [[...]], "decoded": [...]}}; decoded without the clean-up of spaces before
// punctuation that tokenizer_config.json may ask of Python decode (attnkit decodes exactly).
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, corpusPath, outPath, ...names] = process.argv.slice(2);
const corpus = readFileSync(corpusPath, "utf8");
const texts = corpus.split("\n").filter((_, i, a) => i < a.length - 1 || a[i] !== "");
texts.push(corpus);
const out = {};
// The Metaspace form of a SentencePiece file. The JavaScript port prepends only with
// add_prefix_space, so the file carries it beside prepend_scheme (which attnkit reads).
const metaspace = { type: "Metaspace", replacement: "\u2581", add_prefix_space: true,
                    prepend_scheme: "first", split: false };
const overrides = {
  "llama2-metaspace": { normalizer: null, pre_tokenizer: metaspace,
                        decoder: { type: "Sequence",
                                   decoders: [metaspace, { type: "ByteFallback" }, { type: "Fuse" }] } },
};
for (const name of names) {
  const base = name.split("-")[0];
  const dir = join(nodeModules, "@lenml", `tokenizer-${base}`);
  const mod = await import(pathToFileURL(join(dir, "dist", "main.mjs")).href);
  const over = overrides[name];
  const t = over ? mod.fromPreTrained({ tokenizerJSON: over }) : mod.fromPreTrained();
  let file = join(dir, "models", "tokenizer.json");
  if (over) {
    file = join(dirname(outPath), `tokenizer-${name}.json`);
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(join(dir, "models", "tokenizer.json"), "utf8")), ...over }));
  }
  const ids = texts.map((s) => t.encode(s, { add_special_tokens: false }));
  out[name] = {
    file,
    texts,
    ids,
    ids_special: texts.map((s) => t.encode(s)),
    decoded: ids.map((x) => (x.length ? t.decode(x, { clean_up_tokenization_spaces: false }) : "")),
  };
}
writeFileSync(outPath, JSON.stringify(out));
