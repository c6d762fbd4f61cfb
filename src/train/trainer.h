// The training loop behind `tuneloop train SPEC.yaml [--resume]`.
//
//   data: JSONL -> examples (loss masks) -> packed sequences -> a seeded order per epoch
//   step: micro_batch_size x gradient_accumulation sequences; gradients of the summed token losses
//         divided by the step's trained-token count; global-norm clipping; AdamW (no decay on norms and
//         biases); learning rate from the schedule with warmup
//   dpo:  preference pairs, one sequence each (chosen, then rejected); a LoRA adapter is the policy and
//         the base without it the reference, whose log-probabilities are computed once before step 1;
//         each step averages the pairs' preference loss (train/dpo.h), whose derivatives scale each
//         sequence's token losses; metrics add TRL's reward statistics
//   qlora: the base's layer projections are stored as NF4 (double quantisation optional) and dequantised
//         one layer at a time inside the forward and backward; the adapter trains as with lora
//   out:  metrics.jsonl (one line per step), a progress bar on a terminal (plain lines otherwise),
//         checkpoints/step-N every N steps (weights + optimizer moments + step; written to a temp
//         directory and renamed), the newest `keep` kept; at the end the PEFT adapter (lora) or a full HF
//         model directory (full) in output_dir.
//
// Determinism: for a given thread count every step is a pure function of (spec, step): data order and
// dropout masks derive from the seed, so `--resume` after a kill at any point ends with files bitwise
// identical to an uninterrupted run. A non-finite loss or gradient stops the run with an error naming the
// step; the last good checkpoint stays.
#pragma once

#include <string>

#include "core/status.h"
#include "train/spec.h"

namespace tl {

struct TrainResult {
  int64_t steps = 0;
  double first_loss = 0;  // mean token loss (dpo: mean pair loss) of the first step run in this invocation
  double last_loss = 0;   // the same for the last step
  double validation_loss = -1;  // mean over the validation set, -1 when none
  double validation_reward_accuracy = -1;  // dpo: share of validation pairs whose chosen reward is higher
  std::string output_dir;
};

Result<TrainResult> run_training(const TrainSpec& spec, bool resume);

}  // namespace tl
