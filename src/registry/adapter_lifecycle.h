// The adapter lifecycle: which states an adapter may move between, and which API call moves it.
//
//                 approve()                     deprecate()
//     ┌───────┐ ───────────► ┌──────────┐ ───────────────────► ┌────────────┐
//     │ draft │              │ approved │                      │ deprecated │ (terminal)
//     └───────┘              └──────────┘                      └────────────┘
//         │                    │      ▲                               ▲
//         │                    └──────┘ set_active(domain)            │
//         │                  (stays approved; one active per          │
//         │                   tenant × domain)                        │
//         └──────────────────────── deprecate() ──────────────────────┘
//                            (a draft that failed review)
//
// | from      | to         | call                 | effect beyond the state change                  |
// |-----------|------------|----------------------|-------------------------------------------------|
// | draft     | approved   | approve_adapter      | —                                               |
// | draft     | deprecated | deprecate_adapter    | —                                               |
// | approved  | deprecated | deprecate_adapter    | clears the domain's active pointer if it is this |
// | approved  | approved   | set_active_adapter   | moves the domain's active pointer to this one   |
// Everything else is illegal and returns kFailedPrecondition naming both states and the legal moves.
//
// Invariants: a new adapter (registered when a job succeeds) starts in draft; only an approved adapter
// can be active; deprecated is terminal; each transition is recorded in adapter_transitions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace tl::registry {

enum class AdapterState { kDraft, kApproved, kDeprecated };

const char* adapter_state_name(AdapterState s);
std::optional<AdapterState> parse_adapter_state(std::string_view s);
// ok if `from → to` is in the table above; otherwise a kFailedPrecondition naming the adapter.
Status check_adapter_transition(const std::string& adapter, AdapterState from, AdapterState to);

}  // namespace tl::registry
