# tree-sitter grammars for `tuneloop harvest`: compiles each grammar's generated C parser (src/parser.c,
# plus src/scanner.c where the grammar has an external scanner) from the npm packages that
# scripts/fetch_grammars.sh unpacks into third_party/npm/, into one static library `tl_ts_grammars`.
#
# Why here and not in src/harvest: the sources are third-party generated C, so they get none of our
# warning flags, and they are compiled at -O1 — tree-sitter-cpp's parser.c is 17 MB and -O2 costs
# minutes on our shared cores for little parse speed (the hot loop lives in the runtime, libtree-sitter,
# which Debian ships optimised). ccache (enabled in the top CMakeLists) makes them a one-time cost.
#
# The build fails early with a clear message if a grammar is missing (run scripts/setup.sh) or was
# generated for a tree-sitter ABI newer than Debian 12's libtree-sitter 0.20.7 accepts (14).

set(TL_GRAMMAR_ROOT "${PROJECT_SOURCE_DIR}/third_party/npm" CACHE PATH "Where fetch_grammars.sh unpacks grammar packages")
set(TL_TREE_SITTER_MAX_ABI 14)

# name;package-relative source dir — keep in step with scripts/fetch_grammars.sh.
set(TL_GRAMMARS
  "python|tree-sitter-python/src"
  "c|tree-sitter-c/src"
  "javascript|tree-sitter-javascript/src"
  "go|tree-sitter-go/src"
  "rust|tree-sitter-rust/src"
  "java|tree-sitter-java/src"
  "cpp|tree-sitter-cpp/src"
  "bash|tree-sitter-bash/src"
  "typescript|tree-sitter-typescript/typescript/src"
  "tsx|tree-sitter-typescript/tsx/src")

find_path(TREE_SITTER_INCLUDE_DIR tree_sitter/api.h)
find_library(TREE_SITTER_LIBRARY tree-sitter)
if(NOT TREE_SITTER_INCLUDE_DIR OR NOT TREE_SITTER_LIBRARY)
  message(FATAL_ERROR "harvest: libtree-sitter not found; install libtree-sitter-dev (scripts/setup.sh)")
endif()
add_library(tl_tree_sitter INTERFACE)
target_include_directories(tl_tree_sitter SYSTEM INTERFACE ${TREE_SITTER_INCLUDE_DIR})
target_link_libraries(tl_tree_sitter INTERFACE ${TREE_SITTER_LIBRARY})

set(tl_grammar_sources "")
foreach(entry ${TL_GRAMMARS})
  string(REPLACE "|" ";" parts "${entry}")
  list(GET parts 0 gname)
  list(GET parts 1 gdir)
  set(src_dir "${TL_GRAMMAR_ROOT}/${gdir}")
  if(NOT EXISTS "${src_dir}/parser.c")
    message(FATAL_ERROR "harvest: grammar '${gname}' missing: ${src_dir}/parser.c not found. "
                        "Run scripts/fetch_grammars.sh (or scripts/setup.sh) to fetch it from npm.")
  endif()
  # The ABI check reads only the head of the file: the define sits in the first few lines.
  file(STRINGS "${src_dir}/parser.c" abi_line REGEX "^#define LANGUAGE_VERSION [0-9]+" LIMIT_INPUT 4096)
  if(NOT abi_line)
    message(FATAL_ERROR "harvest: ${src_dir}/parser.c has no '#define LANGUAGE_VERSION N' line")
  endif()
  string(REGEX REPLACE "^#define LANGUAGE_VERSION ([0-9]+).*" "\\1" abi "${abi_line}")
  if(abi GREATER TL_TREE_SITTER_MAX_ABI)
    message(FATAL_ERROR "harvest: grammar '${gname}' (${src_dir}/parser.c) is tree-sitter ABI ${abi}, "
                        "but libtree-sitter 0.20.7 loads ABI <= ${TL_TREE_SITTER_MAX_ABI}. Pin an older "
                        "grammar version in scripts/fetch_grammars.sh.")
  endif()
  set(files "${src_dir}/parser.c")
  if(EXISTS "${src_dir}/scanner.c")
    list(APPEND files "${src_dir}/scanner.c")
  endif()
  # Each grammar includes its own "tree_sitter/parser.h" relative to its src dir; per-file include
  # paths keep the (slightly different) copies from shadowing each other.
  set_source_files_properties(${files} PROPERTIES
    INCLUDE_DIRECTORIES "${src_dir}"
    COMPILE_OPTIONS "-O1;-w;-fPIC")
  list(APPEND tl_grammar_sources ${files})
endforeach()

add_library(tl_ts_grammars STATIC ${tl_grammar_sources})
target_link_libraries(tl_ts_grammars PUBLIC tl_tree_sitter)
