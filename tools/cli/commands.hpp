// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The subcommands of the attnkit program, one source file each.
#pragma once

namespace attnkit::cli {
int cmd_info(int argc, char** argv);
int cmd_einsum(int argc, char** argv);
int cmd_attend(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_train(int argc, char** argv);
}  // namespace attnkit::cli
