// `tuneloop demo [--dir DIR]`: the main job — the whole loop as far as tuneloop has grown, on a model it
// makes itself, in about a minute on two cores:
//   1. synthetic chat data (sums and echoing to pretrain on; a new answer style as the fine-tuning task)
//   2. a byte-level BPE tokenizer trained on it, with a ChatML chat template (real HF files)
//   3. a small Qwen2-shaped model pretrained from random initialisation (method: full, init: random)
//   4. the task loss of that base model, a LoRA fine-tune on the task, the loss after (held-out questions)
//   5. generation for a held-out question without and with the adapter
// Every step goes through the same code paths as the CLI commands (specs are written as YAML files).
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli/args.h"
#include "cli/chat_input.h"
#include "cli/commands.h"
#include "core/file.h"
#include "model/generate.h"
#include "model/random_model.h"
#include "tensor/blas.h"
#include "tensor/kernels.h"
#include "tokenizer/bpe_trainer.h"
#include "train/trainer.h"

namespace tl::cli {

namespace {

std::string chat_line(const std::string& user, const std::string& assistant) {
  nlohmann::ordered_json j = {{"messages", {{{"role", "user"}, {"content", user}}, {{"role", "assistant"}, {"content", assistant}}}}};
  return j.dump() + "\n";
}

struct Corpus {
  std::string pretrain, task_train, task_val;
};

// Pretraining teaches sums ("3 plus 4 is 7.") and echoing; the task teaches a new answer style
// ("The answer is 7.") on some sums, and is judged on sums it never saw in that style.
Corpus make_corpus() {
  Corpus c;
  const char* words[] = {"apple", "river", "stone", "cloud", "green", "seven", "table", "light", "paper", "music"};
  for (int a = 0; a < 12; ++a)
    for (int b = 0; b < 12; ++b) {
      const std::string q = "What is " + std::to_string(a) + " plus " + std::to_string(b) + "?";
      const std::string sum = std::to_string(a + b);
      c.pretrain += chat_line(q, std::to_string(a) + " plus " + std::to_string(b) + " is " + sum + ".");
      const int bucket = (a * 7 + b * 3) % 6;
      if (bucket < 3) c.task_train += chat_line(q, "The answer is " + sum + ".");
      else if (bucket == 3) c.task_val += chat_line(q, "The answer is " + sum + ".");
    }
  for (const char* w : words)
    for (const char* v : words) c.pretrain += chat_line(std::string("Repeat: ") + w + " " + v, std::string(w) + " " + v);
  return c;
}

Status write_spec(const std::string& path, const std::string& body) { return write_file_atomic(path, body); }

Result<double> dataset_loss(const std::string& model_dir, const std::string& adapter, const std::string& data) {
  // Reuses `tuneloop loss` in-process, parsing its JSON line from a pipe-free call.
  Argv argv = {model_dir, "--data", data, "--json"};
  if (!adapter.empty()) argv.insert(argv.end(), {"--adapter", adapter});
  std::fflush(stdout);
  char* buf = nullptr;
  size_t len = 0;
  FILE* mem = open_memstream(&buf, &len);
  FILE* saved = stdout;
  stdout = mem;
  Status st = cmd_loss(argv);
  std::fflush(mem);
  stdout = saved;
  std::fclose(mem);
  std::string out(buf, len);
  std::free(buf);
  if (!st.is_ok()) return st;
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded()) return internal_error("loss: unexpected output '{}'", out);
  return j["loss"].get<double>();
}

}  // namespace

Status cmd_demo(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--dir"}, {}));
  const std::string dir = args.get("--dir").value_or("demo");
  const std::string base = dir + "/base-config", model = dir + "/model", adapter = dir + "/adapter";
  const BlasInfo& blas = blas_info();
  std::printf("== tuneloop demo (kernels %s, OpenBLAS core %s, %d threads) ==\n", isa_name(active_isa()),
              blas.core.c_str(), blas.threads);

  std::printf("[1/6] data: synthetic chat sets in %s/data\n", dir.c_str());
  Corpus corpus = make_corpus();
  std::filesystem::create_directories(dir + "/data");
  TL_TRY(write_file_atomic(dir + "/data/pretrain.jsonl", corpus.pretrain));
  TL_TRY(write_file_atomic(dir + "/data/task_train.jsonl", corpus.task_train));
  TL_TRY(write_file_atomic(dir + "/data/task_val.jsonl", corpus.task_val));

  std::printf("[2/6] tokenizer: byte-level BPE trained on the data -> %s/tokenizer.json\n", base.c_str());
  BpeTrainOptions bopt;
  bopt.num_merges = 300;
  TL_ASSIGN_OR_RETURN(int vocab, write_bpe_tokenizer(base, corpus.pretrain + corpus.task_train, bopt));
  ModelConfig c;
  c.model_type = "qwen2";
  c.vocab_size = (vocab + 7) / 8 * 8;
  c.hidden_size = 128;
  c.intermediate_size = 352;
  c.num_layers = 4;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 32;
  c.max_position_embeddings = 2048;
  c.rope_theta = 1000000.0;
  c.tie_word_embeddings = true;
  c.qkv_bias = true;
  c.eos_token_ids = {vocab - 1};  // <|im_end|>
  TL_TRY(write_file_atomic(base + "/config.json", config_to_json(c)));

  std::printf("[3/6] pretrain: %s from random init (method: full)\n", model.c_str());
  TL_TRY(write_spec(dir + "/pretrain.yaml",
                    "base_model: base-config\nmethod: full\ninit: random\n"
                    "dataset: {train: data/pretrain.jsonl, format: openai_chat}\n"
                    "training: {epochs: 60, micro_batch_size: 4, gradient_accumulation: 1, learning_rate: 3.0e-3,\n"
                    "           lr_scheduler: cosine, warmup_ratio: 0.05, max_seq_len: 256, packing: true,\n"
                    "           gradient_checkpointing: false, seed: 1}\n"
                    "checkpointing: {every_steps: 1000, keep: 1}\noutput_dir: model\n"));
  TL_ASSIGN_OR_RETURN(TrainSpec pre_spec, TrainSpec::load(dir + "/pretrain.yaml"));
  TL_ASSIGN_OR_RETURN(TrainResult pre, run_training(pre_spec, false));
  std::printf("      loss %.3f -> %.3f over %lld steps\n", pre.first_loss, pre.last_loss, static_cast<long long>(pre.steps));

  TL_ASSIGN_OR_RETURN(double before, dataset_loss(model, "", dir + "/data/task_val.jsonl"));
  std::printf("[4/6] LoRA fine-tune: a new answer style (held-out loss before: %.3f)\n", before);
  TL_TRY(write_spec(dir + "/lora.yaml",
                    "base_model: model\nmethod: lora\n"
                    "dataset: {train: data/task_train.jsonl, validation: data/task_val.jsonl}\n"
                    "lora: {r: 8, alpha: 16, dropout: 0.05}\n"
                    "training: {epochs: 30, micro_batch_size: 4, gradient_accumulation: 1, learning_rate: 5.0e-3,\n"
                    "           lr_scheduler: cosine, warmup_ratio: 0.03, max_seq_len: 128, seed: 2}\n"
                    "checkpointing: {every_steps: 100, keep: 2}\noutput_dir: adapter\n"));
  TL_ASSIGN_OR_RETURN(TrainSpec lora_spec, TrainSpec::load(dir + "/lora.yaml"));
  TL_ASSIGN_OR_RETURN(TrainResult ft, run_training(lora_spec, false));
  TL_ASSIGN_OR_RETURN(double after, dataset_loss(model, adapter, dir + "/data/task_val.jsonl"));
  std::printf("[5/6] held-out loss: %.3f -> %.3f with the adapter (%s; train loss %.3f -> %.3f)\n", before, after,
              adapter.c_str(), ft.first_loss, ft.last_loss);

  std::printf("[6/6] generate for a held-out question:\n");
  const std::string question = "What is 5 plus 6?";  // held out of the style task
  TL_TRY(write_file_atomic(dir + "/question.json", nlohmann::json::array({{{"role", "user"}, {"content", question}}}).dump()));
  for (const char* which : {"base", "adapter"}) {
    Argv g = {model, "--chat", dir + "/question.json", "--max-tokens", "24"};
    if (std::string(which) == "adapter") g.insert(g.end(), {"--adapter", adapter});
    std::printf("  %-8s> ", which);
    std::fflush(stdout);
    TL_TRY(cmd_generate(g));
  }
  std::printf("  (the base model was pretrained to say \"5 plus 6 is 11.\"; the adapter taught \"The answer is ...\")\n");
  return Status::ok();
}

}  // namespace tl::cli
