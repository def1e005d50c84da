// Fast Verilator C++ harness for the cluster test top (verif/tops/cluster.py, `cluster_test_top`):
// pure-software runs without cocotb. Built and run by `python -m verif.harness.run` (`make run`).
//
//   Vcluster_test_top +L2_HEX=<file> [+L3_HEX=<file>] [+MAX_CYCLES=<n>]
//
// L2 is loaded by the RAM's own `initial` block ($readmemh of +L2_HEX, word addresses counted
// from the start of L2; cluster_integration/sv/cluster_l2_ram.sv). Reset is held for 3 cycles
// with fetch_enable low, as in the cocotb testbench; then the cluster runs until the top raises
// `done` (exit, trap report or access to an unmapped address) or MAX_CYCLES clock cycles
// passed. Characters written to stdout are streamed as they come (flushed per line).
//
// The harness reports on stdout after the program's output, in lines starting "cluster_main:",
// the last of which is machine readable:
//
//   cluster_main: summary end=<exit|trap|bad_access|timeout> cycles=<n> sim_cycles=<n>
//                 seconds=<s> cycles_per_s=<n> cpu_seconds=<s> cpu_cycles_per_s=<n>
//                 [exit_code= | trap_cause= trap_pc= | bad_core= bad_address=]
//
// `cycles` is the top's own count (`done_cycles`, as the cocotb flow reports it; MAX_CYCLES on a
// timeout), `sim_cycles` every clock cycle simulated including reset; the speeds are sim_cycles
// per second of wall-clock and of process CPU time (the latter is what a busy, shared machine
// does not distort). Exit status: 0 only if the program exited with code 0; 1 on any other end;
// 2 on bad arguments.
//
// On a timeout the PC of each core is printed if the model was built with `pc_id` of
// cv32e40p_core public (verif/harness/public_pc.vlt); otherwise only what the top exposes.

#include <chrono>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "Vcluster_test_top.h"
#include "verilated.h"
#include "verilated_syms.h"

namespace {

constexpr const char* kName = "cluster_main";
constexpr uint64_t kDefaultMaxCycles = 5000000;
constexpr int kResetCycles = 3;
constexpr int kMaxCores = 64;

void usage_error(const char* what) {
    std::fprintf(stderr,
                 "%s: error: %s (usage: Vcluster_test_top +L2_HEX=<file> "
                 "[+MAX_CYCLES=<n>])\n",
                 kName, what);
    std::exit(2);
}

// Value of "+NAME=<value>" or nullptr; the argument list was checked before.
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
        if (!std::strncmp(arg, "+verilator+", 11)) continue;  // Verilator's runtime options
        if (!std::strncmp(arg, "+L2_HEX=", 8) && arg[8]) continue;
        if (!std::strncmp(arg, "+L3_HEX=", 8) && arg[8]) continue;  // read by the L3 RAM
        if (!std::strncmp(arg, "+MAX_CYCLES=", 12) && arg[12]) continue;
        std::string msg = std::string("unexpected argument '") + arg + "'";
        usage_error(msg.c_str());
    }
}

uint64_t parse_cycles(const char* text) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(text, &end, 0);
    if (errno || !*text || *end || text[0] == '-' || value == 0) {
        std::string msg = std::string("MAX_CYCLES must be a positive integer, not '") + text + "'";
        usage_error(msg.c_str());
    }
    return value;
}

const char* cause_name(uint32_t cause) {
    if (cause & 0x80000000u) return "interrupt";
    switch (cause) {
        case 0: return "instruction address misaligned";
        case 1: return "instruction access fault";
        case 2: return "illegal instruction";
        case 3: return "breakpoint";
        case 4: return "load address misaligned";
        case 5: return "load access fault";
        case 6: return "store/AMO address misaligned";
        case 7: return "store/AMO access fault";
        case 8: return "environment call from U-mode";
        case 11: return "environment call from M-mode";
        default: return "unknown cause";
    }
}

// PCs of the cores (`pc_id` of each cv32e40p_core), if the model made them public.
std::vector<const uint32_t*> find_core_pcs(VerilatedContext& ctx) {
    std::vector<const uint32_t*> pcs;
    for (int i = 0; i < kMaxCores; ++i) {
        const std::string scope =
            "TOP.cluster_test_top.cluster.core" + std::to_string(i) + ".core.core_i";
        const VerilatedScope* sp = ctx.scopeFind(scope.c_str());
        const VerilatedVar* var = sp ? sp->varFind("pc_id") : nullptr;
        if (!var) break;
        pcs.push_back(static_cast<const uint32_t*>(var->datap()));
    }
    return pcs;
}

}  // namespace

int main(int argc, char** argv) {
    check_args(argc, argv);
    const char* hex = plusarg(argc, argv, "L2_HEX");
    if (!hex) usage_error("missing +L2_HEX=<file>");
    if (FILE* fh = std::fopen(hex, "r")) {
        std::fclose(fh);
    } else {
        std::string msg = std::string("cannot read L2 image '") + hex + "'";
        usage_error(msg.c_str());
    }
    const char* max_text = plusarg(argc, argv, "MAX_CYCLES");
    const uint64_t max_cycles = max_text ? parse_cycles(max_text) : kDefaultMaxCycles;

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);  // the RAM's initial block reads +L2_HEX
    auto top = std::make_unique<Vcluster_test_top>(ctx.get(), "TOP");

    top->clk = 0;
    top->rst = 1;
    top->fetch_enable = 0;
    top->eval();  // runs the initial blocks: L2 is loaded here

    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    uint64_t sim_cycles = 0;
    auto tick = [&]() {
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
        ++sim_cycles;
    };
    for (int i = 0; i < kResetCycles; ++i) tick();
    top->rst = 0;
    top->fetch_enable = 1;

    bool at_line_start = true;
    uint64_t cycles = 0;
    while (!top->done && cycles < max_cycles) {
        tick();
        ++cycles;
        if (top->char_valid) {  // captured by the top's stdout buffer at the next edge
            const int c = top->char_data;
            std::putchar(c);
            at_line_start = c == '\n';
            if (at_line_start) std::fflush(stdout);
        }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu_seconds = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    const double rate = seconds > 0 ? sim_cycles / seconds : 0.0;
    const double cpu_rate = cpu_seconds > 0 ? sim_cycles / cpu_seconds : 0.0;
    if (!at_line_start) std::putchar('\n');

    std::string fields;
    char buf[256];
    int status = 1;
    const bool done = top->done;
    const uint64_t end_cycles = done ? top->done_cycles : max_cycles;
    if (!done) {
        std::printf("%s: timeout: no end within %" PRIu64 " cycles\n", kName, max_cycles);
        const auto pcs = find_core_pcs(*ctx);
        for (size_t i = 0; i < pcs.size(); ++i)
            std::printf("%s: timeout: core %zu at pc 0x%08" PRIx32 "\n", kName, i, *pcs[i]);
        if (pcs.empty())
            std::printf("%s: (core PCs are not visible in this model)\n", kName);
        fields = "end=timeout";
    } else if (top->bad_access) {
        std::printf("%s: bad access: core %u accessed unmapped address 0x%08" PRIx32 "\n", kName,
                    static_cast<unsigned>(top->bad_core), static_cast<uint32_t>(top->bad_address));
        std::snprintf(buf, sizeof buf, "end=bad_access bad_core=%u bad_address=0x%08" PRIx32,
                      static_cast<unsigned>(top->bad_core), static_cast<uint32_t>(top->bad_address));
        fields = buf;
    } else if (top->trap_valid) {
        const uint32_t cause = top->trap_cause;
        std::printf("%s: trap: mcause %" PRIu32 " (%s) at pc 0x%08" PRIx32 "\n", kName, cause,
                    cause_name(cause), static_cast<uint32_t>(top->trap_pc));
        std::snprintf(buf, sizeof buf, "end=trap trap_cause=%" PRIu32 " trap_pc=0x%08" PRIx32,
                      cause, static_cast<uint32_t>(top->trap_pc));
        fields = buf;
    } else {
        const int32_t code = static_cast<int32_t>(top->exit_code);
        std::printf("%s: exit code %" PRId32 "\n", kName, code);
        std::snprintf(buf, sizeof buf, "end=exit exit_code=%" PRId32, code);
        fields = buf;
        status = code == 0 ? 0 : 1;
    }
    std::printf("%s: %" PRIu64 " cycles; simulated %" PRIu64
                " cycles in %.3f s: %.0f cycles/s (CPU time %.3f s: %.0f cycles/s)\n",
                kName, end_cycles, sim_cycles, seconds, rate, cpu_seconds, cpu_rate);
    std::printf("%s: summary %s cycles=%" PRIu64 " sim_cycles=%" PRIu64
                " seconds=%.4f cycles_per_s=%.0f cpu_seconds=%.4f cpu_cycles_per_s=%.0f\n",
                kName, fields.c_str(), end_cycles, sim_cycles, seconds, rate, cpu_seconds,
                cpu_rate);
    std::fflush(stdout);
    top->final();
    return status;
}
