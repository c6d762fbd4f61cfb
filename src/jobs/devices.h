// The device pool the scheduler places jobs on, read from a YAML file (`tuneloop server --devices F`),
// and the calibration table that turns FLOPs into seconds for the preflight estimate.
//
//   # devices.yaml
//   devices:
//     - {id: gpu0, kind: h100, memory_gb: 80, price_per_hour: 2.50}
//     - {id: gpu1, kind: l4, memory_gb: 24, price_per_hour: 0.80}
//   calibration: {h100: 3.5e14}        # sustained training FLOP/s per kind, overrides the built-ins
//   aging_minutes: 60                  # scheduler aging step (scheduler.h)
//
// Without a file the pool is one CPU device with the machine's memory (a CPU-only host counts as one
// device). The built-in calibration figures are sustained training throughput, not peak: bf16 dense
// peak × ~40% MFU for GPUs, and what tuneloop's CPU kernels reach on this class of machine.
//
// The calibration file (`tuneloop calibrate` writes it; the server reads DATA_DIR/calibration.yaml, or
// --calibration FILE) holds measured entries that override both the built-ins and a devices file:
//
//   # calibration.yaml
//   calibration:
//     cpu:                              # device kind
//       flops_per_second: 1.9e10        # what the estimator uses: tokens_per_second × flops_per_token
//       tokens_per_second: 5210.4       # measured training throughput on `model`
//       model: /models/tiny             # what was measured: model dir ("random:…" for a built-in shape),
//       parameters: 1810000             #   its parameter count, the method and recomputation
//       method: lora
//       gradient_checkpointing: true
//       seq_len: 256
//       steps: 3
//       measured_at: 2025-06-01T12:00:00Z
//       host: build-7
//
// A plain number (`cpu: 1.9e10`) is accepted as flops_per_second too.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace tl::jobs {

struct Device {
  std::string id;
  std::string kind;      // cpu | h100 | h200 | a100 | l4 | … (a key of the calibration table)
  int64_t memory_mb = 0;
  double price_per_hour = 0;  // currency units per device-hour, for the cost estimate
};

struct DevicePool {
  std::vector<Device> devices;
  std::map<std::string, double> flops_per_second;  // by kind
  int64_t aging_seconds = 3600;

  // Sustained FLOP/s for a device; kNotFound naming the kind when the table has no entry.
  Result<double> throughput(const Device& d) const;
};

// Built-in calibration: cpu 5e10, l4 4e13, a100 1.25e14, h100 3.9e14, h200 4.2e14.
std::map<std::string, double> default_calibration();
DevicePool default_device_pool();
Result<DevicePool> load_device_pool(const std::string& path);

// One measured entry of the calibration file.
struct CalibrationEntry {
  double flops_per_second = 0;
  double tokens_per_second = 0;
  std::string model, method = "lora", measured_at, host;
  int64_t parameters = 0, seq_len = 0, steps = 0;
  bool gradient_checkpointing = true;
};
// Reads a calibration file (format above): kind → entry. A missing file is an empty table.
Result<std::map<std::string, CalibrationEntry>> read_calibration_file(const std::string& path);
// Writes (creating or replacing) the entry for `kind`, keeping the file's other kinds; atomic.
Status write_calibration_entry(const std::string& path, const std::string& kind, const CalibrationEntry& entry);
// Sets pool->flops_per_second[kind] for every entry of the file.
Status apply_calibration_file(const std::string& path, DevicePool* pool);

}  // namespace tl::jobs
