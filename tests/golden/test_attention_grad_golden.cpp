// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attention_backward against PyTorch autograd (tests/golden/make_golden.py, grads/): dq, dk, dv
// for every activation x mask family (none, causal, sliding=17, padding, document), and the
// gradients of a headwise and an elementwise gate's values and of sink logits; in double (to
// rounding) and in float.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/attention/backward.hpp"
#include "attnkit/io/npy.hpp"
#include "attnkit/policy/mask_spec.hpp"

namespace {

using namespace attnkit;
namespace pol = attnkit::policy;

template <class T, std::size_t R>
Tensor<T, R> golden(const std::string& name) {
  return io::read_npy_as<T, R>(std::string(ATTNKIT_GOLDEN_DIR) + "/grads/" + name + ".npy");
}

template <class T, std::size_t R>
Tensor<T, R> cast(const Tensor<double, R>& a) {
  Tensor<T, R> r(a.shape());
  for (index_t i = 0; i < a.size(); ++i) r.data()[i] = static_cast<T>(a.data()[i]);
  return r;
}

/// Largest |got - want| over the largest |want|.
template <class A, class B>
double rel_error(const A& got, const B& want) {
  REQUIRE(got.size() == want.size());
  double mx = 0, err = 0;
  for (index_t i = 0; i < want.size(); ++i) {
    mx = std::max(mx, std::abs(double(want.data()[i])));
    err = std::max(err, std::abs(double(got.data()[i]) - double(want.data()[i])));
  }
  return err / std::max(mx, 1e-30);
}

struct Inputs {
  Tensor<double, 4> q = golden<double, 4>("q"), k = golden<double, 4>("k"),
                    v = golden<double, 4>("v"), dout = golden<double, 4>("dout");
  Tensor<double, 3> gate_heads = golden<double, 3>("gate_heads");
  Tensor<double, 4> gate = golden<double, 4>("gate");
  Tensor<double, 1> sinks = golden<double, 1>("sinks");
};

/// Runs forward and backward in T and compares with the golden gradients of `name`.
template <class T, class Policy>
void check_case(const Policy& policy, const Inputs& in, const std::string& name, int gate_kind,
                bool sinks) {
  const Tensor<T, 4> q = cast<T>(in.q), k = cast<T>(in.k), v = cast<T>(in.v),
                     dout = cast<T>(in.dout);
  Tensor<T, 4> out(dout.shape());
  Tensor<T, 3> state({q.extent(0), q.extent(1), q.extent(2)});
  attention_partial(policy, q.cview(), k.cview(), v.cview(), out.view(), state.view());
  Tensor<T, 4> dq(q.shape()), dk(k.shape()), dv(v.shape()), dgate(out.shape());
  Tensor<T, 3> dgate_heads(state.shape());
  std::vector<double> dsinks(static_cast<std::size_t>(q.extent(1)));
  AttentionGradExtras<T> extra;
  if (gate_kind == 1) extra.dgate_heads = dgate_heads.view();
  if (gate_kind == 2) extra.dgate = dgate.view();
  if (sinks) extra.dsinks = dsinks;
  attention_backward(policy, q.cview(), k.cview(), v.cview(), out.cview(), state.cview(),
                     dout.cview(), dq.view(), dk.view(), dv.view(), {}, extra);
  const double tol = std::is_same_v<T, double> ? 1e-10 : 5e-4;
  INFO(name << (std::is_same_v<T, double> ? " double" : " float"));
  CHECK(rel_error(dq, golden<double, 4>("dq_" + name)) <= tol);
  CHECK(rel_error(dk, golden<double, 4>("dk_" + name)) <= tol);
  CHECK(rel_error(dv, golden<double, 4>("dv_" + name)) <= tol);
  if (gate_kind == 1) CHECK(rel_error(dgate_heads, golden<double, 3>("dgate_" + name)) <= tol);
  if (gate_kind == 2) CHECK(rel_error(dgate, golden<double, 4>("dgate_" + name)) <= tol);
  if (sinks) {
    const Tensor<double, 1> want = golden<double, 1>("dsinks_" + name);
    Tensor<double, 1> got({static_cast<index_t>(dsinks.size())});
    std::copy(dsinks.begin(), dsinks.end(), got.data());
    CHECK(rel_error(got, want) <= tol);
  }
}

/// Every mask family of the goldens for one activation, as runtime mask specs.
template <class Act>
void check_activation(const Act& act, const std::string& name) {
  const Inputs in;
  const Tensor<index_t, 1> lengths = golden<index_t, 1>("lengths");
  const Tensor<index_t, 2> segments = golden<index_t, 2>("segments");
  auto spec = [&](auto mask, const std::string& text) {
    pol::MaskSpec m;
    m.add(mask, text);
    return m;
  };
  const std::vector<std::pair<std::string, pol::MaskSpec>> masks = {
      {"none", spec(pol::NoMask{}, "none")},
      {"causal", spec(pol::Causal{}, "causal")},
      {"sliding", spec(pol::SlidingWindow(17), "sliding=17")},
      {"padding",
       spec(pol::KeyPadding(std::vector<index_t>(lengths.data(), lengths.data() + lengths.size())),
            "padding")},
      {"document", spec(pol::Document(segments.cview()), "document")},
  };
  for (const auto& [mname, mask] : masks) {
    const pol::AttentionPolicy<Act, pol::MaskSpec> policy(act, mask);
    check_case<double>(policy, in, name + "_" + mname, 0, false);
    check_case<float>(policy, in, name + "_" + mname, 0, false);
  }
}

}  // namespace

TEST_CASE("attention_backward against PyTorch autograd: softmax family", "[backward][golden]") {
  check_activation(pol::Softmax{}, "softmax");
  check_activation(pol::Softcap(2.0), "softcap");
  check_activation(pol::NormalizedSigmoid{}, "normalized-sigmoid");
  check_activation(pol::HeadSoftmax{}, "head-softmax");
}

TEST_CASE("attention_backward against PyTorch autograd: elementwise", "[backward][golden]") {
  check_activation(pol::Sigmoid{}, "sigmoid");
  check_activation(pol::SigmoidBias{}, "sigmoid-bias");
  check_activation(pol::Linear{}, "linear");
  check_activation(pol::ReLU{}, "relu");
}

TEST_CASE("attention_backward against PyTorch autograd: gates and sink logits",
          "[backward][golden]") {
  const Inputs in;
  check_case<double>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}, pol::NoScoreMod{},
                                          pol::HeadwiseSigmoid<double>(in.gate_heads.cview())),
                     in, "softmax_causal_headwise", 1, false);
  check_case<float>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}, pol::NoScoreMod{},
                                         pol::HeadwiseSigmoid<double>(in.gate_heads.cview())),
                    in, "softmax_causal_headwise", 1, false);
  check_case<double>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}, pol::NoScoreMod{},
                                          pol::ElementwiseSigmoid<double>(in.gate.cview())),
                     in, "softmax_causal_elementwise", 2, false);
  const std::vector<double> z(in.sinks.data(), in.sinks.data() + in.sinks.size());
  check_case<double>(pol::AttentionPolicy(pol::SinkLogits(pol::Softmax{}, z), pol::Causal{}), in,
                     "softmax_causal_sinks", 0, true);
  check_case<float>(pol::AttentionPolicy(pol::SinkLogits(pol::Softmax{}, z), pol::Causal{}), in,
                    "softmax_causal_sinks", 0, true);
}
