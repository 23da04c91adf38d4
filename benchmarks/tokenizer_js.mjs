// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The JavaScript port of the Hugging Face tokenizers (@lenml/tokenizers) encoding a text file,
// paragraph by paragraph (cut after each blank line, as bench_tokenizer does): prints one JSON
// line {"name", "bytes", "tokens", "seconds", "mb_per_s"} (the median of 3 runs).
// Usage: node tokenizer_js.mjs NODE_MODULES NAME TEXT_FILE
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, name, textPath] = process.argv.slice(2);
const mod = await import(
  pathToFileURL(join(nodeModules, "@lenml", `tokenizer-${name}`, "dist", "main.mjs")).href);
const t = mod.fromPreTrained();
const text = readFileSync(textPath, "utf8");
const bytes = Buffer.byteLength(text, "utf8");
const parts = [];
for (let at = 0; at < text.length; ) {
  const i = text.indexOf("\n\n", at);
  const end = i < 0 ? text.length : i + 2;
  parts.push(text.slice(at, end));
  at = end;
}
const times = [];
let tokens = 0;
for (let r = 0; r < 3; ++r) {
  const t0 = process.hrtime.bigint();
  tokens = 0;
  for (const p of parts) tokens += t.encode(p, { add_special_tokens: false }).length;
  times.push(Number(process.hrtime.bigint() - t0) / 1e9);
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({ name, bytes, tokens, seconds: times[1], mb_per_s: bytes / times[1] / 1e6 }));
