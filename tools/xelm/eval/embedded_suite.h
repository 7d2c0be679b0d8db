// embedded_suite.h — the default evaluation suite (data/eval/default_suite.json), compiled into the
// binary by scripts/embed_text.cmake so that `xelm eval` needs no data files at run time.
#pragma once

#include <string_view>

namespace xelm::eval {

std::string_view embedded_default_suite();

}  // namespace xelm::eval
