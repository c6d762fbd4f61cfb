// `tuneloop lineage ADAPTER [--db URL] [--json]`: where an adapter came from — adapter → job →
// training/validation dataset (sha256, lines, format) → base model, its checkpoints, and the harvest
// report when the dataset was uploaded from a `tuneloop harvest` output directory that still has
// report.json beside it.
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/file.h"
#include "registry/registry.h"

namespace tl::cli {

Status cmd_lineage(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--db"}, {"--json"}));
  if (args.positionals().size() != 1) return invalid_argument("lineage: expected one ADAPTER (id or name)");
  TL_ASSIGN_OR_RETURN(auto reg, registry::Registry::open(args.get("--db").value_or("")));
  TL_ASSIGN_OR_RETURN(registry::Lineage l, reg->lineage(args.positionals()[0]));
  using nlohmann::json;
  auto file_json = [](const std::optional<registry::FileRecord>& f) -> json {
    if (!f) return nullptr;
    json j = {{"id", f->id}, {"filename", f->filename}, {"sha256", f->sha256}, {"lines", f->line_count}, {"format", f->format}};
    // A harvest output dir holds examples.jsonl / train.jsonl next to report.json.
    std::string report = (std::filesystem::path(f->filename).parent_path() / "report.json").string();
    if (!std::filesystem::path(f->filename).parent_path().empty() && file_exists(report)) j["harvest_report"] = report;
    return j;
  };
  json out = {{"adapter",
               {{"id", l.adapter.id}, {"name", l.adapter.name}, {"state", registry::adapter_state_name(l.adapter.state)},
                {"active", l.adapter.active}, {"domain", l.adapter.domain}, {"sha256", l.adapter.sha256}, {"path", l.adapter.path}}},
              {"base_model", l.base_model ? json{{"name", l.base_model->name}, {"dir", l.base_model->dir},
                                                 {"parameters", l.base_model->parameter_count}}
                                          : json(nullptr)}};
  if (l.job) {
    out["job"] = {{"id", l.job->id}, {"status", l.job->status}, {"method", l.job->method}, {"seed", l.job->seed},
                  {"hyperparameters", json::parse(l.job->hyperparameters, nullptr, false)}, {"created_at", l.job->created_at},
                  {"finished_at", l.job->finished_at}};
    out["training_file"] = file_json(l.training_file);
    out["validation_file"] = file_json(l.validation_file);
    json ck = json::array();
    for (const auto& c : l.checkpoints) ck.push_back({{"step", c.step}, {"path", c.path}});
    out["checkpoints"] = ck;
  }
  if (args.has("--json")) {
    std::printf("%s\n", out.dump(2).c_str());
    return Status::ok();
  }
  const auto& a = l.adapter;
  std::printf("adapter  %s (%s) — %s%s, domain %s\n", a.name.c_str(), a.id.c_str(), registry::adapter_state_name(a.state),
              a.active ? ", active" : "", a.domain.c_str());
  if (!a.sha256.empty()) std::printf("         sha256 %s\n", a.sha256.c_str());
  if (l.base_model)
    std::printf("base     %s → %s (%lld parameters)\n", l.base_model->name.c_str(), l.base_model->dir.c_str(),
                static_cast<long long>(l.base_model->parameter_count));
  if (!l.job) {
    std::printf("job      (none: registered without a job)\n");
    return Status::ok();
  }
  std::printf("job      %s — %s, method %s, seed %lld, %s\n", l.job->id.c_str(), l.job->status.c_str(), l.job->method.c_str(),
              static_cast<long long>(l.job->seed), l.job->hyperparameters.c_str());
  for (const auto* f : {&l.training_file, &l.validation_file}) {
    if (!*f) continue;
    json fj = file_json(*f);
    std::printf("dataset  %s %s — %lld lines, %s, sha256 %s\n", (*f)->id.c_str(), (*f)->filename.c_str(),
                static_cast<long long>((*f)->line_count), (*f)->format.c_str(), (*f)->sha256.c_str());
    if (fj.contains("harvest_report")) std::printf("harvest  %s\n", fj["harvest_report"].get<std::string>().c_str());
  }
  for (const auto& c : l.checkpoints) std::printf("ckpt     step %lld → %s\n", static_cast<long long>(c.step), c.path.c_str());
  return Status::ok();
}

}  // namespace tl::cli
