// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The module backward passes (train/grad.hpp) and train::Model's backward against central finite
// differences in double, over awkward shapes; AdamW, gradient clipping and the safetensors state;
// a training step allocates nothing after the first (this executable counts operator new).
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/policy/activation.hpp"
#include "attnkit/policy/mask.hpp"
#include "attnkit/train/copy_task.hpp"
#include "attnkit/train/model.hpp"

#include "core/counting_new.hpp"

using namespace attnkit;
namespace pol = attnkit::policy;

namespace {

std::vector<double> randn(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<double> v(n);
  for (double& x : v) x = d(g);
  return v;
}

TensorView<double, 2> mat(std::vector<double>& v, index_t r, index_t c) {
  return TensorView<double, 2>(v.data(), {r, c});
}
TensorView<double, 1> vec(std::vector<double>& v) {
  return TensorView<double, 1>(v.data(), {static_cast<index_t>(v.size())});
}

/// Checks grad[i] against the central difference of f at x[i] (every element).
void check_fd(const std::function<double()>& f, std::vector<double>& x,
              const std::vector<double>& grad, const char* what, double tol = 1e-6) {
  REQUIRE(grad.size() == x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double h = 1e-5 * std::max(1.0, std::abs(x[i])), keep = x[i];
    x[i] = keep + h;
    const double up = f();
    x[i] = keep - h;
    const double down = f();
    x[i] = keep;
    const double fd = (up - down) / (2 * h);
    INFO(what << " element " << i);
    CHECK(grad[i] == Approx(fd).margin(tol).epsilon(1e-5));
  }
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

TEST_CASE("linear_backward matches finite differences", "[train][grad]") {
  for (auto shape :
       {std::tuple<index_t, index_t, index_t>{1, 1, 1}, {3, 5, 7}, {13, 17, 2}, {29, 31, 37}}) {
    const index_t m = std::get<0>(shape), in = std::get<1>(shape), out = std::get<2>(shape);
    INFO("m " << m << " in " << in << " out " << out);
    auto x = randn(std::size_t(m * in), 1), w = randn(std::size_t(out * in), 2),
         b = randn(std::size_t(out), 3), dy = randn(std::size_t(m * out), 4);
    std::vector<double> y(std::size_t(m * out));
    auto loss = [&] {
      block::linear<double>(mat(x, m, in), mat(w, out, in), vec(b), mat(y, m, out));
      return dot(y, dy);
    };
    std::vector<double> dx(x.size(), 7.0), dw(w.size(), 0.0), db(b.size(), 0.0);
    train::linear_backward<double>(mat(x, m, in), mat(w, out, in), mat(dy, m, out), mat(dx, m, in),
                                   mat(dw, out, in), vec(db));
    check_fd(loss, x, dx, "dx");
    check_fd(loss, w, dw, "dweight");
    check_fd(loss, b, db, "dbias");
    // Accumulation: dx adds, the parameter gradients add.
    std::vector<double> dx2 = dx, dw2 = dw;
    train::linear_backward<double>(mat(x, m, in), mat(w, out, in), mat(dy, m, out), mat(dx2, m, in),
                                   mat(dw2, out, in), {}, true);
    for (std::size_t i = 0; i < dx.size(); ++i) CHECK(dx2[i] == Approx(2 * dx[i]));
    for (std::size_t i = 0; i < dw.size(); ++i) CHECK(dw2[i] == Approx(2 * dw[i]));
  }
  std::vector<double> x(6), w(6), dy(4), dx(6), dw(6);
  CHECK_THROWS_WITH(train::linear_backward<double>(mat(x, 2, 3), mat(w, 2, 3), mat(dy, 1, 4),
                                                   mat(dx, 2, 3), mat(dw, 2, 3), {}),
                    Catch::Contains("dy") && Catch::Contains("[1, 4]"));
}

TEST_CASE("embedding_backward and softmax_cross_entropy match finite differences",
          "[train][grad]") {
  const index_t v = 11, h = 5;
  const std::vector<std::int32_t> ids{3, 0, 10, 3, 7};
  auto dy = randn(ids.size() * std::size_t(h), 5);
  std::vector<double> dtable(std::size_t(v * h), 0.0);
  train::embedding_backward<double, std::int32_t>(ids, mat(dy, 5, h), mat(dtable, v, h));
  for (index_t c = 0; c < h; ++c) {
    CHECK(dtable[std::size_t(3 * h + c)] ==
          Approx(dy[std::size_t(c)] + dy[std::size_t(3 * h + c)]));
    CHECK(dtable[std::size_t(1 * h + c)] == 0.0);
  }
  const std::vector<std::int32_t> bad{3, 11};
  CHECK_THROWS_WITH(
      (train::embedding_backward<double, std::int32_t>(bad, mat(dy, 2, h), mat(dtable, v, h))),
      Catch::Contains("token id 11"));

  for (index_t vv : {1, 2, 17}) {
    const index_t m = 6;
    auto logits = randn(std::size_t(m * vv), 6, 3.0);
    std::vector<std::int32_t> targets{0, -1, std::int32_t(vv - 1), 0, -1, std::int32_t(vv / 2)};
    std::vector<double> d(logits.size(), 9.0);
    auto loss = [&] {
      return train::softmax_cross_entropy<double, std::int32_t>(mat(logits, m, vv), targets,
                                                                TensorView<double, 2>{}, 0)
          .mean();
    };
    const auto ce = train::softmax_cross_entropy<double, std::int32_t>(mat(logits, m, vv), targets,
                                                                       mat(d, m, vv), 1.0 / 4);
    CHECK(ce.count == 4);
    check_fd(loss, logits, d, "dlogits");
  }
  std::vector<double> l(4), d(4);
  const std::vector<std::int32_t> t{1, 4};
  CHECK_THROWS_WITH(
      (train::softmax_cross_entropy<double, std::int32_t>(mat(l, 2, 2), t, mat(d, 2, 2), 1.0)),
      Catch::Contains("target 4"));
}

TEST_CASE("RMSNorm and LayerNorm backward match finite differences", "[train][grad]") {
  for (auto shape : {std::pair<index_t, index_t>{1, 1}, {3, 2}, {5, 17}, {2, 67}}) {
    const index_t m = shape.first, n = shape.second;
    INFO("m " << m << " n " << n);
    auto x = randn(std::size_t(m * n), 10, 2.0), w = randn(std::size_t(n), 11),
         b = randn(std::size_t(n), 12), dy = randn(std::size_t(m * n), 13);
    std::vector<double> y(x.size());
    const double eps = 1e-5;
    auto rms = [&] {
      block::normalize_rows<block::RMSNorm, double>(block::RMSNorm(eps), mat(x, m, n), vec(w),
                                                    mat(y, m, n));
      return dot(y, dy);
    };
    std::vector<double> dx(x.size()), dw(w.size(), 0.0), db(b.size(), 0.0);
    train::rms_norm_backward<double>(mat(x, m, n), vec(w), eps, mat(dy, m, n), mat(dx, m, n),
                                     vec(dw));
    check_fd(rms, x, dx, "RMSNorm dx");
    check_fd(rms, w, dw, "RMSNorm dweight");
    auto ln = [&] {
      block::normalize_rows<block::LayerNorm, double>(block::LayerNorm(eps), mat(x, m, n), vec(w),
                                                      vec(b), mat(y, m, n));
      return dot(y, dy);
    };
    std::fill(dw.begin(), dw.end(), 0.0);
    train::layer_norm_backward<double>(mat(x, m, n), vec(w), eps, mat(dy, m, n), mat(dx, m, n),
                                       vec(dw), vec(db));
    check_fd(ln, x, dx, "LayerNorm dx", 1e-5);
    check_fd(ln, w, dw, "LayerNorm dweight");
    check_fd(ln, b, db, "LayerNorm dbias");
  }
}

TEST_CASE("RoPE backward, SwiGLU and GELU backward match finite differences", "[train][grad]") {
  const index_t nb = 2, nh = 3, n = 5, d = 6;
  for (auto style : {block::RopeStyle::rotate_half, block::RopeStyle::interleaved}) {
    const block::RoPE rope(4, 100.0, style);  // rotary_dim < D: the last two dims pass through
    auto x = randn(std::size_t(nb * nh * n * d), 20), dy = randn(x.size(), 21);
    const std::vector<index_t> pos{0, 3, 1, 9, 4};
    std::vector<double> y(x.size());
    auto loss = [&] {
      y = x;
      rope.apply(TensorView<double, 4>(y.data(), {nb, nh, n, d}), pos);
      return dot(y, dy);
    };
    std::vector<double> dx = dy;
    train::rope_backward<double>(rope, TensorView<double, 4>(dx.data(), {nb, nh, n, d}), pos);
    check_fd(loss, x, dx, "RoPE dx");
    // apply_inverse undoes apply.
    y = x;
    rope.apply(TensorView<double, 4>(y.data(), {nb, nh, n, d}), pos);
    rope.apply_inverse(TensorView<double, 4>(y.data(), {nb, nh, n, d}), pos);
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(y[i] == Approx(x[i]).margin(1e-12));
  }
  const index_t m = 3, i = 7;
  auto g = randn(std::size_t(m * i), 22, 2.0), u = randn(g.size(), 23), dh = randn(g.size(), 24);
  std::vector<double> h(g.size()), dg(g.size()), du(g.size());
  auto swi = [&] {
    train::swiglu_forward<double>(mat(g, m, i), mat(u, m, i), mat(h, m, i));
    return dot(h, dh);
  };
  train::swiglu_backward<double>(mat(g, m, i), mat(u, m, i), mat(dh, m, i), mat(dg, m, i),
                                 mat(du, m, i));
  check_fd(swi, g, dg, "SwiGLU dg");
  check_fd(swi, u, du, "SwiGLU du");
  for (auto kind : {block::GeluKind::exact, block::GeluKind::tanh}) {
    auto gelu = [&] {
      train::gelu_forward<double>(mat(g, m, i), mat(h, m, i), kind);
      return dot(h, dh);
    };
    train::gelu_backward<double>(mat(g, m, i), mat(dh, m, i), mat(dg, m, i), kind);
    check_fd(gelu, g, dg, "GELU da");
  }
}

namespace {

/// Every parameter gradient of a double train::Model against central differences of its mean
/// loss (a sample of entries of each parameter).
template <class Policy>
void check_model(const train::ModelConfig& c, const Policy& p, index_t batch, index_t seq) {
  train::Model<Policy, double> model(c, p, 7);
  // Larger weights than init's, so every path carries a gradient well above the FD noise.
  std::mt19937_64 g(3);
  std::normal_distribution<double> nd(0.0, 0.3);
  for (auto& prm : model.params)
    for (double& x : prm.value) x += nd(g);
  std::vector<std::int32_t> ids(std::size_t(batch * seq)), targets(ids.size());
  for (std::size_t k = 0; k < ids.size(); ++k) {
    ids[k] = std::int32_t((k * 7 + 3) % std::size_t(c.vocab));
    targets[k] = k % 5 == 4 ? -1 : std::int32_t((k * 5 + 1) % std::size_t(c.vocab));
  }
  auto loss = [&] {
    model.forward(std::span<const std::int32_t>(ids), batch, seq);
    return model.backward(std::span<const std::int32_t>(targets), false).mean();
  };
  train::zero_grad(model.parameters());
  model.forward(std::span<const std::int32_t>(ids), batch, seq);
  model.backward(std::span<const std::int32_t>(targets));
  for (auto& prm : model.params) {
    const std::size_t n = prm.value.size(), step = std::max<std::size_t>(1, n / 9);
    for (std::size_t k = 0; k < n; k += step) {
      const double keep = prm.value[k], h = 1e-5;
      prm.value[k] = keep + h;
      const double up = loss();
      prm.value[k] = keep - h;
      const double down = loss();
      prm.value[k] = keep;
      INFO(prm.name << " element " << k);
      CHECK(prm.grad[k] == Approx((up - down) / (2 * h)).margin(1e-7).epsilon(1e-5));
    }
  }
}

}  // namespace

TEST_CASE("train::Model gradients match finite differences", "[train][model]") {
  train::ModelConfig c;
  c.vocab = 11;
  c.hidden = 8;
  c.layers = 2;
  c.heads = 2;
  c.kv_heads = 1;
  c.intermediate = 5;
  SECTION("RMSNorm, SwiGLU, softmax, causal, GQA") {
    check_model(c, pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), 2, 5);
  }
  SECTION("LayerNorm, exact GELU MLP, sigmoid, headwise gate, tied embeddings") {
    c.norm = model::NormKind::layer_norm;
    c.mlp = model::MlpKind::gelu;
    c.gelu = block::GeluKind::exact;
    c.tie_embeddings = true;
    c.kv_heads = 2;
    check_model(c,
                pol::AttentionPolicy(pol::Sigmoid{}, pol::Causal{}, pol::NoScoreMod{},
                                     pol::HeadwiseSigmoid<double>{}),
                3, 3);
  }
  SECTION("tanh GELU, head softmax, elementwise gate, one layer, one token") {
    c.mlp = model::MlpKind::gelu;
    c.layers = 1;
    check_model(c,
                pol::AttentionPolicy(pol::HeadSoftmax{}, pol::Causal{}, pol::NoScoreMod{},
                                     pol::ElementwiseSigmoid<double>{}),
                2, 1);
  }
}

TEST_CASE("train::Model rejects bad configs and inputs by name", "[train][model]") {
  train::ModelConfig c;
  c.heads = 3;
  using P = decltype(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}));
  CHECK_THROWS_WITH((train::Model<P, float>(c)), Catch::Contains("heads (3) must divide hidden"));
  c = {};
  c.kv_heads = 3;
  CHECK_THROWS_WITH((train::Model<P, float>(c)), Catch::Contains("kv_heads (3)"));
  c = {};
  c.vocab = 5;
  train::Model<P, float> m(c);
  const std::vector<std::int32_t> none{};
  CHECK_THROWS_WITH(m.backward(std::span<const std::int32_t>(none)),
                    Catch::Contains("call forward first"));
  const std::vector<std::int32_t> ids{1, 2, 5};
  CHECK_THROWS_WITH(m.forward(std::span<const std::int32_t>(ids), 1, 3),
                    Catch::Contains("token id 5"));
  CHECK_THROWS_WITH(m.forward(std::span<const std::int32_t>(ids), 2, 2),
                    Catch::Contains("3 token ids for 2 sequences of 2"));
  const std::vector<std::int32_t> ok{1, 2, 3};
  m.forward(std::span<const std::int32_t>(ok), 1, 3);
  const std::vector<std::int32_t> two{1, 2};
  CHECK_THROWS_WITH(m.backward(std::span<const std::int32_t>(two)), Catch::Contains("2 targets"));
}

TEST_CASE("AdamW, zero_grad and clip_grad_norm", "[train][optim]") {
  std::vector<train::Parameter<double>> ps;
  ps.emplace_back("w", std::vector<index_t>{2, 3}, true);
  ps.emplace_back("b", std::vector<index_t>{3}, false);
  for (std::size_t i = 0; i < 6; ++i) ps[0].value[i] = double(i) - 2.5;
  // Minimizes Σ (w - 1)² + Σ (b + 2)²: AdamW gets there (the decay moves w a little).
  train::AdamW opt;
  opt.lr = 0.05;
  opt.weight_decay = 0.01;
  for (int s = 0; s < 600; ++s) {
    train::zero_grad(std::span(ps));
    for (std::size_t i = 0; i < 6; ++i) ps[0].grad[i] = 2 * (ps[0].value[i] - 1);
    for (std::size_t i = 0; i < 3; ++i) ps[1].grad[i] = 2 * (ps[1].value[i] + 2);
    opt.step(std::span(ps));
  }
  CHECK(opt.step_count == 600);
  for (double w : ps[0].value) CHECK(w == Approx(1.0).margin(0.01));
  for (double b : ps[1].value) CHECK(b == Approx(-2.0).epsilon(1e-3));
  // The first step of Adam moves every element by lr (the bias-corrected ratio is ±1).
  std::vector<train::Parameter<double>> one;
  one.emplace_back("x", std::vector<index_t>{2}, false);
  one[0].grad = {3.0, -0.001};
  train::AdamW first;
  first.lr = 0.1;
  first.step(std::span(one));
  CHECK(one[0].value[0] == Approx(-0.1).epsilon(1e-6));
  CHECK(one[0].value[1] == Approx(0.1).epsilon(1e-4));
  // Clipping: norm 5 → scaled to 1.
  one[0].grad = {3.0, 4.0};
  CHECK(train::clip_grad_norm(std::span(one), 1.0) == Approx(5.0));
  CHECK(one[0].grad[0] == Approx(0.6).epsilon(1e-5));
  CHECK(one[0].grad[1] == Approx(0.8).epsilon(1e-5));
  CHECK(train::clip_grad_norm(std::span(one), 10.0) == Approx(1.0).epsilon(1e-5));
  CHECK(one[0].grad[1] == Approx(0.8).epsilon(1e-5));  // below max_norm: unchanged
  one[0].grad[0] = std::nan("");
  CHECK_THROWS_WITH(train::clip_grad_norm(std::span(one), 1.0), Catch::Contains("not finite"));
  first.lr = -1;
  CHECK_THROWS_WITH(first.step(std::span(one)), Catch::Contains("lr"));
}

TEST_CASE("parameters and optimizer state round-trip through safetensors", "[train][optim]") {
  train::ModelConfig c;
  c.vocab = 9;
  c.hidden = 8;
  c.heads = 2;
  c.kv_heads = 2;
  c.intermediate = 6;
  using P = decltype(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}));
  train::Model<P, float> a(c, {}, 1), b(c, {}, 2);
  train::AdamW opt;
  const std::vector<std::int32_t> ids{1, 2, 3, 4}, tg{2, 3, 4, 5};
  for (int s = 0; s < 3; ++s) {
    train::zero_grad(a.parameters());
    a.forward(std::span<const std::int32_t>(ids), 1, 4);
    a.backward(std::span<const std::int32_t>(tg));
    opt.step(a.parameters());
  }
  const std::string dir = (std::filesystem::temp_directory_path() / "attnkit_train_state").string();
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/state.safetensors";
  train::save_safetensors(path, std::span<const train::Parameter<float>>(a.parameters()), &opt);
  train::AdamW opt2;
  train::load_safetensors(path, b.parameters(), &opt2);
  CHECK(opt2.step_count == 3);
  for (std::size_t i = 0; i < a.params.size(); ++i) {
    CHECK(a.params[i].value == b.params[i].value);
    CHECK(a.params[i].m == b.params[i].m);
    CHECK(a.params[i].v == b.params[i].v);
  }
  // Parameters only: the file then has no optimizer state, and a model of another shape fails.
  train::save_safetensors(path, a.parameters());  // the overload for mutable parameters
  CHECK_THROWS_WITH(train::load_safetensors(path, b.parameters(), &opt2),
                    Catch::Contains("no optimizer state"));
  c.intermediate = 7;
  train::Model<P, float> other(c);
  CHECK_THROWS_WITH(train::load_safetensors(path, other.parameters()),
                    Catch::Contains("mlp.gate_proj.weight") && Catch::Contains("[7, 8]"));
  c.intermediate = 6;
  c.layers = 1;
  train::Model<P, float> fewer(c);
  CHECK_THROWS_WITH(train::load_safetensors(path, fewer.parameters()),
                    Catch::Contains("tensors, the model has"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a training step of the copy-task model allocates nothing after the first",
          "[train][alloc]") {
  train::CopyTaskConfig cfg;
  cfg.model.layers = 2;
  cfg.model.vocab = cfg.symbols;
  for (int threads : {1, 2}) {
    const int saved = max_threads();
    set_threads(threads);
    INFO("threads " << threads);
    auto run = [&](const auto& policy) {
      using P = std::decay_t<decltype(policy)>;
      train::Model<P, float> model(cfg.model, policy, 1);
      train::AdamW opt;
      train::SplitMix64 rng{5};
      train::CopyBatch batch;
      train::make_copy_batch(rng, cfg, cfg.batch, batch);
      auto step = [&] {
        train::zero_grad(model.parameters());
        model.forward(std::span<const std::int32_t>(batch.ids), cfg.batch, 2 * cfg.half);
        model.backward(std::span<const std::int32_t>(batch.all_targets));
        train::clip_grad_norm(model.parameters(), 1.0);
        opt.step(model.parameters());
      };
      step();
      CHECK(count_allocations(step) == 0);
    };
    run(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}));
    run(pol::AttentionPolicy(pol::HeadSoftmax{}, pol::NoMask{},
                             train::NaiveAdditiveMaskUnderHeadSoftmax{}));
    set_threads(saved);
  }
}

TEST_CASE("the copy task: honest variants stay at chance on the random half, the leak does not",
          "[train][copy]") {
  // A short run of a small model (the full experiment is attnkit train; this one must stay
  // quick under the sanitizers): 8 symbols, halves of 5, hidden 16, 1 layer, 200 steps.
  train::CopyTaskConfig cfg;
  cfg.symbols = 8;
  cfg.half = 5;
  cfg.model.hidden = 16;
  cfg.model.intermediate = 32;
  cfg.model.layers = 1;
  cfg.steps = 200;
  cfg.eval_every = 200;
  cfg.val_sequences = 64;
  const auto honest = train::run_copy_variant("softmax", cfg);
  REQUIRE(honest.size() == 1);
  CHECK(honest.back().val_acc_copy > 0.95);
  CHECK(honest.back().val_acc_random < 0.2);  // chance: 1/8
  const auto leak = train::run_copy_variant("naive-head-softmax", cfg);
  CHECK(leak.back().val_acc_random > 0.4);
  CHECK(leak.back().val_loss < honest.back().val_loss);
  CHECK_THROWS_WITH(train::run_copy_variant("softmax2", cfg),
                    Catch::Contains("unknown variant 'softmax2'") && Catch::Contains("linear"));
  cfg.val_sequences = 10;
  CHECK_THROWS_WITH(train::run_copy_variant("softmax", cfg), Catch::Contains("val_sequences"));
}
