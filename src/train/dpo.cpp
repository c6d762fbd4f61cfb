#include "train/dpo.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

namespace tl {

Result<DpoLossType> dpo_loss_from_name(const std::string& name) {
  if (name == "sigmoid") return DpoLossType::kSigmoid;
  if (name == "hinge") return DpoLossType::kHinge;
  if (name == "ipo") return DpoLossType::kIpo;
  return invalid_argument("unknown DPO loss '{}' (expected sigmoid, hinge or ipo)", name);
}

DpoPairTerms dpo_pair(DpoLossType type, double beta, const DpoPairInput& in) {
  // Log-probabilities are minus the summed token losses; ipo divides each by its token count.
  const bool mean = type == DpoLossType::kIpo;
  const double nc = mean ? static_cast<double>(in.chosen_tokens) : 1.0;
  const double nr = mean ? static_cast<double>(in.rejected_tokens) : 1.0;
  const double chosen = -(in.policy_chosen_loss - in.ref_chosen_loss) / nc;
  const double rejected = -(in.policy_rejected_loss - in.ref_rejected_loss) / nr;
  const double h = chosen - rejected;
  DpoPairTerms t;
  t.reward_chosen = beta * chosen;
  t.reward_rejected = beta * rejected;
  double dh = 0;  // d loss / d h
  switch (type) {
    case DpoLossType::kSigmoid: {
      const double z = beta * h;
      // -log sigmoid(z) = softplus(-z), written to stay finite for large |z|.
      t.loss = z > 0 ? std::log1p(std::exp(-z)) : -z + std::log1p(std::exp(z));
      dh = -beta / (1.0 + std::exp(z));  // -beta sigmoid(-z)
      break;
    }
    case DpoLossType::kHinge: {
      const double z = 1.0 - beta * h;
      t.loss = z > 0 ? z : 0.0;
      dh = z > 0 ? -beta : 0.0;
      break;
    }
    case DpoLossType::kIpo: {
      const double d = h - 1.0 / (2.0 * beta);
      t.loss = d * d;
      dh = 2.0 * d;
      break;
    }
  }
  // h = -(Lc - refc)/nc + (Lr - refr)/nr for the summed token losses L.
  t.scale_chosen = -dh / nc;
  t.scale_rejected = dh / nr;
  return t;
}

DpoSet dpo_set(const std::vector<PreferencePair>& pairs, bool packing, int64_t max_seq_len) {
  auto trained = [](const Example& e) {
    return static_cast<int64_t>(std::count_if(e.targets.begin(), e.targets.end(), [](int32_t t) { return t >= 0; }));
  };
  DpoSet set;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const PreferencePair& p = pairs[i];
    const auto size = static_cast<int64_t>(p.chosen.tokens.size() + p.rejected.tokens.size());
    if (!packing || set.seqs.empty() || set.seqs.back().size() + size > max_seq_len) {
      set.seqs.emplace_back();
      set.seq_pairs.emplace_back();
    }
    set.seqs.back().append(p.chosen.tokens, p.chosen.targets);
    set.seqs.back().append(p.rejected.tokens, p.rejected.targets);
    set.seq_pairs.back().push_back(static_cast<int64_t>(i));
    DpoPairInput in;
    in.chosen_tokens = trained(p.chosen);
    in.rejected_tokens = trained(p.rejected);
    set.inputs.push_back(in);
  }
  return set;
}

Status score_reference(const Model& model, DpoSet* set) {
  for (size_t s = 0; s < set->seqs.size(); ++s) {
    TL_ASSIGN_OR_RETURN(std::vector<double> losses, example_losses(model, LoraRef{}, set->seqs[s]));
    const std::vector<int64_t>& held = set->seq_pairs[s];
    for (size_t i = 0; i < held.size(); ++i) {
      DpoPairInput& in = set->inputs[static_cast<size_t>(held[i])];
      in.ref_chosen_loss = losses[2 * i];
      in.ref_rejected_loss = losses[2 * i + 1];
    }
  }
  return Status::ok();
}

std::vector<float> pair_scales(const DpoSet& set, size_t seq, const std::vector<double>& losses, DpoLossType type,
                               double beta, double pairs_in_step, DpoTotals* totals) {
  const std::vector<int64_t>& held = set.seq_pairs[seq];
  TL_CHECK(losses.size() == 2 * held.size());
  std::vector<float> scales(losses.size());
  for (size_t i = 0; i < held.size(); ++i) {
    DpoPairInput in = set.inputs[static_cast<size_t>(held[i])];
    in.policy_chosen_loss = losses[2 * i];
    in.policy_rejected_loss = losses[2 * i + 1];
    const DpoPairTerms t = dpo_pair(type, beta, in);
    if (totals) totals->add(t);
    scales[2 * i] = static_cast<float>(t.scale_chosen / pairs_in_step);
    scales[2 * i + 1] = static_cast<float>(t.scale_rejected / pairs_in_step);
  }
  return scales;
}

Result<DpoTotals> evaluate_pairs(const Model& model, LoraRef policy, const DpoSet& set, DpoLossType type, double beta) {
  DpoTotals totals;
  for (size_t s = 0; s < set.seqs.size(); ++s) {
    TL_ASSIGN_OR_RETURN(std::vector<double> losses, example_losses(model, policy, set.seqs[s]));
    pair_scales(set, s, losses, type, beta, 1.0, &totals);
  }
  return totals;
}

void DpoTotals::add(const DpoPairTerms& t) {
  ++pairs;
  loss += t.loss;
  reward_chosen += t.reward_chosen;
  reward_rejected += t.reward_rejected;
  reward_correct += t.reward_chosen > t.reward_rejected ? 1.0 : 0.0;
}

}  // namespace tl
