// test_util.h — shared helpers for the tests: fixture paths, scratch files, comparison metrics.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

namespace xelm::test {

// Whether this build runs under AddressSanitizer (the asan preset; the binaries it starts are too).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

inline std::string data_path(const std::string& relative) { return std::string(XELM_TEST_DATA_DIR) + "/" + relative; }

// A fresh directory under the system temp dir, removed when the object goes away.
class ScratchDir {
 public:
  ScratchDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("xelm-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

inline std::vector<uint8_t> read_binary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline std::vector<float> read_f32(const std::string& path) {
  const std::vector<uint8_t> bytes = read_binary(path);
  std::vector<float> values(bytes.size() / sizeof(float));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  return values;
}

inline float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  float m = 0.0f;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Normalized mean squared error: sum (a-b)^2 / sum b^2, b the reference.
inline double nmse(std::span<const float> a, std::span<const float> reference) {
  double err = 0.0, ref = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - reference[i];
    err += d * d;
    ref += static_cast<double>(reference[i]) * reference[i];
  }
  return ref > 0.0 ? err / ref : err;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// What a run of the xelm binary printed and returned.
struct XelmRun {
  int exit_code;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `prefix xelm ARGS <input` through the shell (prefix: environment assignments or a wrapper such
// as `timeout`), with stdout and stderr captured in files under `dir`.
inline XelmRun run_xelm(const std::string& args, const ScratchDir& dir, const std::string& input = "",
                        const std::string& prefix = "") {
  const std::string in_path = dir.file("stdin.txt"), out_path = dir.file("stdout.txt"), err_path = dir.file("stderr.txt");
  std::ofstream(in_path) << input;
  const std::string command =
      prefix + " " + std::string(XELM_BINARY_PATH) + " " + args + " <" + in_path + " >" + out_path + " 2>" + err_path;
  const int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(out_path), read_text(err_path)};
}

// Runs `env xelm ARGS` and sends it SIGINT once its stderr contains `trigger` (polled every 20 ms,
// for at most `patience_s`), so a test of Ctrl-C handling does not depend on how fast the machine is.
// exit_code is -1 when the process died of a signal or never printed the trigger.
inline XelmRun run_xelm_interrupted(const std::vector<std::string>& args, const ScratchDir& dir, const std::string& trigger,
                                    const std::vector<std::string>& env = {}, double patience_s = 120) {
  const std::string out_path = dir.file("stdout.txt"), err_path = dir.file("stderr.txt");
  std::vector<std::string> argv_strings = {"env"};
  argv_strings.insert(argv_strings.end(), env.begin(), env.end());
  argv_strings.push_back(XELM_BINARY_PATH);
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (std::string& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (!std::freopen("/dev/null", "r", stdin) || !std::freopen(out_path.c_str(), "w", stdout) ||
        !std::freopen(err_path.c_str(), "w", stderr)) {
      ::_exit(127);
    }
    ::execvp("env", argv.data());
    ::_exit(127);
  }
  bool triggered = false;
  for (int waited_ms = 0; waited_ms < patience_s * 1000 && !triggered; waited_ms += 20) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid) return {-1, read_text(out_path), read_text(err_path)};
    triggered = read_text(err_path).find(trigger) != std::string::npos;
    if (!triggered) ::usleep(20 * 1000);
  }
  ::kill(pid, triggered ? SIGINT : SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {triggered && WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(out_path), read_text(err_path)};
}

}  // namespace xelm::test
