// environment.h — the one place that reads xelm's settings from the process environment. main()
// reads it once and hands the result to the command that runs; host/ and runtime/ never call
// getenv, they get these values through OpenClOptions and function parameters. The test binary
// links this library too, so its OpenCL fixtures pick the device (XELM_OPENCL_DEVICE) as xelm does.
//
// | variable                    | where it goes                        | accepted                                 |
// | XELM_OPENCL_DEVICE          | opencl.device (--device wins)        | a device index or name substring         |
// | XELM_OPENCL_MAX_ALLOC_MB    | opencl.max_alloc_bytes               | a positive number of MiB                 |
// | XELM_OPENCL_FAST_PATHS      | opencl.fast_paths                    | auto, none, or fp16,subgroups,int8 words |
// | XELM_OPENCL_GEMM_MIN_TOKENS | opencl.gemm_min_tokens               | a token count, 0 = off                   |
// | XELM_OPENCL_FUSED           | opencl.fused                         | 0 (the unfused ops) or 1                 |
// | XELM_KERNEL_CACHE_DIR       | opencl.cache_dir                     | a directory, "" = no cache               |
// | XELM_DEVICE_MEMORY_MB       | device_memory_cap_bytes (the planner)| a positive number of MiB                 |
// | XDG_CACHE_HOME, HOME        | opencl.cache_dir when not set above  |                                          |
// | XDG_CONFIG_HOME, HOME       | tune_store_dir                       |                                          |
// | XDG_STATE_HOME, HOME        | chat_history_file                    |                                          |
// A variable set to "" counts as unset, except XELM_KERNEL_CACHE_DIR. A malformed value is an
// xelm::Error of one line naming the variable and what it expects.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "host/opencl_backend.h"

namespace xelm::cli {

struct Environment {
  // OpenCL backend settings; make_opencl_backend takes them as they are (the command's --device
  // replaces `device` when given). cache_dir: $XELM_KERNEL_CACHE_DIR, else $XDG_CACHE_HOME/xelm/kernels,
  // else ~/.cache/xelm/kernels, else "" (no cache).
  opencl::OpenClOptions opencl;
  uint64_t device_memory_cap_bytes = 0;  // the memory the offload planner sees at most (0 = the device's)
  // $XDG_CONFIG_HOME/xelm/tune, else ~/.config/xelm/tune; empty when neither variable is set.
  std::filesystem::path tune_store_dir;
  // $XDG_STATE_HOME/xelm/chat_history, else ~/.local/state/xelm/chat_history; empty: no history file.
  std::filesystem::path chat_history_file;
};

// Variable name -> value; a name that is absent is unset.
using EnvironmentVariables = std::map<std::string, std::string>;

// Parses `variables` (the tests give their own); throws xelm::Error on a malformed value.
Environment parse_environment(const EnvironmentVariables& variables);

// parse_environment of this process's environment.
Environment read_environment();

}  // namespace xelm::cli
