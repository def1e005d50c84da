"""ITAmax: streaming integer softmax of one row block (``docs/arithmetic.md`` section 4)."""

from amaranth import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ita.config import DEFAULT_CONFIG, ITAConfig

from .divider import ReciprocalDivider

__all__ = ["SoftmaxUnit"]


def _scaled_shift(diff, softmax_shift):
    """``round_half_up(diff / 2**softmax_shift)`` of an unsigned difference."""
    if softmax_shift == 0:
        return diff
    half = diff[softmax_shift - 1] if softmax_shift <= len(diff) else 0
    return (diff >> softmax_shift) + half


def _split(distance, logit_frac, table):
    """``(table[distance mod 2**k], distance >> k)`` for the job's k = ``logit_frac``: the
    fraction entry and the integer shift of ``2**(-distance / 2**k)``."""
    bits = len(table).bit_length() - 1
    masks = Array(Const((1 << k) - 1, bits) for k in range(bits + 1 if bits else 1))
    return Array(table)[distance[:bits] & masks[logit_frac]], distance >> logit_frac


def _reduce_tree(m, values, combine, name):
    """Combine ``values`` pairwise in a balanced tree of depth ``ceil(log2(len(values)))``.

    Every node is a named signal, so each level refers to the previous one instead of
    repeating its whole expression (which would grow exponentially for ``max``).
    """
    level = 0
    while len(values) > 1:
        reduced = []
        for index in range(0, len(values) - 1, 2):
            node_value = combine(values[index], values[index + 1])
            node = Signal(node_value.shape(), name=f"{name}_l{level}_{index // 2}")
            m.d.comb += node.eq(node_value)
            reduced.append(node)
        if len(values) % 2:
            reduced.append(values[-1])
        values, level = reduced, level + 1
    return values[0]


class SoftmaxUnit(wiring.Component):
    """Per-row softmax statistics of an M-row block, and normalisation of logits with them.

    ``logit_frac`` is the job's k (held for the whole job): a logit step of ln 2 / 2**k, the
    low k bits of every difference selecting an entry of ``config.exp_table(k)``.

    Phase 1 (step QK) takes one requantized output beat per cycle at the accumulate port: row
    ``acc_row``, N consecutive key columns in ascending order. It keeps a running maximum and
    a running denominator per row, updated exactly as :func:`ita.golden.itamax` does per group.
    Phase 2 sends the final sum of each row (``acc_last``) through a pipelined divider;
    ``rows_ready`` counts the rows whose reciprocal is written. Phase 3 (step AV) turns the M
    logits of one key tile of a row into uint8 probabilities at the normalize port.

    The accumulate update is pipelined over two cycles (maximum, then sum); a row may be
    presented again four cycles after its previous group. Key columns with a 0 ``keep`` bit
    (masked or padded keys) are left out of the maximum and the sum and get probability 0.

    Attributes
    ----------
    acc_latency:
        Cycles after an accumulate beat until the row's maximum and sum hold its update.
    divider_latency:
        Latency of the reciprocal divider.
    ready_latency:
        Cycles after the last beat of row r until ``rows_ready`` counts row r.
    norm_latency:
        Cycles from the normalize inputs to ``norm_probs``.
    """

    acc_latency = 2
    norm_latency = 1

    def __init__(self, *, config: ITAConfig = DEFAULT_CONFIG):
        if not isinstance(config, ITAConfig):
            raise TypeError(f"config must be an ITAConfig, not {config!r}")
        self._config = config
        self.divider_latency = ReciprocalDivider.latency_of(config=config)
        self.ready_latency = self.acc_latency + self.divider_latency
        logit, prob = signed(config.input_width), unsigned(config.input_width)
        row = range(max(config.M, 2))  # at least one bit: no zero-width ports
        super().__init__({
            "acc_valid": In(1),
            "acc_row": In(row),
            "acc_logits": In(data.ArrayLayout(logit, config.N)),
            "acc_keep": In(config.N),
            "acc_first": In(1),
            "acc_last": In(1),
            "restart": In(1),
            "logit_frac": In(config.logit_frac_bits),
            "rows_ready": Out(range(config.M + 1)),
            "overflow": Out(1),
            "norm_row": In(row),
            "norm_logits": In(data.ArrayLayout(logit, config.M)),
            "norm_keep": In(config.M),
            "norm_probs": Out(data.ArrayLayout(prob, config.M)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        width, shift = cfg.input_width, cfg.softmax_shift
        lowest = Const(-(1 << (width - 1)), signed(width))  # -128: never raises a maximum
        sum_limit = 1 << cfg.softmax_sum_width

        # The job's fraction table 2**(-f / 2**k) in units of 1/256 (entries f >= 2**k unused).
        steps = 1 << cfg.logit_frac_max
        table = [Signal(width + 1, name=f"exp_table_{f}") for f in range(steps)]
        with m.Switch(self.logit_frac):
            for k in range(cfg.logit_frac_max + 1):
                with m.Case(k):
                    m.d.comb += [table[f].eq(value)
                                 for f, value in enumerate(cfg.exp_table(k))]

        maxima = Array(Signal(signed(width), name=f"max_{r}") for r in range(cfg.M))
        sums = Array(Signal(cfg.softmax_sum_width, name=f"sum_{r}") for r in range(cfg.M))
        m.submodules.divider = divider = ReciprocalDivider(config=cfg)
        inverses = Array(Signal(divider.quotient_width, name=f"inverse_{r}")
                         for r in range(cfg.M))

        # --- accumulate stage 0: new maximum of the row ------------------------------------
        kept_logits = [Mux(self.acc_keep[n], self.acc_logits[n], lowest) for n in range(cfg.N)]
        group_max = _reduce_tree(m, kept_logits, lambda a, b: Mux(a > b, a, b), "group_max")
        prev_max = Signal(signed(width))
        new_max = Signal(signed(width))
        m.d.comb += [
            prev_max.eq(Mux(self.acc_first, lowest, maxima[self.acc_row])),
            new_max.eq(Mux(group_max > prev_max, group_max, prev_max)),
        ]
        with m.If(self.acc_valid):
            m.d.sync += maxima[self.acc_row].eq(new_max)

        s1_valid = Signal()
        s1_row = Signal.like(self.acc_row)
        s1_first = Signal()
        s1_last = Signal()
        s1_max = Signal(signed(width))
        s1_rescale = Signal(width)  # shift of the old sum: the maximum grew by this much
        s1_logits = Signal.like(self.acc_logits)
        s1_keep = Signal.like(self.acc_keep)
        m.d.sync += [
            s1_valid.eq(self.acc_valid),
            s1_row.eq(self.acc_row),
            s1_first.eq(self.acc_first),
            s1_last.eq(self.acc_last),
            s1_max.eq(new_max),
            s1_rescale.eq(_scaled_shift((new_max - prev_max)[:width], shift)),
            s1_logits.eq(self.acc_logits),
            s1_keep.eq(self.acc_keep),
        ]

        # --- accumulate stage 1: rescaled old sum plus this group's weights ----------------
        weights = []
        for n in range(cfg.N):
            # A kept logit never exceeds the new maximum, so the difference fits unsigned.
            distance = (s1_max - s1_logits[n])[:width]
            fraction, exponent = _split(_scaled_shift(distance, shift), self.logit_frac, table)
            weights.append(Mux(s1_keep[n], fraction >> exponent, 0))
        group_sum = _reduce_tree(m, weights, lambda a, b: a + b, "group_sum")
        old_sum = Signal(cfg.softmax_sum_width)
        rescale_fraction, rescale_exponent = _split(s1_rescale, self.logit_frac, table)
        rescaled = Signal(cfg.softmax_sum_width)  # old_sum * 2**(-d / 2**k), floored
        total = Signal(range(sum_limit + (cfg.N << width)))
        overflowed = Signal()
        row_sum = Signal(cfg.softmax_sum_width)  # saturated: the golden model would raise
        m.d.comb += [
            old_sum.eq(Mux(s1_first, 0, sums[s1_row])),
            rescaled.eq((old_sum * rescale_fraction) >> (rescale_exponent + width)),
            total.eq(group_sum + rescaled),
            overflowed.eq(total >= sum_limit),
            row_sum.eq(Mux(overflowed, sum_limit - 1, total)),
        ]
        with m.If(s1_valid & ~s1_last):
            m.d.sync += sums[s1_row].eq(row_sum)

        # Overflow is reported even if a restart arrives in the same cycle.
        with m.If(s1_valid & overflowed):
            m.d.sync += self.overflow.eq(1)
        with m.Elif(self.restart):
            m.d.sync += self.overflow.eq(0)

        # --- reciprocal --------------------------------------------------------------------
        m.d.comb += [
            divider.divisor.eq(row_sum),
            divider.valid_in.eq(s1_valid & s1_last),
            divider.tag_in.eq(s1_row),
        ]
        with m.If(divider.valid_out):
            m.d.sync += inverses[divider.tag_out].eq(divider.quotient)
        # Last groups arrive in ascending row order and the divider keeps that order, so a
        # count of finished rows tells which rows are ready.
        with m.If(self.restart):
            m.d.sync += self.rows_ready.eq(0)
        with m.Elif(divider.valid_out):
            m.d.sync += self.rows_ready.eq(self.rows_ready + 1)

        # --- normalize ---------------------------------------------------------------------
        norm_max = Signal(signed(width))
        norm_inverse = Signal.like(inverses[0])
        m.d.comb += [
            norm_max.eq(maxima[self.norm_row]),
            norm_inverse.eq(inverses[self.norm_row]),
        ]
        # The row's reciprocal times each table entry, shared by the M lanes.
        scaled = [Signal(2 * width + 1, name=f"scaled_inverse_{f}") for f in range(steps)]
        m.d.comb += [scaled[f].eq(norm_inverse * table[f]) for f in range(steps)]
        for k in range(cfg.M):
            difference = norm_max - self.norm_logits[k]
            distance = Mux(difference < 0, 0, difference)[:width]  # as the golden model clamps
            product, exponent = _split(_scaled_shift(distance, shift), self.logit_frac, scaled)
            prob = (product >> (exponent + width))[:width]
            m.d.sync += self.norm_probs[k].eq(Mux(self.norm_keep[k], prob, 0))

        return m
