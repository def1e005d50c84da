"""What every harness shares: free inputs, the reset it does without, tampered wrappers."""

from amaranth import Module, ResetSignal, Value
from amaranth.asserts import AnySeq
from amaranth.hdl import Assume, Fragment
from amaranth.lib import wiring

__all__ = ["CORES", "ID_WIDTH", "drive_freely", "no_reset", "passthrough", "Tampered",
           "Internals"]

#: Every harness has the smallest cluster that still has a second core to compete.
CORES = 2
#: The binary core index on register ports.
ID_WIDTH = (CORES - 1).bit_length()


def _ports(component, flow):
    for path, member, value in component.signature.flatten(component):
        if member.flow == flow:
            yield path, Value.cast(value)


def drive_freely(m: Module, component, *, skip=()):
    """Every input of ``component`` (outside ``skip``, paths as tuples) a new value each step."""
    for path, value in _ports(component, wiring.In):
        if path not in skip:
            m.d.comb += value.eq(AnySeq(len(value)))


def no_reset(m: Module):
    """The run starts from the init values and never resets: a reset would only restart
    block and shadow state together."""
    m.d.comb += Assume(~ResetSignal())


def passthrough(m: Module, outer, inner, *, skip=()):
    """Connect every port of ``outer`` to the same port of ``inner``, except ``skip``."""
    flows = {wiring.In: lambda o, i: i.eq(o), wiring.Out: lambda o, i: o.eq(i)}
    for flow, connect in flows.items():
        for (path, o), (_, i) in zip(_ports(outer, flow), _ports(inner, flow), strict=True):
            if path not in skip:
                m.d.comb += connect(o, i)


class Tampered(wiring.Component):
    """A deliberately broken block: ``inner`` with the same ports, all passed through except
    the ``skip`` paths, which ``tamper(m, outer, inner)`` drives."""

    def __init__(self, inner, tamper, skip):
        self._inner, self._tamper, self._skip = inner, tamper, frozenset(skip)
        super().__init__(inner.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self._inner
        passthrough(m, self, self._inner, skip=self._skip)
        self._tamper(m, self, self._inner)
        return m


class Internals:
    """The block elaborated once, so that a harness can state induction invariants over its
    internal registers (found by name, shallowest first: a wrapper's inner block counts).

    Add :attr:`fragment` as the submodule in place of the block. The search walks the
    assignments with Amaranth's ``_lhs_signals``, the one private call of these harnesses.
    """

    def __init__(self, block, platform=None):
        self.fragment = Fragment.get(block, platform)

    def __getitem__(self, name):
        level = [self.fragment]
        while level:
            for fragment in level:
                for statements in fragment.statements.values():
                    for statement in statements:
                        for signal in statement._lhs_signals():
                            if signal.name == name:
                                return signal
            level = [sub for fragment in level for sub, *_ in fragment.subfragments]
        raise KeyError(f"the block has no signal named {name!r}: its internals changed, "
                       "update the harness invariants")
