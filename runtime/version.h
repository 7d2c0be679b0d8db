// version.h — xelm's version and the commit it was built from (shown by --version and in benchmarks).
#pragma once

#include <string_view>

namespace xelm {
std::string_view version_string();  // "0.1.0"
std::string_view build_commit();    // short git hash at configure time, or "unknown"
}  // namespace xelm
