// The registry suite, run twice: against SQLite (a temp file) and against the private PostgreSQL that
// pg_fixture.sh starts (ctest fixture `postgres`). Each PostgreSQL test gets a fresh database. When the
// fixture's url file is missing the PostgreSQL instantiation fails — it never skips silently.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "core/file.h"
#include "registry/artifact_store.h"
#include "registry/hashing.h"
#include "registry/registry.h"

namespace tl::registry {
namespace {

namespace fs = std::filesystem;

std::string pg_admin_url() {
  std::ifstream in(std::string(TL_BINARY_DIR) + "/pg_fixture/url");
  std::string url;
  std::getline(in, url);
  return url;
}

// A fresh database per test: CREATE DATABASE through the admin URL, return its URL.
std::string fresh_pg_database(std::string* error) {
  static std::atomic<int> n{0};
  std::string admin = pg_admin_url();
  if (admin.empty()) {
    *error = "no PostgreSQL: " TL_BINARY_DIR "/pg_fixture/url is missing (the ctest fixture postgres_fixture_start failed "
             "or was not run; run through ctest)";
    return "";
  }
  PGconn* c = PQconnectdb(admin.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    *error = std::string("cannot connect to the fixture PostgreSQL: ") + PQerrorMessage(c);
    PQfinish(c);
    return "";
  }
  std::string db = "tl_test_" + std::to_string(getpid()) + "_" + std::to_string(n++);
  PGresult* r = PQexec(c, ("CREATE DATABASE " + db).c_str());
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) *error = PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(c);
  if (!ok) return "";
  return admin.substr(0, admin.rfind('/') + 1) + db;
}

class RegistryTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      dir_ = fs::temp_directory_path() / ("tl_registry_" + std::to_string(getpid()) + "_" + random_token("", 4));
      fs::create_directories(dir_);
      url_ = (dir_ / "tuneloop.db").string();
    } else {
      std::string err;
      url_ = fresh_pg_database(&err);
      ASSERT_FALSE(url_.empty()) << err;
    }
    auto r = Registry::open(url_);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    reg_ = std::move(r).value();
    auto t = reg_->create_tenant("acme", Tier::kPro, 50);
    ASSERT_TRUE(t.is_ok()) << t.status().message();
    acme_ = t->tenant;
    acme_key_ = t->api_key;
    auto o = reg_->create_tenant("other", Tier::kFree, 5);
    ASSERT_TRUE(o.is_ok());
    other_ = o->tenant;
    ASSERT_TRUE(reg_->add_model({"tiny", "/models/tiny", 1000, "abc", 0}).is_ok());
  }
  void TearDown() override {
    reg_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  FileRecord add_file(const Tenant& t, const std::string& name) {
    FileRecord f;
    f.id = random_token("file-", 6);
    f.tenant_id = t.id;
    f.filename = name;
    f.purpose = "fine-tune";
    f.bytes = 10;
    f.sha256 = sha256_hex(name);
    f.line_count = 2;
    f.format = "openai_chat";
    f.token_estimate = 20;
    f.path = "/store/" + name;
    EXPECT_TRUE(reg_->add_file(f).is_ok());
    return f;
  }

  JobRecord add_job(const Tenant& t, const FileRecord& f, const std::string& status = "queued") {
    JobRecord j;
    j.id = random_token("ftjob-", 6);
    j.tenant_id = t.id;
    j.model = "tiny";
    j.training_file = f.id;
    j.method = "supervised";
    j.hyperparameters = "{}";
    j.spec_yaml = "base_model: x\n";
    j.status = status;
    j.tier = t.tier;
    j.output_dir = "/out";
    j.estimated_device_hours = 1.5;
    j.created_at = unix_now();
    Status st = reg_->create_job(j);
    EXPECT_TRUE(st.is_ok()) << st.message();
    return j;
  }

  fs::path dir_;
  std::string url_;
  std::unique_ptr<Registry> reg_;
  Tenant acme_, other_;
  std::string acme_key_;
};

TEST_P(RegistryTest, MigrationsAreNumberedAndIdempotent) {
  auto v = reg_->schema_version();
  ASSERT_TRUE(v.is_ok());
  EXPECT_EQ(*v, 2);
  EXPECT_EQ(reg_->is_postgres(), GetParam() == "postgresql");
  reg_.reset();
  auto again = Registry::open(url_);  // re-open: nothing re-applied, data kept
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_TRUE((*again)->tenant_by_name("acme").is_ok());
}

TEST_P(RegistryTest, TenantsStoreOnlyTheKeyHash) {
  auto t = reg_->tenant_by_api_key(acme_key_);
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ(t->name, "acme");
  EXPECT_EQ(t->tier, Tier::kPro);
  EXPECT_DOUBLE_EQ(t->quota_device_hours, 50);
  EXPECT_EQ(reg_->tenant_by_api_key("tl-wrong").status().code(), StatusCode::kUnauthenticated);
  auto dup = reg_->create_tenant("acme", Tier::kFree, 1);
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(dup.status().message(), "tenant 'acme' already exists");
  if (GetParam() == "sqlite") {  // the plain key appears nowhere in the database file
    reg_.reset();
    auto bytes = read_file(url_);
    ASSERT_TRUE(bytes.is_ok());
    EXPECT_EQ(bytes->find(acme_key_), std::string::npos);
    auto wal = read_file(url_ + "-wal");
    if (wal.is_ok()) {
      EXPECT_EQ(wal->find(acme_key_), std::string::npos);
    }
  }
}

TEST_P(RegistryTest, ModelsAndForeignKeys) {
  EXPECT_EQ(reg_->add_model({"tiny", "/x", 1, "", 0}).code(), StatusCode::kAlreadyExists);
  auto m = reg_->model("nope");
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(m.status().message(), "model 'nope' is not registered (tuneloop model add NAME MODEL_DIR)");
  FileRecord f = add_file(acme_, "a.jsonl");
  JobRecord j;
  j.id = "ftjob-fk";
  j.tenant_id = acme_.id;
  j.model = "unknown-model";  // violates jobs.model → models.name
  j.training_file = f.id;
  j.method = "supervised";
  j.hyperparameters = "{}";
  j.spec_yaml = "";
  j.status = "queued";
  j.output_dir = "/o";
  j.created_at = unix_now();
  Status st = reg_->create_job(j);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.message();
  EXPECT_EQ(reg_->job_any_tenant("ftjob-fk").status().code(), StatusCode::kNotFound);  // rolled back
}

TEST_P(RegistryTest, TenantIsolation) {
  FileRecord f = add_file(acme_, "a.jsonl");
  JobRecord j = add_job(acme_, f);
  EXPECT_TRUE(reg_->file(acme_.id, f.id).is_ok());
  EXPECT_EQ(reg_->file(other_.id, f.id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(reg_->job(other_.id, j.id).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(reg_->files(other_.id)->empty());
  EXPECT_TRUE(reg_->jobs(other_.id, {})->empty());
  ASSERT_TRUE(reg_->add_adapter({"adapter-x", acme_.id, "ft:tiny:a", "code", "tiny", j.id, "/p", "h", AdapterState::kDraft,
                                 false, 0, 0})
                  .is_ok());
  EXPECT_EQ(reg_->adapter(other_.id, "adapter-x").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(reg_->approve_adapter(other_.id, "adapter-x").status().code(), StatusCode::kNotFound);
}

TEST_P(RegistryTest, JobPaginationNewestFirst) {
  FileRecord f = add_file(acme_, "a.jsonl");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(add_job(acme_, f).id);
  auto page1 = reg_->jobs(acme_.id, {"", 2});
  ASSERT_TRUE(page1.is_ok());
  ASSERT_EQ(page1->size(), 3u);  // limit + 1: has_more
  EXPECT_EQ((*page1)[0].id, ids[4]);
  EXPECT_EQ((*page1)[1].id, ids[3]);
  auto page2 = reg_->jobs(acme_.id, {ids[3], 10});
  ASSERT_EQ(page2->size(), 3u);
  EXPECT_EQ((*page2)[0].id, ids[2]);
  EXPECT_EQ((*page2)[2].id, ids[0]);
  EXPECT_EQ(reg_->jobs(acme_.id, {"ftjob-nope", 2}).status().code(), StatusCode::kNotFound);
  auto queued = reg_->jobs_with_status("queued");
  ASSERT_EQ(queued->size(), 5u);
  EXPECT_EQ((*queued)[0].id, ids[0]);  // oldest first for the scheduler
  JobRecord j = (*queued)[0];
  j.status = "running";
  j.pid = 4242;
  j.device_id = "gpu0";
  j.attempts = 1;
  j.metrics_offset = 77;
  ASSERT_TRUE(reg_->update_job(j).is_ok());
  auto back = reg_->job(acme_.id, j.id);
  EXPECT_EQ(back->status, "running");
  EXPECT_EQ(back->pid, 4242);
  EXPECT_EQ(back->device_id, "gpu0");
  EXPECT_EQ(back->metrics_offset, 77);
  EXPECT_DOUBLE_EQ(*reg_->unfinished_estimated_hours(acme_.id), 7.5);
}

TEST_P(RegistryTest, EventsMetricsCheckpoints) {
  FileRecord f = add_file(acme_, "a.jsonl");
  JobRecord j = add_job(acme_, f);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(reg_->add_event(j.id, "info", "message", "e" + std::to_string(i), "").is_ok());
  auto ev = reg_->events(j.id, {"", 2});
  ASSERT_EQ(ev->size(), 3u);
  EXPECT_EQ((*ev)[0].message, "e3");
  auto older = reg_->events(j.id, {(*ev)[1].id, 10});
  ASSERT_EQ(older->size(), 2u);
  EXPECT_EQ((*older)[0].message, "e1");

  auto run = reg_->run_for_job(j.id);
  ASSERT_TRUE(run.is_ok());
  ASSERT_TRUE(reg_->set_run_param(run->id, "lr", "1e-4").is_ok());
  ASSERT_TRUE(reg_->set_run_param(run->id, "lr", "2e-4").is_ok());  // upsert
  ASSERT_TRUE(reg_->log_metrics(run->id, {{"loss", 1, 2.5, 0}, {"loss", 2, 2.0, 0}}).is_ok());
  ASSERT_TRUE(reg_->log_metrics(run->id, {{"loss", 2, 9.9, 0}, {"loss", 3, 1.5, 0}}).is_ok());  // step 2 again: kept once
  auto hist = reg_->metric_history(run->id, "loss");
  ASSERT_EQ(hist->size(), 3u);
  EXPECT_DOUBLE_EQ((*hist)[1].value, 2.0);
  EXPECT_EQ(reg_->run_for_job(j.id)->params.at(0).second, "2e-4");

  ASSERT_TRUE(reg_->add_checkpoint({"", j.id, 10, "/c/10", "{}", 0}).is_ok());
  ASSERT_TRUE(reg_->add_checkpoint({"", j.id, 10, "/c/10", "{}", 0}).is_ok());  // idempotent
  ASSERT_TRUE(reg_->add_checkpoint({"", j.id, 20, "/c/20", "{\"loss\":1}", 0}).is_ok());
  auto ck = reg_->checkpoints(j.id);
  ASSERT_EQ(ck->size(), 2u);
  EXPECT_EQ((*ck)[0].step, 20);
}

TEST_P(RegistryTest, AdapterLifecycleAndActivePointer) {
  FileRecord f = add_file(acme_, "a.jsonl");
  JobRecord j = add_job(acme_, f, "succeeded");
  ASSERT_TRUE(reg_->add_adapter({"adapter-1", acme_.id, "ft:tiny:v1", "code", "tiny", j.id, "/p1", "h1", AdapterState::kDraft, false, 0, 0}).is_ok());
  ASSERT_TRUE(reg_->add_adapter({"adapter-2", acme_.id, "ft:tiny:v2", "code", "tiny", j.id, "/p2", "h2", AdapterState::kDraft, false, 0, 0}).is_ok());

  auto act = reg_->set_active_adapter(acme_.id, "adapter-1");
  EXPECT_EQ(act.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(act.status().message(), "adapter ft:tiny:v1: only an approved adapter can be active (it is draft; approve it first)");

  auto a1 = reg_->approve_adapter(acme_.id, "adapter-1");
  ASSERT_TRUE(a1.is_ok());
  EXPECT_EQ(a1->state, AdapterState::kApproved);
  auto again = reg_->approve_adapter(acme_.id, "adapter-1");
  EXPECT_EQ(again.status().message(), "adapter ft:tiny:v1: cannot go from approved to approved (legal from approved: deprecate)");
  ASSERT_TRUE(reg_->set_active_adapter(acme_.id, "ft:tiny:v1").is_ok());  // by name works too
  EXPECT_EQ((*reg_->active_adapter(acme_.id, "code"))->id, "adapter-1");

  ASSERT_TRUE(reg_->approve_adapter(acme_.id, "adapter-2").is_ok());
  ASSERT_TRUE(reg_->set_active_adapter(acme_.id, "adapter-2").is_ok());  // one active per domain
  EXPECT_EQ((*reg_->active_adapter(acme_.id, "code"))->id, "adapter-2");
  EXPECT_FALSE(reg_->adapter(acme_.id, "adapter-1")->active);

  auto dep = reg_->deprecate_adapter(acme_.id, "adapter-2");  // deprecating the active one clears the pointer
  ASSERT_TRUE(dep.is_ok());
  EXPECT_FALSE(reg_->active_adapter(acme_.id, "code")->has_value());
  auto back = reg_->approve_adapter(acme_.id, "adapter-2");
  EXPECT_EQ(back.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(back.status().message(),
            "adapter ft:tiny:v2: cannot go from deprecated to approved (legal from deprecated: none: deprecated is final)");

  auto lin = reg_->lineage("ft:tiny:v1");
  ASSERT_TRUE(lin.is_ok()) << lin.status().message();
  EXPECT_EQ(lin->job->id, j.id);
  EXPECT_EQ(lin->training_file->sha256, f.sha256);
  EXPECT_EQ(lin->base_model->name, "tiny");
}

TEST_P(RegistryTest, UsagePerTenantPerMonth) {
  FileRecord f = add_file(acme_, "a.jsonl");
  JobRecord j = add_job(acme_, f);
  ASSERT_TRUE(reg_->charge_usage(acme_.id, j.id, 1, "2025-01", 1.25).is_ok());
  ASSERT_TRUE(reg_->charge_usage(acme_.id, j.id, 1, "2025-01", 1.25).is_ok());  // same attempt: charged once
  ASSERT_TRUE(reg_->charge_usage(acme_.id, j.id, 2, "2025-01", 0.5).is_ok());
  ASSERT_TRUE(reg_->charge_usage(acme_.id, j.id, 3, "2025-02", 4).is_ok());
  EXPECT_DOUBLE_EQ(*reg_->usage_hours(acme_.id, "2025-01"), 1.75);
  EXPECT_DOUBLE_EQ(*reg_->usage_hours(acme_.id, "2025-02"), 4);
  EXPECT_DOUBLE_EQ(*reg_->usage_hours(other_.id, "2025-01"), 0);
  EXPECT_EQ(month_key(1735689600), "2025-01");  // 2025-01-01T00:00:00Z
}

INSTANTIATE_TEST_SUITE_P(Backends, RegistryTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(ArtifactStore, ContentAddressedAtomicAndVerified) {
  fs::path root = fs::temp_directory_path() / ("tl_store_" + random_token("", 4));
  ArtifactStore store(root.string());
  auto h = store.put("hello\n");
  ASSERT_TRUE(h.is_ok());
  EXPECT_EQ(*h, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
  EXPECT_EQ(store.path_for(*h), root.string() + "/sha256/58/91b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
  EXPECT_EQ(*read_file(store.path_for(*h)), "hello\n");
  EXPECT_EQ(*store.put("hello\n"), *h);  // dedup
  std::string src = (root / "src.bin").string();
  ASSERT_TRUE(write_file_atomic(src, "hello\n").is_ok());
  EXPECT_EQ(*store.put_file(src), *h);
  EXPECT_TRUE(store.verify(*h).is_ok());
  // Corruption is detected by re-hashing.
  fs::permissions(store.path_for(*h), fs::perms::owner_write, fs::perm_options::add);
  { std::ofstream(store.path_for(*h), std::ios::app) << "x"; }
  EXPECT_EQ(store.verify(*h).code(), StatusCode::kDataLoss);
  // No temp files left behind.
  for (const auto& e : fs::recursive_directory_iterator(root)) EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  fs::remove_all(root);
}

}  // namespace
}  // namespace tl::registry
