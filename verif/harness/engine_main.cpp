// Fast Verilator C++ harness for the ITA engine (ita/rtl/engine.py): one job, no cocotb.
// Built and run by verif/harness/engine.py (`python -m verif.harness.engine`), which writes the job
// directory from the golden model:
//
//   Vita_engine_n<N>_m<M> +JOB=<dir> [+MAX_CYCLES=<n>]
//
//   config.bin   the engine's `config` port value, little-endian
//   input.bin    input beats, M bytes each (int8 lanes, lane 0 first)
//   weight.bin   weight beats, M bytes each
//   bias.bin     bias beats, N * bias_width / 8 bytes each (packed lanes, lane 0 first)
//   output.bin   expected output beats, N bytes each
//   input.dep    int32 per input beat: output beats that must have left the engine before the
//   weight.dep   beat may be offered (the data it carries is the engine's own earlier output)
//   output.map   int32 (step, row, column) per output beat, for mismatch messages
//   steps.txt    step names, one per line, indexed by the step number of output.map
//
// The stream loop is the one of verif/engine/tb_engine.py with STALLS=0 (every source offers
// a beat as soon as its data exists, the output is always ready), cycle for cycle: `cycles`
// counts from the cycle `start` is seen to the cycle `done` rises, as the cocotb testbench
// does, so both report the same number for the same job.
//
// Last line on stdout, machine readable:
//
//   engine_main: summary status=<PASS|FAIL> cycles=<n> sim_cycles=<n> seconds=<s>
//                cycles_per_s=<n> cpu_seconds=<s> cpu_cycles_per_s=<n> mismatches=<n>
//
// sim_cycles counts every clock cycle including reset; the speeds are sim_cycles per second of
// wall-clock and of process CPU time (the latter is what a busy machine does not distort).
// Exit status: 0 on PASS, 1 on FAIL, 2 on bad arguments or an unreadable job directory.

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "Vengine.h"
#include "verilated.h"

namespace {

constexpr const char* kName = "engine_main";
constexpr uint64_t kDefaultMaxCycles = 50000000;
constexpr int kResetCycles = 3;
constexpr int kMaxReported = 10;

[[noreturn]] void usage_error(const std::string& what) {
    std::fprintf(stderr, "%s: error: %s (usage: V<top> +JOB=<dir> [+MAX_CYCLES=<n>])\n", kName,
                 what.c_str());
    std::exit(2);
}

const char* plusarg(int argc, char** argv, const char* name) {
    const size_t len = std::strlen(name);
    const char* found = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (argv[i][0] == '+' && !std::strncmp(argv[i] + 1, name, len) && argv[i][1 + len] == '=')
            found = argv[i] + 2 + len;
    }
    return found;
}

void check_args(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        const char* arg = argv[i];
        if (!std::strncmp(arg, "+verilator+", 11)) continue;
        if (!std::strncmp(arg, "+JOB=", 5) && arg[5]) continue;
        if (!std::strncmp(arg, "+MAX_CYCLES=", 12) && arg[12]) continue;
        usage_error(std::string("unexpected argument '") + arg + "'");
    }
}

uint64_t parse_cycles(const char* text) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(text, &end, 0);
    if (errno || !*text || *end || text[0] == '-' || value == 0)
        usage_error(std::string("MAX_CYCLES must be a positive integer, not '") + text + "'");
    return value;
}

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) usage_error("cannot read '" + path + "'");
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::vector<int32_t> read_int32(const std::string& path) {
    const std::vector<uint8_t> bytes = read_file(path);
    if (bytes.size() % 4) usage_error("'" + path + "' is not a whole number of int32 values");
    std::vector<int32_t> out(bytes.size() / 4);
    for (size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<int32_t>(bytes[4 * i] | bytes[4 * i + 1] << 8 |
                                      bytes[4 * i + 2] << 16 | uint32_t(bytes[4 * i + 3]) << 24);
    }
    return out;
}

std::vector<std::string> read_lines(const std::string& path) {
    std::ifstream in(path);
    if (!in) usage_error("cannot read '" + path + "'");
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// Ports of up to 64 bits are integers, wider ones VlWide word arrays; both little-endian.
template <typename T>
void put_bytes(T& port, const uint8_t* src, size_t n) {
    if constexpr (VlIsVlWide<T>::value) {
        for (size_t w = 0; w < T::Words; ++w) {
            uint32_t word = 0;
            for (size_t b = 0; b < 4; ++b) {
                const size_t i = 4 * w + b;
                if (i < n) word |= uint32_t(src[i]) << (8 * b);
            }
            port.at(w) = word;
        }
    } else {
        static_assert(std::is_integral_v<T>, "unexpected port type");
        uint64_t value = 0;
        for (size_t i = 0; i < n && i < sizeof(T); ++i) value |= uint64_t(src[i]) << (8 * i);
        port = static_cast<T>(value);
    }
}

template <typename T>
uint8_t get_byte(const T& port, size_t i) {
    if constexpr (VlIsVlWide<T>::value) {
        return static_cast<uint8_t>(port.at(i / 4) >> (8 * (i % 4)));
    } else {
        return static_cast<uint8_t>(static_cast<uint64_t>(port) >> (8 * i));
    }
}

// One source stream: fixed-size beats plus the output count each one waits for.
struct Source {
    const char* name;
    std::vector<uint8_t> data;
    std::vector<int32_t> deps;  // empty: no dependencies
    size_t beat_bytes;
    size_t count;
    size_t index = 0;
    bool offered = false;
    bool accepted = false;

    Source(const char* n, std::vector<uint8_t> d, size_t bytes, std::vector<int32_t> dep)
        : name(n), data(std::move(d)), deps(std::move(dep)), beat_bytes(bytes) {
        if (data.size() % beat_bytes)
            usage_error(std::string(name) + ".bin is not a whole number of " +
                        std::to_string(beat_bytes) + "-byte beats");
        count = data.size() / beat_bytes;
        if (!deps.empty() && deps.size() != count)
            usage_error(std::string(name) + ".dep does not have one value per beat");
    }
    bool can_offer(uint64_t retired) const {
        return !offered && index < count &&
               (deps.empty() || static_cast<uint64_t>(deps[index]) <= retired);
    }
    const uint8_t* beat() const { return data.data() + index * beat_bytes; }
};

}  // namespace

int main(int argc, char** argv) {
    check_args(argc, argv);
    const char* job_arg = plusarg(argc, argv, "JOB");
    if (!job_arg) usage_error("missing +JOB=<dir>");
    const std::string job = job_arg;
    const char* max_text = plusarg(argc, argv, "MAX_CYCLES");
    const uint64_t max_cycles = max_text ? parse_cycles(max_text) : kDefaultMaxCycles;

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
    auto top = std::make_unique<Vengine>(ctx.get(), "TOP");

    const size_t m_bytes = ENGINE_M;  // one int8 row of the tile edge
    const size_t n_bytes = ENGINE_N;  // one int8 lane per dot-product unit
    const size_t bias_bytes = ENGINE_BIAS_BYTES;
    Source input("input", read_file(job + "/input.bin"), m_bytes, read_int32(job + "/input.dep"));
    Source weight("weight", read_file(job + "/weight.bin"), m_bytes,
                  read_int32(job + "/weight.dep"));
    Source bias("bias", read_file(job + "/bias.bin"), bias_bytes, {});
    const std::vector<uint8_t> expected = read_file(job + "/output.bin");
    const std::vector<int32_t> out_map = read_int32(job + "/output.map");
    const std::vector<uint8_t> config = read_file(job + "/config.bin");
    const std::vector<std::string> steps = read_lines(job + "/steps.txt");
    if (expected.size() % n_bytes) usage_error("output.bin is not a whole number of beats");
    const size_t out_count = expected.size() / n_bytes;
    if (out_map.size() != 3 * out_count) usage_error("output.map needs 3 values per beat");
    Source* sources[] = {&input, &weight, &bias};

    uint64_t sim_cycles = 0;
    auto edge = [&]() {  // falling then rising edge: the state after a RisingEdge in cocotb
        top->clk = 0;
        top->eval();
        top->clk = 1;
        top->eval();
        ++sim_cycles;
    };
    top->clk = 1;
    top->rst = 1;
    top->start = 0;
    top->clear = 0;
    top->output___05Fready = 0;
    top->eval();
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    for (int i = 0; i < kResetCycles; ++i) edge();
    top->rst = 0;
    edge();

    put_bytes(top->config, config.data(), config.size());
    top->start = 1;
    top->eval();

    uint64_t cycles = 0, retired = 0, mismatches = 0;
    bool out_pending = false, done = false, watchdog = false;
    std::vector<uint8_t> out_beat(n_bytes);
    while (true) {
        edge();
        top->start = 0;
        for (Source* s : sources) {
            if (s->accepted) {
                ++s->index;
                s->offered = false;
            }
        }
        if (out_pending) {
            if (retired >= out_count) {
                ++mismatches;
                if (mismatches <= kMaxReported)
                    std::printf("%s: mismatch: output beat %" PRIu64 " is more than the %zu "
                                "expected\n", kName, retired, out_count);
            } else {
                const uint8_t* want = expected.data() + retired * n_bytes;
                for (size_t lane = 0; lane < n_bytes; ++lane) {
                    if (out_beat[lane] == want[lane]) continue;
                    ++mismatches;
                    if (mismatches <= kMaxReported) {
                        const int32_t step = out_map[3 * retired];
                        const std::string name = step >= 0 && size_t(step) < steps.size()
                                                     ? steps[step]
                                                     : std::to_string(step);
                        std::printf("%s: mismatch: output beat %" PRIu64 ": step %s row %d "
                                    "column %d: expected %d, got %d\n",
                                    kName, retired, name.c_str(), out_map[3 * retired + 1],
                                    out_map[3 * retired + 2] + int(lane), int8_t(want[lane]),
                                    int8_t(out_beat[lane]));
                    }
                    break;  // one message per beat
                }
            }
            ++retired;
        }
        if (done) break;
        ++cycles;
        if (cycles > max_cycles) {
            watchdog = true;
            break;
        }
        for (Source* s : sources) {
            if (s->can_offer(retired)) s->offered = true;
        }
        if (input.offered) put_bytes(top->input___05Fpayload, input.beat(), m_bytes);
        if (weight.offered) put_bytes(top->weight___05Fpayload, weight.beat(), m_bytes);
        if (bias.offered) put_bytes(top->bias___05Fpayload, bias.beat(), bias_bytes);
        top->input___05Fvalid = input.offered;
        top->weight___05Fvalid = weight.offered;
        top->bias___05Fvalid = bias.offered;
        top->output___05Fready = 1;
        top->eval();
        input.accepted = input.offered && top->input___05Fready;
        weight.accepted = weight.offered && top->weight___05Fready;
        bias.accepted = bias.offered && top->bias___05Fready;
        out_pending = top->output___05Fvalid && top->output___05Fready;
        if (out_pending) {
            for (size_t i = 0; i < n_bytes; ++i) out_beat[i] = get_byte(top->output___05Fpayload, i);
        }
        done = top->done;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu_seconds = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    const double rate = seconds > 0 ? sim_cycles / seconds : 0.0;
    const double cpu_rate = cpu_seconds > 0 ? sim_cycles / cpu_seconds : 0.0;

    bool ok = !watchdog && mismatches == 0;
    if (watchdog) {
        std::printf("%s: watchdog: no end of job after %" PRIu64 " cycles (step %u; beats "
                    "taken: input %zu/%zu, weight %zu/%zu, bias %zu/%zu, output %" PRIu64
                    "/%zu)\n",
                    kName, max_cycles, unsigned(top->step), input.index, input.count,
                    weight.index, weight.count, bias.index, bias.count, retired, out_count);
    } else {
        if (top->error) {
            std::printf("%s: engine reported error code %u\n", kName, unsigned(top->error_code));
            ok = false;
        }
        for (Source* s : sources) {
            if (s->index != s->count) {
                std::printf("%s: job ended with %zu of %zu %s beats taken\n", kName, s->index,
                            s->count, s->name);
                ok = false;
            }
        }
        if (retired != out_count) {
            std::printf("%s: job ended with %" PRIu64 " of %zu output beats\n", kName, retired,
                        out_count);
            ok = false;
        }
    }
    std::printf("%s: %" PRIu64 " cycles; simulated %" PRIu64
                " cycles in %.3f s: %.0f cycles/s (CPU time %.3f s: %.0f cycles/s)\n",
                kName, cycles, sim_cycles, seconds, rate, cpu_seconds, cpu_rate);
    std::printf("%s: summary status=%s cycles=%" PRIu64 " sim_cycles=%" PRIu64
                " seconds=%.4f cycles_per_s=%.0f cpu_seconds=%.4f cpu_cycles_per_s=%.0f"
                " mismatches=%" PRIu64 "\n",
                kName, ok ? "PASS" : "FAIL", cycles, sim_cycles, seconds, rate, cpu_seconds,
                cpu_rate, mismatches);
    std::fflush(stdout);
    top->final();
    return ok ? 0 : 1;
}
