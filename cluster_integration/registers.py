"""Register blocks: the description types every peripheral's map is written in, and the
Amaranth helpers that turn such a map into a register slave.

A peripheral describes its registers once as a tuple of :class:`Register` (the HWPE in
:mod:`cluster_integration.hwpe.regmap`, the cluster peripherals in
:mod:`cluster_integration.memory_map`); headers, docs and testbench constants are generated
from the same tuples. The RTL reads offsets and field positions from them through
:class:`RegisterDecoder` and :func:`read_mux`, so that no slave restates a bit position.

Registers are 32-bit words at word-aligned byte offsets; a slave decodes only the word-index
bits of its window, so the window repeats above them.
"""

from dataclasses import dataclass

from amaranth import Cat, Module, Signal

__all__ = ["WORD_BYTES", "WORD_BITS", "BYTE_BITS", "BYTE_OFFSET_BITS", "Field", "Register",
           "field_bits", "field_value", "window_bits", "region_window_bits", "RegisterDecoder",
           "read_mux"]

BYTE_BITS = 8
WORD_BYTES = 4
WORD_BITS = WORD_BYTES * BYTE_BITS
#: Address bits below the word index.
BYTE_OFFSET_BITS = (WORD_BYTES - 1).bit_length()


@dataclass(frozen=True)
class Field:
    """A bit field; ``config`` names the engine configuration member it programs."""

    name: str
    lsb: int
    width: int
    doc: str
    signed: bool = False
    config: str | None = None

    @property
    def mask(self):
        """The field's bits in place in the register word."""
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    """A 32-bit register at byte ``offset``; ``access`` is "r", "w" or "rw"."""

    name: str
    offset: int
    access: str
    doc: str
    fields: tuple = ()
    job: bool = False  # a per-context job register (HWPE)
    #: Named whole-word values software writes or reads, ``((name, value), ...)``.
    values: tuple = ()

    @property
    def word(self):
        """Word index of the register in its block: what a slave decodes."""
        return self.offset // WORD_BYTES

    @property
    def mask(self):
        """The bits some field covers; the others read 0."""
        mask = 0
        for field in self.fields:
            mask |= field.mask
        return mask

    def value(self, name):
        """The named word value (see ``values``)."""
        return dict(self.values)[name]

    def field(self, name=None):
        """The field called ``name``; without a name, the register's only field."""
        if name is None:
            (only,) = self.fields
            return only
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"register {self.name} has no field {name!r}")


def field_bits(value, field):
    """The bits of ``field`` in a register word ``value`` (assignable when ``value`` is)."""
    return value[field.lsb:field.lsb + field.width]


def field_value(value, field):
    """:func:`field_bits`, read as signed when the field is."""
    bits = field_bits(value, field)
    return bits.as_signed() if field.signed else bits


def window_bits(registers):
    """Word-index bits that tell ``registers`` apart: enough for the highest one."""
    return max(r.word for r in registers).bit_length()


def region_window_bits(size):
    """Word-index bits of a register region of ``size`` bytes: a slave decoding them answers
    across its whole region, and its registers repeat inside it."""
    return (size // WORD_BYTES - 1).bit_length()


class RegisterDecoder:
    """Which register a request on a register port (``req``, ``addr``, ``we``, ``be``,
    ``wdata``: a TCDM or peripheral port) addresses. ``window_bits`` word-index bits above the
    byte offset are decoded; ``None`` decodes every address bit above it."""

    def __init__(self, port, window_bits=None):
        self.port = port
        top = None if window_bits is None else BYTE_OFFSET_BITS + window_bits
        #: The decoded word index.
        self.word = port.addr[BYTE_OFFSET_BITS:top]
        #: ``be`` widened to one bit per data bit.
        self.byte_mask = Cat(bit.replicate(BYTE_BITS) for bit in port.be)
        #: The written word with the bytes outside ``be`` zeroed.
        self.written = port.wdata & self.byte_mask

    def selects(self, register):
        """The address names ``register``, whether or not a request is made."""
        return self.word == register.word

    def reads(self, register):
        return self.port.req & ~self.port.we & self.selects(register)

    def writes(self, register):
        return self.port.req & self.port.we & self.selects(register)

    def merged(self, stored, field=None):
        """``stored`` with the written bytes replaced: of the whole word, or of ``field``
        (``stored`` then holds just that field)."""
        mask, data = self.byte_mask, self.port.wdata
        if field is not None:
            mask, data = field_bits(mask, field), field_bits(data, field)
        return (stored & ~mask) | (data & mask)


def read_mux(m: Module, word, contents, *, name="read_value"):
    """A word-wide signal holding what a read of register ``word`` returns.

    ``contents`` maps each readable :class:`Register` to its value: a whole word, or
    ``{field: value}`` placed at the field positions; bits no value covers, and registers
    not in ``contents``, read 0.
    """
    read_value = Signal(WORD_BITS, name=name)
    with m.Switch(word):
        for register, value in contents.items():
            with m.Case(register.word):
                if isinstance(value, dict):
                    m.d.comb += [field_bits(read_value, field).eq(part)
                                 for field, part in value.items()]
                else:
                    m.d.comb += read_value.eq(value)
    return read_value
