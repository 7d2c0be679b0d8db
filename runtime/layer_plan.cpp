// layer_plan.cpp — parsing and applying layer surgery operations, and mixing tensors for
// interpolated layers.
#include "runtime/layer_plan.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <map>

#include <spdlog/fmt/fmt.h>
#include <spdlog/fmt/ranges.h>

#include "runtime/error.h"
#include "runtime/ggml_types.h"

namespace xelm {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      parts.push_back(trim(s.substr(start, i - start)));
      start = i + 1;
    }
  }
  return parts;
}

// One operation being applied; errors name it.
class Step {
 public:
  Step(std::string_view op, std::vector<LayerMix>& layers) : op_(op), layers_(layers) {}

  [[noreturn]] void fail(const std::string& why) const { throw Error(fmt::format("layer plan: '{}': {}", op_, why)); }

  int64_t number(std::string_view text) const {
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
      fail(fmt::format("'{}' is not a layer index", text));
    }
    return v;
  }
  int64_t index(std::string_view text) const {
    const int64_t i = number(text);
    if (i < 0 || i >= static_cast<int64_t>(layers_.size())) {
      fail(layers_.empty() ? "the model has no layers"
                           : fmt::format("layer {} is out of range (the model has {} layers here, 0-{})", i,
                                         layers_.size(), layers_.size() - 1));
    }
    return i;
  }
  float fraction(std::string_view text) const {
    const std::string s(text);
    char* end = nullptr;
    const float t = std::strtof(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !(t >= 0.0f && t <= 1.0f)) {
      fail(fmt::format("'{}' is not a mixing weight from 0 to 1", text));
    }
    return t;
  }
  std::vector<std::string_view> args(std::string_view text, size_t min, size_t max) const {
    std::vector<std::string_view> a = text.empty() ? std::vector<std::string_view>() : split(text, ',');
    if (a.size() < min || a.size() > max) {
      fail(min == max ? fmt::format("expected {} comma-separated value{}", min, min == 1 ? "" : "s")
                      : fmt::format("expected {} to {} comma-separated values", min, max));
    }
    return a;
  }

 private:
  std::string_view op_;
  std::vector<LayerMix>& layers_;
};

LayerMix combine(const LayerMix& a, float wa, const LayerMix& b, float wb) {
  std::map<int64_t, float> sum;
  for (const auto& [layer, w] : a.terms) sum[layer] += wa * w;
  for (const auto& [layer, w] : b.terms) sum[layer] += wb * w;
  LayerMix m;
  for (const auto& [layer, w] : sum) {
    if (w != 0.0f) m.terms.emplace_back(layer, w);
  }
  if (m.terms.empty()) m.terms.emplace_back(a.source(), 1.0f);  // T = 0 of a layer with itself
  return m;
}

void apply(std::string_view op, std::vector<LayerMix>& layers) {
  const size_t space = op.find_first_of(" \t=");
  const std::string_view verb = op.substr(0, space);
  const std::string_view rest = space == std::string_view::npos ? std::string_view() : trim(op.substr(space + 1));
  Step step(op, layers);
  if (verb == "delete") {
    const int64_t k = step.index(step.args(rest, 1, 1)[0]);
    if (layers.size() == 1) step.fail("it would leave no layers");
    layers.erase(layers.begin() + k);
  } else if (verb == "swap") {
    const auto a = step.args(rest, 2, 2);
    std::swap(layers[static_cast<size_t>(step.index(a[0]))], layers[static_cast<size_t>(step.index(a[1]))]);
  } else if (verb == "duplicate") {
    const int64_t k = step.index(step.args(rest, 1, 1)[0]);
    const LayerMix copy = layers[static_cast<size_t>(k)];
    layers.insert(layers.begin() + k + 1, copy);
  } else if (verb == "interpolate") {
    const auto a = step.args(rest, 2, 3);
    const int64_t i = step.index(a[0]), j = step.index(a[1]);
    const float t = a.size() == 3 ? step.fraction(a[2]) : 0.5f;
    const LayerMix mix = combine(layers[static_cast<size_t>(i)], 1.0f - t, layers[static_cast<size_t>(j)], t);
    layers.insert(layers.begin() + i + 1, mix);
  } else if (verb == "layers") {
    std::vector<LayerMix> kept;
    for (std::string_view item : step.args(rest, 1, 1u << 20)) {
      const size_t dash = item.find('-');
      const int64_t first = step.index(dash == std::string_view::npos ? item : trim(item.substr(0, dash)));
      const int64_t last = dash == std::string_view::npos ? first : step.index(trim(item.substr(dash + 1)));
      if (last < first) step.fail(fmt::format("range '{}' is reversed", item));
      for (int64_t k = first; k <= last; ++k) kept.push_back(layers[static_cast<size_t>(k)]);
    }
    layers = std::move(kept);
  } else {
    step.fail("unknown operation (use delete, swap, duplicate, interpolate or layers)");
  }
}

}  // namespace

std::string LayerMix::describe() const {
  if (is_plain()) return std::to_string(source());
  std::vector<std::string> parts;
  for (const auto& [layer, w] : terms) parts.push_back(fmt::format("{:g}*{}", w, layer));
  return fmt::format("{}", fmt::join(parts, "+"));
}

LayerPlan LayerPlan::identity(int64_t n_source) {
  LayerPlan p;
  p.n_source = n_source;
  for (int64_t i = 0; i < n_source; ++i) p.layers.push_back(LayerMix{{{i, 1.0f}}});
  return p;
}

LayerPlan LayerPlan::parse(std::string_view text, int64_t n_source) {
  LayerPlan p = identity(n_source);
  std::vector<std::string> done;
  for (std::string_view op : split(text, ';')) {
    if (op.empty()) continue;
    apply(op, p.layers);
    done.emplace_back(op);
  }
  if (p.layers.empty()) throw Error("layer plan: no layers left");
  p.operations = fmt::format("{}", fmt::join(done, "; "));
  return p;
}

bool LayerPlan::is_identity() const {
  if (size() != n_source) return false;
  for (int64_t i = 0; i < size(); ++i) {
    const LayerMix& m = layers[static_cast<size_t>(i)];
    if (!m.is_plain() || m.source() != i) return false;
  }
  return true;
}

bool LayerPlan::has_mixes() const {
  return std::any_of(layers.begin(), layers.end(), [](const LayerMix& m) { return !m.is_plain(); });
}

std::string LayerPlan::describe() const {
  std::vector<std::string> parts;
  for (const LayerMix& m : layers) parts.push_back(m.describe());
  return fmt::format("{}", fmt::join(parts, ","));
}

OwnedTensor mix_tensors(const std::vector<std::pair<const gguf::TensorInfo*, float>>& terms, std::string name) {
  if (terms.empty()) throw Error("internal: mix of no tensors");
  const gguf::TensorInfo& first = *terms[0].first;
  for (const auto& term : terms) {
    if (term.first->shape != first.shape) {
      throw Error(fmt::format("cannot interpolate '{}' {} with '{}' {}: shapes differ", first.name,
                              first.shape_string(), term.first->name, term.first->shape_string()));
    }
  }
  const GgmlType type = type_traits(first.type).can_quantize ? first.type : GgmlType::F32;
  const int64_t n = first.shape[0];
  const int64_t rows = n == 0 ? 0 : first.n_elements() / n;
  OwnedTensor out;
  const size_t out_row = row_bytes(type, n);
  out.bytes.resize(out_row * static_cast<size_t>(rows));
  std::vector<float> sum(static_cast<size_t>(n)), row(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    std::fill(sum.begin(), sum.end(), 0.0f);
    for (const auto& [tensor, w] : terms) {
      dequantize_row(tensor->type, tensor->data + static_cast<size_t>(r) * row_bytes(tensor->type, n), row.data(), n);
      for (int64_t k = 0; k < n; ++k) sum[static_cast<size_t>(k)] += w * row[static_cast<size_t>(k)];
    }
    quantize_row(type, sum.data(), out.bytes.data() + static_cast<size_t>(r) * out_row, n);
  }
  out.info.name = std::move(name);
  out.info.type = type;
  out.info.shape = first.shape;
  out.info.n_bytes = out.bytes.size();
  out.info.data = out.bytes.data();
  return out;
}

}  // namespace xelm
