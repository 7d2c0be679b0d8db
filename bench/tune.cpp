// tune.cpp — the offload sweep, recommendations per goal and the SVG chart behind `xelm tune`.
#include "bench/tune.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "runtime/error.h"
#include "runtime/offload_plan.h"

namespace xelm::bench {

std::vector<int> offload_steps(int64_t n_layer) {
  const int n = static_cast<int>(n_layer);
  std::set<int> steps = {0, n / 4, n / 2, 3 * n / 4, n, n + 1};
  return {steps.begin(), steps.end()};
}

std::vector<BenchConfig> tune_plan(const TuneParams& params, int64_t n_layer) {
  std::vector<BenchConfig> plan;
  for (int n_gpu_layers : offload_steps(n_layer)) {
    for (int threads : params.n_threads) {
      for (int n_batch : params.n_batch) {
        plan.push_back({.backend = n_gpu_layers == 0 ? "cpu" : "opencl", .n_gpu_layers = n_gpu_layers,
                        .n_threads = threads, .n_batch = n_batch, .kv_type = params.kv_type});
      }
    }
  }
  return plan;
}

std::vector<TuneMeasurement> run_tune(const TuneParams& params, const cli::Environment& environment,
                                      const std::vector<BenchConfig>& plan, const std::atomic<bool>& stop,
                                      const std::function<void(size_t, const BenchConfig&)>& progress) {
  const std::vector<BenchTest> tests = {{params.n_prompt, 0}, {0, params.n_gen}};
  const RunSettings settings{.repetitions = params.repetitions, .device = params.device, .environment = environment};
  std::vector<TuneMeasurement> measurements;
  bool gpu_usable = true;
  for (size_t i = 0; i < plan.size() && !stop.load(); ++i) {
    const BenchConfig& config = plan[i];
    if (config.backend == "opencl" && !gpu_usable) continue;
    progress(i, config);
    std::vector<BenchResult> rows;
    try {
      rows = run_config(params.model_path, config, tests, settings, &stop);
    } catch (const Error& error) {
      if (config.backend != "opencl") throw;
      spdlog::warn("tune: skipping the OpenCL configs: {}", error.what());
      gpu_usable = false;
      continue;
    }
    if (rows.empty()) break;
    TuneMeasurement m;
    m.config = config;
    for (const BenchResult& r : rows) {
      (r.n_prompt > 0 ? m.pp_ts : m.tg_ts) = r.avg_ts;
      (r.n_prompt > 0 ? m.pp_sd : m.tg_sd) = r.stddev_ts;
      m.memory_estimate_bytes = r.memory_cpu_bytes + r.memory_gpu_bytes;
      m.config.n_threads = r.n_threads;  // 0 ("physical cores") resolved to the count used
      m.gpu_name = r.gpu_info;
      m.gpu_driver = r.gpu_driver;
    }
    m.vm_hwm_bytes = peak_resident_bytes();
    measurements.push_back(std::move(m));
  }
  return measurements;
}

std::string config_flags(const BenchConfig& config) {
  return fmt::format("-ngl {} -t {} -b {}", config.n_gpu_layers, config.n_threads, config.n_batch);
}

namespace {

const TuneMeasurement* best_by(const std::vector<const TuneMeasurement*>& candidates, double TuneMeasurement::*field) {
  const TuneMeasurement* best = nullptr;
  for (const TuneMeasurement* m : candidates) {
    if (best == nullptr || m->*field > best->*field) best = m;
  }
  return best;
}

std::vector<const TuneMeasurement*> with_positive(const std::vector<TuneMeasurement>& all, double TuneMeasurement::*field) {
  std::vector<const TuneMeasurement*> out;
  for (const TuneMeasurement& m : all) if (m.*field > 0) out.push_back(&m);
  return out;
}

// The goal's choice among `candidates`, with its one-line reason.
Recommendation fastest(const std::string& goal, const std::vector<const TuneMeasurement*>& candidates,
                       double TuneMeasurement::*field, const char* test) {
  const TuneMeasurement* best = best_by(candidates, field);
  std::string reason = fmt::format("{}: {:.2f} tok/s {}, the fastest of {} measured configs", config_flags(best->config),
                                   best->*field, test, candidates.size());
  return {goal, *best, reason};
}

}  // namespace

std::vector<Recommendation> recommend(const std::vector<TuneMeasurement>& measurements) {
  std::vector<Recommendation> out;
  const auto with_tg = with_positive(measurements, &TuneMeasurement::tg_ts);
  const auto with_pp = with_positive(measurements, &TuneMeasurement::pp_ts);
  if (!with_tg.empty()) out.push_back(fastest("tg", with_tg, &TuneMeasurement::tg_ts, "generation"));
  if (!with_pp.empty()) out.push_back(fastest("pp", with_pp, &TuneMeasurement::pp_ts, "prompt processing"));

  std::vector<const TuneMeasurement*> both;
  for (const TuneMeasurement* m : with_tg) if (m->pp_ts > 0) both.push_back(m);
  if (!both.empty()) {
    const double best_pp = best_by(both, &TuneMeasurement::pp_ts)->pp_ts;
    const double best_tg = best_by(both, &TuneMeasurement::tg_ts)->tg_ts;
    auto score = [&](const TuneMeasurement* m) { return std::sqrt(m->pp_ts / best_pp * (m->tg_ts / best_tg)); };
    const TuneMeasurement* best = *std::max_element(both.begin(), both.end(), [&](auto* a, auto* b) { return score(a) < score(b); });
    out.push_back({"balanced", *best,
                   fmt::format("{}: {:.0f}% of the best pp and {:.0f}% of the best tg (geometric mean {:.0f}%, the highest)",
                               config_flags(best->config), 100 * best->pp_ts / best_pp, 100 * best->tg_ts / best_tg,
                               100 * score(best))});
  }

  if (!with_tg.empty()) {
    // The least memory among configs that keep at least 80% of the best generation speed.
    const double best_tg = best_by(with_tg, &TuneMeasurement::tg_ts)->tg_ts;
    const TuneMeasurement* choice = nullptr;
    for (const TuneMeasurement* m : with_tg) {
      if (m->tg_ts < 0.8 * best_tg) continue;
      if (choice == nullptr || m->memory_estimate_bytes < choice->memory_estimate_bytes ||
          (m->memory_estimate_bytes == choice->memory_estimate_bytes && m->tg_ts > choice->tg_ts)) {
        choice = m;
      }
    }
    out.push_back({"memory", *choice,
                   fmt::format("{}: {} estimated (CPU + GPU), the least among configs within 80% of the best tg "
                               "({:.2f} of {:.2f} tok/s)",
                               config_flags(choice->config), format_bytes(choice->memory_estimate_bytes),
                               choice->tg_ts, best_tg)});
  }
  return out;
}

namespace {

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

// A round tick step giving about `target` ticks over [0, max].
double tick_step(double max, int target) {
  const double raw = max / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double factor : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= factor * magnitude) return factor * magnitude;
  }
  return 10.0 * magnitude;
}

}  // namespace

std::string render_tune_svg(const std::vector<TuneMeasurement>& measurements, const std::string& title,
                            int64_t n_layer, int n_prompt, int n_gen) {
  constexpr double kWidth = 800, kHeight = 480, kLeft = 70, kRight = 220, kTop = 40, kBottom = 60;
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  const double x_max = static_cast<double>(n_layer + 1);

  // Series: one per (test, threads, batch), points sorted by offload count.
  struct Series {
    std::string label;
    bool dashed;
    std::vector<std::pair<double, double>> points;
  };
  std::map<std::string, Series> series;
  double y_min = 0, y_max = 0;
  for (const TuneMeasurement& m : measurements) {
    const std::string suffix = fmt::format(" t={} b={}", m.config.n_threads, m.config.n_batch);
    if (m.pp_ts > 0) {
      Series& s = series["pp" + suffix];
      s.label = fmt::format("pp{}{}", n_prompt, suffix);
      s.dashed = false;
      s.points.emplace_back(m.config.n_gpu_layers, m.pp_ts);
    }
    if (m.tg_ts > 0) {
      Series& s = series["tg" + suffix];
      s.label = fmt::format("tg{}{}", n_gen, suffix);
      s.dashed = true;
      s.points.emplace_back(m.config.n_gpu_layers, m.tg_ts);
    }
    for (double ts : {m.pp_ts, m.tg_ts}) {
      if (ts <= 0) continue;
      y_min = y_min > 0 ? std::min(y_min, ts) : ts;
      y_max = std::max(y_max, ts);
    }
  }
  // Logarithmic y axis over whole decades: pp and tg differ by orders of magnitude.
  const double decade_low = std::floor(std::log10(y_min > 0 ? y_min : 1.0));
  const double decade_high = std::max(decade_low + 1, std::ceil(std::log10(y_max > 0 ? y_max : 10.0)));
  auto px = [&](double x) { return kLeft + plot_w * x / x_max; };
  auto py = [&](double y) { return kTop + plot_h * (1.0 - (std::log10(y) - decade_low) / (decade_high - decade_low)); };

  std::string svg = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg += fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
                     "font-family=\"sans-serif\" font-size=\"12\">\n", kWidth, kHeight);
  svg += fmt::format("<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"white\"/>\n", kWidth, kHeight);
  svg += fmt::format("<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n", kLeft + plot_w / 2,
                     xml_escape(title));
  // Axes, ticks, grid and labels.
  svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/>\n", kLeft, kTop + plot_h, kLeft + plot_w);
  svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"black\"/>\n", kLeft, kTop, kTop + plot_h);
  const double x_step = std::max(1.0, tick_step(x_max, 8));
  for (double x = 0; x <= x_max + 1e-9; x += x_step) {
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"black\"/>\n", px(x), kTop + plot_h, kTop + plot_h + 5);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", px(x), kTop + plot_h + 18, x);
  }
  for (double decade = decade_low; decade <= decade_high; ++decade) {
    for (double factor : {1.0, 2.0, 5.0}) {
      const double y = factor * std::pow(10.0, decade);
      if (std::log10(y) > decade_high + 1e-9) break;
      svg += fmt::format("<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#dddddd\"/>\n", kLeft, py(y), kLeft + plot_w);
      svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:g}</text>\n", kLeft - 6, py(y) + 4, y);
    }
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">layers on the GPU (-ngl; 0 = CPU only, {} = everything incl. embedding)</text>\n",
                     kLeft + plot_w / 2, kHeight - 18, n_layer + 1);
  svg += fmt::format("<text x=\"18\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {0})\">tokens per second (log scale)</text>\n",
                     kTop + plot_h / 2);
  // Series and legend.
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  size_t index = 0;
  for (auto& [key, s] : series) {
    std::sort(s.points.begin(), s.points.end());
    const char* color = colors[index % std::size(colors)];
    std::string points;
    for (const auto& [x, y] : s.points) points += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>\n", color,
                       s.dashed ? " stroke-dasharray=\"6 4\"" : "", points);
    for (const auto& [x, y] : s.points) {
      svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", px(x), py(y), color);
    }
    const double ly = kTop + 10 + 20 * static_cast<double>(index);
    svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"2\"{4}/>\n",
                       kLeft + plot_w + 15, ly, kLeft + plot_w + 40, color, s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    svg += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", kLeft + plot_w + 46, ly + 4, xml_escape(s.label));
    ++index;
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace xelm::bench
