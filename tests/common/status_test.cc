#include "common/status.h"

#include <gtest/gtest.h>

namespace migvis {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return Status::InvalidArgument("expected a positive number");
  return v;
}

Result<int> doubled(int v) {
  MIGVIS_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

TEST(StatusTest, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.to_string(), "OK");
  EXPECT_EQ(exit_code_for(s), 0);
}

TEST(StatusTest, CodesMapToSysexits) {
  EXPECT_EQ(exit_code_for(Status::InvalidArgument("x")), 65);
  EXPECT_EQ(exit_code_for(Status::NotFound("x")), 66);
  EXPECT_EQ(exit_code_for(Status::Internal("x")), 70);
  EXPECT_EQ(exit_code_for(Status::Unavailable("x")), 75);
  EXPECT_EQ(exit_code_for(Status::Cancelled("x")), 75);
  EXPECT_EQ(exit_code_for(Status::PermissionDenied("x")), 73);
  EXPECT_EQ(exit_code_for(Status::IoError("x")), 74);
}

TEST(StatusTest, ContextPrefixesMessageAndKeepsCode) {
  Status s = Status::NotFound("no file").with_context("a.yaml");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "a.yaml: no file");
  EXPECT_EQ(s.to_string(), "NOT_FOUND: a.yaml: no file");
}

TEST(ResultTest, AssignOrReturnPropagates) {
  auto ok = doubled(4);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 8);
  auto bad = doubled(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace migvis
