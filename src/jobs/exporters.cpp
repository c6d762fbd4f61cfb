// Text generation for the axolotl and unsloth exporters. Written with fmt rather than a YAML emitter so
// the output keeps axolotl's documented key order and our explanatory comments.
#include "jobs/exporters.h"

#include <fmt/format.h>

namespace tl::jobs {
namespace {

std::string yaml_str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string py_str(const std::string& s) { return yaml_str(s); }  // same escaping rules for our inputs

std::string list(const std::vector<std::string>& v, const char* open, const char* close) {
  std::string out = open;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + py_str(v[i]);
  return out + close;
}

std::string num(double v) { return fmt::format("{}", v); }

// axolotl dataset `type` for each of our formats.
std::string axolotl_dataset(const JobSpec& s, const std::string& path) {
  const std::string& f = s.dataset.format;
  std::string out = fmt::format("  - path: {}\n    ds_type: json\n", yaml_str(path));
  if (s.method == "dpo") return out + "    type: chatml.intel\n";
  if (f == "sharegpt")
    return out + "    type: chat_template\n    field_messages: conversations\n    message_property_mappings:\n      role: from\n      content: value\n";
  if (f == "alpaca") return out + "    type: alpaca\n";
  if (f == "input_output") return out + "    type: input_output\n";
  return out + "    type: chat_template\n    field_messages: messages\n";  // openai_chat and auto
}

}  // namespace

std::string export_axolotl_yaml(const JobSpec& s) {
  const TrainingSpec& t = s.training;
  std::string out = "# axolotl config exported by tuneloop from the unified job spec.\n";
  out += fmt::format("base_model: {}\n", yaml_str(s.base_model));
  // dpo's dpo.adapter picks the same three (axolotl's rl: dpo takes the adapter keys as SFT does).
  if (nf4_base(s)) out += "adapter: qlora\nload_in_4bit: true\n";
  else if (trains_all_weights(s)) out += "# no adapter: all weights train\n";
  else out += "adapter: lora\n";
  if (s.method == "dpo") out += fmt::format("rl: dpo\nrl_beta: {}\n", num(s.dpo.beta));
  if (s.method == "dpo" && s.dpo.loss != "sigmoid") out += fmt::format("dpo_loss_type: [{}]\n", s.dpo.loss);
  if (!trains_all_weights(s)) {
    out += fmt::format("lora_r: {}\nlora_alpha: {}\nlora_dropout: {}\n", s.lora.r, num(s.lora.alpha), num(s.lora.dropout));
    out += fmt::format("lora_target_modules: {}\n", list(s.lora.target_modules, "[", "]"));
    if (s.lora.rslora) out += "peft_use_rslora: true\n";
  }
  out += "datasets:\n" + axolotl_dataset(s, s.dataset.train);
  if (!s.dataset.validation.empty()) out += "test_datasets:\n" + axolotl_dataset(s, s.dataset.validation) + "    split: train\n";
  else out += "val_set_size: 0.0\n";
  out += fmt::format("train_on_inputs: {}\n", s.dataset.train_on == "all" ? "true" : "false");
  out += fmt::format("sequence_len: {}\nsample_packing: {}\n", t.max_seq_len, t.packing ? "true" : "false");
  out += fmt::format("micro_batch_size: {}\ngradient_accumulation_steps: {}\nnum_epochs: {}\n", t.micro_batch_size,
                     t.gradient_accumulation, t.epochs);
  out += fmt::format("optimizer: adamw_torch\nlearning_rate: {}\nlr_scheduler: {}\nwarmup_ratio: {}\n", num(t.learning_rate),
                     t.lr_scheduler, num(t.warmup_ratio));
  out += fmt::format("weight_decay: {}\nmax_grad_norm: {}\n", num(t.weight_decay), num(t.max_grad_norm));
  // training.precision: bf16 asks for it; fp32 leaves axolotl its own choice (bf16 where the GPU has it).
  out += fmt::format("gradient_checkpointing: {}\nbf16: {}\nseed: {}\n", t.gradient_checkpointing ? "true" : "false",
                     t.precision == "bf16" ? "true" : "auto", t.seed);
  out += fmt::format("save_steps: {}\nsave_total_limit: {}\noutput_dir: {}\n", s.checkpointing.every_steps, s.checkpointing.keep,
                     yaml_str(s.output_dir));
  return out;
}

std::string export_unsloth_script(const JobSpec& s) {
  const TrainingSpec& t = s.training;
  const bool dpo = s.method == "dpo";
  std::string out;
  out += "# unsloth training script exported by tuneloop from the unified job spec.\n";
  out += "# Run on a CUDA machine with: pip install unsloth trl datasets\n";
  out += "from unsloth import FastLanguageModel\n";
  out += "from datasets import load_dataset\n";
  out += dpo ? "from trl import DPOConfig, DPOTrainer\n" : "from trl import SFTConfig, SFTTrainer\n";
  out += "\n";
  out += fmt::format("BASE_MODEL = {}\nTRAIN_FILE = {}\n", py_str(s.base_model), py_str(s.dataset.train));
  out += fmt::format("VALIDATION_FILE = {}\n", s.dataset.validation.empty() ? "None" : py_str(s.dataset.validation));
  out += fmt::format("OUTPUT_DIR = {}\nMAX_SEQ_LEN = {}\n\n", py_str(s.output_dir), t.max_seq_len);
  out += "model, tokenizer = FastLanguageModel.from_pretrained(\n";
  out += fmt::format("    model_name=BASE_MODEL, max_seq_length=MAX_SEQ_LEN, load_in_4bit={}, full_finetuning={})\n",
                     nf4_base(s) ? "True" : "False", trains_all_weights(s) ? "True" : "False");
  if (!trains_all_weights(s)) {
    out += "model = FastLanguageModel.get_peft_model(\n";
    out += fmt::format("    model, r={}, lora_alpha={}, lora_dropout={}, use_rslora={},\n", s.lora.r, num(s.lora.alpha),
                       num(s.lora.dropout), s.lora.rslora ? "True" : "False");
    out += fmt::format("    target_modules={},\n", list(s.lora.target_modules, "[", "]"));
    out += fmt::format("    use_gradient_checkpointing={}, random_state={})\n", t.gradient_checkpointing ? "\"unsloth\"" : "False",
                       t.seed);
  }
  out += "\nfiles = {\"train\": TRAIN_FILE}\nif VALIDATION_FILE:\n    files[\"validation\"] = VALIDATION_FILE\n";
  out += "data = load_dataset(\"json\", data_files=files)\n";
  if (!dpo) {
    std::string field = s.dataset.format == "sharegpt" ? "conversations" : "messages";
    if (s.dataset.format == "alpaca" || s.dataset.format == "input_output") {
      std::string prompt = s.dataset.format == "alpaca" ? "ex[\"instruction\"] + (\"\\n\\n\" + ex[\"input\"] if ex.get(\"input\") else \"\")"
                                                        : "ex[\"input\"]";
      out += "\n\ndef to_text(ex):\n";
      out += fmt::format("    messages = [{{\"role\": \"user\", \"content\": {}}},\n", prompt);
      out += "                {\"role\": \"assistant\", \"content\": ex[\"output\"]}]\n";
    } else {
      out += "\n\ndef to_text(ex):\n";
      if (field == "conversations") {
        out += "    roles = {\"human\": \"user\", \"gpt\": \"assistant\", \"system\": \"system\"}\n";
        out += "    messages = [{\"role\": roles.get(m[\"from\"], m[\"from\"]), \"content\": m[\"value\"]} for m in ex[\"conversations\"]]\n";
      } else {
        out += "    messages = ex[\"messages\"]\n";
      }
    }
    out += "    return {\"text\": tokenizer.apply_chat_template(messages, tokenize=False)}\n\n\n";
    out += "data = data.map(to_text)\n";
  }
  out += "\n";
  std::string cfg = dpo ? "DPOConfig" : "SFTConfig";
  out += fmt::format("args = {}(\n", cfg);
  out += fmt::format("    output_dir=OUTPUT_DIR, num_train_epochs={}, per_device_train_batch_size={},\n", t.epochs, t.micro_batch_size);
  out += fmt::format("    gradient_accumulation_steps={}, learning_rate={}, lr_scheduler_type={},\n", t.gradient_accumulation,
                     num(t.learning_rate), py_str(t.lr_scheduler));
  out += fmt::format("    warmup_ratio={}, weight_decay={}, max_grad_norm={}, seed={},\n", num(t.warmup_ratio), num(t.weight_decay),
                     num(t.max_grad_norm), t.seed);
  out += fmt::format("    save_steps={}, save_total_limit={}, logging_steps=1, bf16=True,\n", s.checkpointing.every_steps,
                     s.checkpointing.keep);
  if (dpo) out += fmt::format("    beta={}, loss_type={}, max_length=MAX_SEQ_LEN)\n", num(s.dpo.beta), py_str(s.dpo.loss));
  else
    out += fmt::format("    dataset_text_field=\"text\", max_seq_length=MAX_SEQ_LEN, packing={})\n", t.packing ? "True" : "False");
  if (s.dataset.train_on == "assistant" && !dpo)
    out += "# train_on: assistant — wrap with unsloth.chat_templates.train_on_responses_only for your template\n";
  out += "eval_data = data[\"validation\"] if VALIDATION_FILE else None\n";
  if (dpo)
    out += "trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=data[\"train\"], eval_dataset=eval_data,\n"
           "                     processing_class=tokenizer)\n";
  else
    out += "trainer = SFTTrainer(model=model, args=args, train_dataset=data[\"train\"], eval_dataset=eval_data,\n"
           "                     processing_class=tokenizer)\n";
  out += "trainer.train()\nmodel.save_pretrained(OUTPUT_DIR)\ntokenizer.save_pretrained(OUTPUT_DIR)\n";
  return out;
}

}  // namespace tl::jobs
