"""A job for the ITA HWPE as software sees it: a memory image and register writes.

The job itself is the engine's (:mod:`ita.rtl.job`: ``EngineJob`` and its ``TensorMemory``);
this adds only what the HWPE puts on top: every tensor placed in a flat byte memory,
row-major and padded as the streamers expect (int8 matrices with their padded pitch, the
one-dimensional biases as int32 words), and the job-register writes that describe the job.
The register values come from the one register map (:mod:`cluster_integration.hwpe.regmap`).
"""

from dataclasses import dataclass

import numpy as np

from cluster_integration.hwpe import regmap
from ita.rtl.layouts import Mode
from ita.rtl.schedule import tensor_shapes

__all__ = ["Placement", "layout_tensors", "memory_image", "job_register_writes",
           "read_tensor", "BIAS_TENSORS"]

#: Bytes per element in memory: a bias (a vector in the job model) is an int32 word.
BIAS_BYTES, INT8_BYTES = 4, 1


def element_bytes(shape) -> int:
    return BIAS_BYTES if len(shape) == 1 else INT8_BYTES


#: The bias tensors of every mode, as the schedule names them.
BIAS_TENSORS = tuple(sorted({name for mode in Mode for name, shape in
                             tensor_shapes(mode, S=1, E=1, P=1, F=1).items()
                             if element_bytes(shape) == BIAS_BYTES}))


@dataclass(frozen=True)
class Placement:
    address: int
    shape: tuple
    element_bytes: int

    @property
    def size(self):
        return int(np.prod(self.shape)) * self.element_bytes


def layout_tensors(memory, *, base=0, align=128, rng=None):
    """Assign consecutive, ``align``-ed addresses to the tensors of ``memory``; with ``rng``
    (a ``random.Random``) each tensor starts a random number of words past its aligned slot
    (the pointer registers take any word-aligned address)."""
    placements, address = {}, base
    for name in sorted(memory.tensors):
        shape = memory.tensors[name].shape
        offset = rng.randrange(0, align, 4) if rng is not None else 0
        placements[name] = Placement(address + offset, shape, element_bytes(shape))
        address += -(-(placements[name].size + offset) // align) * align
    return placements


def memory_image(memory, placements, size):
    """A uint8 memory of ``size`` bytes holding every input tensor (outputs stay 0)."""
    image = np.zeros(size, dtype=np.uint8)
    for name, place in placements.items():
        if place.address + place.size > size:
            raise ValueError(f"tensor {name} does not fit a {size}-byte memory")
        if name in memory.written:
            continue
        dtype = np.int32 if place.element_bytes == BIAS_BYTES else np.int8
        raw = np.asarray(memory.tensors[name]).astype(dtype).tobytes()
        image[place.address:place.address + place.size] = np.frombuffer(raw, np.uint8)
    return image


def read_tensor(image, place):
    """The int8 tensor at ``place`` (padded shape) from a memory image."""
    raw = np.asarray(image[place.address:place.address + place.size], dtype=np.uint8)
    return raw.view(np.int8).reshape(place.shape).astype(np.int64)


def job_register_writes(job, placements, fields=None):
    """(byte offset, 32-bit value) for every job register of ``job``; ``fields`` overrides
    the engine configuration fields (an illegal configuration on purpose)."""
    fields = job.config_fields() if fields is None else fields
    writes = []
    for reg in regmap.JOB:
        if reg.name in regmap.TENSOR_POINTERS:
            held = [t for t in regmap.TENSOR_POINTERS[reg.name] if t in placements]
            value = placements[held[0]].address if held else 0
        else:
            value = 0
            for f in reg.fields:
                value |= (int(fields[f.config]) & ((1 << f.width) - 1)) << f.lsb
        writes.append((reg.offset, value))
    return writes
