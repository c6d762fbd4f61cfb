// `tuneloop train SPEC.yaml [--resume]`, `tuneloop loss MODEL_DIR [--adapter DIR] --data FILE.jsonl
// [--format F] [--max-seq-len N] [--beta B] [--dpo-loss L] [--reference DIR] [--json]`, `tuneloop merge
// MODEL_DIR --adapter DIR --out DIR`. On preference pairs `loss` reports the DPO loss and reward
// statistics of the adapter against the base, or of the model against --reference's (as the trainer's
// validation does).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/merge.h"
#include "model/peft.h"
#include "model/save.h"
#include "tokenizer/tokenizer.h"
#include "train/dataset.h"
#include "train/dpo.h"
#include "train/trainer.h"

namespace tl::cli {

Status cmd_train(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {}, {"--resume"}));
  if (args.positionals().size() != 1) return invalid_argument("train: expected one SPEC.yaml");
  TL_ASSIGN_OR_RETURN(TrainSpec spec, TrainSpec::load(args.positionals()[0]));
  TL_ASSIGN_OR_RETURN(TrainResult r, run_training(spec, args.has("--resume")));
  std::string validation;
  if (r.validation_loss >= 0) validation = fmt::format(", validation loss {:.4f}", r.validation_loss);
  if (r.validation_reward_accuracy >= 0)
    validation += fmt::format(" (chosen preferred in {:.0f}% of pairs)", 100 * r.validation_reward_accuracy);
  std::printf("trained %lld steps: loss %.4f -> %.4f%s; wrote %s\n", static_cast<long long>(r.steps), r.first_loss,
              r.last_loss, validation.c_str(), r.output_dir.c_str());
  return Status::ok();
}

Result<Model> load_model_with_adapter(const std::string& dir, const std::optional<std::string>& adapter) {
  if (!adapter) return Model::load(dir);
  TL_ASSIGN_OR_RETURN(Model model, Model::load_unpacked(dir));  // merging would drop the packing
  TL_ASSIGN_OR_RETURN(peft::Adapter a, peft::load(*adapter, model.config()));
  TL_TRY(merge_lora(model, a.weights, a.config).with_context(*adapter));
  return model;
}

Result<Model> load_model_for_inference(const std::string& dir, const std::optional<std::string>& adapter) {
  if (!adapter) return Model::load_packed(dir);  // each matrix held once, from the start
  TL_ASSIGN_OR_RETURN(Model model, load_model_with_adapter(dir, adapter));
  model.drop_row_major();  // packed after the merge, one matrix at a time: each matrix held once
  return model;
}

namespace {

// `loss` on preference pairs: the DPO loss of the policy (the model, with the adapter if one is given)
// against the reference (`reference`: the model without the adapter, or --reference's model).
Status preference_loss(const Args& args, const Model& model, LoraRef policy, const Model& reference, const Tokenizer& tok,
                       const std::string& data, const DataOptions& opt) {
  const std::string loss_name = args.get("--dpo-loss").value_or("sigmoid");
  TL_ASSIGN_OR_RETURN(DpoLossType type, dpo_loss_from_name(loss_name));
  TL_ASSIGN_OR_RETURN(double beta, args.get_double("--beta", 0.1, 1e-6, 100));
  DatasetStats stats;
  TL_ASSIGN_OR_RETURN(std::vector<PreferencePair> pairs, load_preference_pairs(data, tok, opt, &stats));
  DpoSet set = dpo_set(pairs);
  TL_TRY(score_reference(reference, &set));
  TL_ASSIGN_OR_RETURN(DpoTotals t, evaluate_pairs(model, policy, set, type, beta));
  if (args.has("--json")) {
    nlohmann::ordered_json j = {{"dpo_loss", t.mean(t.loss)},
                                {"reward_accuracy", t.mean(t.reward_correct)},
                                {"reward_margin", t.mean(t.reward_chosen - t.reward_rejected)},
                                {"rewards_chosen", t.mean(t.reward_chosen)},
                                {"rewards_rejected", t.mean(t.reward_rejected)},
                                {"pairs", t.pairs},
                                {"loss_type", loss_name},
                                {"beta", beta},
                                {"format", stats.format}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("dpo loss %.6f (%s, beta %g) over %lld pairs: chosen preferred in %.1f%%, reward margin %.4f\n",
                t.mean(t.loss), loss_name.c_str(), beta, static_cast<long long>(t.pairs), 100 * t.mean(t.reward_correct),
                t.mean(t.reward_chosen - t.reward_rejected));
  }
  return Status::ok();
}

}  // namespace

Status cmd_loss(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--adapter", "--data", "--format", "--max-seq-len", "--beta", "--dpo-loss",
                                                    "--reference"},
                                             {"--json"}));
  if (args.positionals().size() != 1) return invalid_argument("loss: expected one MODEL_DIR");
  const std::string dir = args.positionals()[0];
  TL_ASSIGN_OR_RETURN(std::string data, args.require("--data"));
  DataOptions opt;
  TL_ASSIGN_OR_RETURN(opt.format, data_format_from_name(args.get("--format").value_or("auto")));
  TL_ASSIGN_OR_RETURN(opt.max_seq_len, args.get_int("--max-seq-len", 2048, 1, 1 << 20));
  TL_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::load(dir));
  DataFormat format = opt.format;
  if (format == DataFormat::kAuto) {
    TL_ASSIGN_OR_RETURN(format, detect_file_format(data));
  }
  const bool preference = format == DataFormat::kDpo;
  if (!preference && (args.get("--beta") || args.get("--dpo-loss") || args.get("--reference")))
    return invalid_argument("--beta, --dpo-loss and --reference apply to preference pairs; {} is {}", data,
                            data_format_name(format));
  DatasetStats stats;
  std::vector<Example> examples;
  if (!preference) {
    TL_ASSIGN_OR_RETURN(examples, load_examples(data, tok, opt, &stats));
  }
  TL_ASSIGN_OR_RETURN(Model model, Model::load_packed(dir));  // forward passes only
  std::optional<peft::Adapter> adapter;
  if (auto a = args.get("--adapter")) {
    TL_ASSIGN_OR_RETURN(peft::Adapter loaded, peft::load(*a, model.config()));
    adapter.emplace(std::move(loaded));
  }
  LoraRef ref = adapter ? LoraRef{&adapter->weights, &adapter->config} : LoraRef{};
  if (preference) {
    // A model trained with dpo.adapter: full is scored against the base it started from.
    const auto ref_dir = args.get("--reference");
    if (!ref_dir) return preference_loss(args, model, ref, model, tok, data, opt);
    TL_ASSIGN_OR_RETURN(Model reference, Model::load_packed(*ref_dir));
    if (reference.config().vocab_size != model.config().vocab_size)
      return invalid_argument("--reference {}: vocabulary of {} tokens, but {} has {}", *ref_dir,
                              reference.config().vocab_size, dir, model.config().vocab_size);
    return preference_loss(args, model, ref, reference, tok, data, opt);
  }
  double sum = 0;
  int64_t n = 0;
  for (const TrainSequence& s : pack_examples(examples, opt.max_seq_len, false)) {
    TL_ASSIGN_OR_RETURN(StepStats st, sequence_loss(model, ref, s));
    sum += st.loss_sum;
    n += st.tokens;
  }
  const double mean = n ? sum / static_cast<double>(n) : 0.0;
  if (args.has("--json")) {
    nlohmann::ordered_json j = {{"loss", mean}, {"tokens", n}, {"examples", stats.examples}, {"format", stats.format}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("loss %.6f over %lld trained tokens in %lld examples (%s)\n", mean, static_cast<long long>(n),
                static_cast<long long>(stats.examples), stats.format.c_str());
  }
  return Status::ok();
}

Status cmd_merge(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--adapter", "--out"}, {}));
  if (args.positionals().size() != 1) return invalid_argument("merge: expected one MODEL_DIR");
  TL_ASSIGN_OR_RETURN(std::string adapter, args.require("--adapter"));
  TL_ASSIGN_OR_RETURN(std::string out, args.require("--out"));
  const std::string dir = args.positionals()[0];
  TL_ASSIGN_OR_RETURN(Model model, load_model_with_adapter(dir, adapter));
  TL_TRY(copy_model_metadata(dir, out));
  TL_TRY(save_hf_weights(out + "/model.safetensors", model.weights(), model.config()));
  std::printf("merged %s into %s -> %s\n", adapter.c_str(), dir.c_str(), out.c_str());
  return Status::ok();
}

}  // namespace tl::cli
