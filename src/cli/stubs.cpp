// Commands not yet implemented in this tree.
#include "cli/commands.h"
namespace tl::cli {
Status cmd_info(const Argv&) { return unimplemented("info: not implemented yet"); }
Status cmd_logits(const Argv&) { return unimplemented("logits: not implemented yet"); }
Status cmd_generate(const Argv&) { return unimplemented("generate: not implemented yet"); }
Status cmd_tokenize(const Argv&) { return unimplemented("tokenize: not implemented yet"); }
Status cmd_demo(const Argv&) { return unimplemented("demo: not implemented yet"); }
}  // namespace tl::cli
