// Folds a LoRA adapter into the base weights: W += scaling * B A for every adapted projection. Used by
// `tuneloop merge` and to run inference with an adapter (generate/logits --adapter).
#pragma once

#include "core/status.h"
#include "model/lora.h"
#include "model/model.h"

namespace tl {

Status merge_lora(Model& model, const LoraWeights& lora, const LoraConfig& config);

}  // namespace tl
