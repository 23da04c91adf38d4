// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit einsum: numpy.einsum over .npy files (docs/CLI.md).
#include <cstdio>
#include <string>
#include <vector>

#include "attnkit/core/aligned.hpp"
#include "attnkit/einsum/einsum.hpp"
#include "attnkit/io/dtype.hpp"
#include "attnkit/io/npy.hpp"

#include "cli.hpp"
#include "commands.hpp"

namespace attnkit::cli {

namespace {

constexpr const char* einsum_help =
    "usage: attnkit einsum SPEC A.npy [B.npy ...] --out C.npy [--dtype f32|f64] [--threads T]\n"
    "                      [--repeat R]\n\n"
    "Contracts the arrays by SPEC with numpy.einsum's meaning: explicit ('ij,jk->ik') and\n"
    "implicit ('ij,jk') output, repeated indices ('ii->i', 'ii'), '...' and size-1\n"
    "broadcasting, one to many operands; indices that appear only in inputs are summed.\n"
    "Inputs are float16/float32/float64 .npy files (C order); the result is computed and\n"
    "written as float32, or float64 with --dtype f64. --repeat R times R runs after a warm-up\n"
    "and prints one JSON line.\n";

template <class T>
int run_einsum(const std::string& spec, const std::vector<std::string>& files,
               const std::string& out_path, long long repeat) {
  std::vector<aligned_ptr<T>> buffers;
  std::vector<StridedView<const T>> views;
  std::vector<std::vector<index_t>> shapes;
  for (const auto& f : files) {
    const io::NpyArray a = io::read_npy(f);
    if (!io::is_floating(a.dtype()))
      throw usage_error("einsum: " + f + " holds " + std::string(io::dtype_name(a.dtype())) +
                        "; einsum needs float16, float32 or float64 arrays");
    if (a.rank() > einsum_max_rank)
      throw shape_error("attnkit: einsum: " + f + " has rank " + std::to_string(a.rank()) +
                        " (at most " + std::to_string(einsum_max_rank) + ")");
    buffers.push_back(make_aligned<T>(static_cast<std::size_t>(a.size())));
    io::convert_elements<T>(a.dtype(), a.bytes(), static_cast<std::size_t>(a.size()),
                            buffers.back().get(), f);
    shapes.push_back(a.shape());
  }
  for (std::size_t i = 0; i < files.size(); ++i)
    views.emplace_back(buffers[i].get(), std::span<const index_t>(shapes[i]));
  std::vector<std::span<const index_t>> shape_list;
  for (const auto& v : views) shape_list.push_back(v.shape());
  auto name_files = [&](const error& e) {
    std::string m = e.what();
    m += " (operands:";
    for (std::size_t i = 0; i < files.size(); ++i) m += (i ? ", " : " ") + files[i];
    return m + ")";
  };
  EinsumPlan<T> plan = [&] {
    try {
      return EinsumPlan<T>::make(spec, shape_list);
    } catch (const shape_error& e) {
      throw shape_error(name_files(e));
    }
  }();
  const auto oshape = plan.output_shape();
  io::NpyArray result(io::dtype_of<T>(), std::vector<index_t>(oshape.begin(), oshape.end()),
                      out_path);
  const StridedView<T> out(reinterpret_cast<T*>(result.bytes()), oshape);
  if (repeat > 0)
    time_repeats(repeat, plan.flops(), [&] { plan.run(out, views); });
  else
    plan.run(out, views);
  write_atomically(out_path, [&](const std::string& tmp) { io::write_npy(tmp, result); });
  return 0;
}

}  // namespace

int cmd_einsum(int argc, char** argv) {
  Args args("einsum", einsum_help, argc, argv, {"out", "dtype", "repeat"});
  const auto& pos = args.positional();
  if (pos.empty()) throw usage_error("einsum: missing SPEC (see attnkit einsum --help)");
  if (pos.size() < 2) throw usage_error("einsum: missing input .npy files after the SPEC");
  const std::string spec = pos[0];
  const std::vector<std::string> files(pos.begin() + 1, pos.end());
  const std::string out_path = args.require("out");
  const std::string dtype = args.get("dtype", "f32");
  if (dtype != "f32" && dtype != "f64")
    throw usage_error("einsum: --dtype must be f32 or f64, got '" + dtype + "'");
  const long long repeat = args.get_int("repeat", 0, 1, 1000000);
  const EinsumSpec parsed = parse_einsum_spec(spec);
  if (parsed.num_inputs != files.size())
    throw usage_error("einsum: the spec '" + spec + "' has " + std::to_string(parsed.num_inputs) +
                      " operand(s), got " + std::to_string(files.size()) + " file(s)");
  return dtype == "f64" ? run_einsum<double>(spec, files, out_path, repeat)
                        : run_einsum<float>(spec, files, out_path, repeat);
}

}  // namespace attnkit::cli
