// The control plane driving the REAL trainer: a server process (tl_control_plane, the code of `tuneloop
// server`) launches `tuneloop train` (--trainer BUILD/tuneloop) on a tiny model built here (BPE tokenizer
// with a ChatML template + random Qwen2-shaped weights). An openai_chat JSONL goes up over HTTP, a LoRA
// job with max_steps runs to `succeeded`, and everything the real trainer writes must come back through
// the API: metric events with finite losses, checkpoints at the trainer's step-N directories plus the
// final adapter, a draft adapter whose PEFT files exist, run metrics, and `lineage` from the CLI.
// A second job is cancelled while the real trainer runs and must end `cancelled` with its group gone.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/random_model.h"
#include "registry/registry.h"
#include "server_process.h"
#include "tokenizer/bpe_trainer.h"

namespace tl::jobs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string chat_line(const std::string& q, const std::string& a) {
  return json({{"messages", json::array({{{"role", "user"}, {"content", q}}, {{"role", "assistant"}, {"content", a}}})}}).dump() +
         "\n";
}

// The tiny base model in `model`: a tokenizer trained on the data (with a ChatML chat template) and
// random weights. Returns the openai_chat JSONL (24 examples).
std::string make_tiny_model(const std::string& model) {
  std::string jsonl;
  for (int a = 0; a < 6; ++a)
    for (int b = 0; b < 4; ++b) jsonl += chat_line("add " + std::to_string(a) + " " + std::to_string(b), "sum " + std::to_string(a + b));
  auto vocab = write_bpe_tokenizer(model, jsonl, {});
  EXPECT_TRUE(vocab.is_ok()) << vocab.status().message();
  ModelConfig c;
  c.model_type = "qwen2";
  c.vocab_size = vocab.is_ok() ? *vocab : 300;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 256;
  c.tie_word_embeddings = true;
  c.qkv_bias = true;
  EXPECT_TRUE(write_random_model(model, c, 3).is_ok());
  return jsonl;
}

std::string trainer_path() { return std::string(TL_BINARY_DIR) + "/tuneloop"; }

// A fresh directory holding a registry with the tiny model (registered as "tiny") and a tenant with an
// unlimited pro quota, whose API key is `key`.
struct TinySetup {
  std::string root, db, data, model, cp, trainer, key;
  std::string jsonl;  // make_tiny_model's examples
};

TinySetup make_tiny_setup(const std::string& name) {
  TinySetup s;
  s.root = test::temp_dir(name);
  s.db = s.root + "/tuneloop.db";
  s.data = s.root + "/data";
  s.model = s.root + "/tiny-qwen";
  s.cp = test::control_plane();
  s.trainer = trainer_path();
  EXPECT_EQ(access(s.trainer.c_str(), X_OK), 0) << s.trainer << " is not built";
  s.jsonl = make_tiny_model(s.model);
  auto [tc, key_out] = test::run_command(s.cp + " tenant add acme --tier pro --quota-hours -1 --db " + s.db + " 2>/dev/null");
  EXPECT_EQ(tc, 0) << key_out;
  s.key = key_out.substr(0, key_out.find('\n'));
  auto [mc, mout] = test::run_command(s.cp + " model add tiny " + s.model + " --db " + s.db);
  EXPECT_EQ(mc, 0) << mout;
  return s;
}

// Creates a fine-tuning job and waits (45 s at most) until it ends; returns the job object (null when
// it could not be created).
json run_job(httplib::Client& http, const json& req) {
  auto created = http.Post("/v1/fine_tuning/jobs", req.dump(), "application/json");
  EXPECT_TRUE(created && created->status == 200) << (created ? created->body : "no response");
  if (!created || created->status != 200) return json();
  const std::string job = json::parse(created->body)["id"];
  json last;
  EXPECT_TRUE(test::wait_until([&] {
    auto r = http.Get(("/v1/fine_tuning/jobs/" + job).c_str());
    if (!r || r->status != 200) return false;
    last = json::parse(r->body);
    return last["status"] == "succeeded" || last["status"] == "failed" || last["status"] == "cancelled";
  }, 45)) << last.dump();
  return last;
}

TEST(RealTrainer, UploadTrainSucceedRegisterLineage) {
  const TinySetup setup = make_tiny_setup("real_trainer");
  ASSERT_FALSE(::testing::Test::HasFailure());
  const std::string &root = setup.root, &db = setup.db, &data = setup.data, &cp = setup.cp, &trainer = setup.trainer,
                    &key = setup.key, &jsonl = setup.jsonl;

  test::ServerProcess server({"server", "--db", db, "--port", "0", "--data-dir", data, "--trainer", trainer, "--threads", "4"},
                             {"OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1"});
  ASSERT_GT(server.port(), 0);
  httplib::Client http("127.0.0.1", server.port());
  http.set_bearer_token_auth(key.c_str());
  http.set_read_timeout(10, 0);
  httplib::MultipartFormDataItems items = {{"file", jsonl, "train.jsonl", "application/jsonl"}, {"purpose", "fine-tune", "", ""}};
  auto up = http.Post("/v1/files", items);
  ASSERT_TRUE(up && up->status == 200) << (up ? up->body : "no response");
  const std::string file = json::parse(up->body)["id"];
  EXPECT_EQ(json::parse(up->body)["format"], "openai_chat");

  // 24 examples, 4 sequences per step: 6 steps per epoch; max_steps 5 stops inside the first epoch.
  const std::string spec =
      "lora: {r: 4, alpha: 8, dropout: 0.0}\n"
      "training: {micro_batch_size: 2, gradient_accumulation: 2, learning_rate: 1.0e-2, max_seq_len: 64, packing: false,"
      " max_steps: 5, warmup_ratio: 0.0}\n"
      "checkpointing: {every_steps: 2, keep: 5}\n";
  json req = {{"model", "tiny"}, {"training_file", file}, {"suffix", "math"}, {"seed", 11},
              {"method", {{"type", "supervised"}, {"supervised", {{"hyperparameters", {{"n_epochs", 2}}}}}}},
              {"tuneloop_spec", spec}};
  const json last = run_job(http, req);
  ASSERT_EQ(last["status"], "succeeded") << last.dump();
  const std::string job = last["id"];
  const std::string ft = last["fine_tuned_model"];
  EXPECT_EQ(ft.rfind("ft:tiny:math:", 0), 0u) << ft;

  // Events: one metric event per trainer step, each with a real (finite, positive) training loss.
  auto ev = http.Get(("/v1/fine_tuning/jobs/" + job + "/events?limit=100").c_str());
  ASSERT_TRUE(ev && ev->status == 200);
  std::map<int64_t, double> losses;
  const json events = json::parse(ev->body);
  for (const auto& e : events["data"])
    if (e.contains("data") && e["data"].is_object() && e["data"].contains("train_loss"))
      losses[e["data"]["step"].get<int64_t>()] = e["data"]["train_loss"].get<double>();
  ASSERT_EQ(losses.size(), 5u) << ev->body;
  for (const auto& [step, loss] : losses) {
    EXPECT_TRUE(std::isfinite(loss) && loss > 0 && loss < 20) << "step " << step << ": " << loss;
  }
  EXPECT_EQ(losses.begin()->first, 1);
  EXPECT_LT(losses.rbegin()->second, losses.begin()->second) << "lr 1e-2 on 24 examples must lower the loss";
  EXPECT_NE(ev->body.find("Step 5/5: training loss="), std::string::npos) << ev->body;

  // Checkpoints: the trainer's step-2 and step-4 directories, then the final adapter at step 5.
  auto ck = http.Get(("/v1/fine_tuning/jobs/" + job + "/checkpoints").c_str());
  ASSERT_TRUE(ck && ck->status == 200);
  std::vector<int64_t> steps;
  const json ckpts = json::parse(ck->body);
  for (const auto& cpt : ckpts["data"]) {
    steps.push_back(cpt["step_number"].get<int64_t>());
    EXPECT_TRUE(cpt["metrics"].contains("train_loss")) << cpt.dump();
  }
  std::sort(steps.begin(), steps.end());
  EXPECT_EQ(steps, (std::vector<int64_t>{2, 4, 5})) << ck->body;

  // Run metrics over the API.
  auto mr = http.Get(("/v1/fine_tuning/jobs/" + job + "/metrics?key=loss").c_str());
  ASSERT_TRUE(mr && mr->status == 200) << (mr ? mr->body : "");
  EXPECT_NE(mr->body.find("\"loss\""), std::string::npos) << mr->body;

  // The adapter: registered as draft, its PEFT files on disk and in the artifact store.
  auto ad = http.Get("/v1/adapters");
  ASSERT_TRUE(ad && ad->status == 200);
  json adapter;
  const json adapters_json = json::parse(ad->body);
  for (const auto& a : adapters_json["data"])
    if (a["name"] == ft) adapter = a;
  ASSERT_FALSE(adapter.is_null()) << ad->body;
  EXPECT_EQ(adapter["state"], "draft") << adapter.dump();
  EXPECT_EQ(adapter["job_id"], job);
  {
    auto reg = std::move(registry::Registry::open(db)).value();
    auto j = *reg->job_any_tenant(job);
    auto adapters = *reg->adapters(j.tenant_id);
    ASSERT_EQ(adapters.size(), 1u);
    const auto& a = adapters[0];
    EXPECT_EQ(a.state, registry::AdapterState::kDraft);
    EXPECT_TRUE(file_exists(a.path + "/adapter_model.safetensors")) << a.path;
    EXPECT_TRUE(file_exists(a.path + "/adapter_config.json")) << a.path;
    EXPECT_TRUE(file_exists(a.path + "/train_results.json")) << a.path;
    EXPECT_EQ(a.sha256.size(), 64u);
    EXPECT_TRUE(file_exists(data + "/artifacts/sha256/" + a.sha256.substr(0, 2) + "/" + a.sha256.substr(2))) << a.sha256;
    auto hist = reg->metric_history(reg->run_for_job(job)->id, "loss");
    ASSERT_TRUE(hist.is_ok());
    EXPECT_EQ(hist->size(), 5u);
  }

  // Lineage through the CLI: adapter → job → dataset → base model.
  auto [lc, lout] = test::run_command(cp + " lineage " + ft + " --db " + db);
  ASSERT_EQ(lc, 0) << lout;
  EXPECT_NE(lout.find("adapter  " + ft), std::string::npos) << lout;
  EXPECT_NE(lout.find("job      " + job + " — succeeded"), std::string::npos) << lout;
  EXPECT_NE(lout.find("dataset  " + file + " train.jsonl — 24 lines, openai_chat"), std::string::npos) << lout;

  // Cancel while the real trainer runs: a long job (max_steps 10000) is killed and ends cancelled.
  json long_req = req;
  long_req["tuneloop_spec"] = "lora: {r: 4, alpha: 8}\ntraining: {micro_batch_size: 1, gradient_accumulation: 1, max_seq_len: 64,"
                              " packing: false, max_steps: 10000}\ncheckpointing: {every_steps: 1000}\n";
  long_req["method"]["supervised"]["hyperparameters"]["n_epochs"] = 50;
  auto lc2 = http.Post("/v1/fine_tuning/jobs", long_req.dump(), "application/json");
  ASSERT_TRUE(lc2 && lc2->status == 200) << (lc2 ? lc2->body : "");
  const std::string job2 = json::parse(lc2->body)["id"];
  ASSERT_TRUE(test::wait_until([&] {
    auto r = http.Get(("/v1/fine_tuning/jobs/" + job2 + "/events?limit=100").c_str());
    return r && r->body.find("training loss=") != std::string::npos;
  }, 20));
  auto cancel = http.Post(("/v1/fine_tuning/jobs/" + job2 + "/cancel").c_str(), "", "application/json");
  ASSERT_TRUE(cancel && cancel->status == 200) << (cancel ? cancel->body : "");
  ASSERT_TRUE(test::wait_until([&] {
    auto r = http.Get(("/v1/fine_tuning/jobs/" + job2).c_str());
    return r && json::parse(r->body)["status"] == "cancelled";
  }, 10));
  EXPECT_EQ(server.signal_and_wait(SIGTERM), 0);
  if (!getenv("TL_KEEP")) fs::remove_all(root);
}

}  // namespace
}  // namespace tl::jobs

namespace tl::jobs {
namespace {

// kill -9 of the server while the real trainer runs: the trainer dies with it; the restarted server
// relaunches `tuneloop train --resume`, which continues from its newest checkpoint and rewrites
// metrics.jsonl; every step's loss ends up recorded exactly once and the job succeeds.
TEST(RealTrainer, KillDashNineServerResumesRealTrainer) {
  const TinySetup setup = make_tiny_setup("real_trainer_resume");
  ASSERT_FALSE(::testing::Test::HasFailure());
  const std::string &root = setup.root, &db = setup.db, &data = setup.data, &trainer = setup.trainer, &key = setup.key,
                    &jsonl = setup.jsonl;
  const std::vector<std::string> args = {"server", "--db", db, "--port", "0", "--data-dir", data, "--trainer", trainer, "--threads", "4"};
  const std::vector<std::string> env = {"OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1"};
  // 16 sequences a step (~45 ms here): 150 steps take ~7 s, checkpoints every 10.
  const int64_t kSteps = 150;
  std::string job;
  {
    test::ServerProcess server(args, env);
    ASSERT_GT(server.port(), 0);
    httplib::Client http("127.0.0.1", server.port());
    http.set_bearer_token_auth(key.c_str());
    httplib::MultipartFormDataItems items = {{"file", jsonl, "train.jsonl", ""}, {"purpose", "fine-tune", "", ""}};
    auto up = http.Post("/v1/files", items);
    ASSERT_TRUE(up && up->status == 200);
    json req = {{"model", "tiny"}, {"training_file", json::parse(up->body)["id"]}, {"seed", 5},
                {"tuneloop_spec", "lora: {r: 4, alpha: 8}\ntraining: {micro_batch_size: 4, gradient_accumulation: 4, max_seq_len: 64,"
                                  " packing: false, epochs: 1000, max_steps: " + std::to_string(kSteps) +
                                  "}\ncheckpointing: {every_steps: 10, keep: 2}\n"}};
    auto created = http.Post("/v1/fine_tuning/jobs", req.dump(), "application/json");
    ASSERT_TRUE(created && created->status == 200) << (created ? created->body : "");
    job = json::parse(created->body)["id"];
    ASSERT_TRUE(test::wait_until([&] {
      auto r = http.Get(("/v1/fine_tuning/jobs/" + job + "/checkpoints").c_str());
      return r && json::parse(r->body)["data"].size() >= 1;
    }, 30));
    ASSERT_TRUE(WIFSIGNALED(server.signal_and_wait(SIGKILL)));
  }
  {
    auto reg = std::move(registry::Registry::open(db)).value();
    ASSERT_EQ(reg->job_any_tenant(job)->status, "running") << "the job finished before the server could be killed";
  }
  {
    test::ServerProcess server(args, env);
    ASSERT_GT(server.port(), 0);
    httplib::Client http("127.0.0.1", server.port());
    http.set_bearer_token_auth(key.c_str());
    json last;
    ASSERT_TRUE(test::wait_until([&] {
      auto r = http.Get(("/v1/fine_tuning/jobs/" + job).c_str());
      if (!r) return false;
      last = json::parse(r->body);
      return last["status"] != "running" && last["status"] != "queued";
    }, 45)) << last.dump();
    EXPECT_EQ(last["status"], "succeeded") << last.dump();
    EXPECT_EQ(server.signal_and_wait(SIGTERM), 0);
  }
  auto reg = std::move(registry::Registry::open(db)).value();
  auto j = *reg->job_any_tenant(job);
  EXPECT_EQ(j.attempts, 2);
  auto stderr_log = read_file(data + "/jobs/" + job + "/stderr.log");
  ASSERT_TRUE(stderr_log.is_ok());
  EXPECT_NE(stderr_log->find("resuming from "), std::string::npos) << *stderr_log;
  auto loss = reg->metric_history(reg->run_for_job(job)->id, "loss");
  ASSERT_EQ(loss->size(), static_cast<size_t>(kSteps));
  for (size_t i = 0; i < loss->size(); ++i) {
    EXPECT_EQ((*loss)[i].step, static_cast<int64_t>(i + 1));
    EXPECT_TRUE(std::isfinite((*loss)[i].value));
  }
  auto events = *reg->events(job, {"", 1000});
  int metric_events = 0;
  bool resumed = false;
  for (const auto& e : events) {
    metric_events += e.type == "metrics";
    resumed |= e.message.rfind("Fine-tuning job resumed from checkpoint step", 0) == 0;
  }
  EXPECT_TRUE(resumed);
  EXPECT_EQ(metric_events, kSteps) << "one metric event per step across both launches";
  EXPECT_TRUE(file_exists(j.output_dir + "/adapter_model.safetensors"));
  if (!getenv("TL_KEEP")) fs::remove_all(root);
}

// A DPO job from OpenAI's preference format (input.messages / preferred_output / non_preferred_output)
// through the API to the real trainer: it succeeds, its first step's loss is ln 2 (the adapter starts as
// the identity, so the policy is the reference), the loss falls, and a draft adapter is registered.
TEST(RealTrainer, DpoJobTrainsOnOpenAIPreferencePairs) {
  const TinySetup setup = make_tiny_setup("real_trainer_dpo");
  ASSERT_FALSE(::testing::Test::HasFailure());
  const std::string &root = setup.root, &db = setup.db, &data = setup.data, &trainer = setup.trainer, &key = setup.key;
  std::string pairs;
  for (int a = 0; a < 6; ++a)
    for (int b = 0; b < 4; ++b) {
      const json msg = {{"role", "user"}, {"content", "add " + std::to_string(a) + " " + std::to_string(b)}};
      pairs += json({{"input", {{"messages", json::array({msg})}}},
                     {"preferred_output", json::array({{{"role", "assistant"}, {"content", "sum " + std::to_string(a + b)}}})},
                     {"non_preferred_output", json::array({{{"role", "assistant"}, {"content", "no idea"}}})}})
                   .dump() +
               "\n";
    }
  test::ServerProcess server({"server", "--db", db, "--port", "0", "--data-dir", data, "--trainer", trainer, "--threads", "4"},
                             {"OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1"});
  ASSERT_GT(server.port(), 0);
  httplib::Client http("127.0.0.1", server.port());
  http.set_bearer_token_auth(key.c_str());
  httplib::MultipartFormDataItems items = {{"file", pairs, "prefs.jsonl", ""}, {"purpose", "fine-tune", "", ""}};
  auto up = http.Post("/v1/files", items);
  ASSERT_TRUE(up && up->status == 200) << (up ? up->body : "no response");
  EXPECT_EQ(json::parse(up->body)["format"], "dpo");
  json req = {{"model", "tiny"}, {"training_file", json::parse(up->body)["id"]}, {"suffix", "prefs"}, {"seed", 3},
              {"method", {{"type", "dpo"}, {"dpo", {{"hyperparameters", {{"beta", 0.1}, {"n_epochs", 2}}}}}}},
              {"tuneloop_spec", "lora: {r: 4, alpha: 8, dropout: 0.0}\ntraining: {micro_batch_size: 2, gradient_accumulation: 2,"
                                " learning_rate: 1.0e-2, max_seq_len: 64, warmup_ratio: 0.0}\n"}};
  const json last = run_job(http, req);
  ASSERT_EQ(last["status"], "succeeded") << last.dump();
  const std::string job = last["id"];
  auto reg = std::move(registry::Registry::open(db)).value();
  auto loss = reg->metric_history(reg->run_for_job(job)->id, "loss");
  ASSERT_TRUE(loss.is_ok());
  ASSERT_EQ(loss->size(), 12u);  // 24 pairs, 4 a step, 2 epochs
  EXPECT_NEAR(loss->front().value, std::log(2.0), 1e-9);
  EXPECT_LT(loss->back().value, 0.5) << "lr 1e-2 on 24 pairs must separate chosen from rejected";
  auto adapters = *reg->adapters(reg->job_any_tenant(job)->tenant_id);
  ASSERT_EQ(adapters.size(), 1u);
  EXPECT_EQ(adapters[0].state, registry::AdapterState::kDraft);
  EXPECT_TRUE(file_exists(adapters[0].path + "/adapter_model.safetensors"));

  // QLoRA-DPO through the control plane: the same job with dpo.adapter: qlora trains on the NF4 base, so
  // the same seed and data give an adapter of its own.
  req["suffix"] = "prefs-nf4";
  req["tuneloop_spec"] = req["tuneloop_spec"].get<std::string>() + "dpo: {adapter: qlora}\n";
  const json nf4 = run_job(http, req);
  ASSERT_EQ(nf4["status"], "succeeded") << nf4.dump();
  auto nf4_loss = reg->metric_history(reg->run_for_job(nf4["id"])->id, "loss");
  ASSERT_TRUE(nf4_loss.is_ok());
  ASSERT_EQ(nf4_loss->size(), 12u);
  EXPECT_NEAR(nf4_loss->front().value, std::log(2.0), 1e-9);
  EXPECT_LT(nf4_loss->back().value, 0.5);
  EXPECT_NE(nf4_loss->back().value, loss->back().value);
  adapters = *reg->adapters(reg->job_any_tenant(nf4["id"])->tenant_id);
  ASSERT_EQ(adapters.size(), 2u);
  auto f32_bytes = read_file(adapters[0].path + "/adapter_model.safetensors");
  auto nf4_bytes = read_file(adapters[1].path + "/adapter_model.safetensors");
  ASSERT_TRUE(f32_bytes.is_ok() && nf4_bytes.is_ok());
  EXPECT_TRUE(*f32_bytes != *nf4_bytes) << "the NF4 job's adapter equals the f32 job's: dpo.adapter did not reach the trainer";

  // Full-parameter DPO through the control plane: dpo.adapter: full writes a full model, no adapter.
  std::string full_spec = req["tuneloop_spec"].get<std::string>();
  full_spec.replace(full_spec.find("dpo: {adapter: qlora}"), 21, "dpo: {adapter: full}");
  full_spec.replace(full_spec.find("learning_rate: 1.0e-2"), 21, "learning_rate: 1.0e-3");
  req["suffix"] = "prefs-full";
  req["tuneloop_spec"] = full_spec;
  const json full = run_job(http, req);
  ASSERT_EQ(full["status"], "succeeded") << full.dump();
  auto full_loss = reg->metric_history(reg->run_for_job(full["id"])->id, "loss");
  ASSERT_TRUE(full_loss.is_ok());
  ASSERT_EQ(full_loss->size(), 12u);
  EXPECT_NEAR(full_loss->front().value, std::log(2.0), 1e-9);
  EXPECT_LT(full_loss->back().value, 0.5);  // measured 0.29
  adapters = *reg->adapters(reg->job_any_tenant(full["id"])->tenant_id);
  ASSERT_EQ(adapters.size(), 3u);
  auto full_model = std::find_if(adapters.begin(), adapters.end(), [&](const auto& a) { return a.job_id == full["id"]; });
  ASSERT_NE(full_model, adapters.end());
  EXPECT_TRUE(file_exists(full_model->path + "/model.safetensors"));
  EXPECT_FALSE(file_exists(full_model->path + "/adapter_model.safetensors")) << "dpo.adapter: full did not reach the trainer";
  EXPECT_EQ(server.signal_and_wait(SIGTERM), 0);
  if (!getenv("TL_KEEP")) fs::remove_all(root);
}

}  // namespace
}  // namespace tl::jobs
