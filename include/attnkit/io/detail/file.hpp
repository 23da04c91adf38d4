// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Private file plumbing of attnkit/io: checked reads and writes, and whole-file memory maps.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <system_error>
#include <utility>

#include "attnkit/core/aligned.hpp"
#include "attnkit/io/dtype.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define ATTNKIT_IO_HAVE_MMAP 1
#else
#define ATTNKIT_IO_HAVE_MMAP 0
#endif

namespace attnkit::io::detail {

/// Throws file_error "attnkit: <path>: <what>".
[[noreturn]] inline void fail(const std::string& path, const std::string& what) {
  throw file_error("attnkit: " + path + ": " + what);
}

/// The size of a regular file; throws file_error when it is missing or not a regular file.
inline std::uint64_t regular_file_size(const std::string& path) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) fail(path, "cannot open: no such file");
  if (!std::filesystem::is_regular_file(st)) fail(path, "cannot open: not a regular file");
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot read the file size: " + ec.message());
  return static_cast<std::uint64_t>(size);
}

/// A file read from the start, in order; every read is checked against the end of the file.
class InputFile {
 public:
  explicit InputFile(std::string path) : path_(std::move(path)) {
    size_ = regular_file_size(path_);
    f_ = std::fopen(path_.c_str(), "rb");
    if (f_ == nullptr) fail(path_, "cannot open: " + std::generic_category().message(errno));
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile() {
    if (f_ != nullptr) std::fclose(f_);
  }

  const std::string& path() const noexcept { return path_; }
  std::uint64_t size() const noexcept { return size_; }
  std::uint64_t position() const noexcept { return pos_; }
  std::uint64_t remaining() const noexcept { return size_ - pos_; }

  /// Reads exactly n bytes; `what` names the part being read in the error message.
  void read(void* dst, std::size_t n, const char* what) {
    if (n > remaining())
      fail(path_, std::string("file is truncated: ") + what + " needs " + std::to_string(n) +
                      " bytes at offset " + std::to_string(pos_) + ", the file has " +
                      std::to_string(size_) + " bytes");
    if (n != 0 && std::fread(dst, 1, n, f_) != n)
      fail(path_, std::string("read error in ") + what + " (the file changed while being read?)");
    pos_ += n;
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  std::uint64_t size_ = 0;
  std::uint64_t pos_ = 0;
};

/// A file written from the start; removed again when destroyed before commit().
class OutputFile {
 public:
  explicit OutputFile(std::string path) : path_(std::move(path)) {
    f_ = std::fopen(path_.c_str(), "wb");
    if (f_ == nullptr)
      fail(path_, "cannot open for writing: " + std::generic_category().message(errno));
  }
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile() {
    if (f_ != nullptr) {
      std::fclose(f_);
      std::remove(path_.c_str());
    }
  }

  void write(const void* src, std::size_t n) {
    if (n != 0 && std::fwrite(src, 1, n, f_) != n)
      fail(path_, "write error: " + std::generic_category().message(errno));
  }

  /// Flushes and closes; throws when that fails (the partial file is removed).
  void commit() {
    std::FILE* f = f_;
    f_ = nullptr;
    if (std::fclose(f) != 0) {
      std::remove(path_.c_str());
      fail(path_, "write error on close: " + std::generic_category().message(errno));
    }
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

/// The whole contents of a file: memory-mapped read-only when possible, otherwise read into a
/// 64-byte aligned buffer. Move-only; views into bytes() live as long as this object.
class FileBytes {
 public:
  FileBytes() = default;

  /// \param allow_map false forces the read path (tests use it to cover both paths)
  static FileBytes load(const std::string& path, bool allow_map) {
    FileBytes fb;
#if ATTNKIT_IO_HAVE_MMAP
    if (allow_map) {
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        const int err = errno;
        (void)regular_file_size(path);  // a clearer message for a missing or special file
        fail(path, "cannot open: " + std::generic_category().message(err));
      }
      struct stat st {};
      if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(path, "cannot open: not a regular file");
      }
      const auto size = static_cast<std::uint64_t>(st.st_size);
      if (size == 0 || size > std::numeric_limits<std::size_t>::max()) {
        ::close(fd);
        if (size == 0) return fb;
        fail(path, "file too large to map");
      }
      void* p = ::mmap(nullptr, static_cast<std::size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
      ::close(fd);
      if (p != MAP_FAILED) {
        fb.map_ = p;
        fb.data_ = static_cast<const std::byte*>(p);
        fb.size_ = static_cast<std::size_t>(size);
        return fb;
      }
      // Some file systems cannot map: fall through to reading.
    }
#else
    (void)allow_map;
#endif
    InputFile in(path);
    if (in.size() > std::numeric_limits<std::size_t>::max()) fail(path, "file too large to read");
    fb.size_ = static_cast<std::size_t>(in.size());
    fb.owned_ = make_aligned<std::byte>(fb.size_);
    in.read(fb.owned_.get(), fb.size_, "the file contents");
    fb.data_ = fb.owned_.get();
    return fb;
  }

  FileBytes(FileBytes&& o) noexcept { swap(o); }
  FileBytes& operator=(FileBytes&& o) noexcept {
    FileBytes tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;
  ~FileBytes() {
#if ATTNKIT_IO_HAVE_MMAP
    if (map_ != nullptr) ::munmap(map_, size_);
#endif
  }

  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  std::size_t size() const noexcept { return size_; }
  /// Whether the contents are a memory map (zero-copy) rather than a heap copy.
  bool mapped() const noexcept { return map_ != nullptr; }

 private:
  void swap(FileBytes& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(owned_, o.owned_);
    std::swap(map_, o.map_);
  }

  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  aligned_ptr<std::byte> owned_;
  void* map_ = nullptr;
};

}  // namespace attnkit::io::detail
