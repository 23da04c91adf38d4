// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The tokenizer oracle: the JavaScript port of the Hugging Face tokenizers (@lenml/tokenizers)
// encodes every line of a corpus, and the whole corpus, with each packaged tokenizer.
// Usage: node oracle.mjs NODE_MODULES CORPUS OUT.json NAME...   (NAME: llama3, qwen3, llama2)
// Writes {"NAME": {"file": tokenizer.json path, "texts": [...], "ids": [[...]],
// "ids_special": [[...]], "decoded": [...]}}; decoded without the clean-up of spaces before
// punctuation that tokenizer_config.json may ask of Python decode (attnkit decodes exactly).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, corpusPath, outPath, ...names] = process.argv.slice(2);
const corpus = readFileSync(corpusPath, "utf8");
const texts = corpus.split("\n").filter((_, i, a) => i < a.length - 1 || a[i] !== "");
texts.push(corpus);
const out = {};
for (const name of names) {
  const dir = join(nodeModules, "@lenml", `tokenizer-${name}`);
  const mod = await import(pathToFileURL(join(dir, "dist", "main.mjs")).href);
  const t = mod.fromPreTrained();
  const ids = texts.map((s) => t.encode(s, { add_special_tokens: false }));
  out[name] = {
    file: join(dir, "models", "tokenizer.json"),
    texts,
    ids,
    ids_special: texts.map((s) => t.encode(s)),
    decoded: ids.map((x) => (x.length ? t.decode(x, { clean_up_tokenization_spaces: false }) : "")),
  };
}
writeFileSync(outPath, JSON.stringify(out));
