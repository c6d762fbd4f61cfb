// The unified spec parser, dataset validation, the preflight estimate and the device pool file: every
// error names its file, line or field.
#include <gtest/gtest.h>

#include "jobs/dataset_check.h"
#include "jobs/devices.h"
#include "jobs/estimate.h"
#include "jobs/job_spec.h"
#include "test_util.h"

namespace tl::jobs {
namespace {

const char* kSpec = R"(base_model: models/qwen
method: qlora
dataset:
  train: data/train.jsonl
  format: sharegpt
lora: {r: 16, alpha: 32}
training:
  epochs: 2
  learning_rate: 2.0e-4
output_dir: runs/x
)";

TEST(JobSpec, ParsesWithDefaults) {
  auto s = parse_job_spec(kSpec, "spec.yaml");
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  EXPECT_EQ(s->method, "qlora");
  EXPECT_EQ(s->lora.r, 16);
  EXPECT_DOUBLE_EQ(s->lora.dropout, 0.05);
  EXPECT_EQ(s->lora.target_modules.size(), 7u);
  EXPECT_EQ(s->training.epochs, 2);
  EXPECT_EQ(s->training.gradient_accumulation, 8);
  EXPECT_EQ(s->checkpointing.every_steps, 100);
  // Canonical YAML round-trips.
  auto again = parse_job_spec(job_spec_to_yaml(*s), "canonical.yaml");
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_EQ(job_spec_to_yaml(*again), job_spec_to_yaml(*s));
}

// QLoRA-DPO reaches the trainer: dpo.adapter survives the canonical YAML the runner writes.
TEST(JobSpec, DpoAdapterRoundTripsAndIsChecked) {
  const std::string dpo = "base_model: m\nmethod: dpo\ndataset: {train: t}\ndpo: {beta: 0.2, adapter: qlora}\noutput_dir: o\n";
  auto s = parse_job_spec(dpo, "spec.yaml");
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  EXPECT_EQ(s->dpo.adapter, "qlora");
  const std::string yaml = job_spec_to_yaml(*s);
  EXPECT_NE(yaml.find("adapter: qlora"), std::string::npos) << yaml;
  auto again = parse_job_spec(yaml, "canonical.yaml");
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_EQ(again->dpo.adapter, "qlora");
  EXPECT_EQ(parse_job_spec(kSpec, "spec.yaml")->dpo.adapter, "lora");
  auto r = parse_job_spec("base_model: m\nmethod: dpo\ndataset: {train: t}\ndpo: {adapter: nf4}\noutput_dir: o\n", "spec.yaml");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "spec.yaml: dpo.adapter must be one of full, lora, qlora, got 'nf4'");
  // adapter: full trains every weight, as method full does; qlora holds the base as NF4, as qlora does.
  auto f = parse_job_spec("base_model: m\nmethod: dpo\ndataset: {train: t}\ndpo: {adapter: full}\noutput_dir: o\n", "spec.yaml");
  ASSERT_TRUE(f.is_ok()) << f.status().message();
  EXPECT_TRUE(trains_all_weights(*f));
  EXPECT_FALSE(nf4_base(*f));
  EXPECT_EQ(parse_job_spec(job_spec_to_yaml(*f), "canonical.yaml")->dpo.adapter, "full");
  EXPECT_FALSE(trains_all_weights(*s));
  EXPECT_TRUE(nf4_base(*s));
}

// training.precision reaches the trainer when it is bf16, and is refused where the trainer refuses it.
TEST(JobSpec, PrecisionRoundTripsAndIsChecked) {
  auto s = parse_job_spec("base_model: m\nmethod: lora\ndataset: {train: t}\ntraining: {precision: bf16}\noutput_dir: o\n",
                          "spec.yaml");
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  EXPECT_EQ(parse_job_spec(job_spec_to_yaml(*s), "canonical.yaml")->training.precision, "bf16");
  EXPECT_EQ(job_spec_to_yaml(*parse_job_spec(kSpec, "spec.yaml")).find("precision"), std::string::npos);
  auto r = parse_job_spec("base_model: m\nmethod: lora\ndataset: {train: t}\ntraining: {precision: fp16}\noutput_dir: o\n",
                          "spec.yaml");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "spec.yaml: training.precision must be one of bf16, fp32, got 'fp16'");
  EXPECT_TRUE(parse_job_spec("base_model: m\nmethod: qlora\ndataset: {train: t}\ntraining: {precision: bf16}\n"
                             "output_dir: o\n", "spec.yaml").is_ok());
  r = parse_job_spec("base_model: m\nmethod: full\ndataset: {train: t}\ntraining: {precision: bf16}\noutput_dir: o\n",
                     "spec.yaml");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("bf16 is for a LoRA on a frozen base"), std::string::npos) << r.status().message();
}

TEST(JobSpec, ErrorsNameLineAndKey) {
  auto r = parse_job_spec("base_model: m\ntraining:\n  epochs: 2\n  learning_rat: 1\n", "spec.yaml");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message().substr(0, 56), "spec.yaml:4: unknown key 'learning_rat' in training (kno");
  r = parse_job_spec("base_model: m\ntraining:\n  epochs: three\n", "spec.yaml");
  EXPECT_EQ(r.status().message(), "spec.yaml:3: 'training.epochs' must be an integer, got 'three'");
  r = parse_job_spec("base_model: m\nmethod: rlhf\ndataset: {train: t}\noutput_dir: o\n", "spec.yaml");
  EXPECT_EQ(r.status().message(), "spec.yaml: method must be one of dpo, full, lora, qlora, got 'rlhf'");
  r = parse_job_spec("method: lora\n", "spec.yaml");
  EXPECT_EQ(r.status().message(), "spec.yaml: missing required key 'base_model'");
  r = parse_job_spec("base_model: [unclosed\n", "spec.yaml");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("spec.yaml:"), std::string::npos);
}

TEST(DatasetCheck, RecognisesFormatsAndCounts) {
  auto s = check_jsonl_dataset(test::chat_jsonl(3), "train.jsonl");
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  EXPECT_EQ(s->format, "openai_chat");
  EXPECT_EQ(s->lines, 3);
  EXPECT_GT(s->token_estimate, 0);
  EXPECT_EQ(check_jsonl_dataset("{\"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}, {\"from\": \"gpt\", \"value\": \"yo\"}]}\n", "f")->format, "sharegpt");
  EXPECT_EQ(check_jsonl_dataset("{\"instruction\": \"a\", \"output\": \"b\"}\n", "f")->format, "alpaca");
  EXPECT_EQ(check_jsonl_dataset("{\"input\": \"a\", \"output\": \"b\"}\n", "f")->format, "input_output");
  EXPECT_EQ(check_jsonl_dataset("{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n", "f")->format, "dpo");
}

TEST(DatasetCheck, ReportsEveryBadLineByNumber) {
  std::string text = test::chat_jsonl(1) + "{not json\n" + test::chat_jsonl(1) +
                     "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n" + "\n" + "{\"instruction\": \"a\", \"output\": \"b\"}\n";
  auto r = check_jsonl_dataset(text, "train.jsonl");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(),
            "train.jsonl: line 2: not valid JSON; line 4: openai_chat: no assistant message to learn from; line 5: empty line "
            "(JSONL needs one JSON object per line); line 6: format alpaca differs from openai_chat on line 1 (one format "
            "per file)");
  EXPECT_EQ(check_jsonl_dataset("", "e.jsonl").status().message(), "e.jsonl: no examples (an empty file)");
  std::string many;
  for (int i = 0; i < 15; ++i) many += "x\n";
  EXPECT_NE(check_jsonl_dataset(many, "m").status().message().find("; and 5 more bad lines"), std::string::npos);
}

TEST(Estimate, ParameterCountAndArithmetic) {
  std::string root = test::temp_dir("estimate");
  auto shape = read_model_shape(test::tiny_model_dir(root));
  ASSERT_TRUE(shape.is_ok()) << shape.status().message();
  // embed+head 2×1000×64, per layer attn 64×64 + 2×64×32 + 64×64 = 12288, mlp 3×64×128 = 24576, norms 128; final norm 64
  EXPECT_EQ(shape->parameters, 2 * 1000 * 64 + 2 * (12288 + 24576 + 128) + 64);
  JobSpec spec;
  spec.training.gradient_checkpointing = false;
  EXPECT_DOUBLE_EQ(flops_per_token(*shape, spec), 4.0 * static_cast<double>(shape->parameters));
  // dpo with adapter: qlora costs what qlora does (dequantising) plus dpo's second head sweep, and needs
  // the NF4 base's memory, not the bf16 one.
  ModelShape big = *shape;  // weights large enough to show in MiB
  big.parameters = 1000000000;
  spec.method = "dpo";
  const int64_t dpo_mb = memory_mb_needed(big, spec);
  spec.dpo.adapter = "qlora";
  ASSERT_EQ(spec.training.epochs, 3);  // the reference's forward, once, is a third of 2N per token-epoch
  EXPECT_DOUBLE_EQ(flops_per_token(*shape, spec), (4.0 * 1.25 + 2.0 / 3) * static_cast<double>(shape->parameters));
  EXPECT_LT(memory_mb_needed(big, spec), dpo_mb - 1000);
  spec.method = "qlora";
  const int64_t qlora_mb = memory_mb_needed(big, spec);
  spec.method = "dpo";
  EXPECT_GE(memory_mb_needed(big, spec), qlora_mb);
  spec.method = "full";
  EXPECT_DOUBLE_EQ(flops_per_token(*shape, spec), 6.0 * static_cast<double>(shape->parameters));
  // Full-parameter DPO: full's weight gradients and optimizer state (no copy of the reference), plus
  // dpo's second head sweep and the pair's activations.
  const int64_t full_mb = memory_mb_needed(big, spec);
  spec.method = "dpo";
  spec.dpo.adapter = "full";
  EXPECT_DOUBLE_EQ(flops_per_token(*shape, spec), (6.0 + 2.0 / 3) * static_cast<double>(shape->parameters));
  EXPECT_GT(memory_mb_needed(big, spec), full_mb);
  EXPECT_LT(memory_mb_needed(big, spec), full_mb + 100);
  spec.method = "full";
  DevicePool pool;
  pool.flops_per_second = {{"cpu", 1e9}};
  pool.devices = {{"cpu0", "cpu", 1 << 20, 2.0}};
  spec.training.epochs = 2;
  auto e = estimate_job(*shape, spec, 1000, 0, pool);
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e->tokens, 2000);
  EXPECT_NEAR(e->device_hours, 2000 * 6.0 * static_cast<double>(shape->parameters) / 1e9 / 3600, 1e-12);
  EXPECT_NEAR(e->cost, e->device_hours * 2.0, 1e-12);
  pool.devices = {{"small", "cpu", 1, 0}};
  auto too_big = estimate_job(*shape, spec, 1000, 0, pool);
  EXPECT_EQ(too_big.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(too_big.status().message().find("the largest device in the pool has 1 MiB"), std::string::npos);
  auto missing = read_model_shape(root);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  std::filesystem::remove_all(root);
}

TEST(Devices, PoolFileParsesAndErrorsNameLines) {
  std::string root = test::temp_dir("devices");
  std::string path = root + "/devices.yaml";
  ASSERT_TRUE(write_file_atomic(path, "devices:\n  - {id: g0, kind: h100, memory_gb: 80, price_per_hour: 2.5}\n"
                                      "  - {id: g1, kind: custom, memory_gb: 24}\ncalibration: {custom: 1.0e13}\naging_minutes: 30\n")
                  .is_ok());
  auto p = load_device_pool(path);
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  EXPECT_EQ(p->devices.size(), 2u);
  EXPECT_EQ(p->devices[0].memory_mb, 80 * 1024);
  EXPECT_EQ(p->aging_seconds, 1800);
  EXPECT_DOUBLE_EQ(*p->throughput(p->devices[1]), 1e13);
  ASSERT_TRUE(write_file_atomic(path, "devices:\n  - {id: g0, kind: h100, memory_gb: 80, vram: 3}\n").is_ok());
  EXPECT_EQ(load_device_pool(path).status().message(),
            path + ":2: unknown device key 'vram' (known: id, kind, memory_gb, price_per_hour)");
  ASSERT_TRUE(write_file_atomic(path, "devices:\n  - {id: g0, kind: tpu, memory_gb: 80}\n").is_ok());
  EXPECT_EQ(load_device_pool(path).status().message(),
            path + ": device g0: no calibration for kind 'tpu' (add it under calibration: in the devices file)");
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace tl::jobs
