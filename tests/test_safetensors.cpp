#include "io/atomic_file.h"
#include "io/fs_tree.h"
#include "io/safetensors.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <unistd.h>

namespace fs = std::filesystem;
using dynarch::io::load_safetensors;
using dynarch::io::read_file;
using dynarch::io::save_safetensors;
using dynarch::io::SafetensorsError;
using dynarch::io::write_file_atomic;

namespace {

// Per-test scratch directory, removed afterwards.
class SafetensorsTest : public ::testing::Test {
 protected:
  fs::path dir;
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir = fs::temp_directory_path() /
          ("dynarch_st_" + std::to_string(::getpid()) + "_" + info->name());
    dynarch::io::remove_tree(dir.string());
    dynarch::io::make_dirs(dir.string());
  }
  void TearDown() override { dynarch::io::remove_tree(dir.string()); }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

// Plain (non-atomic, no fsync) write so the many corruption cases stay fast.
void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

std::string u64le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// u64 length + header (space-padded to a multiple of 8 when asked) + data.
std::string make_file(std::string header, const std::string& data, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  return u64le(header.size()) + header + data;
}

std::string floats_le(std::initializer_list<float> xs) {
  std::string s;
  for (float x : xs) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    for (int i = 0; i < 4; ++i) s += static_cast<char>((u >> (8 * i)) & 0xff);
  }
  return s;
}

// Loads `path`, requiring a SafetensorsError whose message names the file;
// returns the message for further checks.
std::string load_error(const std::string& path) {
  try {
    load_safetensors(path);
  } catch (const SafetensorsError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type for " << path << ": " << e.what();
    return {};
  }
  ADD_FAILURE() << "no exception loading " << path;
  return {};
}

// A function (not a macro) so `hay` is evaluated once.
void expect_contains(const std::string& hay, const std::string& needle, int line) {
  EXPECT_NE(hay.find(needle), std::string::npos) << "line " << line << ": '" << hay << "' lacks '" << needle << "'";
}
#define EXPECT_CONTAINS(hay, needle) expect_contains((hay), (needle), __LINE__)

std::string error_for(const std::string& path, const std::string& header, const std::string& data) {
  write_raw(path, make_file(header, data));
  return load_error(path);
}

bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ca = a.contiguous(), cb = b.contiguous();
  return ca.nbytes() == cb.nbytes() && (ca.nbytes() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0);
}

std::vector<std::pair<std::string, at::Tensor>> all_dtypes() {
  at::manual_seed(0);
  auto f32 = at::randn({3, 4});
  f32[0][0] = std::numeric_limits<float>::quiet_NaN();
  f32[0][1] = -std::numeric_limits<float>::infinity();
  return {
      {"f32", f32},
      {"f64", at::randn({2, 3}, at::kDouble)},
      {"bf16", at::randn({5}).to(at::kBFloat16)},
      {"f16", at::randn({2, 2}).to(at::kHalf)},
      {"i64", at::tensor({int64_t{1} << 40, int64_t{-7}, std::numeric_limits<int64_t>::min()})},
      {"i32", at::arange(-3, 3, at::kInt).reshape({2, 3})},
      {"i16", at::tensor({-30000, 30000}, at::kShort)},
      {"i8", at::tensor({-128, 127, 0}, at::kChar)},
      {"u8", at::arange(0, 256, at::kLong).to(at::kByte)},
      {"bool", at::rand({7}) > 0.5},
      {"scalar_f32", at::scalar_tensor(3.5)},
      {"scalar_bf16", at::scalar_tensor(-1.25, at::kBFloat16)},
      {"scalar_i64", at::scalar_tensor(42, at::kLong)},
      {"scalar_bool", at::scalar_tensor(true, at::kBool)},
      {"empty_f32", at::empty({0})},
      {"empty_2d_bf16", at::empty({3, 0}, at::kBFloat16)},
      {"empty_i64", at::empty({0, 5}, at::kLong)},
  };
}

// A valid reference file used by the truncation and fuzz tests.
std::string valid_bytes(const std::string& path) {
  save_safetensors(path, {{"w", at::arange(6, at::kFloat).reshape({2, 3})},
                          {"mask", at::tensor({1, 0, 1}, at::kLong).to(at::kBool)},
                          {"b", at::ones({2}, at::kBFloat16)}},
                   {{"step", "12"}});
  return read_file(path);
}

}  // namespace

// ---- round trips ----------------------------------------------------------

TEST_F(SafetensorsTest, RoundTripEveryDtypeScalarAndEmpty) {
  auto in = all_dtypes();
  save_safetensors(file("a.safetensors"), in);
  auto out = load_safetensors(file("a.safetensors"));
  ASSERT_EQ(out.order.size(), in.size());
  ASSERT_EQ(out.tensors.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const auto& [name, t] = in[i];
    EXPECT_EQ(out.order[i], name);
    const auto& got = out.get(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), t.sizes()) << name;
    EXPECT_EQ(got.device().type(), at::kCPU) << name;
    EXPECT_TRUE(bitwise_equal(got, t)) << name;  // bitwise, so NaN payloads count too
  }
  EXPECT_EQ(out.get("scalar_f32").dim(), 0);
  EXPECT_EQ(out.get("empty_2d_bf16").numel(), 0);
  EXPECT_TRUE(out.metadata.empty());
  EXPECT_EQ(out.path, file("a.safetensors"));
}

TEST_F(SafetensorsTest, NonContiguousViewsAndGradTensorsSaveOnlyTheirElements) {
  auto base = at::arange(24, at::kFloat).reshape({4, 6});
  auto transposed = base.t();               // non-contiguous
  auto slice = base.narrow(0, 1, 2);        // storage offset into a larger buffer
  auto strided = base.slice(1, 0, 6, 2);    // step 2
  auto grad = at::ones({3}).requires_grad_();
  save_safetensors(file("v.safetensors"), {{"t", transposed}, {"s", slice}, {"st", strided}, {"g", grad}});
  auto out = load_safetensors(file("v.safetensors"));
  EXPECT_TRUE(at::equal(out.get("t"), transposed.contiguous()));
  EXPECT_TRUE(at::equal(out.get("s"), slice.contiguous()));
  EXPECT_TRUE(at::equal(out.get("st"), strided.contiguous()));
  EXPECT_TRUE(at::equal(out.get("g"), at::ones({3})));
  EXPECT_FALSE(out.get("g").requires_grad());
  // Data buffer holds exactly the elements, not the views' backing storage.
  auto bytes = read_file(file("v.safetensors"));
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(bytes.size() - 8 - n, (24 + 12 + 12 + 3) * 4u);
}

TEST_F(SafetensorsTest, MetadataRoundTrip) {
  std::map<std::string, std::string> meta = {
      {"format", "pt"}, {"config", R"({"d_model": 256, "quote": "\""})"}, {"empty", ""}, {"unicode", "héllo ✓"}};
  save_safetensors(file("m.safetensors"), {{"x", at::zeros({1})}}, meta);
  auto out = load_safetensors(file("m.safetensors"));
  EXPECT_EQ(out.metadata, meta);
  // Metadata-only file with no tensors is valid too.
  save_safetensors(file("m2.safetensors"), {}, meta);
  auto out2 = load_safetensors(file("m2.safetensors"));
  EXPECT_EQ(out2.metadata, meta);
  EXPECT_TRUE(out2.order.empty());
  // Completely empty file (no tensors, no metadata) round-trips.
  save_safetensors(file("m3.safetensors"), {});
  EXPECT_TRUE(load_safetensors(file("m3.safetensors")).tensors.empty());
}

TEST_F(SafetensorsTest, KeyOrderPreserved) {
  std::vector<std::pair<std::string, at::Tensor>> in = {
      {"zeta", at::zeros({1})}, {"alpha", at::zeros({2})}, {"layers.10.w", at::zeros({1})},
      {"layers.2.w", at::zeros({1})}, {"Mid", at::zeros({1})}, {"\"quoted\" name", at::zeros({1})}};
  save_safetensors(file("o.safetensors"), in, {{"k", "v"}});
  auto out = load_safetensors(file("o.safetensors"));
  std::vector<std::string> expect;
  for (auto& p : in) expect.push_back(p.first);
  EXPECT_EQ(out.order, expect);
}

TEST_F(SafetensorsTest, LoadedTensorsOwnTheirMemory) {
  save_safetensors(file("own.safetensors"), {{"a", at::ones({4})}, {"b", at::full({4}, 2.0)}});
  auto out = load_safetensors(file("own.safetensors"));
  fs::remove(file("own.safetensors"));
  auto a = out.get("a");
  EXPECT_EQ(a.storage().nbytes(), a.nbytes());  // not a view into a shared file buffer
  a.add_(1);
  EXPECT_TRUE(at::equal(out.get("b"), at::full({4}, 2.0)));
  EXPECT_TRUE(at::equal(out.get("a"), at::full({4}, 2.0)));
}

TEST_F(SafetensorsTest, GetMissingTensorThrows) {
  save_safetensors(file("g.safetensors"), {{"a", at::ones({1})}});
  auto out = load_safetensors(file("g.safetensors"));
  try {
    out.get("nope");
    FAIL() << "expected SafetensorsError";
  } catch (const SafetensorsError& e) {
    EXPECT_EQ(std::string(e.what()), "missing tensor nope in " + file("g.safetensors"));
  }
}

// ---- on-disk layout ---------------------------------------------------------

TEST_F(SafetensorsTest, WriterLayoutMatchesSpec) {
  auto a = at::tensor({1.0f, -2.5f});
  auto b = at::tensor({int64_t{5}}).reshape({1, 1});
  auto c = at::tensor({1.5f}).to(at::kBFloat16);  // 2 bytes: following offsets are unaligned
  auto d = at::tensor({7}, at::kInt);
  save_safetensors(file("l.safetensors"), {{"a", a}, {"b", b}, {"c", c}, {"d", d}}, {{"format", "pt"}});
  auto bytes = read_file(file("l.safetensors"));
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_LE(8 + n, bytes.size());
  std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));  // padding is spaces only
  auto h = nlohmann::json::parse(header);
  EXPECT_EQ(h["__metadata__"], nlohmann::json({{"format", "pt"}}));
  EXPECT_EQ(h["a"], nlohmann::json::parse(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})"));
  EXPECT_EQ(h["b"], nlohmann::json::parse(R"({"dtype":"I64","shape":[1,1],"data_offsets":[8,16]})"));
  EXPECT_EQ(h["c"], nlohmann::json::parse(R"({"dtype":"BF16","shape":[1],"data_offsets":[16,18]})"));
  EXPECT_EQ(h["d"], nlohmann::json::parse(R"({"dtype":"I32","shape":[1],"data_offsets":[18,22]})"));
  std::string data = bytes.substr(8 + n);
  ASSERT_EQ(data.size(), 22u);
  EXPECT_EQ(data.substr(0, 8), floats_le({1.0f, -2.5f}));
  EXPECT_EQ(data.substr(8, 8), u64le(5));
  EXPECT_EQ(data.substr(16, 2), std::string("\xc0\x3f", 2));  // bf16(1.5) = 0x3fc0
  EXPECT_EQ(data.substr(18, 4), std::string("\x07\x00\x00\x00", 4));
}

// Bytes laid out exactly as Python's safetensors writes them (compact JSON,
// "__metadata__" first, header padded with spaces to a multiple of 8).
TEST_F(SafetensorsTest, KnownAnswerPythonLayout) {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  ASSERT_EQ(header.size(), 93u);  // padded with 3 spaces to N = 96 = 0x60
  std::string bytes = std::string("\x60\x00\x00\x00\x00\x00\x00\x00", 8) + header + "   " +
                      std::string("\x00\x00\x80\x3f"   // 1.0
                                  "\x00\x00\x20\xc0"   // -2.5
                                  "\x00\x00\x00\x3f"   // 0.5
                                  "\x00\x00\x40\x40",  // 3.0
                                  16);
  write_raw(file("py.safetensors"), bytes);
  auto out = load_safetensors(file("py.safetensors"));
  ASSERT_EQ(out.order, std::vector<std::string>{"weight"});
  const auto& w = out.get("weight");
  EXPECT_EQ(w.scalar_type(), at::kFloat);
  EXPECT_EQ(w.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(w[0][0].item<float>(), 1.0f);
  EXPECT_EQ(w[0][1].item<float>(), -2.5f);
  EXPECT_EQ(w[1][0].item<float>(), 0.5f);
  EXPECT_EQ(w[1][1].item<float>(), 3.0f);
  EXPECT_EQ(out.metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
}

// Header order need not match data order; unpadded headers with whitespace
// are valid.
TEST_F(SafetensorsTest, KnownAnswerHeaderOrderDiffersFromDataOrder) {
  const std::string header =
      "{\n  \"b\": {\"dtype\": \"BF16\", \"shape\": [2], \"data_offsets\": [8, 12]},\n"
      "  \"a\": {\"data_offsets\": [0, 8], \"shape\": [], \"dtype\": \"I64\", \"extra\": 1}\n}";
  std::string data = u64le(uint64_t{0x0102030405060708}) + std::string("\x80\x3f\x00\xc0", 4);
  write_raw(file("k.safetensors"), make_file(header, data, /*pad=*/false));
  auto out = load_safetensors(file("k.safetensors"));
  EXPECT_EQ(out.order, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(out.get("a").dim(), 0);
  EXPECT_EQ(out.get("a").item<int64_t>(), 0x0102030405060708);
  EXPECT_EQ(out.get("b")[0].item<float>(), 1.0f);   // bf16 0x3f80
  EXPECT_EQ(out.get("b")[1].item<float>(), -2.0f);  // bf16 0xc000
}

// ---- corrupt input ------------------------------------------------------------

TEST_F(SafetensorsTest, MissingEmptyAndDirectoryPaths) {
  EXPECT_CONTAINS(load_error(file("does_not_exist.safetensors")), "cannot open");
  write_raw(file("empty.safetensors"), "");
  EXPECT_CONTAINS(load_error(file("empty.safetensors")), "too short");
  fs::create_directories(dir / "d.safetensors");
  EXPECT_CONTAINS(load_error(file("d.safetensors")), "not a regular file");
}

TEST_F(SafetensorsTest, TruncatedAtEveryInterestingPoint) {
  const std::string good = valid_bytes(file("good.safetensors"));
  uint64_t n;
  std::memcpy(&n, good.data(), 8);
  ASSERT_GT(good.size(), 8 + n);
  std::vector<size_t> cuts = {1, 4, 7, 8, 9, 12, 8 + n / 2, 8 + n - 1, 8 + n, 8 + n + 1, good.size() - 3, good.size() - 1};
  for (size_t cut : cuts) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    write_raw(file("cut.safetensors"), good.substr(0, cut));
    load_error(file("cut.safetensors"));
  }
  // Every single cut point fails too (never loads a partial file).
  for (size_t cut = 0; cut < good.size(); ++cut) {
    write_raw(file("cut.safetensors"), good.substr(0, cut));
    EXPECT_THROW(load_safetensors(file("cut.safetensors")), SafetensorsError) << "cut " << cut;
  }
}

TEST_F(SafetensorsTest, HeaderLengthOutOfRange) {
  write_raw(file("h1.safetensors"), u64le(1000) + "{}      ");
  EXPECT_CONTAINS(load_error(file("h1.safetensors")), "exceeds the file size");
  write_raw(file("h2.safetensors"), u64le(std::numeric_limits<uint64_t>::max()) + "{}");
  EXPECT_CONTAINS(load_error(file("h2.safetensors")), "100 MB");
  write_raw(file("h3.safetensors"), u64le(200'000'000) + "{}");
  EXPECT_CONTAINS(load_error(file("h3.safetensors")), "100 MB");
  write_raw(file("h4.safetensors"), u64le(0));  // zero-length header is not JSON
  EXPECT_CONTAINS(load_error(file("h4.safetensors")), "not valid JSON");
}

TEST_F(SafetensorsTest, InvalidJsonAndNonObjectHeaders) {
  const std::string p = file("j.safetensors");
  EXPECT_CONTAINS(error_for(p, "{not json", ""), "not valid JSON");
  EXPECT_CONTAINS(error_for(p, R"({"a": {"dtype": "F32"})", ""), "not valid JSON");
  EXPECT_CONTAINS(error_for(p, "{} trailing", ""), "not valid JSON");
  EXPECT_CONTAINS(error_for(p, "{\"\xff\xfe\": 1}", ""), "not valid JSON");  // invalid UTF-8
  // nlohmann stops at a NUL; a raw NUL is never valid JSON, so it must not hide junk.
  EXPECT_CONTAINS(error_for(p, std::string("{}\0\0", 4), ""), "NUL");
  EXPECT_CONTAINS(error_for(p, std::string("{}\0junk", 6), ""), "NUL");
  for (const char* h : {"[1, 2]", "42", "\"str\"", "null", "true"})
    EXPECT_CONTAINS(error_for(p, h, ""), "not a JSON object");
  // Deep nesting must not blow the stack.
  std::string deep = std::string(200000, '[') + std::string(200000, ']');
  EXPECT_CONTAINS(error_for(p, deep, ""), "not a JSON object");
  std::string deep_entry = R"({"w": {"dtype": )" + deep + "}}";
  EXPECT_CONTAINS(error_for(p, deep_entry, ""), "'w'");
}

TEST_F(SafetensorsTest, BadEntryFields) {
  const std::string p = file("e.safetensors");
  const std::string d8(8, '\0');
  auto entry = [](const std::string& body) { return R"({"w": )" + body + "}"; };
  EXPECT_CONTAINS(error_for(p, entry("5"), d8), "tensor 'w': header entry is not an object");
  // dtype
  EXPECT_CONTAINS(error_for(p, entry(R"({"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]})"), d8),
                  "unsupported dtype 'F8_E4M3'");
  EXPECT_CONTAINS(error_for(p, entry(R"({"dtype":"Q4","shape":[2],"data_offsets":[0,8]})"), d8), "'w'");
  EXPECT_CONTAINS(error_for(p, entry(R"({"dtype":"f32","shape":[2],"data_offsets":[0,8]})"), d8), "unsupported dtype");
  EXPECT_CONTAINS(error_for(p, entry(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})"), d8), "'dtype'");
  EXPECT_CONTAINS(error_for(p, entry(R"({"shape":[2],"data_offsets":[0,8]})"), d8), "'dtype'");
  // shape
  for (const char* shape : {"[-1]", "[2.0]", "[\"2\"]", "[[2]]", "[null]", "[9223372036854775808]"})
    EXPECT_CONTAINS(error_for(p, entry(std::string(R"({"dtype":"F32","shape":)") + shape + R"(,"data_offsets":[0,8]})"), d8),
                    "'shape'");
  EXPECT_CONTAINS(error_for(p, entry(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})"), d8), "'shape'");
  EXPECT_CONTAINS(error_for(p, entry(R"({"dtype":"F32","data_offsets":[0,8]})"), d8), "'shape'");
  EXPECT_CONTAINS(error_for(p, entry(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]})"), d8),
                  "overflows");
  // Zero elements but dims whose product overflows: torch rejects the shape;
  // that must surface as SafetensorsError, not c10::Error.
  write_raw(p, make_file(entry(R"({"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],)"
                               R"("data_offsets":[0,0]})"),
                         ""));
  try {
    EXPECT_EQ(load_safetensors(p).get("w").numel(), 0);
  } catch (const SafetensorsError& e) {
    EXPECT_CONTAINS(e.what(), "tensor 'w'");
  }
  // data_offsets
  for (const char* off : {"[0]", "[0,8,16]", "[-8,0]", "[0,8.0]", "\"0,8\"", "{}", "[0,18446744073709551615]"})
    EXPECT_CONTAINS(error_for(p, entry(std::string(R"({"dtype":"F32","shape":[2],"data_offsets":)") + off + "}"), d8),
                    "'data_offsets'");
  EXPECT_CONTAINS(error_for(p, entry(R"({"dtype":"F32","shape":[2]})"), d8), "'data_offsets'");
  EXPECT_CONTAINS(error_for(p, entry(R"({"dtype":"F32","shape":[2],"data_offsets":[8,0]})"), d8), "begin > end");
}

TEST_F(SafetensorsTest, ShapeOffsetSizeMismatch) {
  const std::string p = file("s.safetensors");
  const std::string d16(16, '\0');
  auto msg = error_for(p, R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", d16);
  EXPECT_CONTAINS(msg, "tensor 'w'");
  EXPECT_CONTAINS(msg, "need 16");
  EXPECT_CONTAINS(error_for(p, R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,16]}})", d16), "need 8");
  EXPECT_CONTAINS(error_for(p, R"({"w":{"dtype":"F32","shape":[],"data_offsets":[0,0]}})", d16), "need 4");
  EXPECT_CONTAINS(error_for(p, R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[0,4]}})", d16), "need 0");
}

TEST_F(SafetensorsTest, OffsetsOutOfRange) {
  const std::string p = file("r.safetensors");
  auto msg = error_for(p, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0'));
  EXPECT_CONTAINS(msg, "tensor 'w'");
  EXPECT_CONTAINS(msg, "exceed the data buffer");
  EXPECT_CONTAINS(error_for(p, R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", std::string(8, '\0')),
                  "exceed the data buffer");
  EXPECT_CONTAINS(error_for(p,
                            R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[9223372036854775806,9223372036854775807]}})",
                            std::string(8, '\0')),
                  "exceed the data buffer");
  // Empty tensor at the very end of the buffer is in range.
  write_raw(p, make_file(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                         R"("w":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}})",
                         std::string(8, '\0')));
  EXPECT_EQ(load_safetensors(p).get("w").numel(), 0);
}

TEST_F(SafetensorsTest, OverlappingTensors) {
  const std::string p = file("ov.safetensors");
  const std::string d12(12, '\0');
  auto msg = error_for(p,
                       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                       d12);
  EXPECT_CONTAINS(msg, "overlaps");
  EXPECT_CONTAINS(msg, "'a'");
  EXPECT_CONTAINS(msg, "'b'");
  EXPECT_CONTAINS(error_for(p,
                            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})",
                            d12),
                  "overlaps");
  // Zero-length tensors sharing an offset with real data do not overlap.
  write_raw(p, make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                         std::string(8, '\0')));
  EXPECT_EQ(load_safetensors(p).tensors.size(), 2u);
}

TEST_F(SafetensorsTest, BadMetadataDuplicateKeysAndBoolBytes) {
  const std::string p = file("md.safetensors");
  EXPECT_CONTAINS(error_for(p, R"({"__metadata__":{"a":1}})", ""), "'__metadata__' value for 'a' is not a string");
  EXPECT_CONTAINS(error_for(p, R"({"__metadata__":{"a":null}})", ""), "not a string");
  EXPECT_CONTAINS(error_for(p, R"({"__metadata__":["a"]})", ""), "'__metadata__' is not an object");
  EXPECT_CONTAINS(error_for(p,
                            R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                            R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                            "ab"),
                  "duplicate header key 'w'");
  auto msg = error_for(p, R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})", std::string("\x01\x02\x00", 3));
  EXPECT_CONTAINS(msg, "tensor 'm'");
  EXPECT_CONTAINS(msg, "BOOL");
}

// Random single-byte corruption: must load or throw SafetensorsError, nothing else.
TEST_F(SafetensorsTest, ByteFlipFuzzNeverCrashes) {
  const std::string good = valid_bytes(file("good.safetensors"));
  const std::string p = file("fuzz.safetensors");
  const char repl[] = {'\0', '\xff', '"', '{', '}', '9', '-', ',', '[', ' '};
  int loaded = 0, rejected = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    for (char c : repl) {
      if (good[i] == c) continue;
      std::string bad = good;
      bad[i] = c;
      write_raw(p, bad);
      try {
        load_safetensors(p);
        ++loaded;
      } catch (const SafetensorsError& e) {
        ++rejected;
        ASSERT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
      } catch (const std::exception& e) {
        FAIL() << "byte " << i << " -> " << int(c) << ": non-Safetensors exception " << e.what();
      }
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(loaded, 0);  // flips in data/padding are legitimately loadable
}

// ---- save errors --------------------------------------------------------------

TEST_F(SafetensorsTest, SaveRejectsBadInput) {
  const std::string p = file("bad.safetensors");
  auto expect_save_error = [&](const std::vector<std::pair<std::string, at::Tensor>>& ts, const std::string& what) {
    try {
      save_safetensors(p, ts);
      ADD_FAILURE() << "expected SafetensorsError containing " << what;
    } catch (const SafetensorsError& e) {
      EXPECT_CONTAINS(e.what(), p);
      EXPECT_CONTAINS(e.what(), what);
    }
  };
  expect_save_error({{"a", at::ones({1})}, {"a", at::ones({1})}}, "duplicate tensor name");
  expect_save_error({{"__metadata__", at::ones({1})}}, "reserved");
  expect_save_error({{"u", at::Tensor()}}, "undefined");
  expect_save_error({{"c", at::ones({2}, at::kComplexFloat)}}, "unsupported dtype");
  expect_save_error({{"bad\xff", at::ones({1})}}, "cannot encode header");
  EXPECT_FALSE(fs::exists(p));
  try {
    save_safetensors(file("no_such_dir/x.safetensors"), {{"a", at::ones({1})}});
    ADD_FAILURE() << "expected SafetensorsError";
  } catch (const SafetensorsError& e) {
    EXPECT_CONTAINS(e.what(), file("no_such_dir/x.safetensors"));
  }
}

// ---- atomic file helper ---------------------------------------------------------

namespace {
std::vector<std::string> dir_entries(const fs::path& d) {
  return dynarch::io::list_dir(d.string());
}
}  // namespace

TEST_F(SafetensorsTest, AtomicWriteReplacesAndLeavesNoTemp) {
  const std::string p = file("f.bin");
  write_file_atomic(p, "first version, longer than the second");
  EXPECT_EQ(read_file(p), "first version, longer than the second");
  const std::string binary("a\0b\xff\n", 5);
  write_file_atomic(p, binary);
  EXPECT_EQ(read_file(p), binary);
  write_file_atomic(p, "");
  EXPECT_EQ(read_file(p), "");
  EXPECT_EQ(dir_entries(dir), std::vector<std::string>{"f.bin"});
  // A stale temp from an earlier crash of this pid is simply overwritten.
  write_raw(p + ".tmp." + std::to_string(::getpid()), "stale junk");
  write_file_atomic(p, "fresh");
  EXPECT_EQ(read_file(p), "fresh");
  EXPECT_EQ(dir_entries(dir), std::vector<std::string>{"f.bin"});
  save_safetensors(file("s.safetensors"), {{"a", at::ones({2})}});
  save_safetensors(file("s.safetensors"), {{"b", at::zeros({3})}});
  EXPECT_EQ(dir_entries(dir), (std::vector<std::string>{"f.bin", "s.safetensors"}));
  EXPECT_EQ(load_safetensors(file("s.safetensors")).order, std::vector<std::string>{"b"});
}

TEST_F(SafetensorsTest, AtomicWriteFailuresNamePathAndCleanUp) {
  const std::string missing_dir = file("nope/f.bin");
  try {
    write_file_atomic(missing_dir, "x");
    ADD_FAILURE() << "expected runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_CONTAINS(e.what(), missing_dir);
    EXPECT_CONTAINS(e.what(), "No such file or directory");
  }
  // rename() over a non-empty directory fails: the target must survive and
  // the temp file must be removed.
  fs::create_directories(dir / "target" / "child");
  try {
    write_file_atomic(file("target"), "x");
    ADD_FAILURE() << "expected runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_CONTAINS(e.what(), file("target"));
  }
  EXPECT_TRUE(fs::is_directory(dir / "target" / "child"));
  EXPECT_EQ(dir_entries(dir), std::vector<std::string>{"target"});
}

TEST_F(SafetensorsTest, ReadFileErrorsNamePath) {
  const std::string p = file("missing.bin");
  try {
    read_file(p);
    ADD_FAILURE() << "expected runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_CONTAINS(e.what(), p);
    EXPECT_CONTAINS(e.what(), "No such file or directory");
  }
  EXPECT_THROW(read_file(dir.string()), std::runtime_error);
}

// Issue #18 defect 4: the tensors' offsets tile the data buffer exactly, as in
// the reference implementation: no trailing bytes, no gaps (overlaps: above).
TEST_F(SafetensorsTest, OffsetsCoverTheDataBufferExactly) {
  const std::string p = file("cover.safetensors");
  const std::string a8 = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  write_raw(p, make_file("{" + a8 + "}", std::string(8, '\0')));
  EXPECT_EQ(load_safetensors(p).tensors.size(), 1u);
  auto msg = error_for(p, "{" + a8 + "}", std::string(9, '\0'));
  EXPECT_CONTAINS(msg, "1 trailing byte");
  EXPECT_CONTAINS(error_for(p, "{" + a8 + "}", std::string(16, '\0')), "8 trailing bytes");
  EXPECT_CONTAINS(error_for(p, R"({"__metadata__":{"k":"v"}})", std::string(8, '\0')), "8 trailing bytes");
  msg = error_for(p, "{" + a8 + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})", std::string(16, '\0'));
  EXPECT_CONTAINS(msg, "tensor 'b'");
  EXPECT_CONTAINS(msg, "gap");
  msg = error_for(p, R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0'));
  EXPECT_CONTAINS(msg, "gap");
  // A saved file always passes (zero-size tensors anywhere in range are fine).
  save_safetensors(p, {{"x", at::ones({3})}, {"e", at::ones({0})}, {"y", at::ones({2}, at::kLong)}});
  EXPECT_EQ(load_safetensors(p).tensors.size(), 3u);
}
