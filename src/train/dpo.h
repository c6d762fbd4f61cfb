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
//
//   DpoSet set = dpo_set(pairs, packing, max_seq_len);  // from load_preference_pairs
//   TL_TRY(score_reference(model, &set));             // the base, no adapter
//   TL_ASSIGN_OR_RETURN(DpoTotals t, evaluate_pairs(model, {&lora, &cfg}, set, type, beta));
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/model.h"
#include "model/train_step.h"
#include "train/dataset.h"

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

// Pairs' terms summed (a step's, or an evaluation set's): the means are TRL's logged statistics.
struct DpoTotals {
  int64_t pairs = 0;
  double loss = 0, reward_chosen = 0, reward_rejected = 0;
  double reward_correct = 0;  // pairs whose chosen reward is higher (TRL's rewards/accuracies)
  void add(const DpoPairTerms& t);
  double mean(double sum) const { return pairs ? sum / static_cast<double>(pairs) : 0.0; }
};

// Preference pairs as the trainer and `tuneloop loss` run them: each pair's inputs (the trained-token
// counts set, the reference losses once score_reference has run) and the sequences that hold them. A pair
// is its chosen example then its rejected one, in one sequence; with `packing`, consecutive pairs share a
// sequence while it stays within max_seq_len (attention and positions reset per example, so packing
// changes only the layout: short pairs make longer, faster GEMMs). seq_pairs[s] lists sequence s's
// pairs in order: its examples 2i and 2i + 1 are pair seq_pairs[s][i]'s chosen and rejected.
struct DpoSet {
  std::vector<TrainSequence> seqs;
  std::vector<DpoPairInput> inputs;             // per pair
  std::vector<std::vector<int64_t>> seq_pairs;  // per sequence
};
DpoSet dpo_set(const std::vector<PreferencePair>& pairs, bool packing = false, int64_t max_seq_len = 0);

// Sequence `seq`'s example loss scales for the policy's summed token losses `losses` (two per pair):
// each pair's dpo_pair derivatives divided by the step's pair count; each pair's terms are added to
// `totals` (may be null).
std::vector<float> pair_scales(const DpoSet& set, size_t seq, const std::vector<double>& losses, DpoLossType type,
                               double beta, double pairs_in_step, DpoTotals* totals);

// The reference's summed token losses of every pair: the model without an adapter.
Status score_reference(const Model& model, DpoSet* set);

// Every pair's terms with `policy` (forward only), summed.
Result<DpoTotals> evaluate_pairs(const Model& model, LoraRef policy, const DpoSet& set, DpoLossType type, double beta);

}  // namespace tl
