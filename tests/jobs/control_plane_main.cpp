// tl_control_plane: the control-plane subcommands of `tuneloop` (server, tenant, model, lineage) built
// from the very same src/cli/*.cpp files, without linking the engine. The restart and SDK end-to-end
// tests drive this binary so they do not depend on every module of the tree building; `tuneloop
// server …` runs identical code.
#include <cstdio>
#include <cstring>

#include "cli/commands.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: tl_control_plane server|tenant|model|lineage ...\n");
    return 2;
  }
  tl::cli::Argv rest(argv + 2, argv + argc);
  tl::Status st;
  if (!std::strcmp(argv[1], "server")) st = tl::cli::cmd_server(rest);
  else if (!std::strcmp(argv[1], "tenant")) st = tl::cli::cmd_tenant(rest);
  else if (!std::strcmp(argv[1], "model")) st = tl::cli::cmd_model(rest);
  else if (!std::strcmp(argv[1], "lineage")) st = tl::cli::cmd_lineage(rest);
  else st = tl::invalid_argument("unknown command '{}'", argv[1]);
  if (!st.is_ok()) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", st.message().c_str());
    return st.exit_code();
  }
  return 0;
}
