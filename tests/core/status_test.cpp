// Status/Result behaviour: codes, context, exit codes and propagation macros.
#include "core/status.h"

#include <gtest/gtest.h>

namespace tl {
namespace {

Result<int> parse_positive(int x) {
  if (x <= 0) return invalid_argument("expected a positive number, got {}", x);
  return x;
}

Result<int> doubled(int x) {
  TL_ASSIGN_OR_RETURN(int v, parse_positive(x));
  return 2 * v;
}

Status check_all(int a, int b) {
  TL_TRY(parse_positive(a));
  TL_TRY(parse_positive(b));
  return Status::ok();
}

TEST(Status, PropagatesThroughMacros) {
  EXPECT_EQ(doubled(4).value(), 8);
  Result<int> bad = doubled(-1);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "expected a positive number, got -1");
  EXPECT_TRUE(check_all(1, 2).is_ok());
  EXPECT_EQ(check_all(1, 0).message(), "expected a positive number, got 0");
}

TEST(Status, ContextAndCodes) {
  Status s = not_found("x.json: no such file").with_context("loading model");
  EXPECT_EQ(s.message(), "loading model: x.json: no such file");
  EXPECT_EQ(s.http_status(), 404);
  EXPECT_NE(s.exit_code(), 0);
  EXPECT_EQ(Status::ok().exit_code(), 0);
  EXPECT_EQ(data_loss("truncated").http_status(), 400);
}

TEST(Status, ResultFromOkStatusIsAnError) {
  Result<int> r = Status::ok();
  EXPECT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace tl
