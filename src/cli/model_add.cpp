// `tuneloop model add NAME MODEL_DIR [--db URL]`: registers a base model (a Hugging Face directory)
// under the name that fine-tuning requests use in `model`. The parameter count from config.json is
// stored for the preflight estimate.
#include <cstdio>
#include <filesystem>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/file.h"
#include "jobs/estimate.h"
#include "registry/hashing.h"
#include "registry/registry.h"

namespace tl::cli {

Status cmd_model(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--db"}, {}));
  const auto& pos = args.positionals();
  if (pos.size() != 3 || pos[0] != "add") return invalid_argument("model: expected `model add NAME MODEL_DIR`");
  std::error_code ec;
  std::string dir = std::filesystem::absolute(pos[2], ec).string();
  if (!is_directory(dir)) return not_found("{}: not a model directory", pos[2]);
  TL_ASSIGN_OR_RETURN(jobs::ModelShape shape, jobs::read_model_shape(dir));
  TL_ASSIGN_OR_RETURN(std::string cfg_sha, registry::sha256_file(dir + "/config.json"));
  TL_ASSIGN_OR_RETURN(auto reg, registry::Registry::open(args.get("--db").value_or("")));
  TL_TRY(reg->add_model({pos[1], dir, shape.parameters, cfg_sha, 0}));
  std::printf("registered model %s → %s (%lld parameters)\n", pos[1].c_str(), dir.c_str(),
              static_cast<long long>(shape.parameters));
  return Status::ok();
}

}  // namespace tl::cli
