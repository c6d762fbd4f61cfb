// generate(): prefill the prompt, then decode token by token with a KV cache until an end-of-sequence
// id, max_tokens, or the model's context (max_position_embeddings), whichever comes first; a prompt
// longer than the context is an error. Each new token is handed to `on_token` as it is produced (for streaming); returning
// false from it stops generation.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/status.h"
#include "model/model.h"
#include "model/sampler.h"

namespace tl {

struct GenerateOptions {
  int32_t max_tokens = 64;
  SamplingOptions sampling;
  std::vector<int32_t> stop_ids;  // defaults to the model's eos ids when empty
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (without the prompt), including a final stop id if hit
  bool stopped_on_eos = false;
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

Result<GenerateResult> generate(const Model& model, std::span<const int32_t> prompt, const GenerateOptions& options,
                                const std::function<bool(int32_t)>& on_token = nullptr);

}  // namespace tl
