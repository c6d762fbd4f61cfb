// The scheduler's policy (scheduler.h): strict tier priority, FIFO within a tier, best-fit memory with
// safe backfill, bounded waiting through aging, and refusal of jobs no device can hold.
#include <gtest/gtest.h>

#include "jobs/scheduler.h"

namespace tl::jobs {
namespace {

using registry::Tier;

std::vector<Device> gpus(std::initializer_list<int64_t> mem_mb) {
  std::vector<Device> d;
  int i = 0;
  for (int64_t m : mem_mb) d.push_back({"gpu" + std::to_string(i++), "h100", m, 1.0});
  return d;
}

std::vector<std::string> run_order(Scheduler& s, int max_rounds = 100) {
  std::vector<std::string> order;
  for (int i = 0; i < max_rounds && s.queued() > 0; ++i)
    for (const auto& a : s.schedule()) {
      order.push_back(a.job_id);
      s.release(a.device_id);
    }
  return order;
}

TEST(Scheduler, StrictPriorityThenFifo) {
  Scheduler s(gpus({1000}), 3600);
  int64_t t = 1'000'000;
  ASSERT_TRUE(s.enqueue({"free1", Tier::kFree, t, 1, 100}).is_ok());
  ASSERT_TRUE(s.enqueue({"pro1", Tier::kPro, t + 1, 2, 100}).is_ok());
  ASSERT_TRUE(s.enqueue({"ent1", Tier::kEnterprise, t + 2, 3, 100}).is_ok());
  ASSERT_TRUE(s.enqueue({"pro2", Tier::kPro, t + 3, 4, 100}).is_ok());
  ASSERT_TRUE(s.enqueue({"free2", Tier::kFree, t + 3, 5, 100}).is_ok());
  ASSERT_TRUE(s.enqueue({"ent2", Tier::kEnterprise, t + 4, 6, 100}).is_ok());
  EXPECT_EQ(run_order(s), (std::vector<std::string>{"ent1", "ent2", "pro1", "pro2", "free1", "free2"}));
}

TEST(Scheduler, AgingBoundsTheWaitOfFreeJobs) {
  Scheduler s(gpus({1000}), 3600);
  int64_t t = 1'000'000;
  // A free job that has waited more than one aging step (1 h) outranks a pro job submitted now, and
  // after two steps an enterprise job submitted now.
  ASSERT_TRUE(s.enqueue({"old_free", Tier::kFree, t, 1, 100}).is_ok());
  ASSERT_TRUE(s.enqueue({"new_pro", Tier::kPro, t + 3601, 2, 100}).is_ok());
  ASSERT_TRUE(s.enqueue({"new_ent", Tier::kEnterprise, t + 3601, 3, 100}).is_ok());
  EXPECT_EQ(run_order(s), (std::vector<std::string>{"new_ent", "old_free", "new_pro"}));
  ASSERT_TRUE(s.enqueue({"older_free", Tier::kFree, t, 4, 100}).is_ok());
  ASSERT_TRUE(s.enqueue({"newer_ent", Tier::kEnterprise, t + 7201, 5, 100}).is_ok());
  EXPECT_EQ(run_order(s), (std::vector<std::string>{"older_free", "newer_ent"}));
  // Virtual times: boost 2A for enterprise, A for pro, 0 for free.
  EXPECT_EQ(s.virtual_time({"x", Tier::kEnterprise, t, 0, 0}), t - 7200);
  EXPECT_EQ(s.virtual_time({"x", Tier::kPro, t, 0, 0}), t - 3600);
}

TEST(Scheduler, BestFitAndSafeBackfill) {
  Scheduler s(gpus({80'000, 24'000}), 3600);
  int64_t t = 1'000'000;
  ASSERT_TRUE(s.enqueue({"small", Tier::kFree, t, 1, 10'000}).is_ok());
  auto a = s.schedule();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].device_id, "gpu1");  // the smallest device that fits, keeping the big one free
  ASSERT_TRUE(s.enqueue({"big_ent", Tier::kEnterprise, t + 1, 2, 60'000}).is_ok());
  ASSERT_TRUE(s.enqueue({"small_free", Tier::kFree, t + 2, 3, 10'000}).is_ok());
  a = s.schedule();  // big_ent takes gpu0; small_free waits for gpu1
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].job_id, "big_ent");
  s.release("gpu1");
  ASSERT_TRUE(s.enqueue({"big_ent2", Tier::kEnterprise, t + 3, 4, 60'000}).is_ok());
  a = s.schedule();  // big_ent2 fits no free device (gpu1 is 24 GB): small_free backfills gpu1
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].job_id, "small_free");
  EXPECT_EQ(a[0].device_id, "gpu1");
  s.release("gpu0");
  a = s.schedule();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].job_id, "big_ent2");
}

TEST(Scheduler, RefusesJobsNoDeviceHolds) {
  Scheduler s(gpus({24'000}), 3600);
  Status st = s.enqueue({"huge", Tier::kEnterprise, 1, 1, 100'000});
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(st.message(), "job huge needs 100000 MiB of device memory; the largest device has 24000 MiB");
  EXPECT_EQ(s.enqueue({"a", Tier::kFree, 1, 1, 1}).code(), StatusCode::kOk);
  EXPECT_EQ(s.enqueue({"a", Tier::kFree, 1, 1, 1}).code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(s.remove("a"));
  EXPECT_FALSE(s.remove("a"));
  EXPECT_EQ(s.occupy("gpu9", "x").code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace tl::jobs
