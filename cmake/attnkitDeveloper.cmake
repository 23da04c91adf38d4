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

# attnkit_target_defaults(<target> [ALL_ARCHS] [NO_SANITIZE]): warnings, arch flags and
# sanitizers of our own targets. Unless ALL_ARCHS is given, kernels are instantiated for the best
# architecture the arch flags enable only (ATTNKIT_DISPATCH_COMPILED_BEST): the other ones would
# be compiled but never run on the build machine. Targets that test the AVX2 and SSE2 paths
# (simd::set_max_arch) and the default dispatch pass ALL_ARCHS. NO_SANITIZE: not instrumented
# even with ATTNKIT_SANITIZE (examples, benchmarks and compile-fail twins, which the suite does
# not run; the instrumentation makes a translation unit 2-6 times slower to compile).
function(attnkit_target_defaults target)
  cmake_parse_arguments(_atd "ALL_ARCHS;NO_SANITIZE" "" "" ${ARGN})
  target_link_libraries(${target} PRIVATE attnkit::attnkit)
  separate_arguments(_arch UNIX_COMMAND "${ATTNKIT_ARCH_FLAGS}")
  target_compile_options(${target} PRIVATE ${_arch})
  if(NOT _atd_ALL_ARCHS)
    target_compile_definitions(${target} PRIVATE ATTNKIT_DISPATCH_COMPILED_BEST)
  endif()
  if(ATTNKIT_WERROR)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
      # GCC 12 reports a false -Wrestrict inside libstdc++'s std::string operator+ at -O2/-O3
      # (GCC bug 105651, fixed in 13); the warning points into the standard library.
      target_compile_options(${target} PRIVATE -Wno-restrict)
    endif()
  endif()
  if(ATTNKIT_SANITIZE AND NOT _atd_NO_SANITIZE)
    # UBSan without its per-access null and alignment checks: AddressSanitizer already reports a
    # null dereference (SEGV, with the stack), an aligned SIMD access that is not faults, and the
    # readers check a tensor's alignment before viewing it in place. The two checks cost a quarter
    # of the instrumented compile time (test_attention_softmax.cpp: 58 s with them, 42 s without).
    # Nor its pointer-overflow check (pointer arithmetic that wraps the address space; an
    # out-of-bounds access is AddressSanitizer's to report) or its vptr check (no attnkit class
    # is polymorphic): together about a fifth of what remained (test_attention_half_kv.cpp,
    # compiler user time, three alternating rounds: 24-36 s with them, 20-30 s without).
    # AddressSanitizer without use-after-scope (a stack local used after its block ended, in
    # the same frame): a quarter of what remained (the same file: 19.8-21.0 s with it,
    # 15.1-15.8 s without); tensors live on the heap, where use after free is still reported.
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined
                                             -fno-sanitize=null,alignment,pointer-overflow,vptr
                                             -fno-sanitize-address-use-after-scope
                                             -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
    get_target_property(_atd_type ${target} TYPE)
    if(_atd_type STREQUAL "EXECUTABLE")
      # Linked at a fixed address: as a position-independent executable the instrumented attnkit
      # program spent half of every start (0.21 s of --help) applying 1.2 million relocations
      # of the sanitizers' metadata, and the program's tests start it hundreds of times.
      target_link_options(${target} PRIVATE -no-pie)
    endif()
    if(ATTNKIT_WERROR AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      # GCC's sanitizer instrumentation defeats its own flow analysis: -Wmaybe-uninitialized
      # then fires on initialized locals (in Catch2's main among others); the uninstrumented
      # clang build keeps that class of warning checked.
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    endif()
  endif()
  set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)
endfunction()

# attnkit_link_eigen(<target>): links Eigen (tests and benchmarks only; the library never needs
# it). Include Eigen through attnkit/core/eigen_bridge.hpp, or between ATTNKIT_SIMD_WARNINGS_PUSH
# and _POP (attnkit/core/warnings.hpp): GCC 12 reports a false uninitialized-use inside its own
# AVX-512 intrinsics where Eigen's packet math inlines them.
function(attnkit_link_eigen target)
  find_package(Eigen3 3.4 REQUIRED NO_MODULE)
  target_link_libraries(${target} PRIVATE Eigen3::Eigen)
endfunction()
