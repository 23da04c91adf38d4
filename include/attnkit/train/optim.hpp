// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Trainable parameters (value, gradient and the optimizer's moments), AdamW with decoupled
// weight decay, gradient-norm clipping, and saving / loading parameters and optimizer state as
// safetensors.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/io/safetensors.hpp"

namespace attnkit::train {

/// One trainable tensor: its name (the safetensors key), shape, value, gradient and AdamW's
/// first and second moments, all contiguous. `decay` says whether AdamW's weight decay applies
/// (matrices yes; norm weights and biases no, by convention).
/// \tparam T float or double
template <std::floating_point T>
struct Parameter {
  std::string name;
  std::vector<index_t> shape;
  std::vector<T> value, grad, m, v;
  bool decay = true;

  Parameter() = default;
  Parameter(std::string n, std::vector<index_t> s, bool d)
      : name(std::move(n)), shape(std::move(s)), decay(d) {
    index_t count = 1;
    for (index_t e : shape) count *= e;
    value.assign(static_cast<std::size_t>(count), T(0));
    grad = m = v = value;
  }
  index_t size() const noexcept { return static_cast<index_t>(value.size()); }
  /// The value as a [rows, cols] matrix (a 1-D parameter is [1, n]).
  TensorView<T, 2> mat() noexcept { return as2(value.data()); }
  TensorView<const T, 2> mat() const noexcept { return as2(const_cast<T*>(value.data())); }
  TensorView<T, 2> gmat() noexcept { return as2(grad.data()); }
  TensorView<T, 1> vec() noexcept { return TensorView<T, 1>(value.data(), {size()}); }
  TensorView<const T, 1> vec() const noexcept {
    return TensorView<const T, 1>(value.data(), {size()});
  }
  TensorView<T, 1> gvec() noexcept { return TensorView<T, 1>(grad.data(), {size()}); }

 private:
  TensorView<T, 2> as2(T* p) const noexcept {
    const index_t rows = shape.size() == 2 ? shape[0] : 1;
    return TensorView<T, 2>(p, {rows, size() / (rows > 0 ? rows : 1)});
  }
};

/// AdamW (Loshchilov & Hutter 2019) as torch.optim.AdamW computes it, per element:
/// p −= lr·wd·p (decoupled decay, only where Parameter::decay); m = β1 m + (1 − β1) g;
/// v = β2 v + (1 − β2) g²; p −= lr · (m / (1 − β1ᵗ)) / (sqrt(v / (1 − β2ᵗ)) + eps).
struct AdamW {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  std::int64_t step_count = 0;  ///< steps taken (t of the bias corrections)

  /// Throws error for a learning rate, betas, eps or decay outside their ranges.
  void check() const {
    if (!(lr >= 0) || !std::isfinite(lr)) throw error("attnkit: AdamW: lr must be finite and >= 0");
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
      throw error("attnkit: AdamW: beta1 and beta2 must lie in [0, 1)");
    if (!(eps > 0) || !(weight_decay >= 0) || !std::isfinite(weight_decay))
      throw error("attnkit: AdamW: eps must be > 0 and weight_decay finite and >= 0");
  }

  /// One update of every parameter from its gradient (the gradients are left as they are).
  template <std::floating_point T>
  void step(std::span<Parameter<T>> params) {
    check();
    ++step_count;
    const double t = static_cast<double>(step_count);
    const double c1 = 1 - std::pow(beta1, t), c2 = 1 - std::pow(beta2, t);
    for (Parameter<T>& p : params) {
      const double decay = p.decay ? lr * weight_decay : 0.0;
      for (std::size_t i = 0; i < p.value.size(); ++i) {
        const double g = p.grad[i];
        double w = p.value[i];
        w -= decay * w;
        const double m = beta1 * double(p.m[i]) + (1 - beta1) * g;
        const double v = beta2 * double(p.v[i]) + (1 - beta2) * g * g;
        p.m[i] = static_cast<T>(m);
        p.v[i] = static_cast<T>(v);
        w -= lr * (m / c1) / (std::sqrt(v / c2) + eps);
        p.value[i] = static_cast<T>(w);
      }
    }
  }
};

/// Sets every gradient to zero.
template <std::floating_point T>
void zero_grad(std::span<Parameter<T>> params) {
  for (Parameter<T>& p : params) std::fill(p.grad.begin(), p.grad.end(), T(0));
}

/// The L2 norm of all gradients together, and when it exceeds max_norm (> 0) every gradient
/// scaled by max_norm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_ does. Returns the norm
/// before clipping. Throws error when max_norm is not > 0 or the norm is not finite (a NaN or
/// infinite gradient: the step must not go on).
template <std::floating_point T>
double clip_grad_norm(std::span<Parameter<T>> params, double max_norm) {
  if (!(max_norm > 0)) throw error("attnkit: clip_grad_norm: max_norm must be > 0");
  double sq = 0;
  for (const Parameter<T>& p : params)
    for (T g : p.grad) sq += double(g) * double(g);
  const double norm = std::sqrt(sq);
  if (!std::isfinite(norm))
    throw error(
        "attnkit: clip_grad_norm: the gradient norm is not finite (NaN or infinite "
        "gradients)");
  if (norm > max_norm) {
    const T s = static_cast<T>(max_norm / (norm + 1e-6));
    for (Parameter<T>& p : params)
      for (T& g : p.grad) g *= s;
  }
  return norm;
}

/// Writes the parameters (under their names) and, with `optimizer`, AdamW's moments (under
/// "<name>.exp_avg" and "<name>.exp_avg_sq") and its settings and step count (metadata) to a
/// safetensors file.
template <std::floating_point T>
void save_safetensors(const std::string& path, std::span<const Parameter<T>> params,
                      const AdamW* optimizer = nullptr,
                      std::map<std::string, std::string> metadata = {}) {
  std::vector<io::SafetensorsEntry> entries;
  auto add = [&](const std::string& name, const Parameter<T>& p, const std::vector<T>& data) {
    std::vector<index_t> strides(p.shape.size(), 1);
    for (std::size_t d = p.shape.size(); d-- > 1;) strides[d - 1] = strides[d] * p.shape[d];
    io::SafetensorsEntry e("", TensorView<const T, 1>(data.data(), {p.size()}));
    e.name = name;
    e.shape = p.shape;
    e.strides = strides;
    entries.push_back(std::move(e));
  };
  for (const Parameter<T>& p : params) add(p.name, p, p.value);
  if (optimizer != nullptr) {
    for (const Parameter<T>& p : params) {
      add(p.name + ".exp_avg", p, p.m);
      add(p.name + ".exp_avg_sq", p, p.v);
    }
    metadata["adamw.step"] = std::to_string(optimizer->step_count);
    metadata["adamw.lr"] = std::to_string(optimizer->lr);
    metadata["adamw.beta1"] = std::to_string(optimizer->beta1);
    metadata["adamw.beta2"] = std::to_string(optimizer->beta2);
    metadata["adamw.eps"] = std::to_string(optimizer->eps);
    metadata["adamw.weight_decay"] = std::to_string(optimizer->weight_decay);
  }
  io::write_safetensors(path, entries, metadata);
}

/// save_safetensors of mutable parameters (Model::parameters()).
template <std::floating_point T>
void save_safetensors(const std::string& path, std::span<Parameter<T>> params,
                      const AdamW* optimizer = nullptr,
                      std::map<std::string, std::string> metadata = {}) {
  save_safetensors(path, std::span<const Parameter<T>>(params), optimizer, std::move(metadata));
}

/// Reads parameters saved by save_safetensors (any floating dtype, converted) into `params`,
/// and with `optimizer` the moments and AdamW's step count. Every parameter must be present with
/// exactly its shape: throws file_error naming the file and the tensor otherwise (a missing
/// tensor, another shape, a non-floating dtype), never loads a part silently. Tensors in the file
/// that are not parameters are an error too (a model of another shape).
template <std::floating_point T>
void load_safetensors(const std::string& path, std::span<Parameter<T>> params,
                      AdamW* optimizer = nullptr) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(path, io::LoadMode::read);
  auto read = [&](const std::string& name, const Parameter<T>& p, std::vector<T>& out) {
    const io::TensorInfo& ti = f.info(name);
    if (ti.shape != p.shape)
      throw io::file_error("attnkit: " + path + ": tensor '" + name + "' has shape " +
                           shape_string(ti.shape) + ", the model's parameter " +
                           shape_string(p.shape));
    if (!io::is_floating(ti.dtype))
      throw io::file_error("attnkit: " + path + ": tensor '" + name + "' is " +
                           std::string(io::dtype_name(ti.dtype)) + ", not a floating type");
    io::convert_elements<T>(ti.dtype, f.raw(name).data(), out.size(), out.data(),
                            path + ": tensor '" + name + "'");
  };
  std::size_t expected = params.size();
  for (Parameter<T>& p : params) read(p.name, p, p.value);
  if (optimizer != nullptr) {
    const auto& meta = f.metadata();
    const auto it = meta.find("adamw.step");
    if (it == meta.end())
      throw io::file_error("attnkit: " + path + ": no optimizer state (metadata 'adamw.step')");
    try {
      optimizer->step_count = std::stoll(it->second);
    } catch (const std::exception&) {
      throw io::file_error("attnkit: " + path + ": metadata 'adamw.step' is not an integer");
    }
    for (Parameter<T>& p : params) {
      read(p.name + ".exp_avg", p, p.m);
      read(p.name + ".exp_avg_sq", p, p.v);
    }
    expected *= 3;
  }
  if (f.names().size() != expected)
    throw io::file_error("attnkit: " + path + ": holds " + std::to_string(f.names().size()) +
                         " tensors, the model has " + std::to_string(expected) +
                         (optimizer ? " (parameters and optimizer moments)" : " parameters"));
}

}  // namespace attnkit::train
