// The adapter lifecycle transition table (see adapter_lifecycle.h for the diagram).
#include "registry/adapter_lifecycle.h"

namespace tl::registry {

const char* adapter_state_name(AdapterState s) {
  switch (s) {
    case AdapterState::kDraft: return "draft";
    case AdapterState::kApproved: return "approved";
    case AdapterState::kDeprecated: return "deprecated";
  }
  return "unknown";
}

std::optional<AdapterState> parse_adapter_state(std::string_view s) {
  if (s == "draft") return AdapterState::kDraft;
  if (s == "approved") return AdapterState::kApproved;
  if (s == "deprecated") return AdapterState::kDeprecated;
  return std::nullopt;
}

Status check_adapter_transition(const std::string& adapter, AdapterState from, AdapterState to) {
  struct Edge {
    AdapterState from, to;
  };
  static constexpr Edge kLegal[] = {
      {AdapterState::kDraft, AdapterState::kApproved},
      {AdapterState::kDraft, AdapterState::kDeprecated},
      {AdapterState::kApproved, AdapterState::kDeprecated},
  };
  for (const Edge& e : kLegal)
    if (e.from == from && e.to == to) return Status::ok();
  const char* legal = from == AdapterState::kDraft      ? "approve or deprecate"
                      : from == AdapterState::kApproved ? "deprecate"
                                                        : "none: deprecated is final";
  return failed_precondition("adapter {}: cannot go from {} to {} (legal from {}: {})", adapter,
                             adapter_state_name(from), adapter_state_name(to), adapter_state_name(from), legal);
}

}  // namespace tl::registry
