"""Weights kept in off-chip L3: the compiler's placement, its cost model and a run that reads
every constant over the L3 link, bit-exact."""

import re

import numpy as np
import pytest

from ita.cluster_config import DEFAULT
from ita.deploy import CompileError, RandomEncoder, compile_model
from ita.deploy.target import ClusterSpec
from verif.cluster.encoder import cluster_spec, run_layer, shape_for

L3 = DEFAULT.region("L3")


@pytest.fixture(scope="module")
def tiny():
    model, _x = RandomEncoder(shape_for("tiny"), 2).draw()
    return model


def test_constants_move_to_l3_and_only_constants(tiny):
    in_l2 = compile_model(tiny, cluster_spec())
    in_l3 = compile_model(tiny, cluster_spec(weights="l3"))
    tensors = in_l3.manifest["l2"]
    consts = {n for n, t in tensors.items() if t["role"] == "const"}
    assert consts and all(tensors[n]["memory"] == "l3" for n in consts)
    assert all(t["memory"] == "l2" for n, t in tensors.items() if n not in consts)
    for name in consts:
        address, size = tensors[name]["address"], tensors[name]["bytes"]
        assert L3.base <= address and address + size <= L3.end, name
    # The L3 image holds exactly the bytes the L2 image held for every constant.
    l2_data = in_l2.manifest["l2_data"]["address"]
    for name in consts:
        old = in_l2.manifest["l2"][name]["address"] - l2_data
        new = tensors[name]["address"] - L3.base
        size = tensors[name]["bytes"]
        assert in_l3.l3_image[new:new + size] == in_l2.image[old:old + size], name
    assert len(in_l3.image) < len(in_l2.image) and not in_l2.l3_image
    assert in_l3.manifest["weights"] == "l3"
    # Every load from a constant reads L3: the C's source addresses lie in L3.
    loads = re.findall(r"dl_dma\([^,]+, \(void \*\)(0x[0-9a-f]+)u.*/\* load (\w+) ->",
                       in_l3.c_source)
    assert {name for _, name in loads} >= consts
    for address, name in loads:
        assert (L3.base <= int(address, 16) < L3.end) == (name in consts), name


def test_cost_model_charges_the_slower_link(tiny):
    l2 = compile_model(tiny, cluster_spec()).manifest["estimate"]
    l3 = compile_model(tiny, cluster_spec(weights="l3")).manifest["estimate"]
    spec = cluster_spec()
    ratio = spec.rate("l2") / spec.rate("l3")
    assert ratio > 5
    # The constants dominate the tiny layer's traffic, so its DMA time grows several-fold.
    assert l3["dma"] > 3 * l2["dma"] and l3["cycles"] > l2["cycles"]


def test_engine_speed_beside_a_transfer_follows_the_arbitration():
    spec = ClusterSpec.for_cluster(DEFAULT)
    won, window = DEFAULT.l1_starvation_window
    assert spec.engine_speed_beside_dma == won / window


def test_unknown_weight_home_is_refused():
    with pytest.raises(ValueError, match="weights must be one of l2, l3"):
        ClusterSpec(weights="l4")


def test_l3_too_small_is_a_compile_error(tiny):
    with pytest.raises(CompileError, match="B of L3 data, but L3 holds 1024 B"):
        compile_model(tiny, ClusterSpec(weights="l3", l3_size=1024))


def test_tiny_layer_with_weights_in_l3_is_bit_exact(tmp_path):
    status, result, output, _breakdown, prepared = run_layer(tmp_path, model="tiny", seed=4,
                                                             weights="l3")
    assert prepared.l3_hex is not None and prepared.l3_hex.stat().st_size > 0
    assert re.search(r"check: tensor=out elements=4096 mismatches=0", output), output[-2000:]
    assert status == "PASS", output[-2000:]
    assert result["weights"] == "l3"
    # Every weight byte crossed the link: the program's DMA bytes include the L3 image.
    consts = sum(t["bytes"] for t in prepared.program.manifest["l2"].values()
                 if t["memory"] == "l3")
    assert result["dma_bytes"] >= consts
    assert np.count_nonzero(np.frombuffer(prepared.program.l3_image, np.uint8)) > 0


def test_plan_with_weights_in_l3_matches_the_integer_model():
    from verif.deploy.execute import check_plan

    model, x = RandomEncoder(shape_for("tiny"), 3).draw()
    program = compile_model(model, cluster_spec(weights="l3"))
    assert check_plan(program, model, x) is None
