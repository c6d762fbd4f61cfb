// fork/exec of the trainer in its own process group, and the file readers of the runner contract.
//
// The child: setpgid(0, 0) so the group id is its pid and kill(-pgid) reaches every descendant;
// PR_SET_PDEATHSIG(SIGKILL) so a kill -9 of the server also kills the trainer at once (the restart
// then resumes it from its last checkpoint instead of racing an orphan that is still writing). The
// signal fires when the forking *thread* exits, so launch from a thread that outlives the trainer:
// JobService launches only from its loop thread, and stop() ends trainers itself after joining it;
// stdin from /dev/null; stdout/stderr appended to WORK_DIR/stdout.log / stderr.log.
#include "jobs/runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/file.h"

namespace tl::jobs {
namespace fs = std::filesystem;

std::string ExitStatus::describe() const {
  if (exited) return fmt::format("exited with status {}", code);
  return fmt::format("was killed by signal {} ({})", code, strsignal(code));
}

namespace {
ExitStatus decode(int status) {
  if (WIFEXITED(status)) return {true, WEXITSTATUS(status)};
  return {false, WIFSIGNALED(status) ? WTERMSIG(status) : 0};
}
}  // namespace

Result<TrainerProcess> TrainerProcess::launch(const LaunchSpec& spec) {
  if (access(spec.trainer_path.c_str(), X_OK) != 0)
    return not_found("trainer {}: not an executable file (set tuneloop server --trainer)", spec.trainer_path);
  std::error_code ec;
  fs::create_directories(spec.work_dir, ec);
  if (ec) return io_error("{}: cannot create job work dir: {}", spec.work_dir, ec.message());
  // Everything the child needs is prepared before fork: after fork only async-signal-safe calls.
  std::string out_log = spec.work_dir + "/stdout.log", err_log = spec.work_dir + "/stderr.log";
  std::vector<std::string> args = {spec.trainer_path, "train", spec.spec_path};
  if (spec.resume) args.push_back("--resume");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
  for (const auto& e : spec.env) env_store.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  int out_fd = ::open(out_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int err_fd = ::open(err_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out_fd < 0 || err_fd < 0 || null_fd < 0) {
    for (int fd : {out_fd, err_fd, null_fd}) if (fd >= 0) ::close(fd);
    return io_error("{}: cannot open trainer logs: {}", spec.work_dir, std::strerror(errno));
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {out_fd, err_fd, null_fd}) ::close(fd);
    return internal_error("fork failed: {}", std::strerror(errno));
  }
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the server died between fork and prctl
    dup2(null_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    execve(argv[0], argv.data(), envp.data());
    const char msg[] = "tuneloop runner: execve of the trainer failed\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent, so the group exists before we might signal it
  for (int fd : {out_fd, err_fd, null_fd}) ::close(fd);
  return TrainerProcess(pid);
}

std::optional<ExitStatus> TrainerProcess::poll() {
  if (pid_ <= 0) return ExitStatus{false, 0};
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == 0) return std::nullopt;
  pid_ = -1;
  if (r < 0) return ExitStatus{false, 0};  // not our child any more (cannot happen in one process)
  return decode(status);
}

ExitStatus TrainerProcess::terminate(int grace_ms) {
  if (pid_ <= 0) return {false, 0};
  kill(-pid_, SIGTERM);
  for (int waited = 0; waited < grace_ms; waited += 20) {
    if (auto st = poll()) return *st;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_t pgid = pid_;
  kill(-pgid, SIGKILL);
  int status = 0;
  waitpid(pgid, &status, 0);
  pid_ = -1;
  return decode(status);
}

namespace {
bool alive_not_zombie(pid_t pid) {
  if (kill(pid, 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  std::getline(stat, s);
  size_t rp = s.rfind(')');
  return !(rp != std::string::npos && rp + 2 < s.size() && s[rp + 2] == 'Z');
}
}  // namespace

void kill_orphaned_trainer(int64_t pgid, const std::string& spec_path) {
  if (pgid <= 1) return;
  pid_t pid = static_cast<pid_t>(pgid);
  if (!alive_not_zombie(pid)) return;
  auto cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  if (!cmdline.is_ok() || cmdline->find(spec_path) == std::string::npos) return;  // a recycled pid
  kill(-pid, SIGKILL);
  for (int i = 0; i < 250 && alive_not_zombie(pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

uint64_t metrics_file_id(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_ino);
}

int64_t trainer_total_steps(const std::string& stderr_log) {
  std::ifstream in(stderr_log);
  std::string line;
  int64_t total = 0;
  const std::string tail = " steps";
  while (std::getline(in, line)) {
    if (line.rfind("data: ", 0) != 0 || line.size() < tail.size() ||
        line.compare(line.size() - tail.size(), tail.size(), tail) != 0)
      continue;
    size_t end = line.size() - tail.size(), start = line.find_last_of(' ', end - 1);
    if (start == std::string::npos) continue;
    std::string digits = line.substr(start + 1, end - start - 1);
    if (digits.empty() || digits.size() > 15 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    total = std::stoll(digits);  // the newest launch's line wins (a resume appends another)
  }
  return total;
}

Result<std::vector<MetricsLine>> read_metrics(const std::string& path, int64_t* offset, int64_t* bad_lines, uint64_t* file_id) {
  std::vector<MetricsLine> out;
  if (file_id) {
    uint64_t id = metrics_file_id(path);
    if (id != *file_id) {
      *offset = 0;  // replaced (or created) since we last looked: its lines start over
      *file_id = id;
    }
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return out;  // not written yet
  in.seekg(0, std::ios::end);
  int64_t size = in.tellg();
  if (size < *offset) *offset = 0;
  if (size == *offset) return out;
  in.seekg(*offset);
  std::string chunk(static_cast<size_t>(size - *offset), '\0');
  in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  size_t consumed = 0;
  for (size_t nl; (nl = chunk.find('\n', consumed)) != std::string::npos; consumed = nl + 1) {
    std::string line = chunk.substr(consumed, nl - consumed);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("step") || !j["step"].is_number_integer()) {
      ++*bad_lines;
      continue;
    }
    MetricsLine m;
    m.step = j["step"].get<int64_t>();
    m.raw = line;
    for (auto it = j.begin(); it != j.end(); ++it)
      if (it.key() != "step" && it.value().is_number()) m.values[it.key()] = it.value().get<double>();
    out.push_back(std::move(m));
  }
  *offset += static_cast<int64_t>(consumed);
  return out;
}

std::vector<CheckpointDir> scan_checkpoints(const std::string& output_dir) {
  std::vector<CheckpointDir> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(output_dir + "/checkpoints", ec)) {
    if (!e.is_directory()) continue;
    std::string name = e.path().filename().string();
    size_t sep = name.find_last_of("-_");
    if (sep == std::string::npos || sep + 1 >= name.size()) continue;
    std::string digits = name.substr(sep + 1);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 15) continue;
    out.push_back({std::stoll(digits), e.path().string()});
  }
  std::sort(out.begin(), out.end(), [](const CheckpointDir& a, const CheckpointDir& b) { return a.step < b.step; });
  return out;
}

std::string tail_lines(const std::string& path, int n) {
  auto text = read_file(path);
  if (!text.is_ok()) return "";
  std::vector<std::string> lines;
  size_t pos = 0;
  const std::string& t = *text;
  while (pos < t.size()) {
    size_t nl = t.find('\n', pos);
    if (nl == std::string::npos) nl = t.size();
    std::string l = t.substr(pos, nl - pos);
    if (l.find_first_not_of(" \t\r") != std::string::npos) lines.push_back(l);
    pos = nl + 1;
  }
  std::string out;
  size_t start = lines.size() > static_cast<size_t>(n) ? lines.size() - static_cast<size_t>(n) : 0;
  for (size_t i = start; i < lines.size(); ++i) out += (out.empty() ? "" : "\n") + lines[i];
  return out;
}

}  // namespace tl::jobs
