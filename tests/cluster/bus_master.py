"""A blocking bus-master access for register-slave tests (TCDM or peripheral port)."""

WORD_MASK = (1 << 32) - 1
ALL_BYTES = 0xF


class Blocked(AssertionError):
    """The slave withheld the grant for longer than the test allows."""


async def access(ctx, port, address, *, write=False, data=0, be=ALL_BYTES, id=None,
                 timeout=1000):
    """One access on ``port``; returns ``(r_data, cycles)``, ``cycles`` being the cycles spent
    waiting for the grant. The request is held, unchanged, until granted (bus protocol), and
    the response must come exactly one cycle after the grant (with ``r_id`` when ``id`` is
    given)."""
    ctx.set(port.req, 1)
    ctx.set(port.addr, address)
    ctx.set(port.we, int(write))
    ctx.set(port.wdata, data & WORD_MASK)
    ctx.set(port.be, be)
    if id is not None:
        ctx.set(port.id, id)
    cycles = 0
    while True:
        _, _, granted = await ctx.tick().sample(port.gnt)
        if granted:
            break
        cycles += 1
        if cycles > timeout:
            raise Blocked(f"no grant for {cycles} cycles at {address:#x}")
    ctx.set(port.req, 0)
    assert ctx.get(port.r_valid), "no response one cycle after the grant"
    if id is not None:
        assert ctx.get(port.r_id) == id
    return ctx.get(port.r_data), cycles


def encode(register, **values):
    """The word of ``register`` holding the given field values."""
    word = 0
    fields = {f.name: f for f in register.fields}
    for field_name, value in values.items():
        field = fields[field_name]
        word |= (value << field.lsb) & field.mask
    return word
