"""Hidden tests: build_vgg — structure and parameter bound (shared tests: test_keras_models_common.py)."""
import pytest
from keras_models_support import (
    arrow,
    conv_relu,
    effective_padding,
    final_activation,
    flat_layers,
    input_shape,
    keras_imported,  # noqa: F401 (an autouse fixture)
    kind,
    output_shape,
    pair,
    spatial,
    student_model,
    vgg_blocks,
)

MAX_PARAMS = 5_000_000


@pytest.mark.points(2)
@pytest.mark.category("structure")
@pytest.mark.calls("build_vgg")
def test_vgg_conv_layers(student):
    model = student_model(student, "build_vgg")
    layers_ = flat_layers(model)
    others = [f"{l.name} ({kind(l)})" for l in layers_ if "Conv" in kind(l) and kind(l) != "Conv2D"]
    assert not others, f"the VGG uses plain Conv2D layers only; found {', '.join(others)}"
    convs = [i for i, l in enumerate(layers_) if kind(l) == "Conv2D"]
    assert convs, "the model has no Conv2D layer"
    problems = []
    for i in convs:
        conv = layers_[i]
        wrong = []
        if pair(conv.kernel_size) != (3, 3):
            wrong.append(f"kernel {pair(conv.kernel_size)}")
        if pair(conv.strides) != (1, 1):
            wrong.append(f"strides {pair(conv.strides)}")
        if effective_padding(layers_, i) != "same":
            wrong.append(f"padding='{conv.padding}'")
        if pair(conv.dilation_rate) != (1, 1):
            wrong.append(f"dilation {pair(conv.dilation_rate)}")
        if not conv_relu(layers_, i):
            wrong.append("no ReLU after it")
        if wrong:
            problems.append(f"{conv.name}: {', '.join(wrong)}")
    assert not problems, (
        f"every VGG convolution is 3×3, stride 1, padding='same' (or ZeroPadding2D(1) then padding='valid'), "
        f"followed by ReLU (activation='relu', or an "
        f"Activation('relu')/ReLU layer, possibly after BatchNormalization). {len(problems)} of your "
        f"{len(convs)} are not: " + "; ".join(problems[:4]) + (" ..." if len(problems) > 4 else ""))


@pytest.mark.points(2)
@pytest.mark.category("structure")
@pytest.mark.calls("build_vgg")
def test_vgg_blocks(student):
    model = student_model(student, "build_vgg")
    layers_ = flat_layers(model)
    blocks, head, problems = vgg_blocks(layers_)
    assert not problems, "; ".join(problems)
    full = [b for b in blocks if len(b["convs"]) >= 2]
    assert len(blocks) >= 3 and len(full) == len(blocks), (
        f"a VGG has at least 3 blocks of at least 2 Conv2D layers followed by a 2×2 max pool; yours has "
        f"{len(blocks)} pooling layer(s) with {[len(b['convs']) for b in blocks]} convolutions before each")
    for n, block in enumerate(blocks, 1):
        pool = block["pool"]
        strides = pair(pool.strides) if pool.strides is not None else pair(pool.pool_size)
        assert kind(pool) == "MaxPooling2D" and pair(pool.pool_size) == (2, 2) and strides == (2, 2), (
            f"block {n} ends with {pool.name} ({kind(pool)}, pool {pair(pool.pool_size)}, strides {strides}); "
            "expected MaxPooling2D 2×2 with stride 2")
        size_in, size_out = spatial(input_shape(block["layers"][0])), spatial(output_shape(pool))
        assert tuple(s // 2 for s in size_in) == size_out, (
            f"block {n} maps {size_in} to {size_out}; each block must halve the height and width "
            "(3×3 'same' convolutions keep the size, the 2×2 pool halves it)")
    filters = [c.filters for b in blocks for c in b["convs"]]
    assert all(a <= b for a, b in zip(filters, filters[1:])), (
        f"the filter counts must never decrease from block to block (e.g. 32, 64, 128); yours are {filters}")
    kinds = [kind(l) for l in head]
    assert kinds and kinds[0] in ("Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D"), (
        f"after the last block comes Flatten or GlobalAveragePooling2D; yours continues with {arrow(kinds[:3])}")
    allowed = {"Dense", "Dropout", "BatchNormalization", "Activation", "ReLU", "Softmax"}
    odd = [f"{l.name} ({kind(l)})" for l in head[1:] if kind(l) not in allowed]
    assert not odd and "Dense" in kinds, (
        f"the classifier is Dense layers (with Dropout/BatchNormalization if you like) ending in a softmax; "
        f"yours is {arrow(kinds)}")
    assert final_activation(layers_) == "softmax", (
        f"the output activation is {final_activation(layers_)}; expected softmax")


@pytest.mark.points(1)
@pytest.mark.category("params")
@pytest.mark.calls("build_vgg")
def test_vgg_param_bound(student):
    model = student_model(student, "build_vgg")
    count = model.count_params()
    assert count <= MAX_PARAMS, (
        f"build_vgg() has {count:,} parameters; at most {MAX_PARAMS:,} are allowed. Flatten on large feature "
        "maps feeding a wide Dense layer is the usual cause: add a block, use fewer Dense units, or use "
        "GlobalAveragePooling2D")
