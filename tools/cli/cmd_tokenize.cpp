// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit tokenize: text to token ids and back with a model folder's tokenizer.json.
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "attnkit/io/json.hpp"
#if defined(ATTNKIT_CLI_TEXT)
#include "attnkit/text/tokenizer.hpp"
#endif

#include "cli.hpp"
#include "commands.hpp"

namespace attnkit::cli {

int cmd_tokenize(int argc, char** argv) {
  Args args(
      "tokenize",
      "usage: attnkit tokenize --model DIR (--text T | --file F | --ids I,J,...)\n"
      "                        [--no-special]\n\n"
      "Reads DIR/tokenizer.json (or the file DIR itself) and prints one JSON line:\n"
      "  --text T, --file F  {\"ids\": [...], \"tokens\": [...]}: the ids of the UTF-8 text\n"
      "                      (with the special tokens the file's post-processor adds, such\n"
      "                      as a BOS, unless --no-special) and their vocabulary strings;\n"
      "  --ids I,J,...       {\"text\": \"...\"}: the decoded text (bytes that are not whole\n"
      "                      UTF-8 become U+FFFD; --no-special leaves special tokens out).\n"
      "A tokenizer.json with a component attnkit does not implement is an error naming it.\n",
      argc, argv, {"model", "text", "file", "ids"}, {"no-special"});
  if (!args.positional().empty())
    throw usage_error("tokenize: unexpected argument '" + args.positional().front() + "'");
  const std::string model = args.require("model");
  const int given = int(args.has("text")) + int(args.has("file")) + int(args.has("ids"));
  if (given != 1) throw usage_error("tokenize: give exactly one of --text, --file and --ids");
#if defined(ATTNKIT_CLI_TEXT)
  const text::Tokenizer tok = text::Tokenizer::load(model);
  const bool special = !args.has("no-special");
  if (args.has("ids")) {
    std::vector<std::int32_t> ids;
    std::stringstream list(args.require("ids"));
    for (std::string item; std::getline(list, item, ',');) {
      std::int32_t v = 0;
      const auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
      if (ec != std::errc() || p != item.data() + item.size() || v < 0)
        throw usage_error("tokenize: --ids: '" + item + "' is not a token id");
      ids.push_back(v);
    }
    std::printf("{\"text\": %s}\n", json::Value::string(tok.decode(ids, !special)).dump().c_str());
    return 0;
  }
  std::string input;
  if (args.has("text")) {
    input = args.require("text");
  } else {
    const std::string path = args.require("file");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw error("attnkit: tokenize: cannot read " + path);
    input.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::vector<std::int32_t> ids = tok.encode(input, special);
  json::Value::Array jids, jtok;
  for (std::int32_t id : ids) {
    jids.push_back(json::Value::integer(id));
    jtok.push_back(json::Value::string(tok.token(id)));
  }
  std::printf("{\"ids\": %s, \"tokens\": %s}\n", json::Value::array(jids).dump().c_str(),
              json::Value::array(jtok).dump().c_str());
  return 0;
#else
  (void)model;
  throw error(
      "attnkit: tokenize: this attnkit was built without the attnkit::text component "
      "(install libpcre2-dev and libutf8proc-dev and configure again)");
#endif
}

}  // namespace attnkit::cli
