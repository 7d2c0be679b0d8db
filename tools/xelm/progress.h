// progress.h — one-line progress bars on stderr for long commands (`xelm eval`, `xelm surgery
// --search`): redrawn in place with a carriage return, ended with a newline by finish_progress().
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace xelm::cli {

inline void print_progress(std::string_view label, int done, int total, std::string_view what) {
  constexpr int kWidth = 24;
  const int filled = total > 0 ? done * kWidth / total : kWidth;
  std::fprintf(stderr, "\r%.*s [%s%s] %d/%d %-28.28s", static_cast<int>(label.size()), label.data(),
               std::string(static_cast<size_t>(filled), '#').c_str(),
               std::string(static_cast<size_t>(kWidth - filled), '.').c_str(), done, total, std::string(what).c_str());
  std::fflush(stderr);
}

inline void finish_progress() { std::fputs("\n", stderr); }

}  // namespace xelm::cli
