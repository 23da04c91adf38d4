// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Checkpoint: the safetensors files of a model folder, one model.safetensors or the shards that
// model.safetensors.index.json lists, looked up by tensor name.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/io/dtype.hpp"
#include "attnkit/io/json.hpp"
#include "attnkit/io/safetensors.hpp"

namespace attnkit::model {

/// The weights of a model folder DIR: DIR/model.safetensors when it exists, else the shards of
/// DIR/model.safetensors.index.json (Hugging Face's sharded layout: its "weight_map" maps each
/// tensor name to a file of DIR). The index is checked against the shards: every listed tensor
/// must be in its file, and every tensor of a shard must be listed there; a shard name must be a
/// plain file name in DIR. Any mismatch is an io::file_error naming the file and the tensor.
class Checkpoint {
 public:
  /// Opens the weights of `dir` (memory-mapped unless `mode` says read).
  static Checkpoint open(const std::string& dir, io::LoadMode mode = io::LoadMode::map) {
    namespace fs = std::filesystem;
    Checkpoint c;
    const std::string single = dir + "/model.safetensors";
    const std::string index = dir + "/model.safetensors.index.json";
    if (fs::exists(single) || !fs::exists(index)) {
      c.add(std::make_shared<io::SafetensorsFile>(io::SafetensorsFile::open(single, mode)));
      c.source_ = single;
      return c;
    }
    c.source_ = index;
    const json::Value doc = json::parse_file(index);
    if (!doc.is_object() || !doc.contains("weight_map") || !doc.at("weight_map").is_object())
      throw io::file_error("attnkit: " + index +
                           ": expected an object with a \"weight_map\" object");
    std::map<std::string, std::size_t> shard_of_file;
    std::map<std::string, std::string> listed;  // tensor -> shard file name
    for (const auto& [name, v] : doc.at("weight_map").as_object()) {
      if (!v.is_string())
        throw io::file_error("attnkit: " + index + ": weight_map[\"" + name +
                             "\"] is not a file name");
      const std::string& f = v.as_string();
      if (f.empty() || f == "." || f == ".." || f.find('/') != std::string::npos ||
          f.find('\\') != std::string::npos)
        throw io::file_error("attnkit: " + index + ": weight_map[\"" + name + "\"] is \"" + f +
                             "\", not a file name in the folder");
      listed[name] = f;
      if (shard_of_file.count(f) == 0) {
        shard_of_file[f] = c.files_.size();
        c.add(
            std::make_shared<io::SafetensorsFile>(io::SafetensorsFile::open(dir + "/" + f, mode)));
      }
    }
    if (c.files_.empty()) throw io::file_error("attnkit: " + index + ": the weight_map is empty");
    // Both directions: the index's tensors are where it says, the shards hold nothing else.
    for (const auto& [name, f] : listed) {
      const io::SafetensorsFile& file = *c.files_[shard_of_file[f]];
      if (!file.contains(name))
        throw io::file_error("attnkit: " + index + ": tensor '" + name + "' is listed in " + f +
                             ", which does not hold it");
    }
    for (const auto& file : c.files_)
      for (const std::string& name : file->names()) {
        const auto it = listed.find(name);
        if (it == listed.end() || dir + "/" + it->second != file->path())
          throw io::file_error("attnkit: " + file->path() + ": tensor '" + name +
                               "' is not listed for this file in " + index);
      }
    return c;
  }

  /// Whether some file holds the tensor.
  bool contains(const std::string& name) const { return where_.count(name) != 0; }

  /// The file that holds `name`; throws io::file_error naming the checkpoint and the tensor.
  const io::SafetensorsFile& file_of(const std::string& name) const {
    const auto it = where_.find(name);
    if (it == where_.end())
      throw io::file_error("attnkit: " + source_ + ": no tensor '" + name + "'");
    return *files_[it->second];
  }

  /// Every file, in the order they were opened.
  const std::vector<std::shared_ptr<io::SafetensorsFile>>& files() const noexcept { return files_; }

  /// model.safetensors or model.safetensors.index.json, with the folder.
  const std::string& source() const noexcept { return source_; }

 private:
  void add(std::shared_ptr<io::SafetensorsFile> f) {
    for (const std::string& name : f->names())
      if (!where_.emplace(name, files_.size()).second)
        throw io::file_error("attnkit: " + f->path() + ": tensor '" + name + "' is also in " +
                             files_[where_[name]]->path());
    files_.push_back(std::move(f));
  }

  std::vector<std::shared_ptr<io::SafetensorsFile>> files_;
  std::map<std::string, std::size_t> where_;
  std::string source_;
};

}  // namespace attnkit::model
