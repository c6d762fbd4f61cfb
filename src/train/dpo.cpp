#include "train/dpo.h"

#include <cmath>

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

}  // namespace tl
