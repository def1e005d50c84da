// Multi-chip Verilator harness: K chips of the cluster test top (verif/tops/cluster.py) in one
// process, stepped in lockstep, their chip-to-chip links carried between ring neighbours.
// Built and run by `verif/harness/multichip.py` (`make sim TEST=multichip`) from the same model
// library as `make run` (one Verilator build per configuration; K is a run parameter).
//
//   Vmultichip +CHIPS=<k> +L2_HEX=<file> [+L2_HEX_<i>=<file>] [+L3_HEX=<file>]
//              [+MAX_CYCLES=<n>] [+LINK_STALL=<percent>] [+SEED=<n>] [+HALT_CHIP=<i>]
//              [+WATCHDOG=<cycles>]
//
// Each chip has its own VerilatedContext whose arguments carry its L2 image (+L2_HEX_<i>, else
// +L2_HEX), so the L2 RAM's initial block of every chip loads its own program. Chip i gets
// chip_id = i and chips = k. The ring: link 0 of chip i sends to link 1 of chip (i + 1) % k
// ("next"), link 1 to link 0 of chip (i - 1) % k ("prev"); with one chip both links loop
// back to the chip itself. A channel delivers a beat LINK_LATENCY cycles after the sender's
// link handed it over (link_config.h, generated from ClusterConfig), holds at most
// LINK_CAPACITY beats (the sender's tx_ready is room in it) and, with +LINK_STALL=<p>, stalls
// before a due beat with p percent chance, for 1 to kMaxStall cycles (uniform, seeded by
// +SEED): a lane retraining or a busy switch; timing changes, data and order do not. The bandwidth is the sender's own (its link
// peripheral's byte budget, in RTL).
//
// The run ends when every chip has ended; a chip that fails (trap, access to an unmapped
// address, non-zero exit) ends it at once. The watchdog ends it when no beat has moved on any
// link for WATCHDOG cycles while a chip is still running, and MAX_CYCLES bounds it; both name
// the chip that never answered (the running chip that has been silent on its links the
// longest, or the one held in reset by +HALT_CHIP) and print every running chip's core PCs.
// Each chip's output is printed with a "[chip i] " prefix. The report ends with one line:
//
//   multichip: summary end=<exit|fail|watchdog|timeout> chips=<k> cycles=<n> sim_cycles=<n>
//              seconds=<s> cycles_per_s=<n> cpu_seconds=<s> cpu_cycles_per_s=<n>
//              link_bytes=<n> link_beats=<n> [failed_chip=<i>] [silent_chip=<i>]
//
// preceded by one `multichip: chip=<i> end=... cycles=<n> ...` line per chip and one
// `multichip: link=<i>.<j> to=<chip> beats=<n> bytes=<n>` line per link. `cycles` is the
// largest of the chips' own counts (done_cycles); the speeds count system cycles (all chips
// together) per second. Exit status: 0 only if every chip exited with code 0; 1 on any other
// end; 2 on bad arguments.

#include <chrono>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "Vcluster_test_top.h"
#include "link_config.h"
#include "verilated.h"
#include "verilated_syms.h"

namespace {

constexpr const char* kName = "multichip";
constexpr uint64_t kDefaultMaxCycles = 20000000;
constexpr uint64_t kDefaultWatchdog = 2000000;
constexpr int kResetCycles = 3;
constexpr int kMaxChips = 64;
constexpr int kMaxCores = 64;
constexpr unsigned kMaxStall = 64;  // cycles of one link stall, at most
constexpr int kLinks = LINK_COUNT;
static_assert(kLinks == 2, "the harness wires a ring: links next and prev");

using Top = Vcluster_test_top;
// The payload ports' Verilator type: a VlWide of 32-bit words.
using Payload = std::remove_reference_t<decltype(std::declval<Top&>().link0_tx_payload)>;
constexpr size_t kPayloadWords = sizeof(Payload) / sizeof(uint32_t);

[[noreturn]] void usage_error(const std::string& what) {
    std::fprintf(stderr,
                 "%s: error: %s (usage: Vmultichip +CHIPS=<k> +L2_HEX=<file> "
                 "[+L2_HEX_<i>=<file>] [+L3_HEX=<file>] [+MAX_CYCLES=<n>] "
                 "[+LINK_STALL=<percent>] [+SEED=<n>] [+HALT_CHIP=<i>] [+WATCHDOG=<cycles>])\n",
                 kName, what.c_str());
    std::exit(2);
}

const char* plusarg(int argc, char** argv, const std::string& name) {
    const char* found = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (argv[i][0] == '+' && !std::strncmp(argv[i] + 1, name.c_str(), name.size()) &&
            argv[i][1 + name.size()] == '=')
            found = argv[i] + 2 + name.size();
    }
    return found;
}

uint64_t parse_number(const char* text, const char* what, uint64_t minimum, uint64_t maximum) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(text, &end, 0);
    if (errno || !*text || *end || text[0] == '-' || value < minimum || value > maximum)
        usage_error(std::string(what) + " must be an integer " + std::to_string(minimum) + ".." +
                    std::to_string(maximum) + ", not '" + text + "'");
    return value;
}

void check_args(int argc, char** argv) {
    static const char* known[] = {"CHIPS", "L2_HEX", "L3_HEX", "MAX_CYCLES", "LINK_STALL",
                                  "SEED", "HALT_CHIP", "WATCHDOG"};
    for (int i = 1; i < argc; ++i) {
        const char* arg = argv[i];
        if (!std::strncmp(arg, "+verilator+", 11)) continue;
        bool ok = false;
        for (const char* name : known) {
            const size_t n = std::strlen(name);
            if (arg[0] == '+' && !std::strncmp(arg + 1, name, n)) {
                const char* rest = arg + 1 + n;
                if (rest[0] == '=' && rest[1]) ok = true;
                if (!std::strcmp(name, "L2_HEX") && rest[0] == '_') ok = std::strchr(rest, '=');
            }
        }
        if (!ok) usage_error(std::string("unexpected argument '") + arg + "'");
    }
}

bool readable(const char* path) {
    if (FILE* fh = std::fopen(path, "r")) {
        std::fclose(fh);
        return true;
    }
    return false;
}

// One direction of a link: beats in flight from a sender to a receiver.
struct Channel {
    int from_chip, from_link, to_chip, to_link;
    struct Beat {
        uint64_t due;
        Payload payload;
    };
    std::deque<Beat> beats;
    bool offering = false;  // the head is offered to the receiver (held until taken)
    uint64_t stalled_until = 0;  // no new offer before this cycle
    uint64_t count = 0, bytes = 0;
};

struct Chip {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Top> top;
    std::vector<std::string> args;
    std::string line;  // output since the last newline
    std::vector<const uint32_t*> pcs;
    bool halted = false;
    uint64_t last_sent = 0;  // cycle of the last beat it handed to a link
    bool sent_any = false;
};

struct Ports {
    CData* tx_valid;
    CData* tx_ready;
    Payload* tx_payload;
    CData* rx_valid;
    CData* rx_ready;
    Payload* rx_payload;
};

Ports ports(Top& top, int link) {
    if (link == 0)
        return {&top.link0_tx_valid, &top.link0_tx_ready, &top.link0_tx_payload,
                &top.link0_rx_valid, &top.link0_rx_ready, &top.link0_rx_payload};
    return {&top.link1_tx_valid, &top.link1_tx_ready, &top.link1_tx_payload,
            &top.link1_rx_valid, &top.link1_rx_ready, &top.link1_rx_payload};
}

// Bytes of a beat: the byte enables sit at bit 0 (cluster_integration.link.beat_layout).
unsigned beat_bytes(const Payload& p) {
    unsigned n = 0;
    for (int b = 0; b < LINK_BEAT_BYTES; ++b) n += (p[b / 32] >> (b % 32)) & 1u;
    return n;
}

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

const char* end_of(const Top& top) {
    if (!top.done) return "running";
    if (top.bad_access) return "bad_access";
    if (top.trap_valid) return "trap";
    return "exit";
}

bool failed(const Top& top) {
    return top.done && (top.bad_access || top.trap_valid || top.exit_code != 0);
}

}  // namespace

int main(int argc, char** argv) {
    check_args(argc, argv);
    const char* chips_text = plusarg(argc, argv, "CHIPS");
    if (!chips_text) usage_error("missing +CHIPS=<k>");
    const int k = static_cast<int>(parse_number(chips_text, "CHIPS", 1, kMaxChips));
    const char* max_text = plusarg(argc, argv, "MAX_CYCLES");
    const uint64_t max_cycles =
        max_text ? parse_number(max_text, "MAX_CYCLES", 1, UINT64_MAX / 2) : kDefaultMaxCycles;
    const char* wd_text = plusarg(argc, argv, "WATCHDOG");
    const uint64_t watchdog =
        wd_text ? parse_number(wd_text, "WATCHDOG", 1, UINT64_MAX / 2) : kDefaultWatchdog;
    const char* stall_text = plusarg(argc, argv, "LINK_STALL");
    const unsigned stall = stall_text ? parse_number(stall_text, "LINK_STALL", 0, 99) : 0;
    const char* seed_text = plusarg(argc, argv, "SEED");
    const uint64_t seed = seed_text ? parse_number(seed_text, "SEED", 0, UINT32_MAX) : 1;
    const char* halt_text = plusarg(argc, argv, "HALT_CHIP");
    const int halt = halt_text ? static_cast<int>(parse_number(halt_text, "HALT_CHIP", 0,
                                                               k - 1))
                               : -1;
    const char* l3 = plusarg(argc, argv, "L3_HEX");

    std::vector<Chip> chips(k);
    for (int i = 0; i < k; ++i) {
        const char* hex = plusarg(argc, argv, "L2_HEX_" + std::to_string(i));
        if (!hex) hex = plusarg(argc, argv, "L2_HEX");
        if (!hex) usage_error("missing +L2_HEX=<file> for chip " + std::to_string(i));
        if (!readable(hex)) usage_error(std::string("cannot read L2 image '") + hex + "'");
        if (l3 && !readable(l3)) usage_error(std::string("cannot read L3 image '") + l3 + "'");
        Chip& c = chips[i];
        c.args = {argv[0], std::string("+L2_HEX=") + hex};
        if (l3) c.args.push_back(std::string("+L3_HEX=") + l3);
        std::vector<const char*> cargs;
        for (const auto& a : c.args) cargs.push_back(a.c_str());
        c.ctx = std::make_unique<VerilatedContext>();
        c.ctx->commandArgs(static_cast<int>(cargs.size()), cargs.data());
        Verilated::threadContextp(c.ctx.get());  // the initial blocks read this chip's args
        c.top = std::make_unique<Top>(c.ctx.get(), "TOP");
        c.top->clk = 0;
        c.top->rst = 1;
        c.top->fetch_enable = 0;
        c.top->chip_id = static_cast<CData>(i);
        c.top->chips = static_cast<CData>(k);
        c.top->eval();  // initial blocks: this chip's L2 is loaded here
        c.pcs = find_core_pcs(*c.ctx);
        c.halted = i == halt;
    }

    std::vector<Channel> channels;
    for (int i = 0; i < k; ++i) {
        channels.push_back({i, 0, (i + 1) % k, 1});
        channels.push_back({i, 1, (i + k - 1) % k, 0});
    }
    auto sender = [&](int chip, int link) -> Channel& { return channels[2 * chip + link]; };
    auto receiver = [&](int chip, int link) -> Channel& {
        // Link 1 of chip c receives from link 0 of chip c - 1, link 0 from link 1 of c + 1.
        return link == 1 ? sender((chip + k - 1) % k, 0) : sender((chip + 1) % k, 1);
    };

    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<unsigned> percent(0, 99);
    std::uniform_int_distribution<unsigned> stall_length(1, kMaxStall);
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    uint64_t sim_cycles = 0, cycle = 0, last_traffic = 0;

    auto step = [&](bool running) {
        for (int i = 0; i < k; ++i) {
            Top& top = *chips[i].top;
            if (running) {
                top.rst = 0;
                top.fetch_enable = !chips[i].halted;
            }
            for (int j = 0; j < kLinks; ++j) {
                Ports p = ports(top, j);
                Channel& out = sender(i, j);
                *p.tx_ready = out.beats.size() < LINK_CAPACITY;
                Channel& in = receiver(i, j);
                if (!in.offering && !in.beats.empty() && in.beats.front().due <= cycle &&
                    in.stalled_until <= cycle) {
                    if (stall && percent(rng) < stall)
                        in.stalled_until = cycle + stall_length(rng);
                    else
                        in.offering = true;
                }
                *p.rx_valid = in.offering;
                if (in.offering) *p.rx_payload = in.beats.front().payload;
            }
            top.clk = 0;
            top.eval();
        }
        bool traffic = false;
        for (int i = 0; i < k; ++i) {
            Top& top = *chips[i].top;
            for (int j = 0; j < kLinks; ++j) {
                Ports p = ports(top, j);
                Channel& out = sender(i, j);
                if (*p.tx_valid && *p.tx_ready) {
                    out.beats.push_back({cycle + LINK_LATENCY, *p.tx_payload});
                    out.count++;
                    out.bytes += beat_bytes(*p.tx_payload);
                    chips[i].last_sent = cycle;
                    chips[i].sent_any = true;
                    traffic = true;
                }
                Channel& in = receiver(i, j);
                if (in.offering && *p.rx_ready) {
                    in.beats.pop_front();
                    in.offering = false;
                    traffic = true;
                }
            }
        }
        for (int i = 0; i < k; ++i) {
            Top& top = *chips[i].top;
            top.clk = 1;
            top.eval();
            if (top.char_valid) {
                const char ch = static_cast<char>(top.char_data);
                if (ch == '\n') {
                    std::printf("[chip %d] %s\n", i, chips[i].line.c_str());
                    std::fflush(stdout);
                    chips[i].line.clear();
                } else {
                    chips[i].line += ch;
                }
            }
        }
        ++sim_cycles;
        ++cycle;
        if (traffic) last_traffic = cycle;
    };

    for (int r = 0; r < kResetCycles; ++r) step(false);
    cycle = 0;
    last_traffic = 0;
    std::string end = "exit";
    int failed_chip = -1;
    uint64_t run_cycles = 0;
    while (true) {
        step(true);
        ++run_cycles;
        bool all_done = true;
        for (int i = 0; i < k; ++i) {
            if (failed(*chips[i].top) && failed_chip < 0) failed_chip = i;
            all_done = all_done && chips[i].top->done;
        }
        if (failed_chip >= 0) {
            end = "fail";
            break;
        }
        if (all_done) break;
        if (run_cycles - last_traffic >= watchdog) {
            end = "watchdog";
            break;
        }
        if (run_cycles >= max_cycles) {
            end = "timeout";
            break;
        }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu_seconds = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    const double rate = seconds > 0 ? sim_cycles / seconds : 0.0;
    const double cpu_rate = cpu_seconds > 0 ? sim_cycles / cpu_seconds : 0.0;
    for (int i = 0; i < k; ++i)
        if (!chips[i].line.empty()) std::printf("[chip %d] %s\n", i, chips[i].line.c_str());

    uint64_t cycles = 0;
    for (int i = 0; i < k; ++i) {
        const Top& top = *chips[i].top;
        const uint64_t mine = top.done ? top.done_cycles : run_cycles;
        cycles = std::max(cycles, mine);
        std::printf("%s: chip=%d end=%s cycles=%" PRIu64, kName, i,
                    chips[i].halted ? "halted" : end_of(top), mine);
        if (top.done && top.bad_access)
            std::printf(" bad_core=%u bad_address=0x%08" PRIx32, static_cast<unsigned>(top.bad_core),
                        static_cast<uint32_t>(top.bad_address));
        else if (top.done && top.trap_valid)
            std::printf(" trap_cause=%" PRIu32 " trap_pc=0x%08" PRIx32,
                        static_cast<uint32_t>(top.trap_cause), static_cast<uint32_t>(top.trap_pc));
        else if (top.done)
            std::printf(" exit_code=%" PRId32, static_cast<int32_t>(top.exit_code));
        std::printf("\n");
    }
    uint64_t link_bytes = 0, link_beats = 0;
    for (const Channel& ch : channels) {
        std::printf("%s: link=%d.%d to=%d beats=%" PRIu64 " bytes=%" PRIu64 "\n", kName,
                    ch.from_chip, ch.from_link, ch.to_chip, ch.count, ch.bytes);
        link_bytes += ch.bytes;
        link_beats += ch.count;
    }
    int silent = -1;
    if (end == "watchdog" || end == "timeout") {
        // The chip that never answered: one held in reset, else the running chip silent on
        // its links the longest (never sending counts as silent since the start).
        for (int i = 0; i < k && silent < 0; ++i)
            if (chips[i].halted) silent = i;
        uint64_t oldest = UINT64_MAX;
        for (int i = 0; i < k && silent < 0; ++i) {
            if (chips[i].top->done) continue;
            const uint64_t since = chips[i].sent_any ? chips[i].last_sent + 1 : 0;
            if (since < oldest) {
                oldest = since;
                silent = i;
            }
        }
        if (end == "watchdog")
            std::printf("%s: watchdog: no beat moved on any link for %" PRIu64 " cycles\n", kName,
                        run_cycles - last_traffic);
        else
            std::printf("%s: timeout: not every chip ended within %" PRIu64 " cycles\n", kName,
                        max_cycles);
        if (silent >= 0) {
            const Chip& c = chips[silent];
            std::printf("%s: chip %d never answered: %s\n", kName, silent,
                        c.halted ? "held in reset (HALT_CHIP)"
                        : c.sent_any ? ("nothing sent since cycle " +
                                        std::to_string(c.last_sent)).c_str()
                                     : "it never sent a beat");
        }
        for (int i = 0; i < k; ++i) {
            if (chips[i].top->done) continue;
            for (size_t p = 0; p < chips[i].pcs.size(); ++p)
                std::printf("%s: chip %d core %zu at pc 0x%08" PRIx32 "\n", kName, i, p,
                            *chips[i].pcs[p]);
            if (chips[i].pcs.empty())
                std::printf("%s: chip %d: core PCs are not visible in this model\n", kName, i);
        }
    }
    std::printf("%s: %d chips, %" PRIu64 " cycles; simulated %" PRIu64
                " system cycles in %.3f s: %.0f cycles/s (CPU time %.3f s: %.0f cycles/s)\n",
                kName, k, cycles, sim_cycles, seconds, rate, cpu_seconds, cpu_rate);
    std::printf("%s: summary end=%s chips=%d cycles=%" PRIu64 " sim_cycles=%" PRIu64
                " seconds=%.4f cycles_per_s=%.0f cpu_seconds=%.4f cpu_cycles_per_s=%.0f"
                " link_bytes=%" PRIu64 " link_beats=%" PRIu64,
                kName, end.c_str(), k, cycles, sim_cycles, seconds, rate, cpu_seconds, cpu_rate,
                link_bytes, link_beats);
    if (failed_chip >= 0) std::printf(" failed_chip=%d", failed_chip);
    if (silent >= 0) std::printf(" silent_chip=%d", silent);
    std::printf("\n");
    std::fflush(stdout);
    for (auto& c : chips) {
        Verilated::threadContextp(c.ctx.get());
        c.top->final();
    }
    return end == "exit" ? 0 : 1;
}
