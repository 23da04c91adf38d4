// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The umbrella header: everything public in attnkit except the Eigen bridge
// (include "attnkit/core/eigen_bridge.hpp" for that).
#pragma once

#include "attnkit/block/feed_forward.hpp"
#include "attnkit/block/linear.hpp"
#include "attnkit/block/moe.hpp"
#include "attnkit/block/norm.hpp"
#include "attnkit/block/rope.hpp"
#include "attnkit/core/aligned.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/parallel.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/core/version.hpp"
#include "attnkit/einsum/einsum.hpp"
#include "attnkit/io/dtype.hpp"
#include "attnkit/io/half.hpp"
#include "attnkit/io/json.hpp"
#include "attnkit/io/npy.hpp"
#include "attnkit/io/safetensors.hpp"
#include "attnkit/kernel/gemm.hpp"
#include "attnkit/kernel/packed_gemm.hpp"
#include "attnkit/kernel/tile_gemm.hpp"
#include "attnkit/simd/arch.hpp"
#include "attnkit/simd/batch.hpp"
#include "attnkit/simd/math.hpp"
#include "attnkit/simd/rows.hpp"
