// Training forward and manual backward (llm.c style) for one packed sequence.
//
// Forward keeps what backward needs per layer (or only each layer's input, with gradient checkpointing,
// recomputing the rest in backward); backward walks the forward in reverse. Rules: parameter gradients
// accumulate (+=), activation gradients are assigned, the residual stream accumulates.
//
// Packing: several examples share one sequence; positions restart and attention stays inside each
// example (keys from the example's first token), so a packed sequence gives exactly the losses and
// gradients of its examples run one by one. The output head and cross-entropy run in chunks of rows, so
// (T, vocab) logits never sit in memory at once.
//
// Usage:
//   TrainSequence seq = ...;                      // tokens, targets (-1: no loss), positions, segment starts
//   LoraWeights grads = lora.zeros_like();
//   TL_ASSIGN_OR_RETURN(StepStats s, forward_backward(model, {&lora, &lora_cfg}, &grads, nullptr, seq, 1.0f / n, opt));
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/status.h"
#include "model/lora.h"
#include "model/model.h"

namespace tl {

struct TrainSequence {
  std::vector<int32_t> tokens;         // (T) input ids
  std::vector<int32_t> targets;        // (T) id that should follow tokens[t], or -1 for no loss
  std::vector<int32_t> positions;      // (T) position ids, restarting at each packed example
  std::vector<int32_t> segment_start;  // (T) index of the first token of t's example
  // One example, positions 0..T-1.
  static TrainSequence single(std::vector<int32_t> tokens, std::vector<int32_t> targets);
  // Appends an example (tokens/targets of equal length) after the ones already packed.
  void append(const std::vector<int32_t>& example_tokens, const std::vector<int32_t>& example_targets);
  int64_t size() const { return static_cast<int64_t>(tokens.size()); }
};

struct LoraRef {
  const LoraWeights* weights = nullptr;
  const LoraConfig* config = nullptr;
};

struct TrainOptions {
  bool gradient_checkpointing = false;
  uint64_t dropout_seed = 0;  // LoRA dropout masks are a pure function of (seed, layer, target, index)
  bool training = true;       // false: no dropout (evaluation)
};

struct StepStats {
  double loss_sum = 0;   // sum of token losses (unscaled)
  int64_t tokens = 0;    // tokens with a target
};

// Forward + backward: accumulates d(loss_scale * sum of token losses) into `lora_grads` (when the model
// carries a LoRA adapter) and/or `full_grads` (all base weights, same struct as the weights; pass null
// to freeze them). Returns the loss sum and token count.
Result<StepStats> forward_backward(const Model& model, LoraRef lora, LoraWeights* lora_grads, ModelWeights* full_grads,
                                   const TrainSequence& seq, float loss_scale, const TrainOptions& options);

// Each packed example's loss scale, chosen after the forward from the examples' loss sums (one per
// example in packing order; an example without targets sums to 0). DPO's scales are its loss's
// derivatives with respect to each sequence's log-probability, which the forward has to give first.
using ExampleScales = std::function<std::vector<float>(const std::vector<double>& example_loss_sums)>;

// forward_backward with per-example scales: d(sum over examples of scale_e * loss_e). The layers and the
// head run once: each row's input gradient is linear in its scale, so it is scaled once the scales are
// known. With full_grads the head runs twice (once for the losses, once for the gradient): its weight
// gradient sums rows of different scales.
Result<StepStats> forward_backward(const Model& model, LoraRef lora, LoraWeights* lora_grads, ModelWeights* full_grads,
                                   const TrainSequence& seq, const ExampleScales& scales, const TrainOptions& options);

// Forward only: loss sum and token count (no dropout).
Result<StepStats> sequence_loss(const Model& model, LoraRef lora, const TrainSequence& seq);

// Forward only: each packed example's loss sum, in packing order (no dropout).
Result<std::vector<double>> example_losses(const Model& model, LoraRef lora, const TrainSequence& seq);

// Zero gradients shaped like `w` (lm_head aliases embed when the weights are tied).
ModelWeights model_zeros_like(const ModelWeights& w, bool tied);

}  // namespace tl
