"""The ITA HWPE register map, described once.

Everything that needs register offsets or fields reads this module: the control slave RTL,
the generated C header used by ``sw/``, the generated Python register model used by
``verif/`` and the register table in the docs (see :mod:`cluster_integration.hwpe.regmap_gen`).

Layout follows the standard HWPE control slave (PULP's ``hwpe-ctrl``): eight
shared registers, then the job registers of the context being programmed. A job describes a
whole operation (an attention head, a feed-forward block, a linear layer); the streamers
walk all its tiles, so a core programs the engine once per operation, not once per tile.

Tensors live in the cluster's memory row-major and zero-padded to whole M x M tiles: the
pitch of a tensor is its padded column count in bytes, so one base address per tensor is
enough. Biases are int32 words (the engine uses their low 24 bits).
"""

from cluster_integration.registers import WORD_BYTES, Field, Register
from ita.config import DEFAULT_CONFIG

__all__ = ["Field", "Register", "SHARED", "JOB", "REGISTERS", "JOB_BASE", "TENSOR_POINTERS",
           "REQUANT_STEPS", "REQUANT_REGISTERS", "POINTER_REGISTERS", "pointer_register",
           "register", "WORD_BYTES"]

JOB_BASE = 0x20

#: Requantized steps, in the order of the REQUANT_* registers and of the engine's
#: ``requant`` configuration array.
REQUANT_STEPS = ("Q", "K", "V", "QK", "AV", "OW", "F1", "F2")


def _word(name, doc, config=None, signed=False):
    return (Field(name.lower(), 0, 32, doc, signed, config),)


SHARED = (
    Register("TRIGGER", 0x00, "w", "Write 0 (RUN): commit the programmed job and start it "
             "when the engine is free. Write non-zero (COMMIT): commit only; the job waits for "
             "a later 0 write. Either releases the programming lock.",
             values=(("RUN", 0), ("COMMIT", 1))),
    Register("ACQUIRE", 0x04, "r", "Read: lock the job registers for this core and return the "
             "new job id (0..255); -1 (FULL) when every context holds a job, -2 (LOCKED) when "
             "another core holds the lock.", _word("job_id", "job id or -1 / -2", signed=True),
             values=(("FULL", -1), ("LOCKED", -2))),
    Register("FINISHED", 0x08, "r", "Jobs finished since the last read (saturates at 255); "
             "reading clears it.", (Field("count", 0, 8, "finished jobs"),)),
    Register("STATUS", 0x0C, "r", "Bit c: context c holds a committed job not yet finished; "
             "bit 8: the engine is running.",
             (Field("contexts", 0, 8, "one bit per job context"),
              Field("running", 8, 1, "engine busy"))),
    Register("RUNNING_JOB", 0x10, "r", "Id of the running job, or of the last one run.",
             (Field("job_id", 0, 8, "job id"),)),
    Register("SOFT_CLEAR", 0x14, "w", "Write: abort the running job, drop committed jobs and "
             "clear the engine and streamers. Writing 0 (ALL) also clears the job registers; "
             "non-zero (KEEP_REGISTERS) keeps them.",
             values=(("ALL", 0), ("KEEP_REGISTERS", 1))),
    Register("ERROR", 0x18, "r", "Outcome of the last finished job: 0 when it succeeded, else "
             "the engine's error code (ita.rtl.layouts.ErrorCode) and the job id.",
             (Field("code", 0, 4, "ErrorCode"), Field("job_id", 8, 8, "job id"))),
    Register("SW_EVT", 0x1C, "w", "Write n: pulse software event line n.",
             (Field("event", 0, 3, "event line"),)),
)

_JOB_FIELDS = [
    ("MODE", "Operation and its options.",
     (Field("mode", 0, 2, "0 attention, 1 FFN, 2 linear, 3 QK+AV", config="mode"),
      Field("activation", 2, 2, "0 identity, 1 GELU, 2 ReLU (FFN F1, linear)",
            config="activation"),
      Field("bias_enable", 4, 1, "add the biases", config="bias_enable"),
      Field("causal", 5, 1, "causal attention mask", config="causal"),
      Field("logit_frac", 6, DEFAULT_CONFIG.logit_frac_bits,
            f"ITAmax logit step ln 2 / 2**k, k = 0..{DEFAULT_CONFIG.logit_frac_max} (0: the "
            "reference's)", config="logit_frac"))),
    ("DIMS_SE", "Sequence length S and embedding size E.",
     (Field("seq_len", 0, 16, "S", config="seq_len"),
      Field("embed", 16, 16, "E", config="embed"))),
    ("DIMS_PF", "Projection size P and feed-forward size F.",
     (Field("proj", 0, 16, "P", config="proj"), Field("ffn", 16, 16, "F", config="ffn"))),
    ("VALID_KEYS", "Keys taking part in the softmax; 0 means all S.",
     (Field("valid_keys", 0, 16, "key count", config="valid_keys"),)),
]
for _index, _step in enumerate(REQUANT_STEPS):
    _JOB_FIELDS.append((f"REQUANT_{_step}", f"Requantization of step {_step}"
                        + (" (also the linear layer)" if _step == "Q" else "") + ".",
                        (Field("mult", 0, 8, "multiplier", config=f"requant.{_index}.mult"),
                         Field("shift", 8, 8, "right shift", config=f"requant.{_index}.shift"),
                         Field("add", 16, 8, "offset", True, config=f"requant.{_index}.add"))))
_JOB_FIELDS += [
    ("GELU", "i-GELU constants b and c.",
     (Field("b", 0, 16, "b", True, config="gelu_b"),
      Field("c", 16, 16, "c", True, config="gelu_c"))),
    ("ACT_REQUANT", "Requantization after GELU or ReLU.",
     (Field("mult", 0, 8, "multiplier", config="act_requant.mult"),
      Field("shift", 8, 8, "right shift", config="act_requant.shift"),
      Field("add", 16, 8, "offset", True, config="act_requant.add"))),
]

#: Pointer register -> the tensors (``ita.rtl.schedule`` names) it holds in each mode.
TENSOR_POINTERS = {
    "PTR_Q_IN": ("q_in", "ff_in", "x"),
    "PTR_KV_IN": ("kv_in",),
    "PTR_WQ": ("wq_t", "w1_t", "w_t"),
    "PTR_WK": ("wk_t", "w2_t"),
    "PTR_WV": ("wv_t",),
    "PTR_WO": ("wo_t",),
    "PTR_BQ": ("bq", "b1", "b"),
    "PTR_BK": ("bk", "b2"),
    "PTR_BV": ("bv",),
    "PTR_BO": ("bo",),
    "PTR_QP": ("qp", "f1", "y"),
    "PTR_KP": ("kp", "f2"),
    "PTR_VP": ("vp_t",),
    "PTR_A": ("a",),
    "PTR_O": ("o",),
    "PTR_OUT": ("out",),
}
for _name, _tensors in TENSOR_POINTERS.items():
    _JOB_FIELDS.append((_name, "Byte address of " + " / ".join(_tensors) + ".",
                        _word("address", "byte address, word-aligned")))

JOB = tuple(Register(name, JOB_BASE + WORD_BYTES * i, "rw", doc, fields, job=True)
            for i, (name, doc, fields) in enumerate(_JOB_FIELDS))
REGISTERS = SHARED + JOB


def register(name):
    for r in REGISTERS:
        if r.name == name:
            return r
    raise KeyError(f"no register named {name!r}")


#: The REQUANT_* registers in :data:`REQUANT_STEPS` order; they share one field layout.
REQUANT_REGISTERS = tuple(register(f"REQUANT_{step}") for step in REQUANT_STEPS)
#: The tensor pointer registers in :data:`TENSOR_POINTERS` order (the engine's
#: ``job_pointers`` order).
POINTER_REGISTERS = tuple(register(name) for name in TENSOR_POINTERS)


def pointer_register(tensor):
    """The pointer register that holds ``tensor``."""
    for name, tensors in TENSOR_POINTERS.items():
        if tensor in tensors:
            return register(name)
    raise KeyError(f"no pointer register holds tensor {tensor!r}")
