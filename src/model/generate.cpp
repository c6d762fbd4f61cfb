#include "model/generate.h"

#include <algorithm>
#include <chrono>

namespace tl {

Result<GenerateResult> generate(const Model& model, std::span<const int32_t> prompt, const GenerateOptions& options,
                                const std::function<bool(int32_t)>& on_token) {
  if (prompt.empty()) return invalid_argument("generate: the prompt has no tokens");
  if (options.max_tokens < 0) return invalid_argument("generate: max_tokens must be >= 0");
  const std::vector<int32_t>& stops = options.stop_ids.empty() ? model.config().eos_token_ids : options.stop_ids;
  // The cache is sized by what the model can attend to, not by --max-tokens (a huge value must not
  // allocate a huge cache): generation stops at max_position_embeddings.
  const int64_t context = model.config().max_position_embeddings;
  const int64_t n_prompt = static_cast<int64_t>(prompt.size());
  if (n_prompt > context) {
    return invalid_argument("prompt of {} tokens exceeds the model's context of {} (max_position_embeddings)", n_prompt,
                            context);
  }
  const int32_t max_tokens = static_cast<int32_t>(std::min<int64_t>(options.max_tokens, context - n_prompt));
  KvCache cache(model.config(), n_prompt + max_tokens);
  Sampler sampler(options.sampling);
  GenerateResult out;
  std::vector<float> logits;
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  TL_TRY(model.forward(prompt, cache, logits, false));
  auto t1 = clock::now();
  out.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  for (int32_t i = 0; i < max_tokens; ++i) {
    int32_t next = sampler.sample(logits);
    out.tokens.push_back(next);
    if (on_token && !on_token(next)) break;
    if (std::find(stops.begin(), stops.end(), next) != stops.end()) {
      out.stopped_on_eos = true;
      break;
    }
    if (i + 1 == max_tokens) break;
    TL_TRY(model.forward(std::span<const int32_t>(&next, 1), cache, logits, false));
  }
  out.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return out;
}

}  // namespace tl
