// version.cpp — values baked in by CMake (XELM_VERSION, XELM_BUILD_COMMIT).
#include "runtime/version.h"

#ifndef XELM_VERSION
#define XELM_VERSION "0.0.0"
#endif
#ifndef XELM_BUILD_COMMIT
#define XELM_BUILD_COMMIT "unknown"
#endif

namespace xelm {
std::string_view version_string() { return XELM_VERSION; }
std::string_view build_commit() { return XELM_BUILD_COMMIT; }
}  // namespace xelm
