// Exporters: the unified spec → the configs of the two trainers teams already run on their own GPUs.
//   export_axolotl_yaml   an axolotl config (`axolotl train config.yml`)
//   export_unsloth_script a self-contained Python script using unsloth + TRL
// Both are deterministic text (golden-file tests in tests/jobs/golden/). Options with no counterpart
// are written as comments in the output rather than silently dropped.
#pragma once

#include <string>

#include "jobs/job_spec.h"

namespace tl::jobs {

std::string export_axolotl_yaml(const JobSpec& spec);
std::string export_unsloth_script(const JobSpec& spec);

}  // namespace tl::jobs
