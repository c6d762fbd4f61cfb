// Device pool file parsing (yaml-cpp, errors with file:line) and the built-in calibration table.
#include "jobs/devices.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>

#include "core/file.h"

namespace tl::jobs {

std::map<std::string, double> default_calibration() {
  return {{"cpu", 5e10}, {"l4", 4e13}, {"a100", 1.25e14}, {"h100", 3.9e14}, {"h200", 4.2e14}};
}

Result<double> DevicePool::throughput(const Device& d) const {
  auto it = flops_per_second.find(d.kind);
  if (it == flops_per_second.end())
    return not_found("device {}: no calibration for kind '{}' (add it under calibration: in the devices file)", d.id, d.kind);
  return it->second;
}

DevicePool default_device_pool() {
  DevicePool p;
  p.flops_per_second = default_calibration();
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  int64_t mb = pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page / (1 << 20) : 8192;
  p.devices.push_back({"cpu0", "cpu", mb, 0.0});
  return p;
}

Result<DevicePool> load_device_pool(const std::string& path) {
  TL_ASSIGN_OR_RETURN(std::string text, read_file(path));
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return invalid_argument("{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.msg);
  }
  auto at = [&](const YAML::Node& n, const std::string& msg) {
    return invalid_argument("{}:{}: {}", path, n.Mark().line + 1, msg);
  };
  if (!root.IsMap()) return invalid_argument("{}: expected a mapping with 'devices:'", path);
  DevicePool p;
  p.flops_per_second = default_calibration();
  std::set<std::string> ids;
  try {
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      if (key == "devices") {
        if (!kv.second.IsSequence()) return at(kv.second, "'devices' must be a list");
        for (const auto& d : kv.second) {
          Device dev;
          double memory_gb = 0;
          for (const auto& f : d) {
            std::string k = f.first.as<std::string>();
            if (k == "id") dev.id = f.second.as<std::string>();
            else if (k == "kind") dev.kind = f.second.as<std::string>();
            else if (k == "memory_gb") memory_gb = f.second.as<double>();
            else if (k == "price_per_hour") dev.price_per_hour = f.second.as<double>();
            else return at(f.first, fmt::format("unknown device key '{}' (known: id, kind, memory_gb, price_per_hour)", k));
          }
          if (dev.id.empty() || dev.kind.empty() || memory_gb <= 0) return at(d, "a device needs id, kind and memory_gb > 0");
          if (!ids.insert(dev.id).second) return at(d, fmt::format("duplicate device id '{}'", dev.id));
          dev.memory_mb = static_cast<int64_t>(memory_gb * 1024);
          p.devices.push_back(dev);
        }
      } else if (key == "calibration") {
        for (const auto& c : kv.second) {
          double f = c.second.as<double>();
          if (f <= 0) return at(c.second, "calibration FLOP/s must be positive");
          p.flops_per_second[c.first.as<std::string>()] = f;
        }
      } else if (key == "aging_minutes") {
        double m = kv.second.as<double>();
        if (m <= 0) return at(kv.second, "aging_minutes must be positive");
        p.aging_seconds = static_cast<int64_t>(m * 60);
      } else {
        return at(kv.first, fmt::format("unknown key '{}' (known: devices, calibration, aging_minutes)", key));
      }
    }
  } catch (const YAML::Exception& e) {
    return invalid_argument("{}:{}: {}", path, e.mark.line + 1, e.msg);
  }
  if (p.devices.empty()) return invalid_argument("{}: no devices listed", path);
  for (const auto& d : p.devices) TL_TRY(p.throughput(d).status().with_context(path));
  return p;
}

Result<std::map<std::string, CalibrationEntry>> read_calibration_file(const std::string& path) {
  std::map<std::string, CalibrationEntry> out;
  if (!std::filesystem::exists(path)) return out;
  TL_ASSIGN_OR_RETURN(std::string text, read_file(path));
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return invalid_argument("{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.msg);
  }
  if (root.IsNull()) return out;
  auto at = [&](const YAML::Node& n, const std::string& msg) { return invalid_argument("{}:{}: {}", path, n.Mark().line + 1, msg); };
  if (!root.IsMap() || !root["calibration"]) return invalid_argument("{}: expected a mapping with 'calibration:'", path);
  for (const auto& kv : root) {
    std::string key = kv.first.as<std::string>();
    if (key != "calibration") return at(kv.first, fmt::format("unknown key '{}' (known: calibration)", key));
  }
  const YAML::Node table = root["calibration"];
  if (!table.IsMap()) return at(table, "'calibration' must be a mapping of device kind to entry");
  try {
    for (const auto& kv : table) {
      const std::string kind = kv.first.as<std::string>();
      CalibrationEntry e;
      if (kv.second.IsScalar()) {
        e.flops_per_second = kv.second.as<double>();
      } else if (kv.second.IsMap()) {
        for (const auto& f : kv.second) {
          const std::string k = f.first.as<std::string>();
          if (k == "flops_per_second") e.flops_per_second = f.second.as<double>();
          else if (k == "tokens_per_second") e.tokens_per_second = f.second.as<double>();
          else if (k == "model") e.model = f.second.as<std::string>();
          else if (k == "parameters") e.parameters = f.second.as<int64_t>();
          else if (k == "method") e.method = f.second.as<std::string>();
          else if (k == "gradient_checkpointing") e.gradient_checkpointing = f.second.as<bool>();
          else if (k == "seq_len") e.seq_len = f.second.as<int64_t>();
          else if (k == "steps") e.steps = f.second.as<int64_t>();
          else if (k == "measured_at") e.measured_at = f.second.as<std::string>();
          else if (k == "host") e.host = f.second.as<std::string>();
          else
            return at(f.first, fmt::format("unknown calibration key '{}' (known: flops_per_second, tokens_per_second, model, "
                                           "parameters, method, gradient_checkpointing, seq_len, steps, measured_at, host)", k));
        }
      } else {
        return at(kv.second, fmt::format("calibration for '{}' must be a number or a mapping", kind));
      }
      if (!(e.flops_per_second > 0)) return at(kv.second, fmt::format("calibration for '{}': flops_per_second must be positive", kind));
      out[kind] = e;
    }
  } catch (const YAML::Exception& e) {
    return invalid_argument("{}:{}: {}", path, e.mark.line + 1, e.msg);
  }
  return out;
}

Status write_calibration_entry(const std::string& path, const std::string& kind, const CalibrationEntry& entry) {
  TL_ASSIGN_OR_RETURN(auto table, read_calibration_file(path));
  table[kind] = entry;
  YAML::Emitter e;
  e.SetDoublePrecision(6);
  e << YAML::Comment("tuneloop calibration table: measured training throughput per device kind (tuneloop calibrate)");
  e << YAML::BeginMap << YAML::Key << "calibration" << YAML::Value << YAML::BeginMap;
  for (const auto& [k, c] : table) {
    e << YAML::Key << k << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "flops_per_second" << YAML::Value << c.flops_per_second;
    if (c.tokens_per_second > 0) e << YAML::Key << "tokens_per_second" << YAML::Value << c.tokens_per_second;
    if (!c.model.empty()) e << YAML::Key << "model" << YAML::Value << c.model;
    if (c.parameters > 0) e << YAML::Key << "parameters" << YAML::Value << c.parameters;
    e << YAML::Key << "method" << YAML::Value << c.method;
    e << YAML::Key << "gradient_checkpointing" << YAML::Value << c.gradient_checkpointing;
    if (c.seq_len > 0) e << YAML::Key << "seq_len" << YAML::Value << c.seq_len;
    if (c.steps > 0) e << YAML::Key << "steps" << YAML::Value << c.steps;
    if (!c.measured_at.empty()) e << YAML::Key << "measured_at" << YAML::Value << c.measured_at;
    if (!c.host.empty()) e << YAML::Key << "host" << YAML::Value << c.host;
    e << YAML::EndMap;
  }
  e << YAML::EndMap << YAML::EndMap;
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  return write_file_atomic(path, std::string(e.c_str()) + "\n");
}

Status apply_calibration_file(const std::string& path, DevicePool* pool) {
  TL_ASSIGN_OR_RETURN(auto table, read_calibration_file(path));
  for (const auto& [kind, e] : table) pool->flops_per_second[kind] = e.flops_per_second;
  return Status::ok();
}

}  // namespace tl::jobs
