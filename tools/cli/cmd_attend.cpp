// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit attend: fused attention over .npy files with any activation, mask spec and gate
// (docs/CLI.md). Loads and checks every input, then runs the kernel TU of the dtype.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/io/dtype.hpp"
#include "attnkit/io/npy.hpp"
#include "attnkit/policy/mask_spec.hpp"

#include "../../benchmarks/flop_count.hpp"
#include "attend.hpp"
#include "cli.hpp"
#include "commands.hpp"

namespace attnkit::cli {

namespace {

constexpr const char* attend_help =
    "usage: attnkit attend --q Q.npy --k K.npy --v V.npy --out O.npy\n"
    "                      [--activation NAME] [--bias X] [--mask SPEC] [--scale X]\n"
    "                      [--alibi] [--key-bias KB.npy] [--sink-logits S.npy]\n"
    "                      [--gate KIND --gate-values G.npy] [--probs P.npy]\n"
    "                      [--dtype f32|f64] [--kv-dtype f32|bf16|f16] [--threads T]\n"
    "                      [--repeat R]\n"
    "                      [--grad-out DO.npy [--dq F] [--dk F] [--dv F] [--dgate F] [--dsinks "
    "F]]\n\n"
    "Fused attention. Q [B, Hq, Nq, D], K [B, Hkv, Nk, D], V [B, Hkv, Nk, Dv] (float16/32/64;\n"
    "Hq a multiple of Hkv: MHA, GQA, MQA); writes O [B, Hq, Nq, Dv]. Scores s = scale * q.k,\n"
    "scale = 1/sqrt(D) unless --scale, plus the score mods below. Query row i sits at\n"
    "position i' = i + Nk - Nq.\n\n"
    "--activation  one of the names below (default softmax); --bias X sets the b of those\n"
    "              that take one.\n"
    "--mask        terms joined by '+', all required (the terms below; default none).\n"
    "              File names must not contain '+'.\n"
    "              An invisible pair has weight 0; a row with no visible key outputs zeros.\n"
    "--alibi       s -= m_h |i' - j| with the ALiBi paper's slope m_h for Hq heads (for Hq\n"
    "              not a power of two, its interleaved second set).\n"
    "--key-bias    KB.npy, float16/32/64 [B, Nk] (s += KB[b, j]) or [B, Hq, Nq, Nk]\n"
    "              (s += KB[b, h, i, j]); -inf allowed: that pair gets weight 0, and a row\n"
    "              whose visible scores are all -inf outputs zeros. NaN and +inf are errors.\n"
    "--sink-logits S.npy, float16/32/64 [Hq], finite: a learned logit per query head that\n"
    "              joins the denominator of a softmax-family activation and takes no value\n"
    "              (P_ij = e^s_ij / (e^S_h + sum_j' e^s_ij')).\n"
    "--gate        headwise (G [B, Hq, Nq]) or elementwise (G [B, Hq, Nq, Dv]) with\n"
    "              --gate-values G.npy: the output is multiplied by sigmoid(G).\n"
    "--probs       also writes the weights P [B, Hq, Nq, Nk] (N^2 memory).\n"
    "--dtype       f32 (default) or f64: compute and output type.\n"
    "--kv-dtype    f32 (default), bf16 or f16: K and V are rounded to that type and the kernel\n"
    "              reads them as such (computing in float; with --dtype f32 only).\n"
    "--repeat R    times R runs after a warm-up and prints one JSON line {\"ms_median\",\n"
    "              \"ms_min\", \"gflops\", \"threads\"} (useful FLOPs: visible pairs only).\n"
    "--grad-out    DO.npy [B, Hq, Nq, Dv], the gradient of a loss with respect to O: runs the\n"
    "              backward pass too and writes the gradients asked for: --dq, --dk, --dv (the\n"
    "              shapes of Q, K, V), --dgate (of the --gate-values, their shape) and --dsinks\n"
    "              (of the --sink-logits, [Hq]). Computed in float64 whatever the --dtype,\n"
    "              which sets the type of the files. Not with --alibi, --key-bias,\n"
    "              --kv-dtype bf16/f16 or --repeat.\n";

/// One input array of the command: its option, file and contents.
struct Input {
  std::string option;  ///< "--q", "--gate-values", ...
  std::string path;
  io::NpyArray array;
};

std::string describe(const Input& in) {
  return in.option + " " + in.path + " " + shape_string(in.array.shape());
}

/// Reads a floating-point array of the given rank (0: any; layout names the axes for the
/// message).
Input read_floating(const std::string& option, const std::string& path, std::size_t rank,
                    const char* layout) {
  Input in{"--" + option, path, io::read_npy(path)};
  if (!io::is_floating(in.array.dtype()))
    throw usage_error("attend: --" + option + " " + path + " holds " +
                      std::string(io::dtype_name(in.array.dtype())) +
                      "; it must be a float16, float32 or float64 array");
  if (rank != 0 && in.array.rank() != rank)
    throw shape_error("attnkit: attend: --" + option + " " + path + " has shape " +
                      shape_string(in.array.shape()) + ", expected a rank-" + std::to_string(rank) +
                      " array " + layout);
  return in;
}

/// The array as a Tensor<T, R>, every value finite (a NaN or inf input, or a float64 value
/// that overflows float32, is an error rather than NaN in the output). With `neg_inf_ok` (the
/// --key-bias array) -inf is allowed too: it hides a pair.
template <class T, std::size_t R>
Tensor<T, R> to_tensor(const Input& in, bool neg_inf_ok = false) {
  Tensor<T, R> t = in.array.to_tensor<T, R>();
  const bool narrowed = std::is_same_v<T, float> && in.array.dtype() == io::DType::f64;
  for (index_t n = 0; n < t.size(); ++n) {
    const T x = t.data()[n];
    if (std::isfinite(x) || (neg_inf_ok && x == -std::numeric_limits<T>::infinity())) continue;
    const std::string what = !neg_inf_ok     ? "not finite"
                             : std::isnan(x) ? "NaN (a bias is finite, or -inf to hide a pair)"
                                             : "+inf (a bias is finite, or -inf to hide a pair)";
    throw usage_error(
        "attend: " + in.option + " " + in.path + ": element " + std::to_string(n) + " is " + what +
        (narrowed && (!neg_inf_ok || std::isinf(x)) ? " in float32 (use --dtype f64)" : ""));
  }
  return t;
}

/// Loads the array of a file-backed mask term: integer dtypes for padding and document, bool
/// or uint8 for keep and block-sparse.
policy::MaskArray load_mask_array(const policy::MaskArrayRequest& rq) {
  const std::string& file = rq.file;
  const std::string term(rq.term);
  const io::NpyArray a = io::read_npy(file);
  const bool flags = rq.kind == policy::MaskArrayKind::flags;
  const bool ok = flags ? (a.dtype() == io::DType::boolean || a.dtype() == io::DType::u8)
                        : io::is_integer(a.dtype());
  if (!ok)
    throw usage_error("attend: --mask " + std::string(term) + "=" + file + ": the file holds " +
                      std::string(io::dtype_name(a.dtype())) + "; " + std::string(term) +
                      (flags ? " needs a bool or uint8 array" : " needs an integer array"));
  policy::MaskArray m;
  m.shape = a.shape();
  m.values.resize(static_cast<std::size_t>(a.size()));
  io::convert_elements<index_t>(a.dtype(), a.bytes(), m.values.size(), m.values.data(),
                                "--mask " + std::string(term) + "=" + file);
  return m;
}

/// Number of visible (b, h, i, j) pairs, counted per 64x64 tile by the mask's classifier (only
/// Partial tiles are counted element by element).
double visible_pairs(const policy::MaskSpec& mask, const policy::Geometry& g) {
  constexpr index_t tile = 64;
  const index_t off = g.query_offset();
  double n = 0;
  for (index_t b = 0; b < g.batch; ++b)
    for (index_t h = 0; h < g.heads_q; ++h)
      for (index_t i0 = 0; i0 < g.nq; i0 += tile) {
        const index_t i1 = std::min(g.nq, i0 + tile);
        for (index_t j0 = 0; j0 < g.nk; j0 += tile) {
          const index_t j1 = std::min(g.nk, j0 + tile);
          const policy::TileClass c = mask.classify(b, h, i0 + off, i1 + off, j0, j1);
          if (c == policy::TileClass::full) {
            n += double((i1 - i0) * (j1 - j0));
          } else if (c == policy::TileClass::partial) {
            for (index_t i = i0; i < i1; ++i)
              for (index_t j = j0; j < j1; ++j) n += mask.visible(b, h, i + off, j) ? 1 : 0;
          }
        }
      }
  return n;
}

/// Writes the outputs through temporary siblings renamed only once all are written, so a
/// failure leaves no partial (or half-updated) output behind.
/// Writes every output through a temporary file, renaming them all only once all are written
/// (a failure leaves no partial set of outputs).
void write_outputs(
    const std::vector<std::pair<std::string, std::function<void(const std::string&)>>>& outputs) {
  std::vector<std::string> tmps;
  try {
    for (const auto& [path, write] : outputs) {
      tmps.push_back(path + ".attnkit-tmp");
      write(tmps.back());
    }
    for (std::size_t n = 0; n < outputs.size(); ++n)
      std::filesystem::rename(tmps[n], outputs[n].first);
  } catch (...) {
    std::error_code ec;
    for (const auto& t : tmps) std::filesystem::remove(t, ec);
    throw;
  }
}

struct Request {
  std::string out_path, probs_path;
  /// --dq, --dk, --dv, --dgate, --dsinks (empty: not written)
  std::string dq_path, dk_path, dv_path, dgate_path, dsinks_path;
  Input grad_out;          ///< --grad-out
  bool write_f32 = false;  ///< --grad-out with --dtype f32: computed in double, written as float32
  long long repeat = 0;
  policy::ActivationSpec activation;
  GateChoice gate = GateChoice::none;
  std::optional<double> scale;
  bool alibi = false;
  Input q, k, v, gate_values, key_bias, sink_logits;
  KVChoice kv = KVChoice::same;
  policy::MaskSpec mask;
  policy::Geometry geom;
};

template <class T>
int run(Request& r) {
  AttendJob<T> job;
  job.q = to_tensor<T, 4>(r.q);
  job.k = to_tensor<T, 4>(r.k);
  job.v = to_tensor<T, 4>(r.v);
  if constexpr (std::is_same_v<T, float>) {
    job.kv = r.kv;
    // Rounded to the 16-bit type; a value beyond its range (f16: |x| >= 65520) is an error.
    auto round = [](const Input& in, const Tensor<float, 4>& x, auto& to, const char* type) {
      using H = typename std::remove_reference_t<decltype(to)>::value_type;
      to = Tensor<H, 4>(x.shape());
      for (index_t n = 0; n < x.size(); ++n) {
        to.data()[n] = H::from_float(x.data()[n]);
        if (!std::isfinite(to.data()[n].to_float()))
          throw usage_error("attend: " + in.option + " " + in.path + ": element " +
                            std::to_string(n) + " (" + std::to_string(x.data()[n]) +
                            ") is out of the range of " + type + " (--kv-dtype)");
      }
    };
    if (r.kv == KVChoice::bf16) {
      round(r.k, job.k, job.kb, "bf16");
      round(r.v, job.v, job.vb, "bf16");
    } else if (r.kv == KVChoice::f16) {
      round(r.k, job.k, job.kh, "f16");
      round(r.v, job.v, job.vh, "f16");
    }
  }
  const policy::Geometry& g = r.geom;
  job.out = Tensor<T, 4>(Shape<4>{g.batch, g.heads_q, g.nq, g.dv});
  job.capture = !r.probs_path.empty();
  if (job.capture) job.probs = Tensor<T, 4>(Shape<4>{g.batch, g.heads_q, g.nq, g.nk});
  job.activation = r.activation;
  job.mask = r.mask;
  job.gate = r.gate;
  if (r.gate == GateChoice::headwise) job.gate_headwise = to_tensor<T, 3>(r.gate_values);
  if (r.gate == GateChoice::elementwise) job.gate_elementwise = to_tensor<T, 4>(r.gate_values);
  job.scale = r.scale;
  job.alibi = r.alibi;
  if (!r.sink_logits.path.empty()) {
    const Tensor<double, 1> z = to_tensor<double, 1>(r.sink_logits);
    job.sink_logits.assign(z.data(), z.data() + z.size());
  }
  if (!r.key_bias.path.empty()) {
    if (r.key_bias.array.rank() == 2) {
      job.key_bias = to_tensor<T, 2>(r.key_bias, true);
    } else {
      job.score_bias = to_tensor<T, 4>(r.key_bias, true);
    }
  }
  if (!r.grad_out.path.empty()) {
    job.grads = true;
    job.dout = to_tensor<T, 4>(r.grad_out);
    job.dq = Tensor<T, 4>(job.q.shape());
    job.dk = Tensor<T, 4>(job.k.shape());
    job.dv = Tensor<T, 4>(job.v.shape());
    if (r.gate == GateChoice::headwise)
      job.dgate_headwise = Tensor<T, 3>(job.gate_headwise.shape());
    if (r.gate == GateChoice::elementwise)
      job.dgate_elementwise = Tensor<T, 4>(job.gate_elementwise.shape());
    job.dsinks.assign(job.sink_logits.size(), 0.0);
    if constexpr (std::is_same_v<T, double>) run_attend_grad(job);  // cmd_attend: double only
    if (job.capture) run_attend(job);  // the weights P: the forward again, same out
  } else if (r.repeat > 0) {
    const double all = double(g.batch) * double(g.heads_q) * double(g.nq) * double(g.nk);
    const double visible = all > 0 ? visible_pairs(r.mask.bind(g), g) / all : 0.0;
    const double flops = bench::attention_flops(double(g.batch), double(g.heads_q), double(g.nq),
                                                double(g.nk), double(g.d), double(g.dv), visible);
    time_repeats(r.repeat, flops, [&] { run_attend(job); });
  } else {
    run_attend(job);
  }
  std::vector<std::pair<std::string, std::function<void(const std::string&)>>> outputs;
  // With --grad-out the computation is in double; --dtype f32 then writes float32 files.
  auto add = [&](const std::string& path, const auto& tensor) {
    if (path.empty()) return;
    outputs.emplace_back(path, [&tensor, f32 = r.write_f32](const std::string& p) {
      if (!f32) return io::write_npy(p, tensor);
      Tensor<float, std::remove_cvref_t<decltype(tensor)>::rank> t(tensor.shape());
      for (index_t n = 0; n < t.size(); ++n) t.data()[n] = static_cast<float>(tensor.data()[n]);
      io::write_npy(p, t);
    });
  };
  add(r.out_path, job.out);
  if (job.capture) add(r.probs_path, job.probs);
  Tensor<double, 1> dsinks({static_cast<index_t>(job.dsinks.size())});
  std::copy(job.dsinks.begin(), job.dsinks.end(), dsinks.data());
  if (job.grads) {
    add(r.dq_path, job.dq);
    add(r.dk_path, job.dk);
    add(r.dv_path, job.dv);
    if (r.gate == GateChoice::headwise) add(r.dgate_path, job.dgate_headwise);
    if (r.gate == GateChoice::elementwise) add(r.dgate_path, job.dgate_elementwise);
    add(r.dsinks_path, dsinks);
  }
  write_outputs(outputs);
  return 0;
}

}  // namespace

int cmd_attend(int argc, char** argv) {
  Args args("attend",
            attend_help + std::string("\nActivations (--activation):\n") +
                policy::activation_help() + "\nMask terms (--mask), i' = i + Nk - Nq:\n" +
                policy::mask_term_help(),
            argc, argv, {"q",      "k",        "v",           "out",         "activation", "bias",
                         "mask",   "scale",    "gate",        "gate-values", "probs",      "dtype",
                         "repeat", "key-bias", "sink-logits", "kv-dtype",    "grad-out",   "dq",
                         "dk",     "dv",       "dgate",       "dsinks"},
            {"alibi"});
  if (!args.positional().empty())
    throw usage_error("attend: unexpected argument '" + args.positional().front() +
                      "' (inputs are given by --q, --k and --v)");
  Request r;
  const std::string qp = args.require("q"), kp = args.require("k"), vp = args.require("v");
  r.out_path = args.require("out");
  r.probs_path = args.get("probs", "");
  if (args.has("probs") && r.probs_path.empty())
    throw usage_error("attend: --probs needs a file name");
  if (r.out_path.empty()) throw usage_error("attend: --out needs a file name");
  if (!r.probs_path.empty() && std::filesystem::absolute(r.probs_path).lexically_normal() ==
                                   std::filesystem::absolute(r.out_path).lexically_normal())
    throw usage_error("attend: --probs and --out name the same file '" + r.out_path + "'");
  // The gradients: each needs --grad-out, which needs one of them; every output file differs.
  r.dq_path = args.get("dq", "");
  r.dk_path = args.get("dk", "");
  r.dv_path = args.get("dv", "");
  r.dgate_path = args.get("dgate", "");
  r.dsinks_path = args.get("dsinks", "");
  {
    const std::vector<std::pair<const char*, std::string*>> grads{{"dq", &r.dq_path},
                                                                  {"dk", &r.dk_path},
                                                                  {"dv", &r.dv_path},
                                                                  {"dgate", &r.dgate_path},
                                                                  {"dsinks", &r.dsinks_path}};
    bool any = false;
    std::vector<std::pair<std::string, std::string>> files{{"out", r.out_path}};
    if (!r.probs_path.empty()) files.emplace_back("probs", r.probs_path);
    for (const auto& [name, path] : grads) {
      if (!args.has(name)) continue;
      if (path->empty()) throw usage_error("attend: --" + std::string(name) + " needs a file name");
      if (!args.has("grad-out"))
        throw usage_error("attend: --" + std::string(name) +
                          " is a gradient: it needs --grad-out DO.npy");
      any = true;
      files.emplace_back(name, *path);
    }
    if (args.has("grad-out") && !any)
      throw usage_error(
          "attend: --grad-out needs at least one of --dq, --dk, --dv, --dgate, "
          "--dsinks");
    for (std::size_t a = 0; a < files.size(); ++a)
      for (std::size_t b = a + 1; b < files.size(); ++b)
        if (std::filesystem::absolute(files[a].second).lexically_normal() ==
            std::filesystem::absolute(files[b].second).lexically_normal())
          throw usage_error("attend: --" + files[a].first + " and --" + files[b].first +
                            " name the same file '" + files[b].second + "'");
    if (args.has("grad-out")) {
      for (const char* o : {"alibi", "key-bias", "repeat"})
        if (args.has(o))
          throw usage_error("attend: --grad-out: the backward pass does not take --" +
                            std::string(o));
      if (args.has("kv-dtype") && args.get("kv-dtype", "f32") != "f32")
        throw usage_error(
            "attend: --grad-out: the backward pass computes with K and V in the "
            "--dtype, not --kv-dtype " +
            args.get("kv-dtype", ""));
      if (args.has("dgate") && !args.has("gate"))
        throw usage_error("attend: --dgate is the gradient of the --gate-values: it needs --gate");
      if (args.has("dsinks") && !args.has("sink-logits"))
        throw usage_error("attend: --dsinks is the gradient of the --sink-logits: it needs them");
    }
  }
  const std::string dtype = args.get("dtype", "f32");
  if (dtype != "f32" && dtype != "f64")
    throw usage_error("attend: --dtype must be f32 or f64, got '" + dtype + "'");
  const std::string kv_dtype = args.get("kv-dtype", "f32");
  if (kv_dtype == "bf16") {
    r.kv = KVChoice::bf16;
  } else if (kv_dtype == "f16") {
    r.kv = KVChoice::f16;
  } else if (kv_dtype != "f32") {
    throw usage_error("attend: --kv-dtype must be f32, bf16 or f16, got '" + kv_dtype + "'");
  }
  if (r.kv != KVChoice::same && dtype != "f32")
    throw usage_error("attend: --kv-dtype " + kv_dtype +
                      " computes in float: it needs --dtype f32, not " + dtype);
  r.repeat = args.get_int("repeat", 0, 1, 1000000);
  std::optional<double> bias;
  if (args.has("bias")) bias = args.get_double("bias", 0.0);
  r.activation =
      parse_activation_option("attend", "activation", args.get("activation", "softmax"), bias);
  if (args.has("scale")) r.scale = args.get_double("scale", 0.0);
  r.alibi = args.has("alibi");
  const std::string gate = args.get("gate", "");
  if (args.has("gate")) {
    if (gate == "headwise") {
      r.gate = GateChoice::headwise;
    } else if (gate == "elementwise") {
      r.gate = GateChoice::elementwise;
    } else {
      throw usage_error("attend: unknown --gate '" + gate + "' (headwise or elementwise)");
    }
    if (!args.has("gate-values"))
      throw usage_error("attend: --gate " + gate + " needs --gate-values G.npy");
  } else if (args.has("gate-values")) {
    throw usage_error("attend: --gate-values needs --gate headwise or --gate elementwise");
  }
  // The mask spec (and its small arrays) before the large inputs; its shapes are checked below.
  r.mask = policy::parse_mask_spec(args.get("mask", "none"), load_mask_array);

  r.q = read_floating("q", qp, 4, "[B, Hq, Nq, D]");
  r.k = read_floating("k", kp, 4, "[B, Hkv, Nk, D]");
  r.v = read_floating("v", vp, 4, "[B, Hkv, Nk, Dv]");
  const auto& qs = r.q.array.shape();
  const auto& ks = r.k.array.shape();
  const auto& vs = r.v.array.shape();
  if (ks[0] != qs[0])
    throw shape_error("attnkit: attend: batch sizes differ: " + describe(r.q) +
                      " has B = " + std::to_string(qs[0]) + ", " + describe(r.k) +
                      " has B = " + std::to_string(ks[0]));
  if (ks[3] != qs[3])
    throw shape_error("attnkit: attend: head dimensions differ: " + describe(r.q) +
                      " has D = " + std::to_string(qs[3]) + ", " + describe(r.k) +
                      " has D = " + std::to_string(ks[3]));
  if (ks[1] < 1 || qs[1] % ks[1] != 0)
    throw shape_error("attnkit: attend: Hq must be a multiple of Hkv: " + describe(r.q) +
                      " has Hq = " + std::to_string(qs[1]) + ", " + describe(r.k) +
                      " has Hkv = " + std::to_string(ks[1]));
  if (vs[0] != ks[0] || vs[1] != ks[1] || vs[2] != ks[2])
    throw shape_error("attnkit: attend: " + describe(r.v) + " must be [B, Hkv, Nk, Dv] = [" +
                      std::to_string(ks[0]) + ", " + std::to_string(ks[1]) + ", " +
                      std::to_string(ks[2]) + ", Dv] to match " + describe(r.k));
  r.geom = policy::Geometry{qs[0], qs[1], ks[1], qs[2], ks[2], qs[3], vs[3]};
  const policy::Geometry& g = r.geom;

  if (r.gate != GateChoice::none) {
    const bool head = r.gate == GateChoice::headwise;
    r.gate_values = read_floating(
        "gate-values", args.require("gate-values"), head ? 3 : 4,
        head ? "[B, Hq, Nq] for --gate headwise" : "[B, Hq, Nq, Dv] for --gate elementwise");
    std::vector<index_t> want{g.batch, g.heads_q, g.nq};
    if (!head) want.push_back(g.dv);
    if (r.gate_values.array.shape() != want)
      throw shape_error("attnkit: attend: " + describe(r.gate_values) + " must be " +
                        (head ? "[B, Hq, Nq] = " : "[B, Hq, Nq, Dv] = ") + shape_string(want) +
                        " for --gate " + gate);
  }

  if (args.has("key-bias")) {
    r.key_bias = read_floating("key-bias", args.require("key-bias"), 0, "");
    const std::vector<index_t> key{g.batch, g.nk}, full{g.batch, g.heads_q, g.nq, g.nk};
    if (r.key_bias.array.shape() != key && r.key_bias.array.shape() != full)
      throw shape_error("attnkit: attend: " + describe(r.key_bias) + " must be [B, Nk] = " +
                        shape_string(key) + " or [B, Hq, Nq, Nk] = " + shape_string(full));
  }

  if (args.has("sink-logits")) {
    const policy::Normalization n = policy::normalization_of(r.activation.name);
    if (n != policy::Normalization::over_keys_exp)
      throw usage_error(
          "attend: --sink-logits joins the denominator of a softmax-family "
          "activation (" +
          policy::exp_normalized_activation_names() + "), not " + r.activation.name);
    r.sink_logits = read_floating("sink-logits", args.require("sink-logits"), 1, "[Hq]");
    const std::vector<index_t> want{g.heads_q};
    if (r.sink_logits.array.shape() != want)
      throw shape_error("attnkit: attend: " + describe(r.sink_logits) +
                        " must be [Hq] = " + shape_string(want) + " (one logit per query head)");
  }

  if (args.has("grad-out")) {
    r.grad_out = read_floating("grad-out", args.require("grad-out"), 4, "[B, Hq, Nq, Dv]");
    const std::vector<index_t> want{g.batch, g.heads_q, g.nq, g.dv};
    if (r.grad_out.array.shape() != want)
      throw shape_error("attnkit: attend: " + describe(r.grad_out) +
                        " must be [B, Hq, Nq, Dv] = " + shape_string(want) + " (the shape of O)");
  }

  r.mask.bind(g);  // checks the arrays' shapes against B, Hq, Nq, Nk (shape_error)
  // The backward pass computes in double (one set of instantiations); --dtype f32 then names the
  // type of the files written.
  r.write_f32 = args.has("grad-out") && dtype == "f32";
  return dtype == "f64" || args.has("grad-out") ? run<double>(r) : run<float>(r);
}

}  // namespace attnkit::cli
