// A test double for `tuneloop train SPEC.yaml [--resume]` that writes what the real trainer (issue 4)
// writes, on the runner contract of src/jobs/runner.h, in a fraction of a second:
//   OUTPUT_DIR/metrics.jsonl             {"step", "epoch", "loss", "lr", "total_steps"} per step, flushed
//   OUTPUT_DIR/checkpoints/step-0000000N every checkpointing.every_steps (temp dir + rename, like the real one)
//   OUTPUT_DIR/adapter_model.safetensors + adapter_config.json at the end (a tiny valid safetensors)
// With --resume it continues after the newest checkpoint and appends "resumed from step N" to
// OUTPUT_DIR/resume.log. Knobs (environment): TL_FAKE_STEPS (default 6), TL_FAKE_STEP_MS (default 50),
// TL_FAKE_CRASH_SEED: a job whose training.seed equals it writes an error to stderr and exits 3 at step 3.
// The control-plane tests use it until the real `tuneloop train` is in the tree; pointing
// `tuneloop server --trainer` at the real binary needs no other change.
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc < 3 || std::string(argv[1]) != "train") {
    std::fprintf(stderr, "usage: fake_trainer train SPEC.yaml [--resume]\n");
    return 2;
  }
  bool resume = argc > 3 && std::string(argv[3]) == "--resume";
  YAML::Node spec = YAML::LoadFile(argv[2]);
  const std::string out = spec["output_dir"].as<std::string>();
  const long every = spec["checkpointing"]["every_steps"].as<long>();
  const long seed = spec["training"]["seed"].as<long>();
  const long steps = std::getenv("TL_FAKE_STEPS") ? std::atol(std::getenv("TL_FAKE_STEPS")) : 6;
  const long step_ms = std::getenv("TL_FAKE_STEP_MS") ? std::atol(std::getenv("TL_FAKE_STEP_MS")) : 50;
  const char* crash = std::getenv("TL_FAKE_CRASH_SEED");
  fs::create_directories(out + "/checkpoints");
  long start = 0;
  if (resume) {
    for (const auto& e : fs::directory_iterator(out + "/checkpoints")) {
      std::string name = e.path().filename().string();
      if (name.rfind("step-", 0) == 0 && name.find(".tmp") == std::string::npos) start = std::max(start, std::atol(name.c_str() + 5));
    }
    std::ofstream(out + "/resume.log", std::ios::app) << "resumed from step " << start << "\n";
    std::printf("resuming from step %ld\n", start);
  }
  FILE* metrics = std::fopen((out + "/metrics.jsonl").c_str(), "a");
  for (long step = start + 1; step <= steps; ++step) {
    std::this_thread::sleep_for(std::chrono::milliseconds(step_ms));
    if (crash && std::atol(crash) == seed && step == 3) {
      std::fprintf(stderr, "loading batch 3\nerror: CUDA out of memory at step 3 (fake)\n");
      return 3;
    }
    double loss = 2.0 / static_cast<double>(step);
    std::fprintf(metrics, "{\"step\": %ld, \"epoch\": %.3f, \"loss\": %.6f, \"lr\": 0.0001, \"total_steps\": %ld}\n", step,
                 static_cast<double>(step) / static_cast<double>(steps), loss, steps);
    std::fflush(metrics);
    if (step % every == 0) {
      char name[64];
      std::snprintf(name, sizeof name, "step-%08ld", step);
      std::string tmp = out + "/checkpoints/" + name + ".tmp";
      fs::create_directories(tmp);
      std::ofstream(tmp + "/state.json") << "{\"step\": " << step << "}\n";
      fs::rename(tmp, out + "/checkpoints/" + name);
    }
  }
  std::fclose(metrics);
  // A tiny valid safetensors file: 8-byte little-endian header length, then the JSON header.
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}}";
  std::ofstream st(out + "/adapter_model.safetensors", std::ios::binary);
  uint64_t n = header.size();
  st.write(reinterpret_cast<const char*>(&n), 8);
  st << header;
  std::ofstream(out + "/adapter_config.json") << "{\"peft_type\": \"LORA\", \"r\": 32}\n";
  std::printf("done: %ld steps\n", steps);
  return 0;
}
