"""One engine job as data: configuration, operand image, expected results, stream beats.

Simulator-independent and shared by everything that drives the engine: the cocotb and
pyuvm testbenches, the amaranth.sim unit tests, the C++ harness and the FPGA self-test's
ROMs all build their stimulus from these objects. Tensors live in a :class:`TensorMemory`
as zero-padded 2-D arrays (see :mod:`ita.rtl.schedule`); the engine's own outputs start
unwritten, and a stream that needs one of them must wait until the engine has written it,
as a real memory-backed streamer would.
"""

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.golden import ACTIVATIONS, linear
from ita.rtl.layouts import Mode
from ita.rtl.schedule import (
    bias_beats,
    ideal_cycles,
    input_beats,
    output_beats,
    plan,
    tensor_shapes,
    weight_beats,
)

__all__ = ["EngineJob", "TensorMemory", "OutputMismatch", "job_from_vectors", "pack_int8",
           "pack_bias", "unpack_int8"]

MODE_NAMES = {"attention": Mode.ATTENTION, "ffn": Mode.FFN, "linear": Mode.LINEAR,
              "qkav": Mode.QKAV}


@dataclass(frozen=True)
class EngineJob:
    """Run-time configuration of one engine job (everything a register write would set)."""

    mode: Mode
    S: int
    E: int = 0
    P: int = 0
    F: int = 0
    activation: str = "identity"
    bias: bool = True
    causal: bool = False
    valid_keys: int | None = None
    requant: tuple = ((1, 0, 0),) * 8
    gelu_b: int = 0
    gelu_c: int = 0
    act_requant: tuple = (1, 0, 0)
    logit_frac: int = 0

    @property
    def dims(self):
        return {"S": self.S, "E": self.E, "P": self.P, "F": self.F}

    def steps(self, config: ITAConfig = DEFAULT_CONFIG):
        return plan(self.mode, **self.dims, bias=self.bias, config=config)

    def ideal_cycles(self, config: ITAConfig = DEFAULT_CONFIG):
        return ideal_cycles(self.mode, **self.dims, config=config)

    def config_fields(self):
        """Values of the engine's ``config`` struct, by field path."""
        fields = {
            "mode": int(self.mode), "activation": ACTIVATIONS.index(self.activation),
            "bias_enable": int(self.bias), "causal": int(self.causal), "seq_len": self.S,
            "embed": self.E, "proj": self.P, "ffn": self.F,
            "valid_keys": 0 if self.valid_keys is None else self.valid_keys,
            "gelu_b": self.gelu_b, "gelu_c": self.gelu_c, "logit_frac": self.logit_frac,
        }
        for index, (mult, shift, add) in enumerate(self.requant):
            fields[f"requant.{index}.mult"] = int(mult)
            fields[f"requant.{index}.shift"] = int(shift)
            fields[f"requant.{index}.add"] = int(add)
        for name, value in zip(("mult", "shift", "add"), self.act_requant, strict=True):
            fields[f"act_requant.{name}"] = int(value)
        return fields


class OutputMismatch(AssertionError):
    """An output beat differs from the golden model."""


@dataclass
class TensorMemory:
    """Padded tensors by name, with a written-mask for tensors the engine produces."""

    tensors: dict
    written: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)

    def ready(self, name, row, col, width):
        mask = self.written.get(name)
        return mask is None or bool(mask[row, col:col + width].all())

    def read(self, name, row, col, width):
        return self.tensors[name][row, col:col + width]

    def read_vector(self, name, start, width):
        return self.tensors[name][start:start + width]

    def write(self, name, row, col, values):
        self.tensors[name][row, col:col + len(values)] = values
        self.written[name][row, col:col + len(values)] = True

    def check_beat(self, step_plan, name, row, col, values, config: ITAConfig, beat_index):
        """Compare one output beat; the message names step, tile, row and column."""
        want = self.expected[name][row, col:col + len(values)]
        bad = np.flatnonzero(np.asarray(values) != want)
        if bad.size:
            lane = int(bad[0])
            step = step_plan.step.name
            raise OutputMismatch(
                f"output beat {beat_index}: step {step} tile ({row // config.M}, "
                f"{(col + lane) // config.M}) row {row} column {col + lane}: expected "
                f"{int(want[lane])}, got {int(values[lane])} (beat expected {want.tolist()}, "
                f"got {list(map(int, values))})")

    def unwritten(self):
        return {name: int((~mask).sum()) for name, mask in self.written.items() if not mask.all()}


def _place(shape, natural, dtype=np.int64):
    out = np.zeros(shape, dtype=dtype)
    natural = np.asarray(natural)
    out[tuple(slice(0, d) for d in natural.shape)] = natural
    return out


def job_from_vectors(mode, v, *, head=0, config: ITAConfig = DEFAULT_CONFIG):
    """Build (job, memory) for ``mode`` from a golden vector set (``ita.golden.vectors``)."""
    mode = MODE_NAMES.get(mode, mode)
    mode = Mode(mode)
    S, E = v["q_in"].shape
    P, F = v["wq"].shape[2], v["w1"].shape[1]
    h = head
    requant = [tuple(map(int, v["rq_attn"][h][s])) for s in range(6)]
    requant += [tuple(map(int, v["rq_ffn"][s])) for s in range(2)]
    activation = str(v["activation"])
    common = dict(requant=tuple(requant), gelu_b=int(v["gelu_b"]), gelu_c=int(v["gelu_c"]),
                  act_requant=tuple(map(int, v["act_rq"])), bias=bool(np.any(v["bq"]) or
                                                                   np.any(v["b1"])),
                  logit_frac=int(v["logit_frac"]) if "logit_frac" in v else 0)
    natural = {
        "q_in": v["q_in"], "kv_in": v["kv_in"], "wq_t": v["wq"][h].T, "wk_t": v["wk"][h].T,
        "wv_t": v["wv"][h].T, "wo_t": v["wo"][h].T, "bq": v["bq"][h], "bk": v["bk"][h],
        "bv": v["bv"][h], "bo": v["bo"][h], "qp": v["qp"][h], "kp": v["kp"][h],
        "vp_t": v["vp"][h].T, "a": v["a"][h], "o": v["o"][h], "out": v["out"][h],
        "ff_in": v["ff_in"], "w1_t": v["w1"].T, "b1": v["b1"], "f1": v["f1"],
        "w2_t": v["w2"].T, "b2": v["b2"], "f2": v["f2"],
    }
    if mode == Mode.ATTENTION:
        job = EngineJob(mode, S, E, P, causal=bool(v["causal"]),
                        valid_keys=None if int(v["valid_keys"]) == S else int(v["valid_keys"]),
                        **common)
    elif mode == Mode.QKAV:
        job = EngineJob(mode, S, 0, P, causal=bool(v["causal"]),
                        valid_keys=None if int(v["valid_keys"]) == S else int(v["valid_keys"]),
                        **common)
    elif mode == Mode.FFN:
        job = EngineJob(mode, S, E, 0, F, activation=activation, **common)
    else:
        job = EngineJob(mode, S, E, P, activation=activation, **common)
        natural["x"], natural["w_t"], natural["b"] = v["q_in"], v["wq"][h].T, v["bq"][h]
        natural["y"] = linear(v["q_in"], v["wq"][h], v["bq"][h], rq=requant[0],
                              activation=activation, gelu_b=job.gelu_b, gelu_c=job.gelu_c,
                              act_rq=job.act_requant, config=config)

    shapes = tensor_shapes(mode, **job.dims, config=config)
    steps = job.steps(config)
    outputs = {p.output for p in steps}
    memory = TensorMemory(tensors={})
    for name, shape in shapes.items():
        if name in outputs:
            memory.tensors[name] = np.zeros(shape, dtype=np.int64)
            memory.written[name] = np.zeros(shape, dtype=bool)
            memory.expected[name] = _place(shape, natural[name])
        else:
            memory.tensors[name] = _place(shape, natural[name])
    return job, memory


def _field_slot(layout, path):
    """(bit offset, width) of a dotted field path inside a data layout."""

    offset = 0
    for part in path.split("."):
        if isinstance(layout, data.ArrayLayout):
            index = int(part)
            offset += index * Shape.cast(layout.elem_shape).width
            layout = layout.elem_shape
        else:
            member = layout[part]
            offset += member.offset
            layout = member.shape
    return offset, Shape.cast(layout).width


def pack_fields(layout, fields):
    """Pack ``{path: value}`` into the integer a flattened layout port expects."""
    word = 0
    for path, value in fields.items():
        offset, width = _field_slot(layout, path)
        word |= (int(value) & ((1 << width) - 1)) << offset
    return word


def pack_int8(values):
    """Little-endian packing of int8 lanes into one integer (lane 0 in the low byte)."""
    return int.from_bytes(np.asarray(values, dtype=np.int64).astype(np.int8).tobytes(), "little")


def unpack_int8(word, lanes):
    return np.frombuffer(int(word).to_bytes(lanes, "little"), dtype=np.int8).astype(np.int64)


def pack_bias(values, width=24):
    word = 0
    for lane, value in enumerate(values):
        word |= (int(value) & ((1 << width) - 1)) << (lane * width)
    return word


def stream_plans(job, config: ITAConfig = DEFAULT_CONFIG):
    """The four beat sequences of a job (lists, so they can be indexed by progress)."""
    steps = job.steps(config)
    return {"input": list(input_beats(steps, config)),
            "weight": list(weight_beats(steps, config)),
            "bias": list(bias_beats(steps, config)),
            "output": list(output_beats(steps, config))}


__all__ += ["stream_plans", "MODE_NAMES", "pack_fields"]
