// The HTTP API in-process on a loopback port, through a real HTTP client: OpenAI-shaped objects, auth,
// tenant isolation (404 for another tenant's objects), malformed JSON, oversized bodies, unknown
// models, quota exhaustion, JSONL line errors, pagination, adapter lifecycle endpoints, run metrics.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "jobs/http_api.h"
#include "jobs/job_service.h"
#include "test_util.h"

namespace tl::jobs {
namespace {

using nlohmann::json;

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = test::temp_dir("api");
    reg_ = std::move(registry::Registry::open(root_ + "/tuneloop.db")).value();
    store_ = std::make_unique<registry::ArtifactStore>(root_ + "/artifacts");
    ASSERT_TRUE(reg_->add_model({"tiny", test::tiny_model_dir(root_), 150000, "x", 0}).is_ok());
    auto a = reg_->create_tenant("acme", registry::Tier::kEnterprise, -1);
    auto b = reg_->create_tenant("rival", registry::Tier::kFree, 0.0001);
    key_a_ = a->api_key;
    key_b_ = b->api_key;
    ServiceOptions o;
    o.data_dir = root_ + "/data";
    o.trainer_path = test::fake_trainer();
    o.poll_ms = 20;
    o.trainer_env = {"TL_FAKE_STEPS=4", "TL_FAKE_STEP_MS=10"};
    o.pool.devices = {{"cpu0", "cpu", 64 << 10, 1.0}};
    svc_ = std::make_unique<JobService>(*reg_, *store_, o);
    ASSERT_TRUE(svc_->start().is_ok());
    ApiOptions ao;
    ao.max_json_bytes = 4096;
    ao.max_upload_bytes = 1 << 20;
    ao.threads = 8;
    api_ = std::make_unique<ApiServer>(*svc_, ao);
    auto port = api_->bind("127.0.0.1", 0);
    ASSERT_TRUE(port.is_ok());
    port_ = *port;
    thread_ = std::thread([this] { (void)api_->serve(); });
    ASSERT_TRUE(test::wait_until([this] { return api_->is_running(); }, 5));
  }
  void TearDown() override {
    api_->stop();
    thread_.join();
    api_.reset();
    svc_.reset();
    reg_.reset();
    std::filesystem::remove_all(root_);
  }

  httplib::Client client(const std::string& key) {
    httplib::Client c("127.0.0.1", port_);
    if (!key.empty()) c.set_bearer_token_auth(key.c_str());
    c.set_read_timeout(10, 0);
    return c;
  }
  // Returns {status, parsed body}.
  std::pair<int, json> post(const std::string& key, const std::string& path, const std::string& body) {
    auto r = client(key).Post(path.c_str(), body, "application/json");
    if (!r) return {0, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  std::pair<int, json> get(const std::string& key, const std::string& path) {
    auto r = client(key).Get(path.c_str());
    if (!r) return {0, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  std::pair<int, json> upload(const std::string& key, const std::string& content, const std::string& purpose = "fine-tune") {
    httplib::MultipartFormDataItems items = {{"file", content, "train.jsonl", "application/jsonl"}, {"purpose", purpose, "", ""}};
    auto r = client(key).Post("/v1/files", items);
    if (!r) return {0, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  std::string create_job(const std::string& key, const std::string& file) {
    auto [st, body] = post(key, "/v1/fine_tuning/jobs", json{{"model", "tiny"}, {"training_file", file}}.dump());
    EXPECT_EQ(st, 200) << body.dump();
    return body.value("id", "");
  }

  std::string root_, key_a_, key_b_;
  int port_ = 0;
  std::unique_ptr<registry::Registry> reg_;
  std::unique_ptr<registry::ArtifactStore> store_;
  std::unique_ptr<JobService> svc_;
  std::unique_ptr<ApiServer> api_;
  std::thread thread_;
};

TEST_F(ApiTest, AuthIsRequired) {
  auto [st, body] = get("", "/v1/fine_tuning/jobs");
  EXPECT_EQ(st, 401);
  EXPECT_EQ(body["error"]["message"], "missing Authorization header: send 'Authorization: Bearer <API key>'");
  EXPECT_EQ(body["error"]["type"], "authentication_error");
  EXPECT_EQ(body["error"]["code"], "invalid_api_key");
  EXPECT_TRUE(body["error"]["param"].is_null());
  std::tie(st, body) = get("tl-bogus", "/v1/files");
  EXPECT_EQ(st, 401);
  EXPECT_EQ(body["error"]["message"], "incorrect API key provided");
  EXPECT_EQ(get("", "/healthz").first, 200);
}

TEST_F(ApiTest, FileUploadValidatesEveryLine) {
  auto [st, f] = upload(key_a_, test::chat_jsonl(3));
  ASSERT_EQ(st, 200) << f.dump();
  EXPECT_EQ(f["object"], "file");
  EXPECT_EQ(f["purpose"], "fine-tune");
  EXPECT_EQ(f["status"], "processed");
  EXPECT_EQ(f["line_count"], 3);
  EXPECT_EQ(f["format"], "openai_chat");
  std::tie(st, f) = upload(key_a_, test::chat_jsonl(1) + "oops\n" + test::chat_jsonl(1) + "{\"messages\": []}\n");
  EXPECT_EQ(st, 400);
  EXPECT_EQ(f["error"]["message"],
            "train.jsonl: line 2: not valid JSON; line 4: openai_chat: expected a non-empty array of messages");
  EXPECT_EQ(f["error"]["param"], "file");
  EXPECT_EQ(f["error"]["code"], "invalid_file_format");
  std::tie(st, f) = upload(key_a_, test::chat_jsonl(1), "assistants");
  EXPECT_EQ(st, 400);
  EXPECT_EQ(f["error"]["param"], "purpose");
  std::tie(st, f) = upload(key_a_, std::string(2 << 20, 'x'));  // over max_upload_bytes
  EXPECT_EQ(st, 413);
  EXPECT_EQ(f["error"]["code"], "request_too_large");
  auto [ls, list] = get(key_a_, "/v1/files");
  EXPECT_EQ(ls, 200);
  EXPECT_EQ(list["object"], "list");
  EXPECT_EQ(list["data"].size(), 1u);
}

TEST_F(ApiTest, JobLifecycleObjectsEventsCheckpointsMetrics) {
  std::string file = upload(key_a_, test::chat_jsonl(4)).second["id"];
  auto [st, job] = post(key_a_, "/v1/fine_tuning/jobs",
                        json{{"model", "tiny"},
                             {"training_file", file},
                             {"suffix", "calc"},
                             {"seed", 5},
                             {"method", {{"type", "supervised"}, {"supervised", {{"hyperparameters", {{"n_epochs", 2}, {"batch_size", "auto"}, {"learning_rate_multiplier", 0.5}}}}}}},
                             {"tuneloop_spec", "checkpointing: {every_steps: 2}\n"}}
                            .dump());
  ASSERT_EQ(st, 200) << job.dump();
  EXPECT_EQ(job["object"], "fine_tuning.job");
  EXPECT_EQ(job["status"], "validating_files");
  EXPECT_EQ(job["hyperparameters"]["n_epochs"], 2);
  EXPECT_EQ(job["hyperparameters"]["batch_size"], 16);
  EXPECT_EQ(job["hyperparameters"]["learning_rate_multiplier"], 0.5);
  EXPECT_EQ(job["method"]["type"], "supervised");
  EXPECT_EQ(job["seed"], 5);
  EXPECT_TRUE(job["fine_tuned_model"].is_null());
  EXPECT_TRUE(job["estimated_finish"].is_number());
  EXPECT_GT(job["tuneloop"]["estimated_device_hours"].get<double>(), 0);
  const std::string id = job["id"];
  ASSERT_TRUE(test::wait_until([&] { return get(key_a_, "/v1/fine_tuning/jobs/" + id).second["status"] == "succeeded"; }, 20));
  auto [gs, done] = get(key_a_, "/v1/fine_tuning/jobs/" + id);
  EXPECT_EQ(done["fine_tuned_model"], "ft:tiny:calc:" + id.substr(6));
  EXPECT_TRUE(done["trained_tokens"].is_number());
  auto [es, events] = get(key_a_, "/v1/fine_tuning/jobs/" + id + "/events?limit=3");
  ASSERT_EQ(es, 200);
  EXPECT_EQ(events["data"].size(), 3u);
  EXPECT_TRUE(events["has_more"].get<bool>());
  EXPECT_EQ(events["data"][0]["object"], "fine_tuning.job.event");
  EXPECT_EQ(events["data"][0]["message"], "The job has successfully completed");
  auto [cs, ckpts] = get(key_a_, "/v1/fine_tuning/jobs/" + id + "/checkpoints");
  ASSERT_EQ(ckpts["data"].size(), 2u);
  EXPECT_EQ(ckpts["data"][0]["object"], "fine_tuning.job.checkpoint");
  EXPECT_EQ(ckpts["data"][0]["step_number"], 4);
  EXPECT_EQ(ckpts["data"][0]["metrics"]["train_loss"], 0.5);
  auto [ms, metrics] = get(key_a_, "/v1/fine_tuning/jobs/" + id + "/metrics?key=loss");
  ASSERT_EQ(metrics["metrics"]["loss"].size(), 4u);
  EXPECT_EQ(metrics["params"]["method"], "lora");
  auto ax = client(key_a_).Get(("/v1/fine_tuning/jobs/" + id + "/export?format=axolotl").c_str());
  ASSERT_TRUE(ax);
  EXPECT_NE(ax->body.find("adapter: lora"), std::string::npos);
  // Adapter endpoints: draft → approve → activate → deprecate; illegal moves are 409.
  auto [as, adapters] = get(key_a_, "/v1/adapters");
  ASSERT_EQ(adapters["data"].size(), 1u);
  std::string aid = adapters["data"][0]["id"];
  EXPECT_EQ(adapters["data"][0]["state"], "draft");
  auto [x1, act] = post(key_a_, "/v1/adapters/" + aid + "/activate", "");
  EXPECT_EQ(x1, 409);
  EXPECT_EQ(act["error"]["code"], "invalid_state");
  EXPECT_EQ(post(key_a_, "/v1/adapters/" + aid + "/approve", "").first, 200);
  auto [x2, active] = post(key_a_, "/v1/adapters/" + aid + "/activate", "");
  EXPECT_EQ(x2, 200);
  EXPECT_TRUE(active["active"].get<bool>());
  EXPECT_EQ(post(key_a_, "/v1/adapters/" + aid + "/deprecate", "").first, 200);
  EXPECT_EQ(post(key_a_, "/v1/adapters/" + aid + "/approve", "").first, 409);
  // The other tenant sees none of it: 404, as for an id that does not exist.
  EXPECT_EQ(get(key_b_, "/v1/fine_tuning/jobs/" + id).first, 404);
  EXPECT_EQ(get(key_b_, "/v1/fine_tuning/jobs/" + id + "/events").first, 404);
  EXPECT_EQ(get(key_b_, "/v1/fine_tuning/jobs/" + id + "/checkpoints").first, 404);
  EXPECT_EQ(post(key_b_, "/v1/fine_tuning/jobs/" + id + "/cancel", "").first, 404);
  EXPECT_EQ(get(key_b_, "/v1/adapters/" + aid).first, 404);
  EXPECT_EQ(post(key_b_, "/v1/adapters/" + aid + "/approve", "").first, 404);
  EXPECT_EQ(get(key_b_, "/v1/files/" + file).first, 404);
  EXPECT_EQ(get(key_b_, "/v1/fine_tuning/jobs").second["data"].size(), 0u);
  auto [xs, other] = post(key_b_, "/v1/fine_tuning/jobs", json{{"model", "tiny"}, {"training_file", file}}.dump());
  EXPECT_EQ(xs, 400);  // someone else's file is no file
  EXPECT_EQ(other["error"]["message"], "invalid training_file: no file '" + file + "'");
}

TEST_F(ApiTest, BadRequestsGetClearErrors) {
  std::string file = upload(key_a_, test::chat_jsonl(2)).second["id"];
  auto [s1, b1] = post(key_a_, "/v1/fine_tuning/jobs", "{\"model\": \"tiny\", ");
  EXPECT_EQ(s1, 400);
  EXPECT_EQ(b1["error"]["message"], "request body is not valid JSON at byte 19");
  auto [s2, b2] = post(key_a_, "/v1/fine_tuning/jobs", json{{"model", "gpt-5"}, {"training_file", file}}.dump());
  EXPECT_EQ(s2, 404);
  EXPECT_EQ(b2["error"]["param"], "model");
  EXPECT_EQ(b2["error"]["code"], "model_not_found");
  auto [s3, b3] = post(key_a_, "/v1/fine_tuning/jobs", json{{"model", "tiny"}, {"training_file", file}, {"pad", std::string(5000, 'x')}}.dump());
  EXPECT_EQ(s3, 413);
  EXPECT_EQ(b3["error"]["code"], "request_too_large");
  EXPECT_EQ(b3["error"]["message"].get<std::string>().substr(0, 16), "request body is ");
  auto [s4, b4] = post(key_a_, "/v1/fine_tuning/jobs", json{{"training_file", file}}.dump());
  EXPECT_EQ(s4, 400);
  EXPECT_EQ(b4["error"]["param"], "model");
  EXPECT_EQ(b4["error"]["code"], "missing_required_parameter");
  auto [s5, b5] = post(key_a_, "/v1/fine_tuning/jobs",
                       json{{"model", "tiny"}, {"training_file", file}, {"hyperparameters", {{"n_epochs", -1}}}}.dump());
  EXPECT_EQ(s5, 400);
  EXPECT_EQ(b5["error"]["param"], "hyperparameters.n_epochs");
  EXPECT_EQ(get(key_a_, "/v1/fine_tuning/jobs?limit=0").first, 400);
  EXPECT_EQ(get(key_a_, "/v1/fine_tuning/jobs/ftjob-nope").first, 404);
  auto [s6, b6] = get(key_a_, "/v1/nothing");
  EXPECT_EQ(s6, 404);
  EXPECT_EQ(b6["error"]["code"], "unknown_url");
  // Quota: the free tenant's 0.0001 device-hours cannot hold even a tiny job.
  std::string fb = upload(key_b_, test::chat_jsonl(2000)).second["id"];
  auto [s7, b7] = post(key_b_, "/v1/fine_tuning/jobs",
                       json{{"model", "tiny"}, {"training_file", fb}, {"hyperparameters", {{"n_epochs", 50}}}}.dump());
  EXPECT_EQ(s7, 429);
  EXPECT_EQ(b7["error"]["type"], "insufficient_quota");
  EXPECT_EQ(b7["error"]["code"], "quota_exceeded");
}

TEST_F(ApiTest, ListingPaginatesNewestFirstAndCancelWorks) {
  std::string file = upload(key_a_, test::chat_jsonl(2)).second["id"];
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(create_job(key_a_, file));
  auto [st, page] = get(key_a_, "/v1/fine_tuning/jobs?limit=2");
  ASSERT_EQ(st, 200);
  ASSERT_EQ(page["data"].size(), 2u);
  EXPECT_EQ(page["data"][0]["id"], ids[4]);
  EXPECT_TRUE(page["has_more"].get<bool>());
  auto [st2, page2] = get(key_a_, "/v1/fine_tuning/jobs?limit=10&after=" + ids[3]);
  ASSERT_EQ(page2["data"].size(), 3u);
  EXPECT_EQ(page2["data"][2]["id"], ids[0]);
  EXPECT_FALSE(page2["has_more"].get<bool>());
  auto [cs, cancelled] = post(key_a_, "/v1/fine_tuning/jobs/" + ids[4] + "/cancel", "");
  EXPECT_EQ(cs, 200);
  EXPECT_EQ(cancelled["status"], "cancelled");
  auto [cs2, again] = post(key_a_, "/v1/fine_tuning/jobs/" + ids[4] + "/cancel", "");
  EXPECT_EQ(cs2, 409);
}

}  // namespace
}  // namespace tl::jobs
