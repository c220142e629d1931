"""Hidden tests: build_lenet5 — structure and parameters (shared tests: test_keras_models_common.py)."""
import pytest
from keras_models_support import (
    ACTIVATION_LAYERS,
    DROPOUT_LAYERS,
    LENET_PARAMS,
    LENET_SLIPS,
    LENET_TYPES,
    arrow,
    final_activation,
    flat_layers,
    kind,
    lenet_expected_per_layer,
    pair,
    student_model,
)


@pytest.mark.points(2)
@pytest.mark.category("structure")
@pytest.mark.calls("build_lenet5")
def test_lenet_layers(student):
    model = student_model(student, "build_lenet5")
    layers_ = flat_layers(model)
    extra = [f"{l.name} ({kind(l)})" for l in layers_
             if kind(l) not in set(LENET_TYPES) | set(ACTIVATION_LAYERS) | set(DROPOUT_LAYERS)]
    core = [l for l in layers_ if kind(l) in set(LENET_TYPES)]
    assert not extra, f"LeNet-5 has no layers of these kinds: {', '.join(extra)}"
    assert [kind(l) for l in core] == LENET_TYPES, (
        f"LeNet-5's layers are {arrow(LENET_TYPES)}; yours are {arrow([kind(l) for l in core])}")
    conv1, pool1, conv2, pool2, _, d1, d2, d3 = core
    problems = []
    for conv, filters, padding in ((conv1, 6, "same"), (conv2, 16, "valid")):
        which = "first" if conv is conv1 else "second"
        if conv.filters != filters or pair(conv.kernel_size) != (5, 5):
            problems.append(f"the {which} convolution has {conv.filters} filters of {pair(conv.kernel_size)}; "
                            f"expected {filters} filters of (5, 5)")
        if conv.padding != padding:
            problems.append(f"the {which} convolution uses padding='{conv.padding}'; expected '{padding}'")
        if pair(conv.strides) != (1, 1) or pair(conv.dilation_rate) != (1, 1):
            problems.append(f"the {which} convolution must have strides 1 and no dilation")
    for pool in (pool1, pool2):
        strides = pair(pool.strides) if pool.strides is not None else pair(pool.pool_size)
        if pair(pool.pool_size) != (2, 2) or strides != (2, 2):
            problems.append(f"{pool.name} pools {pair(pool.pool_size)} with strides {strides}; expected 2×2, stride 2")
    for dense, units in ((d1, 120), (d2, 84)):
        if dense.units != units:
            problems.append(f"the hidden Dense layers have {d1.units} and {d2.units} units; expected 120 and 84")
            break
    if final_activation(layers_) != "softmax":
        problems.append(f"the output activation is {final_activation(layers_)}; expected softmax")
    assert not problems, "; ".join(problems)


@pytest.mark.points(2)
@pytest.mark.category("params")
@pytest.mark.calls("build_lenet5")
def test_lenet_param_count(student):
    model = student_model(student, "build_lenet5")
    count = model.count_params()
    if count == LENET_PARAMS:
        return
    message = f"build_lenet5() has {count:,} parameters; LeNet-5 has {LENET_PARAMS:,}. "
    if count in LENET_SLIPS:
        message += f"This count means {LENET_SLIPS[count]}."
    else:
        core = [l for l in flat_layers(model) if l.weights]
        expected = [p for p in lenet_expected_per_layer() if p]
        if len(core) == len(expected):
            for layer, want in zip(core, expected):
                if layer.count_params() != want:
                    message += (f"The first layer that differs is {layer.name} ({kind(layer)}) with "
                                f"{layer.count_params():,} parameters instead of {want:,}.")
                    break
        else:
            message += (f"It has {len(core)} layers with parameters; LeNet-5 has {len(expected)} "
                        "(2 Conv2D, 3 Dense).")
    raise AssertionError(message)
