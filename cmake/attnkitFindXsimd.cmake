# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
# Finds xsimd. Debian's xsimd 8.1 target names "xtl" as a link library without finding it
# (which would become -lxtl at link time): find xtl's CMake package for it, or stand in an
# empty interface target, since attnkit never uses xtl.
find_package(xsimd REQUIRED)
if(TARGET xsimd AND NOT TARGET xtl)
  get_target_property(_attnkit_xsimd_links xsimd INTERFACE_LINK_LIBRARIES)
  if("xtl" IN_LIST _attnkit_xsimd_links)
    find_package(xtl QUIET)
    if(NOT TARGET xtl)
      add_library(xtl INTERFACE IMPORTED)
    endif()
  endif()
  unset(_attnkit_xsimd_links)
endif()
