// Device pool file parsing (yaml-cpp, errors with file:line) and the built-in calibration table.
#include "jobs/devices.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

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

}  // namespace tl::jobs
