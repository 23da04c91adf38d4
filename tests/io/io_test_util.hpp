// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Helpers of the io tests: a temporary directory, raw file bytes, hex blobs, byte mutation.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <string_view>

namespace attnkit_test {

/// A fresh directory under the system temp directory, removed with its contents at scope exit.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    const auto base = std::filesystem::temp_directory_path();
    for (int attempt = 0; attempt < 100; ++attempt) {
      dir_ = base / ("attnkit_io_test_" + std::to_string(rd()) + "_" + std::to_string(attempt));
      if (std::filesystem::create_directory(dir_)) return;
    }
    throw std::runtime_error("cannot create a temporary directory");
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  const std::filesystem::path& path() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

/// Writes a file from scratch. An existing file is removed first rather than truncated: ext4
/// flushes a file that is truncated and rewritten (auto_da_alloc), which makes loops of rewrites
/// of one path slow.
inline void write_bytes(const std::string& path, std::string_view bytes) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  return out;
}

/// Little-endian bytes of an unsigned integer of `n` bytes.
inline std::string le_bytes(std::uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

/// One random mutation of `s`: flip bits of a few bytes, overwrite with a random byte,
/// truncate, duplicate or delete a range, or insert random bytes.
inline std::string mutate(std::string s, std::mt19937& rng) {
  std::uniform_int_distribution<int> kind(0, 5);
  std::uniform_int_distribution<int> byte(0, 255);
  const auto pos = [&](std::size_t n) {
    return n == 0 ? std::size_t{0} : std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  switch (kind(rng)) {
    case 0: {
      const int flips = 1 + static_cast<int>(pos(4));
      for (int k = 0; k < flips && !s.empty(); ++k)
        s[pos(s.size())] ^= static_cast<char>(1 << pos(8));
      break;
    }
    case 1:
      if (!s.empty()) s[pos(s.size())] = static_cast<char>(byte(rng));
      break;
    case 2:
      s.resize(pos(s.size() + 1));
      break;
    case 3: {
      const std::size_t a = pos(s.size() + 1);
      const std::size_t len = pos(16) + 1;
      s.insert(a, s.substr(a, len));
      break;
    }
    case 4: {
      const std::size_t a = pos(s.size() + 1);
      s.erase(a, pos(16) + 1);
      break;
    }
    default: {
      const std::size_t a = pos(s.size() + 1);
      std::string ins;
      for (std::size_t k = 0, n = pos(8) + 1; k < n; ++k) ins += static_cast<char>(byte(rng));
      s.insert(a, ins);
    }
  }
  return s;
}

}  // namespace attnkit_test
