// Commands not yet implemented in this tree.
#include "cli/commands.h"
namespace tl::cli {
Status cmd_tokenize(const Argv&) { return unimplemented("tokenize: not implemented yet"); }
}  // namespace tl::cli
