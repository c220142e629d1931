"""Hidden tests: layer_table (shapes, parameters, receptive fields and jumps, multiply-adds) on AlexNet,
VGG-16 and hidden stacks; stack_of_3x3; reduction_savings."""
import math
import numbers

import pytest
from cnn_architectures_support import (
    MISTAKES,
    first_difference,
    keras_imported,  # noqa: F401 (an autouse fixture)
    table_column,
    variant_table,
)

from grader.testing.checks import Mismatch


def conv(filters, kernel, stride=1, padding="valid", **extra):
    return {"type": "conv", "filters": filters, "kernel": kernel, "stride": stride, "padding": padding, **extra}


def pool(kernel, stride, padding="valid"):
    return {"type": "pool", "kernel": kernel, "stride": stride, "padding": padding}


FLATTEN = {"type": "flatten"}


def dense(units, **extra):
    return {"type": "dense", "units": units, **extra}


ALEXNET = [conv(96, 11, 4), pool(3, 2), conv(256, 5, 1, "same"), pool(3, 2), conv(384, 3, 1, "same"),
           conv(384, 3, 1, "same"), conv(256, 3, 1, "same"), pool(3, 2), FLATTEN, dense(4096), dense(4096),
           dense(1000)]
VGG16 = [layer for filters, n in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
         for layer in [conv(filters, 3, 1, "same")] * n + [pool(2, 2)]] + [FLATTEN, dense(4096), dense(4096),
                                                                           dense(1000)]
CASES = [
    pytest.param(ALEXNET, (227, 227, 3), id="alexnet"),
    pytest.param(VGG16, (224, 224, 3), id="vgg16"),
    # odd, non-square sizes, strides that do not divide them, a 'same' pool, a layer without bias
    pytest.param([conv(12, 7, 3), pool(3, 2, "same"), conv(20, 3, 1, "same", bias=False), FLATTEN, dense(10)],
                 (37, 29, 5), id="odd_sizes_strides"),
    # 'same' with stride 2 on odd sizes, then 'valid' after it
    pytest.param([conv(8, 5, 2, "same"), conv(16, 3, 2, "same"), pool(2, 2), conv(32, 3, 1, "valid"), FLATTEN,
                  dense(7), dense(3, bias=False)], (33, 35, 3), id="same_stride2_odd"),
    # dilated convolutions, 'valid' and 'same'
    pytest.param([conv(6, 3, 1, "valid", dilation=2), conv(6, 3, 2, "same", dilation=3), pool(2, 2),
                  conv(10, 3, 1, "valid", dilation=2), FLATTEN, dense(5)], (30, 31, 4), id="dilation"),
]
COLUMN_MISTAKES = {
    "output_shape": ("same_as_valid", "dilation_ignored"),
    "params": ("bias_forgotten", "conv_bias_forgotten", "same_as_valid", "dilation_ignored"),
    "receptive_field": ("jump_not_multiplied", "field_grows_by_k", "dilation_ignored"),
    "macs": ("same_as_valid", "dilation_ignored"),
}


def check_column(student, reference, specs, input_shape, *columns):
    """The student's columns equal the reference's; a failure names the mistake that gives them, if any."""
    rows = student.layer_table(specs, input_shape)
    actual = [table_column(rows, c, len(specs)) for c in columns]
    expected = [table_column(reference.layer_table(specs, input_shape), c, len(specs)) for c in columns]
    if actual == expected:
        return
    what = " and ".join(columns)
    name = next(i for i, (a, e) in enumerate(zip(actual, expected)) if a != e)
    where = first_difference(actual[name], expected[name], specs)
    message = f"layer_table's {columns[name]} is wrong for input {input_shape}, first at {where}"
    for mistake in COLUMN_MISTAKES[columns[0]]:
        variant = variant_table(specs, input_shape, mistake)
        if actual == [[row[c] for row in variant] for c in columns]:
            raise Mismatch(message + ".", MISTAKES[mistake])
    raise Mismatch(message + f" (checked: {what}).")


@pytest.mark.points(1)
@pytest.mark.category("shape")
@pytest.mark.calls("layer_table")
@pytest.mark.parametrize("specs,input_shape", CASES)
def test_layer_table_shapes(student, reference, specs, input_shape):
    check_column(student, reference, specs, input_shape, "output_shape")


@pytest.mark.points(1)
@pytest.mark.category("params")
@pytest.mark.calls("layer_table")
@pytest.mark.parametrize("specs,input_shape", CASES)
def test_layer_table_params(student, reference, specs, input_shape):
    check_column(student, reference, specs, input_shape, "params")


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("layer_table")
@pytest.mark.parametrize("specs,input_shape", CASES)
def test_layer_table_receptive_fields(student, reference, specs, input_shape):
    check_column(student, reference, specs, input_shape, "receptive_field", "jump")


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("layer_table")
@pytest.mark.parametrize("specs,input_shape", CASES)
def test_layer_table_macs(student, reference, specs, input_shape):
    check_column(student, reference, specs, input_shape, "macs")


# --- stack_of_3x3 ---------------------------------------------------------------------------------

STACK_CASES = [pytest.param(n, c, id=f"n{n}_c{c}") for n, c in ((1, 16), (2, 64), (3, 64), (5, 7))]


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("stack_of_3x3")
@pytest.mark.parametrize("n,channels", STACK_CASES)
def test_stack_of_3x3(student, reference, n, channels):
    expected = reference.stack_of_3x3(n, channels)
    actual = student.stack_of_3x3(n, channels)
    assert isinstance(actual, dict) and set(actual) >= set(expected), (
        f"stack_of_3x3 must return a dictionary with the keys {', '.join(expected)}, got {type(actual).__name__}"
        + (f" with keys {sorted(map(str, actual))}" if isinstance(actual, dict) else ""))
    case = f"stack_of_3x3({n}, {channels})"
    if actual["receptive_field"] != expected["receptive_field"]:
        hint = ("each stride-1 3×3 layer adds 2 to the receptive field (r = 2n + 1), not 3"
                if actual["receptive_field"] == 3 * n else "")
        raise Mismatch(f"{case}: the receptive field is wrong.", hint)
    for key, what in (("stack_params", "the stack"), ("single_params", f"one {expected['receptive_field']}×"
                                                                       f"{expected['receptive_field']} kernel")):
        if actual[key] != expected[key]:
            hint = ("count weights only, no biases, as the lecture's 27·C² and 49·C²"
                    if actual[key] - expected[key] in (channels, n * channels) else "")
            raise Mismatch(f"{case}: the weights of {what} ({key}) are wrong.", hint)


# --- reduction_savings -------------------------------------------------------------------------------

SAVINGS_CASES = [pytest.param((28, 28, 192, 16, 32, 5), id="googlenet_5x5"),
                 pytest.param((28, 28, 192, 96, 128, 3), id="googlenet_3x3"),
                 pytest.param((13, 9, 64, 8, 24, 3), id="odd_sizes")]


@pytest.mark.points(1)
@pytest.mark.category("value")
@pytest.mark.calls("reduction_savings")
@pytest.mark.parametrize("args", SAVINGS_CASES)
def test_reduction_savings(student, reference, args):
    expected = reference.reduction_savings(*args)
    actual = student.reduction_savings(*args)
    case = f"reduction_savings{args}"
    assert isinstance(actual, dict) and set(actual) >= set(expected), (
        f"{case} must return a dictionary with the keys {', '.join(expected)}")
    h, w, c_in, c_reduce, c_out, k = args
    if actual["direct_macs"] != expected["direct_macs"]:
        raise Mismatch(f"{case}: direct_macs is wrong.",
                       "a k×k 'same' convolution costs h·w·c_out·k·k·c_in multiply-adds")
    if actual["reduced_macs"] != expected["reduced_macs"]:
        hint = ("the 1×1 reduction itself costs h·w·c_reduce·c_in multiply-adds, on top of the k×k convolution's "
                "h·w·c_out·k·k·c_reduce"
                if actual["reduced_macs"] == h * w * c_out * k * k * c_reduce else "")
        raise Mismatch(f"{case}: reduced_macs is wrong.", hint)
    ratio = actual["ratio"]
    if (isinstance(ratio, bool) or not isinstance(ratio, numbers.Real)
            or not math.isclose(float(ratio), expected["ratio"], rel_tol=1e-6)):
        raise Mismatch(f"{case}: ratio is wrong.", "ratio = direct_macs / reduced_macs")
