// vlatext_model_check: one language model from safetensors on one backend, for the device check
// (scripts/gpu-check/driver.py), which compares its outputs with transformers, with the CPU
// engine and across settings, and times it. Plain files in, plain files and one JSON line out.
//
//   vlatext_model_check <command> --manifest M [--device cpu|cuda] [--dtype f32|bf16] [--builtin-gemm] [options]
//     forward  --tokens F [--positions F] [--inject-rows F --inject F] --out F
//              all logits (n, V) of one sequence (int32 tokens (n), positions (S, n), inject (M, C) f32)
//     train    --batch B --seq T --steps S [--rank R] [--tokens F --targets F]   LoRA (all linear layers) steps (random tokens by default)
//     decode   --prompt N --chunks K [--mode plain|jump|speculative] [--max-draft D]
//              56-integer action chunks, greedy, for K consecutive prompts (the last token changes)
//
// The manifest (written by the driver from the safetensors headers and config.json):
//   config <arch> V C L NH KV hd F eps theta tie     arch: llama | qwen2 | qwen3
//   rope_sections s0 s1 ...                           (optional)
//   file <index> <path>
//   tensor <name> <file index> <F32|F16|BF16> <absolute byte offset> <elements>
//   grammar <eos id> then lines: token <id> <text as hex>   (the action grammar's tokens)
// Output: one JSON object on stdout's last line; errors: "error: ..." on stderr, exit 1.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <sys/resource.h>

#ifdef VLATEXT_WITH_CUDA
#include <cuda_runtime.h>
#endif

#include "../decode/automaton.h"
#include "../decode/generate.h"
#include "../decode/speculative.h"
#include "../io/safetensors.h"
#include "../model/decoder.h"

using namespace vlatext;

namespace {

struct Entry {
  int file;
  StDtype dtype;
  size_t offset;
  int64_t count;
};

struct Manifest {
  DecoderConfig cfg;
  std::vector<std::string> files;
  std::map<std::string, Entry> tensors;
  int32_t eos = -1;
  std::vector<int32_t> ids;
  std::vector<std::string> texts;
};

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "error: %s\n", m.c_str());
  std::exit(1);
}

std::string unhex(const std::string& h) {
  std::string s;
  for (size_t i = 0; i + 1 < h.size(); i += 2) s.push_back((char)std::stoi(h.substr(i, 2), nullptr, 16));
  return s;
}

Manifest read_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) die("cannot read the manifest " + path);
  Manifest m;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string kind;
    ls >> kind;
    if (kind == "config") {
      std::string arch;
      int tie = 0;
      DecoderConfig& c = m.cfg;
      ls >> arch >> c.V >> c.C >> c.L >> c.NH >> c.KV >> c.hd >> c.F >> c.eps >> c.theta >> tie;
      c.arch = arch == "qwen2" ? Arch::Qwen2 : arch == "qwen3" ? Arch::Qwen3 : Arch::Llama;
      c.tie = tie != 0;
    } else if (kind == "rope_sections") {
      int s;
      while (ls >> s) m.cfg.rope_sections.push_back(s);
    } else if (kind == "file") {
      int i;
      std::string p;
      ls >> i >> p;
      if (i != (int)m.files.size()) die("manifest: files must be numbered 0, 1, ...");
      m.files.push_back(p);
    } else if (kind == "tensor") {
      std::string name, dt;
      Entry e{};
      ls >> name >> e.file >> dt >> e.offset >> e.count;
      e.dtype = dt == "BF16" ? StDtype::BF16 : dt == "F16" ? StDtype::F16 : StDtype::F32;
      m.tensors[name] = e;
    } else if (kind == "grammar") {
      ls >> m.eos;
    } else if (kind == "token") {
      int32_t id;
      std::string hex;
      ls >> id >> hex;
      m.ids.push_back(id);
      m.texts.push_back(unhex(hex));
    }
  }
  return m;
}

template <typename T>
std::vector<T> read_raw(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) die("cannot read " + path);
  const size_t bytes = (size_t)in.tellg();
  std::vector<T> v(bytes / sizeof(T));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), (std::streamsize)(v.size() * sizeof(T)));
  return v;
}

struct Args {
  std::map<std::string, std::string> kv;
  bool has(const std::string& k) const { return kv.count(k) > 0; }
  std::string str(const std::string& k, const std::string& d = "") const { return has(k) ? kv.at(k) : d; }
  int num(const std::string& k, int d) const { return has(k) ? std::atoi(kv.at(k).c_str()) : d; }
};

double now_ms() { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Device memory in use (cuda) or the process's peak RSS (cpu), bytes.
double memory_bytes(Device d) {
#ifdef VLATEXT_WITH_CUDA
  if (d == Device::Cuda) {
    size_t free_b = 0, total = 0;
    cudaMemGetInfo(&free_b, &total);
    return (double)(total - free_b);
  }
#endif
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss * 1024.0;
}

std::unique_ptr<Decoder> load(const Manifest& m, const Args& a, double* load_ms) {
  BackendOptions bo;
  bo.device = a.str("--device", "cpu") == "cuda" ? Device::Cuda : Device::Cpu;
  bo.cuda_builtin_gemm = a.has("--builtin-gemm");
  DecoderConfig cfg = m.cfg;
  cfg.dtype = a.str("--dtype", "f32") == "bf16" ? DType::BF16 : DType::F32;
  std::unique_ptr<Decoder> d;
  std::string err;
  const double t0 = now_ms();
  if (Decoder::create(cfg, bo, &d, &err) != Status::Ok) die(err);
  std::vector<std::unique_ptr<MappedFile>> files;
  for (const auto& p : m.files) {
    files.push_back(std::make_unique<MappedFile>());
    if (files.back()->open(p, &err) != Status::Ok) die(err);
  }
  ParamStore& st = d->params();
  for (size_t i = 0; i < st.tensors().size(); i++) {
    const ParamTensor& t = st.tensors()[i];
    auto it = m.tensors.find(t.name);
    if (it == m.tensors.end()) die("the manifest has no tensor " + t.name);
    if (it->second.count != t.size) die(t.name + ": " + std::to_string(it->second.count) + " elements in the file, the model wants " + std::to_string(t.size));
    if (st.load((int)i, *files[(size_t)it->second.file], it->second.offset, it->second.dtype, &err) != Status::Ok) die(t.name + ": " + err);
  }
  if (d->backend().sync(&err) != Status::Ok) die(err);
  *load_ms = now_ms() - t0;
  return d;
}

void cmd_forward(Decoder& d, const Args& a, std::string* json) {
  auto tokens = read_raw<int32_t>(a.str("--tokens"));
  std::vector<int32_t> positions, rows;
  std::vector<float> inject;
  if (a.has("--positions")) positions = read_raw<int32_t>(a.str("--positions"));
  if (a.has("--inject-rows")) rows = read_raw<int32_t>(a.str("--inject-rows")), inject = read_raw<float>(a.str("--inject"));
  Batch b;
  b.B = 1, b.T = (int)tokens.size(), b.tokens = tokens.data();
  b.positions = positions.empty() ? nullptr : positions.data();
  b.M = (int)rows.size(), b.inject_rows = rows.data(), b.inject = inject.data();
  std::vector<float> logits(tokens.size() * (size_t)d.config().V);
  ForwardResult r;
  std::string err;
  const double t0 = now_ms();
  if (d.forward(b, &r, logits.data(), &err) != Status::Ok) die(err);
  const double ms = now_ms() - t0;
  std::ofstream out(a.str("--out"), std::ios::binary);
  out.write(reinterpret_cast<const char*>(logits.data()), (std::streamsize)(logits.size() * sizeof(float)));
  *json += ",\"forward_ms\":" + std::to_string(ms) + ",\"rows\":" + std::to_string(tokens.size());
}

void cmd_train(Decoder& d, const Args& a, std::string* json) {
  const int B = a.num("--batch", 4), T = a.num("--seq", 434), steps = a.num("--steps", 4);
  LoraConfig lc;
  lc.rank = a.num("--rank", 16), lc.alpha = 2.0f * lc.rank, lc.seed = 1;
  lc.targets.fill(true);
  std::string err;
  if (d.enable_lora(lc, &err) != Status::Ok) die(err);
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> tok(0, d.config().V - 1);
  std::vector<int32_t> tokens((size_t)B * T), targets((size_t)B * T);
  for (size_t i = 0; i < tokens.size(); i++) tokens[i] = tok(rng), targets[i] = (int)(i % T) < T / 2 ? -100 : tok(rng);  // loss on the answer half
  if (a.has("--tokens")) {  // the caller's batch (the driver gives HF the same one)
    tokens = read_raw<int32_t>(a.str("--tokens"));
    targets = read_raw<int32_t>(a.str("--targets"));
    if (tokens.size() != (size_t)B * T || targets.size() != tokens.size()) die("--tokens and --targets must hold batch x seq int32 values each");
  }
  Batch b;
  b.B = B, b.T = T, b.tokens = tokens.data(), b.targets = targets.data();
  const AdamWConfig opt{1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f};
  std::string losses, times;
  double timed = 0, peak = 0;
  for (int s = 0; s < steps; s++) {
    const double t0 = now_ms();
    ForwardResult r;
    if (d.forward_backward(b, -1.0f, &r, nullptr, &err) != Status::Ok) die(err);
    ParamStore* stores[1] = {&d.params()};
    optimizer_step(stores, 1, opt, 1.0f);
    if (d.backend().sync(&err) != Status::Ok) die(err);
    const double ms = now_ms() - t0;
    peak = std::max(peak, memory_bytes(d.backend().device()));
    if (s > 0) timed += ms;  // the first step warms up (allocations, cuBLASLt heuristics)
    losses += (s ? "," : "") + std::to_string(r.loss_sum / (double)r.kept);
    times += (s ? "," : "") + std::to_string(ms);
  }
  const double tps = steps > 1 ? (double)B * T * (steps - 1) / (timed / 1000.0) : 0;
  *json += ",\"batch\":" + std::to_string(B) + ",\"seq\":" + std::to_string(T) + ",\"tokens_per_s\":" + std::to_string(tps) + ",\"peak_bytes\":" + std::to_string(peak) + ",\"loss\":[" + losses + "],\"step_ms\":[" + times + "]";
}

// Chunks for slightly different prompts (consecutive observations: the prompt's last token
// changes), decoded greedily plain, with jump-forward, or speculatively with the previous chunk
// as the draft; every chunk's tokens are printed so the driver can compare the modes.
void cmd_decode(Decoder& d, const Manifest& m, const Args& a, std::string* json) {
  if (m.ids.empty()) die("the manifest has no grammar tokens");
  const int P = a.num("--prompt", 226), K = a.num("--chunks", 3);
  const std::string mode = a.str("--mode", "jump");
  if (mode != "plain" && mode != "jump" && mode != "speculative") die("--mode must be plain, jump or speculative");
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> tok(0, d.config().V - 1);
  std::vector<int32_t> prompt((size_t)P);
  for (auto& t : prompt) t = tok(rng);
  GrammarSpec gs;  // 8 timesteps x 7 dimensions, bins 0..1000, space-separated (VLA-0)
  std::string err, chunks, tokens_json;
  std::vector<int32_t> previous;
  for (int k = 0; k < K; k++) {
    prompt.back() = (int32_t)((prompt.back() + 1) % d.config().V);
    TokenAutomaton automaton(gs, m.ids, m.texts, m.eos);
    GenResult r;
    SpecStats ss;
    const double t0 = now_ms();
    if (mode == "speculative") {
      SpecOptions so;
      so.draft = previous;
      so.max_draft = a.num("--max-draft", 16);
      if (generate_speculative(d, prompt, automaton, so, &r, &ss, &err) != Status::Ok) die(err);
    } else {
      GenOptions go;
      go.jump_forward = mode == "jump";
      if (generate_constrained(d, prompt, automaton, go, &r, &err) != Status::Ok) die(err);
    }
    const double ms = now_ms() - t0;
    previous = r.tokens;
    chunks += std::string(k ? "," : "") + "{\"ms\":" + std::to_string(ms) + ",\"tokens\":" + std::to_string(r.tokens.size()) + ",\"model_calls\":" + std::to_string(r.model_calls) + ",\"forced\":" + std::to_string(r.forced) +
              ",\"drafted\":" + std::to_string(ss.drafted) + ",\"accepted\":" + std::to_string(ss.accepted) + ",\"finished\":" + (r.finished ? "true" : "false") + "}";
    tokens_json += std::string(k ? "," : "") + "[";
    for (size_t i = 0; i < r.tokens.size(); i++) tokens_json += (i ? "," : "") + std::to_string(r.tokens[i]);
    tokens_json += "]";
  }
  *json += ",\"mode\":\"" + mode + "\",\"prompt\":" + std::to_string(P) + ",\"chunks\":[" + chunks + "],\"chunk_tokens\":[" + tokens_json + "]";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: vlatext_model_check forward|train|decode --manifest M [--device cpu|cuda] [--dtype f32|bf16] ... (see native/tests/model_check.cpp)");
  const std::string cmd = argv[1];
  Args a;
  for (int i = 2; i < argc; i++) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) die("unexpected argument " + k);
    const bool flag = k == "--builtin-gemm";
    if (flag) a.kv[k] = "1";
    else if (i + 1 < argc) a.kv[k] = argv[++i];
    else die(k + " needs a value");
  }
  if (!a.has("--manifest")) die("--manifest is required");
  if (cmd != "forward" && cmd != "train" && cmd != "decode") die("unknown command " + cmd + " (forward, train, decode)");
  const Manifest m = read_manifest(a.str("--manifest"));
  double load_ms = 0;
  auto d = load(m, a, &load_ms);
  std::string json = "{\"command\":\"" + cmd + "\",\"backend\":\"" + d->backend().describe() + "\",\"load_ms\":" + std::to_string(load_ms) + ",\"weights_bytes\":" + std::to_string(d->params().bytes());
  if (cmd == "forward") cmd_forward(*d, a, &json);
  else if (cmd == "train") cmd_train(*d, a, &json);
  else cmd_decode(*d, m, a, &json);
  std::string err;
  if (d->backend().sync(&err) != Status::Ok) die(err);
  json += ",\"memory_bytes\":" + std::to_string(memory_bytes(d->backend().device())) + "}";
  std::printf("%s\n", json.c_str());
  return 0;
}
