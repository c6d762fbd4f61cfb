// Direct Preference Optimization (Rafailov et al. 2023): the preference losses and their derivatives.
//
// For a pair (prompt, chosen, rejected), with the policy's and the frozen reference's log-probabilities of
// each completion (sums over its trained tokens; ipo uses per-token means, as TRL does),
//   h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
//   sigmoid: -log sigmoid(beta h)     hinge: max(0, 1 - beta h)     ipo: (h - 1 / (2 beta))^2
// The trainer feeds d loss / d (each sequence's summed token loss) back as that sequence's loss scale
// (model/train_step.h, ExampleScales): a sequence's log-probability is minus its summed token loss.
//
// Usage:
//   TL_ASSIGN_OR_RETURN(DpoLossType type, dpo_loss_from_name("sigmoid"));
//   DpoPairTerms t = dpo_pair(type, beta, {policy_c, policy_r, ref_c, ref_r, n_c, n_r});
//   // t.loss; scales for the chosen and rejected sequences: t.scale_chosen, t.scale_rejected
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace tl {

enum class DpoLossType { kSigmoid, kHinge, kIpo };

Result<DpoLossType> dpo_loss_from_name(const std::string& name);

struct DpoPairInput {
  double policy_chosen_loss = 0, policy_rejected_loss = 0;  // summed token losses (-log p) of each completion
  double ref_chosen_loss = 0, ref_rejected_loss = 0;
  int64_t chosen_tokens = 1, rejected_tokens = 1;           // trained tokens of each completion
};

struct DpoPairTerms {
  double loss = 0;
  double reward_chosen = 0, reward_rejected = 0;  // beta (policy - ref) log-probabilities (means for ipo)
  double scale_chosen = 0, scale_rejected = 0;    // d loss / d summed token loss of each sequence
};

DpoPairTerms dpo_pair(DpoLossType type, double beta, const DpoPairInput& in);

}  // namespace tl
