// The subcommands of the `tuneloop` binary, one file each. Each returns a Status; main() prints
// `error: <message>` and maps the code to the exit code.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "model/model.h"

#include <optional>

namespace tl::cli {

using Argv = std::vector<std::string>;

Status cmd_info(const Argv& argv);
Status cmd_logits(const Argv& argv);
Status cmd_generate(const Argv& argv);
Status cmd_tokenize(const Argv& argv);
Status cmd_demo(const Argv& argv);
Status cmd_train(const Argv& argv);
Status cmd_loss(const Argv& argv);
Status cmd_merge(const Argv& argv);
Status cmd_harvest(const Argv& argv);
Status cmd_server(const Argv& argv);
Status cmd_tenant(const Argv& argv);
Status cmd_model(const Argv& argv);
Status cmd_lineage(const Argv& argv);
Status cmd_calibrate(const Argv& argv);
Status cmd_quantize(const Argv& argv);

// The model in `dir`, with a PEFT adapter folded in when given.
Result<Model> load_model_with_adapter(const std::string& dir, const std::optional<std::string>& adapter);
// The same, for forward passes only: packed, with the row-major copies freed (Model::drop_row_major).
Result<Model> load_model_for_inference(const std::string& dir, const std::optional<std::string>& adapter);

}  // namespace tl::cli
