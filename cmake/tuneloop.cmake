# Shared build settings for tuneloop's own targets: strict warnings as errors (our code only),
# optional sanitizers, and helpers that declare a module library with its one-way dependencies.

set(TUNELOOP_WARNINGS -Wall -Wextra -Wpedantic -Werror -Wshadow -Wnon-virtual-dtor
    -Wcast-align -Wunused -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC 12 false positives in <format>-free code paths of libstdc++ (std::variant, std::optional).
  list(APPEND TUNELOOP_WARNINGS -Wno-maybe-uninitialized -Wno-null-dereference -Wno-stringop-overflow)
endif()
if(CMAKE_BUILD_TYPE STREQUAL "Debug")
  list(APPEND TUNELOOP_WARNINGS -Wconversion -Wno-sign-conversion)
endif()

set(TUNELOOP_SAN_FLAGS "")
if(TUNELOOP_SANITIZE)
  set(TUNELOOP_SAN_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_compile_options(${TUNELOOP_SAN_FLAGS})
  add_link_options(${TUNELOOP_SAN_FLAGS})
endif()

# tl_library(NAME SOURCES ... DEPS ...): a module library `tl_NAME` whose public headers are included
# as "NAME/header.h" from src/.
function(tl_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(tl_${name} STATIC ${ARG_SOURCES})
  target_include_directories(tl_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(tl_${name} PRIVATE ${TUNELOOP_WARNINGS})
  target_link_libraries(tl_${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()
