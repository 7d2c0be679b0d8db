// test_bench_tune.cpp — `xelm bench` and `xelm tune` end to end on a tiny synthetic model: bench's
// CSV and JSON are well-formed with llama-bench column names (cpu and opencl rows, -ngl 0,1, a
// combined -pg test, --profile), tune writes its store record and a well-formed SVG with both
// series, --dry-run only lists the plan, Ctrl-C keeps partial results, and tuned_gpu_layers finds
// the saved recommendation by model, device and driver. OpenCL parts skip without an OpenCL device.
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bench/sha256.h"
#include "bench/tune_store.h"
#include "host/opencl_backend.h"
#include "runtime/error.h"
#include "runtime/synthetic_model.h"
#include "tests/backend_test_util.h"
#include "tests/test_util.h"
#include "tools/xelm/environment.h"

namespace xelm {
namespace {

using test::run_xelm;

using ::testing::HasSubstr;
using ::testing::Not;

// The OpenCL device the CLI would pick, or null when there is none.
std::unique_ptr<opencl::OpenClBackend> opencl_device() {
  try {
    return opencl::make_opencl_backend(cli::read_environment().opencl);
  } catch (const Error&) {
    return nullptr;
  }
}

// Fields of one CSV line (double-quoted fields may hold commas).
std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (char ch : line) {
    if (ch == '"') {
      quoted = !quoted;
    } else if (ch == ',' && !quoted) {
      fields.emplace_back();
    } else {
      fields.back() += ch;
    }
  }
  return fields;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class BenchTune : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticModelSpec spec;
    spec.n_layer = 4;
    spec.n_embd = 64;
    spec.n_head = 4;
    spec.n_head_kv = 2;
    spec.head_dim = 16;
    spec.n_ff = 128;
    spec.n_vocab = 256;
    spec.n_ctx = 1024;
    spec.weight_type = GgmlType::F16;
    model_ = dir_.file("tiny.gguf");
    write_synthetic_model(spec, model_);
    gpu_ = opencl_device();
    backends_ = gpu_ ? "cpu,opencl" : "cpu";
  }

  test::ScratchDir dir_;
  std::string model_;
  std::unique_ptr<opencl::OpenClBackend> gpu_;
  std::string backends_;
};

TEST_F(BenchTune, BenchCsvHasOneRowPerCombinationWithConsistentColumns) {
  const test::XelmRun r = run_xelm("bench -m " + model_ + " --backend " + backends_ + " -ngl 0,1 -p 16 -n 4 -r 1 -o csv --bandwidth 10", dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = lines_of(r.out);
  ASSERT_FALSE(lines.empty());
  const std::vector<std::string> header = split_csv(lines[0]);
  for (const char* column : {"build_commit", "gpu_info", "backends", "model_filename", "model_type", "model_size",
                             "model_n_params", "n_batch", "n_threads", "type_k", "type_v", "n_gpu_layers", "n_prompt",
                             "n_gen", "avg_ts", "stddev_ts", "gbps", "bw_pct", "launches_per_token", "syncs_per_token",
                             "launches_per_layer_token", "h2d_bytes_per_token", "d2h_bytes_per_token",
                             "weight_bytes_copied", "weight_bytes_zero_copy", "unified_memory", "file_size",
                             "peak_rss_bytes", "peak_rss_file_ratio", "rss_model_bytes", "rss_library_bytes",
                             "rss_other_bytes"}) {
    EXPECT_THAT(header, ::testing::Contains(std::string(column)));
  }
  // cpu: pp16 and tg4 once (-ngl is for opencl rows); opencl: both tests for -ngl 0 and 1.
  const size_t expected_rows = gpu_ ? 6 : 2;
  ASSERT_EQ(lines.size(), 1 + expected_rows) << r.out;
  const auto column = [&](const std::string& name) {
    return static_cast<size_t>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::vector<std::string> fields = split_csv(lines[i]);
    ASSERT_EQ(fields.size(), header.size()) << lines[i];
    EXPECT_GT(std::stod(fields[column("avg_ts")]), 0.0) << lines[i];
    const bool opencl_offload = fields[column("backends")] == "opencl" && fields[column("n_gpu_layers")] == "1";
    EXPECT_EQ(fields[column("launches_per_token")].empty(), !opencl_offload) << lines[i];
    EXPECT_EQ(std::stoull(fields[column("file_size")]), std::filesystem::file_size(model_)) << lines[i];
    EXPECT_GT(std::stoull(fields[column("peak_rss_bytes")]), 0u) << lines[i];
    // The breakdown finds the model's mapping (every weight was read, so most of the file is
    // resident, never more than the file) and the shared libraries.
    const uint64_t model_resident = std::stoull(fields[column("rss_model_bytes")]);
    EXPECT_GT(model_resident, std::filesystem::file_size(model_) / 2) << lines[i];
    EXPECT_LE(model_resident, std::filesystem::file_size(model_) + 4096) << lines[i];
    EXPECT_GT(std::stoull(fields[column("rss_library_bytes")]), 0u) << lines[i];
    if (opencl_offload && fields[column("n_gen")] == "4" && fields[column("n_prompt")] == "0") {
      // A decoded token: six fused launches in the GPU layer, one blocking read (the logits), the
      // token id up and the logits down.
      EXPECT_EQ(std::stod(fields[column("launches_per_layer_token")]), 6.0) << lines[i];
      EXPECT_EQ(std::stod(fields[column("syncs_per_token")]), 1.0) << lines[i];
      EXPECT_EQ(std::stod(fields[column("d2h_bytes_per_token")]), 256.0 * sizeof(float)) << lines[i];
      EXPECT_GE(std::stod(fields[column("h2d_bytes_per_token")]), 4.0) << lines[i];
      if (fields[column("unified_memory")] == "1") {
        EXPECT_EQ(fields[column("weight_bytes_copied")], "0") << lines[i];
      }
    }
  }
}

TEST_F(BenchTune, BenchJsonCarriesModelDeviceBuildAndProfile) {
  const test::XelmRun r = run_xelm("bench -m " + model_ + " --backend " + backends_ +
                                " -ngl 1 -p 16 -n 4 -pg 8,2 --kv-type f16,q8_0 -r 1 -o json --profile --bandwidth 10",
                            dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json rows = nlohmann::json::parse(r.out);
  ASSERT_TRUE(rows.is_array());
  ASSERT_EQ(rows.size(), (gpu_ ? 2u : 1u) * 2 /*kv types*/ * 3 /*pp16, tg4, pp8+tg2*/);
  bool saw_pg = false, saw_q8 = false, saw_gpu = false;
  for (const nlohmann::json& row : rows) {
    EXPECT_EQ(row.at("model_filename"), "tiny.gguf");
    EXPECT_EQ(row.at("model_name"), "xelm-synthetic");
    EXPECT_EQ(row.at("model_filetype"), "F16");
    EXPECT_FALSE(row.at("build_commit").get<std::string>().empty());
    EXPECT_GT(row.at("model_size").get<uint64_t>(), 0u);
    EXPECT_GT(row.at("model_n_params").get<uint64_t>(), 0u);
    EXPECT_GT(row.at("avg_ts").get<double>(), 0.0);
    EXPECT_EQ(row.at("samples_ns").size(), 1u);
    saw_pg |= row.at("n_prompt") == 8 && row.at("n_gen") == 2;
    saw_q8 |= row.at("type_k") == "q8_0" && row.at("type_v") == "q8_0";
    ASSERT_TRUE(row.contains("profile")) << row.dump();
    bool has_product = false;  // the fused ops are profiled whole: norm_matmul, matmul_add, norm_swiglu
    for (const nlohmann::json& op : row.at("profile")) {
      has_product |= (op.at("op") == "matmul" || op.at("op") == "norm_matmul") && op.at("calls_per_run").get<double>() > 0;
    }
    EXPECT_TRUE(has_product) << row.at("profile").dump();
    EXPECT_GT(row.at("file_size").get<uint64_t>(), 0u);
    EXPECT_GT(row.at("peak_rss_bytes").get<uint64_t>(), 0u);
    if (row.at("backends") == "opencl") {
      saw_gpu = true;
      EXPECT_EQ(row.at("gpu_info"), gpu_->device_info().name);
      EXPECT_EQ(row.at("gpu_driver"), gpu_->device_info().driver_version);
      EXPECT_EQ(row.at("n_gpu_layers"), 1);
      EXPECT_GT(row.at("launches_per_token").get<double>(), 0.0);
      EXPECT_GT(row.at("syncs_per_token").get<double>(), 0.0);
      EXPECT_EQ(row.at("gpu_layers"), 1);
      EXPECT_GT(row.at("launches_per_layer_token").get<double>(), 0.0);
      EXPECT_GT(row.at("d2h_bytes_per_token").get<double>(), 0.0);
      EXPECT_TRUE(row.contains("weight_bytes_copied"));
      EXPECT_THAT(row.at("profile_method").get<std::string>(), HasSubstr("event profiling"));
      // The GPU's rows are its kernels with their device time; profiling adds no synchronization
      // (a decoded token still has one blocking read).
      bool has_kernel = false;
      for (const nlohmann::json& op : row.at("profile")) {
        if (op.at("backend") == gpu_->name() && op.at("op").get<std::string>().rfind("kernel_", 0) == 0) {
          has_kernel = true;
          EXPECT_GT(op.at("calls_per_run").get<double>(), 0.0) << op.dump();
          EXPECT_GE(op.at("ms_per_run").get<double>(), 0.0) << op.dump();
        }
      }
      EXPECT_TRUE(has_kernel) << row.at("profile").dump();
      if (row.at("n_prompt") == 0) {
        EXPECT_EQ(row.at("syncs_per_token").get<double>(), 1.0) << row.dump();
      }
    } else {
      EXPECT_FALSE(row.contains("launches_per_token"));
    }
  }
  EXPECT_TRUE(saw_pg);
  EXPECT_TRUE(saw_q8);
  EXPECT_EQ(saw_gpu, gpu_ != nullptr);
}

TEST_F(BenchTune, BenchRejectsOddPgList) {
  const test::XelmRun r = run_xelm("bench -m " + model_ + " -pg 8 -r 1 --bandwidth 10", dir_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("-pg"));
}

TEST_F(BenchTune, DryRunListsThePlanAndRunsNothing) {
  const std::string config_home = dir_.file("config");
  const test::XelmRun r = run_xelm("tune -m " + model_ + " --dry-run -t 1,2", dir_, "", "XDG_CONFIG_HOME=" + config_home);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // -ngl 0, 1, 2, 3, 4, 5 (everything) × two thread counts.
  EXPECT_THAT(r.out, HasSubstr("12 configs"));
  EXPECT_THAT(r.out, HasSubstr("1. cpu -ngl 0 -t 1 -b 512"));
  EXPECT_THAT(r.out, HasSubstr("12. opencl -ngl 5 -t 2 -b 512"));
  EXPECT_FALSE(std::filesystem::exists(config_home));
  EXPECT_FALSE(std::filesystem::exists(dir_.file("xelm-tune-tiny.svg")));
}

TEST_F(BenchTune, TuneSavesTheRecommendationAndAWellFormedPlot) {
  const std::string config_home = dir_.file("config"), plot = dir_.file("plot.svg");
  const test::XelmRun r = run_xelm("tune -m " + model_ + " -p 8 -n 2 -r 1 --goal tg --plot " + plot, dir_, "", "XDG_CONFIG_HOME=" + config_home);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("tune [1/6]"));  // progress on stderr
  EXPECT_THAT(r.out, HasSubstr("=> tg"));
  for (const char* goal : {"pp", "balanced", "memory"}) EXPECT_THAT(r.out, HasSubstr(std::string(goal) + " ")) << goal;

  const std::filesystem::path store = std::filesystem::path(config_home) / "xelm" / "tune";
  std::vector<std::filesystem::path> records;
  for (const auto& entry : std::filesystem::directory_iterator(store)) records.push_back(entry.path());
  ASSERT_EQ(records.size(), 1u);
  EXPECT_THAT(r.out, HasSubstr(records[0].string()));
  const nlohmann::json record = nlohmann::json::parse(read_text(records[0].string()));
  EXPECT_EQ(record.at("goal"), "tg");
  EXPECT_EQ(record.at("interrupted"), false);
  EXPECT_EQ(record.at("measurements").size(), gpu_ ? 6u : 1u);
  EXPECT_EQ(record.at("model_hash"), bench::model_file_hash(model_));
  const int recommended = record.at("recommended").at("n_gpu_layers").get<int>();
  for (const char* goal : {"tg", "pp", "balanced", "memory"}) EXPECT_TRUE(record.at("recommendations").contains(goal)) << goal;

  // The store lookup load_engine can consult finds it under the same key only.
  const std::filesystem::path store_dir = cli::parse_environment({{"XDG_CONFIG_HOME", config_home}}).tune_store_dir;
  EXPECT_EQ(store_dir, store);
  const std::string device = gpu_ ? gpu_->device_info().name : "cpu-only";
  const std::string driver = gpu_ ? gpu_->device_info().driver_version : "none";
  EXPECT_EQ(record.at("device"), device);
  EXPECT_EQ(bench::tuned_gpu_layers(store_dir, model_, device, driver), std::optional<int>(recommended));
  EXPECT_EQ(bench::tuned_gpu_layers(store_dir, model_, device, driver + "-other"), std::nullopt);
  const std::string other_model = dir_.file("other.gguf");
  SyntheticModelSpec other;
  other.seed = 7;
  write_synthetic_model(other, other_model);
  EXPECT_EQ(bench::tuned_gpu_layers(store_dir, other_model, device, driver), std::nullopt);

  const std::string svg = read_text(plot);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_THAT(svg, HasSubstr("<svg"));
  EXPECT_THAT(svg, ::testing::ContainsRegex(">pp8 t=[0-9]+ b=512</text>"));
  EXPECT_THAT(svg, ::testing::ContainsRegex(">tg2 t=[0-9]+ b=512</text>"));
  if (std::system("python3 -c 'import xml.etree.ElementTree' >/dev/null 2>&1") == 0) {
    EXPECT_EQ(std::system(("python3 -c 'import sys, xml.etree.ElementTree as E; "
                           "r = E.parse(sys.argv[1]).getroot(); sys.exit(r.tag != \"{http://www.w3.org/2000/svg}svg\")' " + plot)
                              .c_str()),
              0);
  }
}

TEST_F(BenchTune, CtrlCKeepsWhatWasMeasured) {
  // pp64 at batch 1, repeated 1000 times, would run for a long while; SIGINT comes once the pp test is being
  // timed, so the sweep stops inside the first config whatever the machine's speed.
  const std::string config_home = dir_.file("config"), plot = dir_.file("plot.svg");
  const test::XelmRun r = test::run_xelm_interrupted(
      {"tune", "-m", model_, "-p", "64", "-n", "2", "-b", "1", "-r", "1000", "--goal", "pp", "--plot", plot}, dir_,
      "timing pp64", {"XDG_CONFIG_HOME=" + config_home});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("interrupted"));
  EXPECT_THAT(r.out, HasSubstr("=> pp"));
  EXPECT_THAT(r.out, Not(HasSubstr("=> tg")));
  const std::filesystem::path store = std::filesystem::path(config_home) / "xelm" / "tune";
  ASSERT_TRUE(std::filesystem::exists(store));
  const nlohmann::json record = nlohmann::json::parse(read_text(std::filesystem::directory_iterator(store)->path().string()));
  EXPECT_EQ(record.at("interrupted"), true);
  ASSERT_EQ(record.at("measurements").size(), 1u);
  EXPECT_GT(record.at("measurements")[0].at("pp_ts").get<double>(), 0.0);
  EXPECT_EQ(record.at("measurements")[0].at("tg_ts").get<double>(), 0.0);
}

TEST(TuneStore, Sha256MatchesTheFipsExamples) {
  bench::Sha256 abc;
  abc.update(std::string("abc"));
  EXPECT_EQ(abc.finish_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  bench::Sha256 two_blocks;
  two_blocks.update(std::string("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"));
  EXPECT_EQ(two_blocks.finish_hex(), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(TuneStore, NoRecordMeansNoTunedLayers) {
  test::ScratchDir dir;
  const std::string model = dir.file("m.gguf");
  write_synthetic_model(SyntheticModelSpec{}, model);
  const std::filesystem::path store_dir =
      cli::parse_environment({{"XDG_CONFIG_HOME", dir.file("empty-config")}}).tune_store_dir;
  EXPECT_EQ(bench::tuned_gpu_layers(store_dir, model, "Some GPU", "1.0"), std::nullopt);
}

}  // namespace
}  // namespace xelm

namespace xelm {
namespace {

// run/chat/perplexity without -ngl take the -ngl that `xelm tune` saved for this model and device
// (and only for that device).
TEST_F(BenchTune, CommandsUseTheSavedRecommendationWhenNoNglIsGiven) {
  if (!gpu_) GTEST_SKIP() << "no OpenCL device";
  SyntheticModelSpec spec = test::with_real_tokenizer({});  // xelm run needs a tokenizer
  spec.n_layer = 4;
  const std::string model = dir_.file("with-tokenizer.gguf");
  write_synthetic_model(spec, model);
  const std::string config_home = dir_.file("config-for-run");
  bench::save_tuning(cli::parse_environment({{"XDG_CONFIG_HOME", config_home}}).tune_store_dir,
                     nlohmann::json{{"recommended", {{"n_gpu_layers", 2}}}}, model, gpu_->device_info().name,
                     gpu_->device_info().driver_version);
  test::XelmRun r = run_xelm("run -m " + model + " --tokens 1,2 -n 2 --ids", dir_, "", "XDG_CONFIG_HOME=" + config_home);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("-ngl 2 from `xelm tune`'s recommendation"));
  EXPECT_THAT(r.err, HasSubstr("offload plan: GPU: layers 2-3, output head"));
  // An explicit -ngl wins over the saved one.
  r = run_xelm("run -m " + model + " --tokens 1,2 -n 2 --ids -ngl 0", dir_, "", "XDG_CONFIG_HOME=" + config_home);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("offload plan")));
  // A recommendation saved for another device (or driver) is not applied.
  const std::string other_home = dir_.file("config-other-device");
  bench::save_tuning(cli::parse_environment({{"XDG_CONFIG_HOME", other_home}}).tune_store_dir,
                     nlohmann::json{{"recommended", {{"n_gpu_layers", 2}}}}, model, "Another GPU", "0.0");
  r = run_xelm("run -m " + model + " --tokens 1,2 -n 2 --ids", dir_, "", "XDG_CONFIG_HOME=" + other_home);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("the saved `xelm tune` result is for another device or driver"));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("GPU: layers")));
}

}  // namespace
}  // namespace xelm
