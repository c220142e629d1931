"""Hidden tests: inception_module and residual_block, built on the grader's inputs and checked by
structure and behaviour in the grader's process."""
import numpy as np
import pytest
from cnn_architectures_support import (
    ACTIVATIONS,
    activation,
    chain_to,
    inputs_of,
    keras_imported,  # noqa: F401 (an autouse fixture)
    kind,
    layers_of,
    pair,
    producer,
    residual_params,
    student_block,
)

# --- inception_module -----------------------------------------------------------------------------

INCEPTION_CASES = [
    pytest.param((28, 28, 192), (64, 96, 128, 16, 32, 32), id="googlenet_3a"),
    pytest.param((9, 7, 10), (3, 4, 5, 2, 6, 7), id="odd_small"),
]


def inception_params(c_in, f1, f3r, f3, f5r, f5, pool_proj) -> int:
    return ((c_in + 1) * f1 + (c_in + 1) * f3r + (9 * f3r + 1) * f3 + (c_in + 1) * f5r + (25 * f5r + 1) * f5
            + (c_in + 1) * pool_proj)


def _call(args) -> str:
    return f"inception_module(x, {', '.join(map(str, args))})"


def _conv_desc(layer) -> str:
    return f"Conv2D {layer.filters}@{pair(layer.kernel_size)[0]}×{pair(layer.kernel_size)[1]}"


def _branch_signature(chain) -> tuple:
    """A branch as (kind, size, filters) of its conv and pool layers, activations left out."""
    sig = []
    for layer in chain:
        if kind(layer) == "Conv2D":
            sig.append(("conv", pair(layer.kernel_size)[0], layer.filters))
        elif kind(layer) == "MaxPooling2D":
            sig.append(("pool", pair(layer.pool_size)[0], None))
        elif kind(layer) not in ACTIVATIONS:
            sig.append((kind(layer), None, None))
    return tuple(sig)


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("inception_module")
@pytest.mark.parametrize("input_shape,args", INCEPTION_CASES)
def test_inception_output_channels(student, input_shape, args):
    model = student_block(student, "inception_module", input_shape, *args)
    f1, _, f3, _, f5, pool_proj = args
    expected = (None, *input_shape[:2], f1 + f3 + f5 + pool_proj)
    shape = tuple(model.output.shape)
    hint = ""
    if shape[-1:] == (f1 + f3 + f5 + input_shape[2],):
        hint = " The pooling branch keeps the input's channels: it needs its 1×1 convolution with pool_proj filters."
    elif shape[1:3] != input_shape[:2]:
        hint = " Every branch must keep the height and width: padding='same', stride 1 (also for the pooling)."
    assert shape == expected, (f"{_call(args)} on an input of shape {input_shape} gives shape {shape}; "
                               f"expected {expected}: the four branches concatenated on the channel axis.{hint}")


@pytest.mark.points(2)
@pytest.mark.category("structure")
@pytest.mark.calls("inception_module")
@pytest.mark.parametrize("input_shape,args", INCEPTION_CASES)
def test_inception_structure(student, input_shape, args):
    model = student_block(student, "inception_module", input_shape, *args)
    f1, f3r, f3, f5r, f5, pool_proj = args
    concat = producer(model.output)
    assert kind(concat) == "Concatenate", (
        f"the module's output must come from a Concatenate layer (layers.Concatenate), not {kind(concat)}")
    assert concat.axis in (-1, 3), (f"the branches must be concatenated on the channel axis (axis=-1), "
                                    f"not axis={concat.axis}")
    start = model.inputs[0]
    branches = [chain_to(t, start) for t in inputs_of(concat)]
    assert len(branches) == 4 and all(branches), (
        f"the Concatenate must join 4 branches, each a chain of layers from the module's input; it joins "
        f"{len(branches)} tensors" + ("" if all(branches) else ", and not all of them come from the input alone"))
    found = sorted(_branch_signature(b) for b in branches)
    wanted = sorted([(("conv", 1, f1),), (("conv", 1, f3r), ("conv", 3, f3)), (("conv", 1, f5r), ("conv", 5, f5)),
                     (("pool", 3, None), ("conv", 1, pool_proj))])
    missing = [w for w in wanted if w not in found]
    reduction = [w for w in missing if len(w) == 2 and w[0] == ("conv", 1, f3r if w[1][1] == 3 else f5r)]
    hint = (" The 3×3 and 5×5 convolutions each run on a 1×1 reduction of the input (f3_reduce, f5_reduce "
            "filters), which is what makes the module affordable.") if reduction else ""
    assert not missing, (f"{_call(args)}: the branches are not the four of GoogLeNet's module (1×1; "
                         f"1×1 then 3×3; 1×1 then 5×5; 3×3 max pool then 1×1).{hint}")
    problems = []
    for layer in (layer for b in branches for layer in b):
        if kind(layer) == "Conv2D":
            if pair(layer.strides) != (1, 1) or (layer.padding != "same" and pair(layer.kernel_size) != (1, 1)):
                problems.append(f"{_conv_desc(layer)} must have stride 1 and padding='same'")
        elif kind(layer) == "MaxPooling2D":
            if pair(layer.strides or layer.pool_size) != (1, 1) or layer.padding != "same":
                problems.append("the 3×3 max pooling must have strides=1 and padding='same'")
    for b in branches:
        convs = [i for i, layer in enumerate(b) if kind(layer) == "Conv2D"]
        for i in convs:
            nxt = b[i + 1] if i + 1 < len(b) else None
            if activation(b[i]) != "relu" and not (nxt is not None and kind(nxt) in ACTIVATIONS
                                                   and activation(nxt) == "relu"):
                problems.append(f"{_conv_desc(b[i])} must be followed by ReLU")
    assert not problems, "; ".join(problems)


@pytest.mark.points(1)
@pytest.mark.category("params")
@pytest.mark.calls("inception_module")
@pytest.mark.parametrize("input_shape,args", INCEPTION_CASES)
def test_inception_params(student, input_shape, args):
    model = student_block(student, "inception_module", input_shape, *args)
    c_in = input_shape[2]
    expected = inception_params(c_in, *args)
    count = model.count_params()
    f1, f3r, f3, f5r, f5, pool_proj = args
    hint = ""
    if count == expected - (c_in + 1) * (f3r + f5r) - 9 * f3r * f3 - 25 * f5r * f5 + 9 * c_in * f3 + 25 * c_in * f5:
        hint = " That is the count without the 1×1 reductions: the 3×3 and 5×5 convolutions run on all input channels."
    elif count == expected - (c_in + 1) * pool_proj:
        hint = " The pooling branch's 1×1 projection is missing."
    assert count == expected, (f"{_call(args)} on {c_in} input channels has {count:,} parameters "
                               f"(count_params()); the module described has {expected:,}: convolutions with biases, "
                               f"no BatchNormalization.{hint}")


# --- residual_block -------------------------------------------------------------------------------

RESIDUAL_CASES = [
    pytest.param((16, 16, 32), 32, 1, id="identity"),
    pytest.param((16, 16, 32), 64, 2, id="projection_stride2"),
    pytest.param((9, 9, 16), 24, 1, id="projection_channels"),
]


def _describe(input_shape, filters, stride) -> str:
    return f"residual_block(x, {filters}, stride={stride}) on an input of shape {input_shape}"


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("residual_block")
@pytest.mark.parametrize("input_shape,filters,stride", RESIDUAL_CASES)
def test_residual_output_shape(student, input_shape, filters, stride):
    model = student_block(student, "residual_block", input_shape, filters, stride)
    expected = (None, -(-input_shape[0] // stride), -(-input_shape[1] // stride), filters)
    shape = tuple(model.output.shape)
    assert shape == expected, (f"{_describe(input_shape, filters, stride)} gives shape {shape}; expected {expected} "
                               "(the first 3×3 convolution carries the stride, padding='same')")


def _shortcut_and_branch(model, where: str):
    """(shortcut chain, branch chain) of the block's Add; AssertionError naming what is missing."""
    adds = [layer for layer in layers_of(model) if kind(layer) == "Add"]
    assert len(adds) == 1, (f"{where} has {len(adds)} Add layers; the block adds its shortcut to its residual "
                            "branch with exactly one layers.Add()")
    start = model.inputs[0]
    chains = [chain_to(t, start) for t in inputs_of(adds[0])]
    assert len(chains) == 2 and all(c is not None for c in chains), (
        f"{where}: the Add must have two inputs, the shortcut and the residual branch, both computed from the "
        "block's input")
    chains.sort(key=lambda c: sum(kind(layer) == "Conv2D" and pair(layer.kernel_size) == (3, 3) for layer in c))
    shortcut, branch = chains
    convs3 = [layer for layer in branch if kind(layer) == "Conv2D" and pair(layer.kernel_size) == (3, 3)]
    assert len(convs3) == 2, (f"{where}: one input of the Add must be the residual branch (two 3×3 convolutions); "
                              f"the other the shortcut. Here the two inputs hold {len(convs3)} and "
                              f"{sum(kind(layer) == 'Conv2D' for layer in shortcut)} convolutions: is the shortcut "
                              "really the block's input (or its projection)?")
    return adds[0], shortcut, branch


@pytest.mark.points(2)
@pytest.mark.category("structure")
@pytest.mark.calls("residual_block")
@pytest.mark.parametrize("input_shape,filters,stride", RESIDUAL_CASES)
def test_residual_shortcut(student, input_shape, filters, stride):
    where = _describe(input_shape, filters, stride)
    model = student_block(student, "residual_block", input_shape, filters, stride)
    add, shortcut, branch = _shortcut_and_branch(model, where)
    changes = stride != 1 or input_shape[2] != filters
    convs = [layer for layer in shortcut if kind(layer) == "Conv2D"]
    if not changes:
        assert not shortcut, (f"{where}: the shape does not change, so the shortcut is the block's input itself "
                              f"(identity); yours passes through {', '.join(kind(x) for x in shortcut)}. A "
                              "projection is only for a change of shape")
    else:
        assert len(convs) == 1 and all(kind(x) in ("Conv2D", "BatchNormalization") for x in shortcut), (
            f"{where}: the shape changes, so the shortcut is a projection: one 1×1 Conv2D (then BatchNormalization); "
            f"yours is {', '.join(kind(x) for x in shortcut) or 'the input itself'}")
        conv = convs[0]
        assert (pair(conv.kernel_size) == (1, 1) and conv.filters == filters
                and pair(conv.strides) == (stride, stride)), (
            f"{where}: the projection must be a 1×1 Conv2D with {filters} filters and strides={stride}; yours has "
            f"{conv.filters} filters of {pair(conv.kernel_size)} with strides {pair(conv.strides)}")
    first = next(layer for layer in branch if kind(layer) == "Conv2D")
    assert pair(first.strides) == (stride, stride), (
        f"{where}: the branch's first 3×3 convolution must have strides={stride}")
    out = producer(model.output)
    assert kind(out) in ACTIVATIONS and activation(out) == "relu" and inputs_of(out)[0] is add.output, (
        f"{where}: the block ends with a ReLU applied to the sum (Add, then ReLU)")


@pytest.mark.points(1)
@pytest.mark.category("params")
@pytest.mark.calls("residual_block")
@pytest.mark.parametrize("input_shape,filters,stride", RESIDUAL_CASES)
def test_residual_params(student, input_shape, filters, stride):
    model = student_block(student, "residual_block", input_shape, filters, stride)
    c_in = input_shape[2]
    changes = stride != 1 or c_in != filters
    count = model.count_params()
    expected = residual_params(c_in, filters, changes)
    hint = ""
    if count in residual_params(c_in, filters, not changes):
        hint = (" That count is the block with a projection shortcut: use the identity when the shape does not "
                "change." if not changes else " That count is the block without its 1×1 projection shortcut.")
    assert count in expected, (
        f"{_describe(input_shape, filters, stride)} has {count:,} parameters (count_params()); the basic block "
        f"described has {min(expected):,} (two 3×3 convolutions with BatchNormalization"
        f"{', a 1×1 projection' if changes else ''}).{hint}")


@pytest.mark.points(2)
@pytest.mark.category("value")
@pytest.mark.calls("residual_block")
def test_residual_identity_with_zero_branch(student, rng):
    input_shape, filters = (8, 8, 16), 16
    model = student_block(student, "residual_block", input_shape, filters, 1)
    for weight in model.weights:
        weight.assign(np.zeros(weight.shape, dtype=weight.dtype))
    x = rng.random((3, *input_shape), dtype=np.float32) + 0.1  # non-negative, as after a ReLU
    import keras
    out = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))
    assert out.shape == x.shape, f"an identity block maps shape {x.shape} to {out.shape}"
    hint = ""
    if any(kind(layer) == "Conv2D" and pair(layer.kernel_size) == (1, 1) for layer in layers_of(model)):
        hint = (" The shortcut passes through a 1×1 projection, whose zeroed weights silence it too: when the shape "
                "does not change, the shortcut is x itself.")
    elif np.allclose(out, 0.0, atol=1e-6):
        hint = " The output is zero: the input is not added back (y = ReLU(F(x) + x))."
    assert np.allclose(out, x, rtol=1e-5, atol=1e-5), (
        "with every weight of the residual branch set to zero, an identity block must return its (non-negative) "
        f"input unchanged: F(x) = 0, so ReLU(F(x) + x) = x.{hint}")
