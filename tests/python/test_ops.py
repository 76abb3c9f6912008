"""Per-op tests: models made with shardlite.builder (MindSpore's op and attribute names), run through
shardlite, compared with numpy. The numpy references are checked by hand-computed cases first
(those tests run without shardlite). Also external data, packed encoding, and malformed files."""

import math
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import LITE_DTYPES, predict
from shardlite.builder import GraphBuilder

FLOATS = [np.float32, np.float64]
INTS = [np.int32, np.int64]


# ---------------------------------------------------------------------------------------------
# numpy references

def gelu_tanh(x):
    x = x.astype(np.float64)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def softmax(x, axis):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _same_pads(size, stride, eff_kernel):
    out = -(-size // stride)
    total = max(0, (out - 1) * stride + eff_kernel - size)
    return total // 2, total - total // 2


def conv2d_ref(x, w, stride=(1, 1), dilation=(1, 1), pad_mode="valid", pad_list=(0, 0, 0, 0),
               group=1):
    """NCHW x, OIHW w (I = C / group); MindSpore pad modes; float64 result."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    assert c == cg * group and o % group == 0
    (sh, sw), (dh, dw) = stride, dilation
    ekh, ekw = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if pad_mode == "valid":
        pt = pb = pl = pr = 0
    elif pad_mode == "same":
        pt, pb = _same_pads(h, sh, ekh)
        pl, pr = _same_pads(wd, sw, ekw)
    else:
        pt, pb, pl, pr = pad_list
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - ekh) // sh + 1
    ow = (wd + pl + pr - ekw) // sw + 1
    xg = xp.reshape(n, group, cg, xp.shape[2], xp.shape[3])
    wg = w.reshape(group, o // group, cg, kh, kw)
    out = np.zeros((n, group, o // group, oh, ow))
    for i in range(kh):
        for j in range(kw):
            win = xg[:, :, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                     j * dw:j * dw + sw * (ow - 1) + 1:sw]
            out += np.einsum("ngchw,goc->ngohw", win, wg[:, :, :, i, j])
    return out.reshape(n, o, oh, ow)


def pool2d_ref(x, kernel, strides, pad_mode, mode):
    """MaxPool/AvgPool, NCHW; "same" pads evenly (extra at the end) and AvgPool averages only
    the elements inside the input (padding excluded), like TensorFlow and MindSpore's CPU."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, strides
    if pad_mode == "valid":
        oh, ow, pt, pl = (h - kh) // sh + 1, (w - kw) // sw + 1, 0, 0
    else:
        oh, ow = -(-h // sh), -(-w // sw)
        pt, pl = _same_pads(h, sh, kh)[0], _same_pads(w, sw, kw)[0]
    out = np.zeros((n, c, oh, ow), np.float64)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * sh - pt, j * sw - pl
            win = x[:, :, max(r0, 0):min(r0 + kh, h), max(c0, 0):min(c0 + kw, w)]
            win = win.astype(np.float64)
            out[:, :, i, j] = win.max(axis=(2, 3)) if mode == "max" else win.mean(axis=(2, 3))
    return out


def strided_slice_ref(x, begin, end, strides, begin_mask=0, end_mask=0, ellipsis_mask=0,
                      new_axis_mask=0, shrink_axis_mask=0):
    """TensorFlow/MindSpore StridedSlice semantics through numpy indexing."""
    index = []
    for i, (b, e, s) in enumerate(zip(begin, end, strides)):
        if ellipsis_mask >> i & 1:
            index.append(Ellipsis)
        elif new_axis_mask >> i & 1:
            index.append(None)
        elif shrink_axis_mask >> i & 1:
            index.append(b)
        else:
            index.append(slice(None if begin_mask >> i & 1 else b,
                               None if end_mask >> i & 1 else e, s))
    return x[tuple(index)]


def test_conv2d_reference_by_hand():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    w = np.array([[[[1, 0], [0, -1]]]], np.float64)  # x[i,j] - x[i+1,j+1] = -5 everywhere
    np.testing.assert_array_equal(conv2d_ref(x, w), np.full((1, 1, 3, 3), -5.0))
    # stride 2, dilation 2 on a 5x5: picks x[i,j] - x[i+2,j+2] at (0,0),(0,2),(2,0),(2,2) = -12
    x5 = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    np.testing.assert_array_equal(conv2d_ref(x5, w, (2, 2), (2, 2)), np.full((1, 1, 2, 2), -12.0))
    # "same" with a 3x3 ones kernel on a 3x3 ones image: corner 4, edge 6, centre 9
    ones = np.ones((1, 1, 3, 3))
    np.testing.assert_array_equal(conv2d_ref(ones, np.ones((1, 1, 3, 3)), pad_mode="same")[0, 0],
                                  [[4, 6, 4], [6, 9, 6], [4, 6, 4]])
    # explicit pads (top 1, bottom 0, left 0, right 2), 1x1 kernel of 2: the input doubled, framed
    out = conv2d_ref(ones[:, :, :2, :2], np.full((1, 1, 1, 1), 2.0), pad_mode="pad",
                     pad_list=(1, 0, 0, 2))
    np.testing.assert_array_equal(out[0, 0], [[0, 0, 0, 0], [2, 2, 0, 0], [2, 2, 0, 0]])
    # two groups: output channel g only sees input channel g
    x2 = np.stack([np.ones((2, 2)), 10 * np.ones((2, 2))])[None]
    out = conv2d_ref(x2, np.ones((2, 1, 1, 1)), group=2)
    np.testing.assert_array_equal(out[0, :, 0, 0], [1, 10])


def test_pool_and_slice_references_by_hand():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(pool2d_ref(x, (2, 2), (2, 2), "valid", "max")[0, 0],
                                  [[5, 7], [13, 15]])
    np.testing.assert_array_equal(pool2d_ref(x, (2, 2), (2, 2), "valid", "avg")[0, 0],
                                  [[2.5, 4.5], [10.5, 12.5]])
    # same, 3x3 stride 2 on 4x4: output 2x2, pads (0 top, 1 bottom); last window is rows 2..3
    np.testing.assert_array_equal(pool2d_ref(x, (3, 3), (2, 2), "same", "avg")[0, 0],
                                  [[5, 6.5], [11, 12.5]])
    y = np.arange(24).reshape(2, 3, 4)
    np.testing.assert_array_equal(strided_slice_ref(y, (0, 1, 0), (2, 3, 4), (1, 1, 2)),
                                  y[:, 1:3, ::2])
    np.testing.assert_array_equal(strided_slice_ref(y, (1, 0, 3), (0, 0, 0), (1, 1, -1),
                                                    end_mask=3, shrink_axis_mask=1),
                                  [[15, 14, 13], [19, 18, 17], [23, 22, 21]])
    assert strided_slice_ref(y, (0, 0, 0), (0, 2, 3), (1, 1, 1), new_axis_mask=1,
                             begin_mask=6).shape == (1, 2, 3, 4)
    np.testing.assert_array_equal(strided_slice_ref(y, (0, 1), (0, 2), (1, 1), ellipsis_mask=1),
                                  [[[1], [5], [9]], [[13], [17], [21]]])
    assert gelu_tanh(np.array([0.0]))[0] == 0
    assert abs(gelu_tanh(np.array([1.0]))[0] - 0.8411920) < 1e-6
    np.testing.assert_allclose(softmax(np.array([[0.0, math.log(3.0)]]), 1), [[0.25, 0.75]])


# ---------------------------------------------------------------------------------------------
# helpers

def rand(rng, shape, dtype, low=-3.0, high=3.0):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return rng.integers(int(low), int(high) + 1, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.uniform(low, high, size=shape).astype(dtype)


def tolerances(dtype):
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return dict(rtol=1e-5, atol=1e-6)
    if dtype == np.float64:
        return dict(rtol=1e-10, atol=1e-12)
    return dict(rtol=0, atol=0)


def assert_result(out, expected, **tol):
    """Same dtype, same shape, values within tolerance (exact for integers)."""
    expected = np.asarray(expected)
    assert out.dtype == expected.dtype, (out.dtype, expected.dtype)
    assert out.shape == expected.shape, (out.shape, expected.shape)
    np.testing.assert_allclose(out, expected, **(tol or tolerances(expected.dtype)))


def abstract(a):
    return (np.asarray(a).dtype, list(np.shape(a)))


def run_op(run_builder, prim, arrays, expected, attrs=None, consts=(), params=(), style="2.x",
           **save):
    """One node: graph inputs (arrays), then Constant inputs (consts), then parameters."""
    b = GraphBuilder("g", style=style)
    names = [b.input("x%d" % i, a.shape, a.dtype) for i, a in enumerate(arrays)]
    names += [b.const(c) for c in consts]
    names += [b.param("p%d" % i, p) for i, p in enumerate(params)]
    b.output(b.op(prim, names, attrs=attrs, abstract=abstract(expected)))
    (out,) = run_builder(b, *arrays, **save)
    return out


# ---------------------------------------------------------------------------------------------
# elementwise

UNARY = {
    "ReLU": (lambda x: np.maximum(x, 0), (-3, 3)),
    "GeLU": (gelu_tanh, (-5, 5)),
    "Sigmoid": (lambda x: 1.0 / (1.0 + np.exp(-x)), (-12, 12)),
    "Tanh": (np.tanh, (-6, 6)),
    "Exp": (np.exp, (-6, 6)),
    "Log": (np.log, (0.01, 20)),
    "Sqrt": (np.sqrt, (0, 20)),
    "Neg": (np.negative, (-5, 5)),
    "Abs": (np.abs, (-5, 5)),
}
SHAPES = [[], [7], [3, 5], [2, 3, 4, 5], [2, 0, 3], [3, 50000]]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("prim", sorted(UNARY))
def test_unary(run_builder, prim, dtype, shape):
    fn, (low, high) = UNARY[prim]
    rng = np.random.default_rng(len(shape) * 31 + len(prim))
    x = rand(rng, shape, dtype, low, high)
    expected = fn(x.astype(np.float64)).astype(dtype)
    assert_result(run_op(run_builder, prim, [x], expected), expected)


@pytest.mark.parametrize("dtype", INTS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("prim", ["Neg", "Abs", "ReLU"])
def test_unary_int(run_builder, prim, dtype):
    x = rand(np.random.default_rng(5), [4, 6], dtype, -100, 100)
    expected = UNARY[prim][0](x).astype(dtype)
    assert_result(run_op(run_builder, prim, [x], expected), expected)


@pytest.mark.parametrize("style", ["2.x", "1.x"])
@pytest.mark.parametrize("base,scale,shift", [(-1.0, 1.0, 0.0), (2.0, 0.5, 1.0), (10.0, 3.0, 0.25)])
def test_log_attributes(run_builder, style, base, scale, shift):
    x = rand(np.random.default_rng(6), [5, 4], np.float32, 0.01, 10)
    y = np.log(shift + scale * x.astype(np.float64))
    if base != -1.0:
        y = y / math.log(base)
    expected = y.astype(np.float32)
    out = run_op(run_builder, "Log", [x], expected, style=style,
                 attrs={"base": base, "scale": scale, "shift": shift})
    assert_result(out, expected)


@pytest.mark.parametrize("style", ["2.x", "1.x"])
def test_unary_both_styles(run_builder, style):
    x = rand(np.random.default_rng(7), [3, 8], np.float32)
    for prim in ("ReLU", "Sigmoid", "GeLU"):
        expected = UNARY[prim][0](x.astype(np.float64)).astype(np.float32)
        assert_result(run_op(run_builder, prim, [x], expected, style=style), expected)


# Cast's target: "type" is a Constant data type (TENSORS with only a data_type, as exports write
# mstype values); "input" is a constant int input holding MindSpore's type number, which is
# MindSpore Lite's DataType number (float32 = 43, int32 = 34, ...); "attr" is an attribute
# "dst_type" with that number (a shardlite extension).
CASTS = [(np.float32, np.float64), (np.float64, np.float32), (np.float32, np.int32),
         (np.float64, np.int64), (np.int32, np.float32), (np.int64, np.float64),
         (np.int32, np.int64), (np.int64, np.int32), (np.float32, np.bool_)]


@pytest.mark.parametrize("form", ["attr", "input", "type"])
@pytest.mark.parametrize("src,dst", CASTS, ids=lambda d: np.dtype(d).name)
def test_cast(run_builder, src, dst, form):
    rng = np.random.default_rng(8)
    x = rand(rng, [3, 7], src, -50, 50)
    if np.dtype(src).kind == "f":
        x[0, :3] = [0.0, -2.75, 2.75]  # truncation toward zero; a zero for bool
    expected = x.astype(dst)
    code = LITE_DTYPES[np.dtype(dst)]
    if form == "attr":
        out = run_op(run_builder, "Cast", [x], expected, attrs={"dst_type": code})
    elif form == "input":
        out = run_op(run_builder, "Cast", [x], expected, consts=[code])
    else:
        b = GraphBuilder("g")
        xi = b.input("x", x.shape, x.dtype)
        b.output(b.op("Cast", [xi, b.const_type(dst)], abstract=abstract(expected)))
        (out,) = run_builder(b, x)
    assert_result(out, expected)


BINARY = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
    "RealDiv": np.divide, "Maximum": np.maximum, "Minimum": np.minimum,
}
BCAST = [([2, 3], [2, 3]), ([4, 1, 3], [5, 1]), ([1], [6]), ([], [3, 2]), ([2, 3, 1], []),
         ([2, 0, 3], [1, 3]), ([0], [1]), ([3, 1, 4, 1], [1, 5, 1, 6]), ([64, 1000], [1000]),
         ([1000, 1], [1, 64])]


# integer division is left out: its rounding differs between frameworks
BINARY_CASES = [(prim, dtype) for prim in sorted(BINARY) for dtype in FLOATS + INTS
                if prim not in ("Div", "RealDiv") or np.dtype(dtype).kind == "f"]


@pytest.mark.parametrize("shapes", BCAST, ids=str)
@pytest.mark.parametrize("prim,dtype", BINARY_CASES,
                         ids=["%s-%s" % (p, np.dtype(d).name) for p, d in BINARY_CASES])
def test_binary(run_builder, prim, dtype, shapes):
    rng = np.random.default_rng(sum(map(len, shapes)) + len(prim))
    a = rand(rng, shapes[0], dtype, -50, 50)
    b = rand(rng, shapes[1], dtype, -50, 50)
    if prim in ("Div", "RealDiv"):
        b = (np.sign(b) + (b == 0)) * rand(rng, shapes[1], dtype, 0.5, 4)
    expected = BINARY[prim](a, b).astype(dtype)
    assert_result(run_op(run_builder, prim, [a, b], expected), expected)


@pytest.mark.parametrize("style", ["2.x", "1.x"])
def test_binary_with_constant_and_parameter(run_builder, style):
    rng = np.random.default_rng(9)
    x = rand(rng, [2, 3], np.float32)
    c = rand(rng, [3], np.float32)
    p = rand(rng, [2, 1], np.float32)
    b = GraphBuilder("g", style=style)
    xi = b.input("x", x.shape, x.dtype)
    y = b.op("Add", [xi, b.const(c)], abstract=(np.float32, [2, 3]))
    y = b.op("Mul", [y, b.param("p", p)], abstract=(np.float32, [2, 3]))
    b.output(y)
    (out,) = run_builder(b, x)
    assert_result(out, (x + c) * p)


@pytest.mark.parametrize("fmt,shape", [("NCHW", [2, 3, 4, 5]), ("NCHW", [4, 3]),
                                       ("NHWC", [2, 4, 5, 3]), ("NCHW", [1, 3, 60, 300])])
def test_bias_add(run_builder, fmt, shape):
    rng = np.random.default_rng(10)
    x = rand(rng, shape, np.float32)
    bias = rand(rng, [3], np.float32)
    view = [1] * len(shape)
    view[1 if fmt == "NCHW" else -1] = 3
    expected = x + bias.reshape(view)
    out = run_op(run_builder, "BiasAdd", [x], expected, params=[bias], attrs={"format": fmt})
    assert_result(out, expected)


@pytest.mark.parametrize("shape,axis", [([3, 5], -1), ([3, 5], 0), ([2, 3, 4], 1),
                                        ([2, 3, 4], -1), ([1, 1000], -1), ([4, 1], 1)], ids=str)
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
def test_softmax(run_builder, shape, axis, dtype):
    x = rand(np.random.default_rng(11), shape, dtype, -10, 10)
    expected = softmax(x, axis).astype(dtype)
    out = run_op(run_builder, "Softmax", [x], expected, attrs={"axis": (axis,)})
    assert_result(out, expected)


# ---------------------------------------------------------------------------------------------
# linear algebra, convolution, pooling

@pytest.mark.parametrize("mkn", [(1, 1, 1), (3, 4, 5), (17, 33, 9), (64, 128, 96)], ids=str)
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
def test_matmul(run_builder, mkn, ta, tb, dtype):
    m, k, n = mkn
    rng = np.random.default_rng(m * k * n)
    a = rand(rng, [k, m] if ta else [m, k], dtype, -1, 1)
    b = rand(rng, [n, k] if tb else [k, n], dtype, -1, 1)
    expected = ((a.T if ta else a).astype(np.float64) @ (b.T if tb else b)).astype(dtype)
    out = run_op(run_builder, "MatMul", [a, b], expected,
                 attrs={"transpose_a": ta, "transpose_b": tb})
    assert_result(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("style", ["2.x", "1.x"])
def test_matmul_weight_parameter(run_builder, style):
    rng = np.random.default_rng(12)
    x = rand(rng, [5, 8], np.float32)
    w = rand(rng, [6, 8], np.float32)
    expected = (x.astype(np.float64) @ w.T.astype(np.float64)).astype(np.float32)
    out = run_op(run_builder, "MatMul", [x], expected, params=[w], style=style,
                 attrs={"transpose_a": False, "transpose_b": True})
    assert_result(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shapes", [([4, 3, 5], [4, 5, 2]), ([2, 1, 3, 5], [3, 5, 4]),
                                    ([1, 6, 7], [3, 1, 7, 2]), ([2, 2, 8, 16], [2, 2, 16, 8])],
                         ids=str)
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_batch_matmul(run_builder, shapes, ta, tb):
    rng = np.random.default_rng(13)
    sa, sb = list(shapes[0]), list(shapes[1])
    if ta:
        sa[-2:] = sa[-1:-3:-1]
    if tb:
        sb[-2:] = sb[-1:-3:-1]
    a = rand(rng, sa, np.float32, -1, 1)
    b = rand(rng, sb, np.float32, -1, 1)
    at = np.swapaxes(a, -1, -2) if ta else a
    bt = np.swapaxes(b, -1, -2) if tb else b
    expected = np.matmul(at.astype(np.float64), bt.astype(np.float64)).astype(np.float32)
    out = run_op(run_builder, "BatchMatMul", [a, b], expected,
                 attrs={"transpose_a": ta, "transpose_b": tb})
    assert_result(out, expected, rtol=1e-4, atol=1e-5)


# (N, C, H, W, O, KH, KW, stride, dilation, pad_mode, pad_list, group)
CONVS = [
    (1, 1, 5, 5, 1, 3, 3, (1, 1), (1, 1), "valid", None, 1),
    (2, 3, 9, 8, 4, 3, 2, (2, 1), (1, 1), "same", None, 1),
    (1, 4, 10, 11, 6, 3, 3, (2, 2), (2, 2), "pad", (1, 2, 0, 3), 2),
    (1, 6, 7, 7, 6, 3, 3, (1, 1), (1, 1), "same", None, 6),
    (1, 3, 32, 32, 16, 5, 5, (1, 1), (1, 1), "valid", None, 1),
    (2, 8, 12, 12, 8, 1, 1, (1, 1), (1, 1), "valid", None, 2),
    (1, 2, 6, 6, 3, 3, 3, (3, 3), (1, 1), "valid", None, 1),
    (1, 2, 9, 9, 4, 3, 3, (2, 2), (3, 1), "same", None, 1),
    (1, 16, 28, 28, 32, 3, 3, (1, 1), (1, 1), "pad", (1, 1, 1, 1), 1),
]


@pytest.mark.parametrize("case", CONVS, ids=lambda c: "%s-g%d-s%s-d%s" % (c[9], c[11], c[7], c[8]))
@pytest.mark.parametrize("long_form", [True, False], ids=["nchw4", "hw2"])
def test_conv2d(run_builder, case, long_form):
    n, c, h, w, o, kh, kw, stride, dilation, pad_mode, pad_list, group = case
    rng = np.random.default_rng(h * w + o)
    x = rand(rng, [n, c, h, w], np.float32, -1, 1)
    weight = rand(rng, [o, c // group, kh, kw], np.float32, -1, 1)
    expected = conv2d_ref(x, weight, stride, dilation, pad_mode, pad_list or (0, 0, 0, 0),
                          group).astype(np.float32)
    attrs = {
        "kernel_size": (kh, kw), "mode": 1, "out_channel": o, "pad_mode": pad_mode,
        "stride": (1, 1) + stride if long_form else stride,
        "dilation": (1, 1) + dilation if long_form else dilation,
        "group": group, "groups": group, "format": "NCHW",
    }
    if pad_mode != "same":  # exports carry the pads; "same" must work without them
        attrs["pad"] = attrs["pad_list"] = pad_list or (0, 0, 0, 0)
    out = run_op(run_builder, "Conv2D", [x], expected, params=[weight], attrs=attrs)
    assert_result(out, expected, rtol=1e-4, atol=1e-4)


POOLS = [((2, 2), (2, 2), "valid", [1, 3, 8, 8]), ((3, 3), (2, 2), "same", [2, 2, 7, 9]),
         ((3, 2), (1, 2), "valid", [1, 4, 6, 7]), ((2, 2), (2, 2), "same", [1, 1, 5, 5]),
         ((3, 3), (1, 1), "same", [1, 2, 4, 4]), ((2, 2), (2, 2), "valid", [1, 16, 64, 64])]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("case", POOLS, ids=str)
@pytest.mark.parametrize("pad_case", ["lower", "upper"])
def test_pool2d(run_builder, mode, case, pad_case):
    kernel, strides, pad_mode, shape = case
    x = rand(np.random.default_rng(14), shape, np.float32, -5, 5)
    expected = pool2d_ref(x, kernel, strides, pad_mode, mode).astype(np.float32)
    attrs = {"kernel_size": (1, 1) + kernel, "strides": (1, 1) + strides, "format": "NCHW",
             "pad_mode": pad_mode.upper() if pad_case == "upper" else pad_mode}
    out = run_op(run_builder, "MaxPool" if mode == "max" else "AvgPool", [x], expected,
                 attrs=attrs)
    assert_result(out, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# shapes and data movement

@pytest.mark.parametrize("style", ["2.x", "1.x"])
@pytest.mark.parametrize("target", [(4, -1), (24,), (2, 12), (-1,), (1, 2, 1, 12), (3, 2, 4)],
                         ids=str)
def test_reshape(run_builder, style, target):
    x = rand(np.random.default_rng(15), [2, 3, 4], np.float32)
    expected = x.reshape(target)
    out = run_op(run_builder, "Reshape", [x], expected, consts=[target], style=style)
    assert_result(out, expected)


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -4])
def test_expand_dims(run_builder, axis):
    x = rand(np.random.default_rng(16), [2, 3, 4], np.int32, -9, 9)
    expected = np.expand_dims(x, axis)
    assert_result(run_op(run_builder, "ExpandDims", [x], expected, consts=[axis]), expected)


@pytest.mark.parametrize("axis", [(0,), (2,), (0, 2), (-1,), ()], ids=str)
def test_squeeze(run_builder, axis):
    x = rand(np.random.default_rng(17), [1, 3, 1, 4, 1], np.float32)
    expected = np.squeeze(x, axis=axis) if axis else np.squeeze(x)
    assert_result(run_op(run_builder, "Squeeze", [x], expected, attrs={"axis": axis}), expected)


@pytest.mark.parametrize("shape", [[2, 3, 4, 5], [3, 1], [4, 2, 3], [1, 400]], ids=str)
def test_flatten(run_builder, shape):
    x = rand(np.random.default_rng(18), shape, np.float64)
    expected = x.reshape(shape[0], -1)
    assert_result(run_op(run_builder, "Flatten", [x], expected), expected)


@pytest.mark.parametrize("shape,perm", [([3, 4], (1, 0)), ([2, 3, 4], (2, 0, 1)),
                                        ([2, 3, 4, 5], (0, 2, 3, 1)), ([2, 3, 4, 5], (3, 2, 1, 0)),
                                        ([2, 1, 3], (0, 1, 2)), ([64, 128, 9], (1, 2, 0))],
                         ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.int64], ids=lambda d: np.dtype(d).name)
def test_transpose(run_builder, shape, perm, dtype):
    x = rand(np.random.default_rng(19), shape, dtype, -100, 100)
    expected = np.ascontiguousarray(np.transpose(x, perm))
    assert_result(run_op(run_builder, "Transpose", [x], expected, consts=[perm]), expected)


@pytest.mark.parametrize("style", ["2.x", "1.x"])
@pytest.mark.parametrize("shapes,axis", [([[2, 3], [4, 3]], 0), ([[2, 3], [2, 1], [2, 5]], 1),
                                         ([[2, 3, 4], [2, 3, 2]], -1), ([[1, 2], [0, 2]], 0),
                                         ([[3, 2, 4], [3, 6, 4], [3, 1, 4], [3, 1, 4]], 1)],
                         ids=str)
def test_concat(run_builder, style, shapes, axis):
    rng = np.random.default_rng(20)
    xs = [rand(rng, s, np.float32) for s in shapes]
    expected = np.concatenate(xs, axis=axis)
    b = GraphBuilder("g", style=style)
    names = [b.input("x%d" % i, x.shape, x.dtype) for i, x in enumerate(xs)]
    tup = b.op("MakeTuple", names, abstract=[abstract(x) for x in xs])
    b.output(b.op("Concat", [tup], attrs={"axis": axis}, abstract=abstract(expected)))
    (out,) = run_builder(b, *xs)
    assert_result(out, expected)


@pytest.mark.parametrize("style", ["2.x", "1.x"])
@pytest.mark.parametrize("shape,axis,n", [([4, 6], 1, 2), ([6, 2], 0, 3), ([2, 3, 8], -1, 4),
                                          ([5, 1], 0, 5)], ids=str)
def test_split(run_builder, style, shape, axis, n):
    x = rand(np.random.default_rng(21), shape, np.float32)
    parts = np.split(x, n, axis=axis)
    b = GraphBuilder("g", style=style)
    xi = b.input("x", x.shape, x.dtype)
    outs = b.op("Split", [xi], attrs={"axis": axis, "output_num": n}, n_out=n,
                abstract=[abstract(p) for p in parts])
    b.output(*outs)
    results = run_builder(b, x)
    assert len(results) == n
    for out, part in zip(results, parts):
        assert_result(out, np.ascontiguousarray(part))


STRIDED = [
    dict(begin=(0, 1, 0), end=(2, 3, 4), strides=(1, 1, 2)),
    dict(begin=(1, 0, 3), end=(0, 0, 0), strides=(1, 1, -1), end_mask=3, shrink_axis_mask=1),
    dict(begin=(0, -2, 1), end=(1, 3, 100), strides=(1, 1, 1), begin_mask=2),
    dict(begin=(-1, 2, -1), end=(-3, 0, -5), strides=(-1, -1, -2)),
    dict(begin=(0, 1), end=(0, 2), strides=(1, 1), ellipsis_mask=1),
    dict(begin=(0, 0, 0), end=(0, 2, 3), strides=(1, 1, 1), new_axis_mask=1, begin_mask=6),
    dict(begin=(1,), end=(2,), strides=(1,)),
    dict(begin=(0, 0, 0), end=(2, 3, 4), strides=(1, 1, 1), shrink_axis_mask=6),
]


@pytest.mark.parametrize("case", STRIDED, ids=lambda c: "-".join("%s=%s" % kv for kv in c.items()))
def test_strided_slice(run_builder, case):
    x = rand(np.random.default_rng(22), [2, 3, 4], np.float32)
    masks = {k: case.get(k, 0) for k in ("begin_mask", "end_mask", "ellipsis_mask",
                                         "new_axis_mask", "shrink_axis_mask")}
    expected = np.ascontiguousarray(strided_slice_ref(x, case["begin"], case["end"],
                                                      case["strides"], **masks))
    out = run_op(run_builder, "StridedSlice", [x], expected, attrs=masks,
                 consts=[case["begin"], case["end"], case["strides"]])
    assert_result(out, expected)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("idx_dtype", INTS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("idx_shape", [[3], [2, 3], []], ids=str)
def test_gather(run_builder, axis, idx_dtype, idx_shape):
    rng = np.random.default_rng(23)
    x = rand(rng, [5, 4, 3], np.float32)
    idx = rng.integers(0, x.shape[axis], size=idx_shape).astype(idx_dtype)
    expected = np.take(x, idx, axis=axis)
    b = GraphBuilder("g")
    xi, ii = b.input("x", x.shape, x.dtype), b.input("i", idx.shape, idx.dtype)
    b.output(b.op("Gather", [xi, ii, b.const(axis)], abstract=abstract(expected)))
    (out,) = run_builder(b, x, idx)
    assert_result(out, expected)


def test_gather_constant_indices(run_builder):
    x = rand(np.random.default_rng(24), [6, 2], np.float64)
    idx = np.array([5, 0, 0, 3], np.int32)
    expected = x[idx]
    out = run_op(run_builder, "Gather", [x], expected, consts=[idx, 0])
    assert_result(out, expected)


def _shape_chain(b, xi, rank):
    dims = b.op("Shape", [xi], abstract=[(np.int64, "scalar")] * rank)
    return [b.op("TupleGetItem", [dims, b.const(i)], abstract=(np.int64, "scalar"))
            for i in range(rank)]


@pytest.mark.parametrize("style", ["2.x", "1.x"])
def test_shape_scalar_chain(run_builder, style):
    """Shape -> TupleGetItem -> ScalarMul gives a 0-d int64 output."""
    x = rand(np.random.default_rng(25), [3, 7], np.float32)
    b = GraphBuilder("g", style=style)
    xi = b.input("x", x.shape, x.dtype)
    d0, d1 = _shape_chain(b, xi, 2)
    prod = b.op("ScalarMul", [d0, d1], abstract=(np.int64, "scalar"))
    b.output(b.op("ScalarMul", [prod, b.const(2)], abstract=(np.int64, "scalar")))
    (out,) = run_builder(b, x)
    assert_result(out, np.array(42, np.int64))


def test_shape_chain_feeds_reshape(run_builder):
    """x.reshape(1, x.shape[0] * x.shape[1]) as MindSpore exports it: MakeTuple of scalars."""
    x = rand(np.random.default_rng(26), [4, 5], np.float32)
    b = GraphBuilder("g")
    xi = b.input("x", x.shape, x.dtype)
    d0, d1 = _shape_chain(b, xi, 2)
    n = b.op("ScalarMul", [d0, d1], abstract=(np.int64, "scalar"))
    target = b.op("MakeTuple", [b.const(1), n], abstract=[(np.int64, "scalar")] * 2)
    b.output(b.op("Reshape", [xi, target], abstract=(np.float32, [1, 20])))
    (out,) = run_builder(b, x)
    assert_result(out, x.reshape(1, 20))


# ---------------------------------------------------------------------------------------------
# whole graphs, encodings, external data

def _mlp(style, rng, batch=4):
    w1, b1 = rand(rng, [16, 8], np.float32, -1, 1), rand(rng, [16], np.float32, -1, 1)
    w2 = rand(rng, [16, 5], np.float32, -1, 1)
    b = GraphBuilder("mlp", style=style)
    x = b.input("x", [batch, 8], np.float32)
    h = b.op("MatMul", [x, b.param("fc1.weight", w1)],
             attrs={"transpose_a": False, "transpose_b": True}, abstract=(np.float32, [batch, 16]))
    h = b.op("BiasAdd", [h, b.param("fc1.bias", b1)], attrs={"format": "NCHW"},
             abstract=(np.float32, [batch, 16]))
    h = b.op("ReLU", [h], abstract=(np.float32, [batch, 16]))
    h = b.op("MatMul", [h, b.const(w2)], attrs={"transpose_a": False, "transpose_b": False},
             abstract=(np.float32, [batch, 5]))
    b.output(b.op("Softmax", [h], attrs={"axis": (-1,)}, abstract=(np.float32, [batch, 5])))

    def reference(xv):
        hv = np.maximum(xv.astype(np.float64) @ w1.T + b1, 0) @ w2
        return softmax(hv, -1).astype(np.float32)

    return b, reference


@pytest.mark.parametrize("style", ["2.x", "1.x"])
@pytest.mark.parametrize("packed", [False, True], ids=["unpacked", "packed"])
@pytest.mark.parametrize("external", [False, True], ids=["inline", "external"])
def test_mlp_encodings(run_builder, tmp_path, style, packed, external):
    rng = np.random.default_rng(27)
    b, reference = _mlp(style, rng)
    x = rand(rng, [4, 8], np.float32)
    (out,) = run_builder(b, x, name="mlp.mindir", packed=packed, external_data=external)
    if external:
        assert (tmp_path / "mlp_variables" / "data_0").is_file()
    assert_result(out, reference(x), rtol=1e-5, atol=1e-6)


def test_model_runs_repeatedly_with_new_inputs(tmp_model, load_model):
    rng = np.random.default_rng(28)
    b, reference = _mlp("2.x", rng)
    model = load_model(tmp_model(b))
    for _ in range(4):
        x = rand(rng, [4, 8], np.float32)
        (out,) = predict(model, x)
        assert_result(out, reference(x), rtol=1e-5, atol=1e-6)


def test_external_data_location_must_stay_inside(tmp_path, load_model):
    b, _ = _mlp("2.x", np.random.default_rng(29))
    sub = tmp_path / "sub"
    sub.mkdir()
    # the weights really exist at the escaping path: only the check can reject it
    b.save(sub / "m.mindir", external_data=True, location="../m_variables/data_0")
    shutil.copytree(sub / "m_variables", tmp_path / "m_variables")
    with pytest.raises(RuntimeError):
        load_model(sub / "m.mindir")
    absolute = str(tmp_path / "m_variables" / "data_0")
    b.save(sub / "a.mindir", external_data=True, location=absolute)
    with pytest.raises(RuntimeError):
        load_model(sub / "a.mindir")


def test_external_data_missing_or_short(tmp_path, load_model):
    b, _ = _mlp("2.x", np.random.default_rng(30))
    path = b.save(tmp_path / "m.mindir", external_data=True)
    data = tmp_path / "m_variables" / "data_0"
    blob = data.read_bytes()
    data.write_bytes(blob[:len(blob) // 2])
    with pytest.raises(RuntimeError):
        load_model(path)
    data.unlink()
    with pytest.raises(RuntimeError):
        load_model(path)


# ---------------------------------------------------------------------------------------------
# errors

def test_unknown_op_is_named(tmp_model, load_model):
    b = GraphBuilder("g")
    b.output(b.op("NoSuchOpXyz", [b.input("x", [2], np.float32)]))
    with pytest.raises(RuntimeError, match="NoSuchOpXyz"):
        load_model(tmp_model(b))


def test_shape_mismatch_fails_at_build(tmp_model, load_model):
    b = GraphBuilder("g")
    y = b.op("MatMul", [b.input("a", [2, 3], np.float32), b.input("b", [4, 5], np.float32)],
             attrs={"transpose_a": False, "transpose_b": False})
    b.output(y)
    with pytest.raises(RuntimeError):
        load_model(tmp_model(b))


def test_set_data_checks_dtype_and_size(tmp_model, load_model):
    b = GraphBuilder("g")
    b.output(b.op("ReLU", [b.input("x", [2, 3], np.float32)]))
    (tensor,) = load_model(tmp_model(b)).get_inputs()
    with pytest.raises(RuntimeError):
        tensor.set_data_from_numpy(np.zeros((2, 3), np.float64))
    with pytest.raises(RuntimeError):
        tensor.set_data_from_numpy(np.zeros((7,), np.float32))


def test_missing_file_fails(tmp_path, load_model):
    with pytest.raises(RuntimeError):
        load_model(tmp_path / "nope.mindir")


# Malformed files are loaded in a child process so that a crash is reported as a failure
# (with the case that caused it) instead of killing the test run.
FUZZ_CHILD = textwrap.dedent("""
    import math, os, sys
    import numpy as np
    import shardlite as mslite

    def attempt(path):
        ctx = mslite.Context(); ctx.target = ["cpu"]; ctx.cpu.thread_num = 2
        model = mslite.Model()
        try:
            model.build_from_file(path, mslite.ModelType.MINDIR, ctx)
        except RuntimeError:
            return "rejected"
        try:
            inputs = model.get_inputs()
            for t in inputs:
                dims = [max(int(d), 0) for d in t.shape]
                if math.prod(dims) * 8 <= 1 << 26:
                    a = np.zeros(dims, model_dtype(t))
                    t.set_data_from_numpy(a)
            model.predict(inputs)
        except RuntimeError:
            pass
        return "loaded"

    def model_dtype(t):
        for name in ("float32", "float64", "int32", "int64", "bool", "int8", "uint8",
                     "int16", "uint16", "float16", "uint32", "uint64"):
            if t.dtype == getattr(mslite.DataType, name.upper()):
                return np.dtype(name)
        raise RuntimeError("dtype")

    source, mode, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    data = open(source, "rb").read()
    rng = np.random.default_rng(1234)
    cases = []
    if mode == "truncate":
        step = max(1, len(data) // 400)
        cases = [(n, data[:n]) for n in range(0, len(data), step)]
    else:
        for i in range(300):
            buf = bytearray(data)
            for _ in range(int(rng.integers(1, 5))):
                buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
            cases.append((i, bytes(buf)))
    counts = {"rejected": 0, "loaded": 0}
    path = os.path.join(out_dir, "case.mindir")
    for key, blob in cases:
        with open(path, "wb") as f:
            f.write(blob)
        print("case", key, flush=True)
        counts[attempt(path)] += 1
    print("counts", counts["rejected"], counts["loaded"], flush=True)
""")


def _fuzz(mslite, tmp_path, source, mode):
    script = tmp_path / "fuzz_child.py"
    script.write_text(FUZZ_CHILD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, str(script), str(source), mode, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, "child failed (rc %d; negative: a signal) after %s\n%s" % (
        proc.returncode, lines[-1] if lines else "start", proc.stderr[-3000:])
    rejected, loaded = map(int, lines[-1].split()[1:])
    return rejected, loaded


def _sample_model(tmp_path, style):
    rng = np.random.default_rng(31)
    b = GraphBuilder("g", style=style)
    x = b.input("x", [1, 2, 6, 6], np.float32)
    y = b.op("Conv2D", [x, b.param("w", rand(rng, [3, 2, 3, 3], np.float32))],
             attrs={"kernel_size": (3, 3), "stride": (1, 1, 1, 1), "dilation": (1, 1, 1, 1),
                    "pad_mode": "valid", "pad_list": (0, 0, 0, 0), "group": 1,
                    "out_channel": 3, "format": "NCHW"}, abstract=(np.float32, [1, 3, 4, 4]))
    y = b.op("Reshape", [y, b.const((1, -1))], abstract=(np.float32, [1, 48]))
    parts = b.op("Split", [y], attrs={"axis": 1, "output_num": 2}, n_out=2,
                 abstract=[(np.float32, [1, 24])] * 2)
    b.output(b.op("Add", parts, abstract=(np.float32, [1, 24])))
    return b.save(tmp_path / "sample.mindir")


def test_truncated_files_are_rejected(mslite, fixtures_dir, tmp_path):
    """Every strict prefix of a file whose graph field runs to its end (the 1.x layout) must be
    rejected: it either has no graph or a graph cut inside a length-delimited field."""
    for source in (fixtures_dir / "add_no_encrpty.mindir", fixtures_dir / "relu.mindir",
                   _sample_model(tmp_path, "1.x")):
        rejected, loaded = _fuzz(mslite, tmp_path, source, "truncate")
        assert loaded == 0 and rejected > 0, (source, rejected, loaded)
    rejected, loaded = _fuzz(mslite, tmp_path, fixtures_dir / "ori_net.mindir", "truncate")
    assert rejected > 0


@pytest.mark.parametrize("which", ["relu", "sample"])
def test_corrupted_files_never_crash(mslite, fixtures_dir, tmp_path, which):
    source = fixtures_dir / "relu.mindir" if which == "relu" else _sample_model(tmp_path, "2.x")
    rejected, loaded = _fuzz(mslite, tmp_path, source, "corrupt")
    assert rejected + loaded == 300 and rejected > 0
