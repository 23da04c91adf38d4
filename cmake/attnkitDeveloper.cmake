# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
# Settings for attnkit's own tests, benchmarks, examples and tools (never for consumers).

find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_custom_target(attnkit_amalgamate
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tools/amalgamate.py
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    COMMENT "Regenerating single_include/attnkit/attnkit.hpp")
endif()

# attnkit_target_defaults(<target>): warnings, arch flags and sanitizers of our own targets.
function(attnkit_target_defaults target)
  target_link_libraries(${target} PRIVATE attnkit::attnkit)
  separate_arguments(_arch UNIX_COMMAND "${ATTNKIT_ARCH_FLAGS}")
  target_compile_options(${target} PRIVATE ${_arch})
  if(ATTNKIT_WERROR)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
      # GCC 12 reports a false -Wrestrict inside libstdc++'s std::string operator+ at -O2/-O3
      # (GCC bug 105651, fixed in 13); the warning points into the standard library.
      target_compile_options(${target} PRIVATE -Wno-restrict)
    endif()
  endif()
  if(ATTNKIT_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined
                                             -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
  set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)
endfunction()
