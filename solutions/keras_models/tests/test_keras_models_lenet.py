"""Hidden tests: build_lenet5 — structure and parameters (shared tests: test_keras_models_common.py)."""
import pytest
from keras_models_support import (
    ACTIVATION_LAYERS,
    DROPOUT_LAYERS,
    LENET_PARAMS,
    LENET_POOLS,
    LENET_SLIPS,
    LENET_TYPES,
    arrow,
    effective_padding,
    final_activation,
    flat_layers,
    keras_imported,  # noqa: F401 (an autouse fixture)
    kind,
    lenet_expected_per_layer,
    lenet_kind,
    padding_layers,
    pair,
    student_model,
)


@pytest.mark.points(2)
@pytest.mark.category("structure")
@pytest.mark.calls("build_lenet5")
def test_lenet_layers(student):
    model = student_model(student, "build_lenet5")
    layers_ = flat_layers(model)
    paddings = padding_layers(layers_)
    extra = [f"{l.name} ({kind(l)})" for i, l in enumerate(layers_) if i not in paddings
             and kind(l) not in {*LENET_TYPES, *LENET_POOLS, *ACTIVATION_LAYERS, *DROPOUT_LAYERS}]
    assert not extra, f"LeNet-5 has no layers of these kinds: {', '.join(extra)}"
    core = [i for i, l in enumerate(layers_) if lenet_kind(l) in LENET_TYPES]
    kinds = [lenet_kind(layers_[i]) for i in core]
    assert kinds == LENET_TYPES, (
        f"LeNet-5's layers are {arrow(LENET_TYPES)} (pooling: MaxPooling2D or AveragePooling2D); yours are "
        f"{arrow([kind(layers_[i]) for i in core])}")
    conv1, pool1, conv2, pool2, _, d1, d2, d3 = (layers_[i] for i in core)
    problems = []
    for index, filters, padding in ((core[0], 6, "same"), (core[2], 16, "valid")):
        conv = layers_[index]
        which = "first" if conv is conv1 else "second"
        if conv.filters != filters or pair(conv.kernel_size) != (5, 5):
            problems.append(f"the {which} convolution has {conv.filters} filters of {pair(conv.kernel_size)}; "
                            f"expected {filters} filters of (5, 5)")
        if effective_padding(layers_, index) != padding:
            problems.append(f"the {which} convolution uses padding='{conv.padding}'; expected '{padding}'"
                            + (" (or ZeroPadding2D(2) followed by padding='valid')" if padding == "same" else ""))
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
