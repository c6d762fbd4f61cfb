// `tuneloop tenant add NAME --tier enterprise|pro|free [--quota-hours H] [--db URL]`: creates a tenant
// and prints its API key once (only the key's sha256 is stored, so it cannot be shown again).
// A negative --quota-hours means unlimited; the default depends on the tier (registry.h).
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "registry/registry.h"

namespace tl::cli {

Status cmd_tenant(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--db", "--tier", "--quota-hours"}, {}));
  const auto& pos = args.positionals();
  if (pos.size() != 2 || pos[0] != "add") return invalid_argument("tenant: expected `tenant add NAME --tier TIER`");
  TL_ASSIGN_OR_RETURN(std::string tier_s, args.require("--tier"));
  auto tier = registry::parse_tier(tier_s);
  if (!tier) return invalid_argument("--tier: expected enterprise, pro or free, got '{}'", tier_s);
  TL_ASSIGN_OR_RETURN(double quota, args.get_double("--quota-hours", registry::default_quota_hours(*tier), -1, 1e9));
  TL_ASSIGN_OR_RETURN(auto reg, registry::Registry::open(args.get("--db").value_or("")));
  TL_ASSIGN_OR_RETURN(registry::CreatedTenant c, reg->create_tenant(pos[1], *tier, quota));
  std::printf("%s\n", c.api_key.c_str());
  std::fprintf(stderr, "tenant %s (%s, tier %s, %s device-hours/month): the API key above is shown only once\n",
               c.tenant.name.c_str(), c.tenant.id.c_str(), registry::tier_name(c.tenant.tier),
               quota < 0 ? "unlimited" : fmt::format("{:g}", quota).c_str());
  return Status::ok();
}

}  // namespace tl::cli
