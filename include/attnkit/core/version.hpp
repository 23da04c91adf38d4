// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The library version.
#pragma once

#define ATTNKIT_VERSION_MAJOR 0
#define ATTNKIT_VERSION_MINOR 1
#define ATTNKIT_VERSION_PATCH 0

namespace attnkit {
/// "major.minor.patch"
inline constexpr const char* version_string = "0.1.0";
}  // namespace attnkit
