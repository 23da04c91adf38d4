// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The component's header compiles on its own (twice: include guards), outside the umbrella.
#include "attnkit/mpi/ring_attention.hpp"
