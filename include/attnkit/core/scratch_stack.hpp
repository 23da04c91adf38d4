// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A per-thread stack of scratch memory for the temporaries of the module layers (projections,
// residual branches, FFN activations): a frame takes zeroed, 64-byte aligned arrays and gives
// them back when it ends. The blocks are kept for the life of the thread, so once a call of some
// shape has run, later calls of that shape or smaller allocate nothing (a decode step of
// model::Decoder after the first token).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <vector>

#include "attnkit/core/aligned.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/core/tensor_view.hpp"

namespace attnkit {

/// A stack of grow-only blocks: take() bumps within the current block and moves to the next one
/// (inserting a larger one when the next is too small); release() returns to a mark. Pointers
/// stay valid until the frame that took them ends: blocks never move or shrink.
class ScratchStack {
 public:
  /// A position on the stack (what a frame restores).
  struct Mark {
    std::size_t block = 0, top = 0;
  };

  Mark mark() const noexcept { return {cur_, top_}; }
  void release(Mark m) noexcept {
    cur_ = m.block;
    top_ = m.top;
  }

  /// `bytes` zeroed bytes, 64-byte aligned.
  std::byte* take(std::size_t bytes) {
    bytes = (std::max<std::size_t>(bytes, 1) + 63) / 64 * 64;
    if (cur_ < blocks_.size() && top_ + bytes <= blocks_[cur_].cap) {
      std::byte* p = blocks_[cur_].data.get() + top_;
      top_ += bytes;
      std::memset(p, 0, bytes);
      return p;
    }
    // The next block, or a new one of at least twice the last size when that one is too small.
    const std::size_t next = blocks_.empty() ? 0 : cur_ + 1;
    if (next >= blocks_.size() || blocks_[next].cap < bytes) {
      const std::size_t cap =
          std::max(bytes, blocks_.empty() ? std::size_t{1} << 16 : 2 * blocks_[cur_].cap);
      blocks_.insert(blocks_.begin() + static_cast<std::ptrdiff_t>(next),
                     Block{make_aligned<std::byte>(cap), cap});
    }
    cur_ = next;
    top_ = bytes;
    std::memset(blocks_[cur_].data.get(), 0, bytes);
    return blocks_[cur_].data.get();
  }

  /// Bytes held in blocks (what the thread keeps).
  std::size_t capacity() const noexcept {
    std::size_t c = 0;
    for (const Block& b : blocks_) c += b.cap;
    return c;
  }

 private:
  struct Block {
    aligned_ptr<std::byte> data;
    std::size_t cap = 0;
  };
  std::vector<Block> blocks_;
  std::size_t cur_ = 0, top_ = 0;
};

/// The calling thread's scratch stack.
inline ScratchStack& thread_scratch_stack() {
  thread_local ScratchStack stack;
  return stack;
}

/// A frame on the calling thread's scratch stack: what it takes is valid (and zeroed when taken)
/// until it ends. Frames nest (a layer's frame inside the decoder's) and must end in reverse
/// order, as scopes do.
class ScratchFrame {
 public:
  ScratchFrame() : stack_(thread_scratch_stack()), mark_(stack_.mark()) {}
  ScratchFrame(const ScratchFrame&) = delete;
  ScratchFrame& operator=(const ScratchFrame&) = delete;
  ~ScratchFrame() { stack_.release(mark_); }

  /// n zeroed elements of U (a trivially copyable type).
  template <class U>
  std::span<U> array(index_t n) {
    return {reinterpret_cast<U*>(stack_.take(static_cast<std::size_t>(n) * sizeof(U))),
            static_cast<std::size_t>(n)};
  }
  /// A zeroed, contiguous tensor of the given shape.
  template <class U, std::size_t R>
  TensorView<U, R> tensor(const Shape<R>& shape) {
    index_t n = 1;
    for (std::size_t i = 0; i < R; ++i) n *= shape[i];
    return TensorView<U, R>(array<U>(n).data(), shape);
  }

 private:
  ScratchStack& stack_;
  ScratchStack::Mark mark_;
};

}  // namespace attnkit
