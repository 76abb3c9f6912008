"""The benchmark models, each written twice on the same weights: a MindIR file (through
shardlite.builder, or a real export) for shardlite and an ONNX graph for
onnxruntime."""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import harness  # noqa: F401  (puts tests/python on sys.path)
from shardlite import builder as mindir_builder
import mindir_reader

OPSET = [helper.make_opsetid("", 17)]
F32 = TensorProto.FLOAT


def _model(nodes, name, inputs, output, initializers):
    graph = helper.make_graph(nodes, name, inputs, [output], initializer=initializers)
    return helper.make_model(graph, opset_imports=OPSET)


# ---- LeNet: the real export, translated node by node ----

def _ints(v, n=2):
    """The trailing n entries of a MindSpore int attribute (kernel_size (5, 5) or (1, 1, 2, 2))."""
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return [int(i) for i in (v[-n:] if len(v) >= n else v * n)]


def lenet_onnx(path):
    """The ONNX equivalent of the MindIR file at path (Conv2D, ReLU, MaxPool, Reshape, MatMul and
    the Load/MakeTuple/UpdateState/Depend bookkeeping of an export), in the file's node order.
    Returns (onnx model, input dims)."""
    m = mindir_reader.read_model(str(path))
    g = m["graph"]
    consts = m["constants"]
    alias = {}  # MindIR value -> ONNX value (Load and Depend forward their first input)
    inits, nodes = [], []

    def ref(name):
        name = alias.get(name, name)
        if name in g["parameters"] or name in consts:
            if not any(i.name == name for i in inits):
                value = g["parameters"].get(name)
                value = consts[name] if value is None else value
                arr = np.asarray(value, dtype=np.int64 if isinstance(value, list) else None)
                inits.append(numpy_helper.from_array(arr, name))
        return name

    for n in g["nodes"]:
        op, ins, out = n["op"], n["inputs"], n["outputs"][0] if n["outputs"] else n["name"]
        a = mindir_reader.op_attrs(n)
        if op in ("Constant", "MakeTuple", "UpdateState"):
            continue
        if op in ("Load", "Depend"):
            alias[out] = alias.get(ins[0], ins[0])
            continue
        if op == "Conv2D":
            pads = _ints(a.get("pad_list", [0, 0, 0, 0]), 4)  # top, bottom, left, right
            if str(a.get("pad_mode", "valid")).lower() not in ("valid", "pad"):
                raise ValueError("LeNet: Conv2D pad_mode %r not translated" % a["pad_mode"])
            nodes.append(helper.make_node(
                "Conv", [ref(ins[0]), ref(ins[1])], [out], strides=_ints(a["stride"]),
                dilations=_ints(a.get("dilation", 1)), group=int(a.get("group", 1)),
                pads=[pads[0], pads[2], pads[1], pads[3]]))
        elif op == "ReLU":
            nodes.append(helper.make_node("Relu", [ref(ins[0])], [out]))
        elif op == "MaxPool":
            if str(a.get("pad_mode", "VALID")).upper() != "VALID":
                raise ValueError("LeNet: MaxPool pad_mode %r not translated" % a["pad_mode"])
            nodes.append(helper.make_node("MaxPool", [ref(ins[0])], [out],
                                          kernel_shape=_ints(a["kernel_size"]),
                                          strides=_ints(a["strides"])))
        elif op == "Reshape":
            nodes.append(helper.make_node("Reshape", [ref(ins[0]), ref(ins[1])], [out]))
        elif op == "MatMul":
            if a.get("transpose_a") or a.get("transpose_b"):
                raise ValueError("LeNet: transposed MatMul not translated")
            nodes.append(helper.make_node("MatMul", [ref(ins[0]), ref(ins[1])], [out]))
        else:
            raise ValueError("LeNet: op %s not translated" % op)
    (inp,) = g["inputs"]
    result = alias.get(g["outputs"][0], g["outputs"][0])
    out_dims = mindir_reader.node_by_output(m, result)["attrs"]["shape"]["dims"]
    model = _model(nodes, "lenet",
                   [helper.make_tensor_value_info(inp["name"], F32, inp["dims"])],
                   helper.make_tensor_value_info(result, F32, out_dims), inits)
    onnx.checker.check_model(model)
    return model, inp["dims"]


# ---- MLP: MatMul (transpose_b, as nn.Dense exports it) + BiasAdd, ReLU between layers ----

def mlp_weights(layers=4, dim=4096, seed=0):
    """[(w [out, in], b [out])] scaled so that activations stay near unit size."""
    rng = np.random.default_rng(seed)
    scale = np.float32(np.sqrt(3.0 / dim))
    out = []
    for _ in range(layers):
        w = rng.uniform(-1, 1, size=(dim, dim)).astype(np.float32) * scale
        b = rng.uniform(-0.1, 0.1, size=dim).astype(np.float32)
        out.append((w, b))
    return out


def write_mlp_mindir(path, weights, batch):
    b = mindir_builder.GraphBuilder("mlp", style="2.x")
    dim = weights[0][0].shape[1]
    x = b.input("x", [batch, dim], np.float32)
    for i, (w, bias) in enumerate(weights):
        shape = (np.float32, [batch, w.shape[0]])
        x = b.op("MatMul", [x, b.param("fc%d.weight" % i, w)],
                 attrs={"transpose_a": False, "transpose_b": True}, abstract=shape)
        x = b.op("BiasAdd", [x, b.param("fc%d.bias" % i, bias)], attrs={"format": "NCHW"},
                 abstract=shape)
        if i + 1 < len(weights):
            x = b.op("ReLU", [x], abstract=shape)
    b.output(x)
    return b.save(str(path))


def mlp_onnx(weights, batch):
    dim = weights[0][0].shape[1]
    nodes, inits, x = [], [], "x"
    for i, (w, bias) in enumerate(weights):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w.T), "w%d" % i))
        inits.append(numpy_helper.from_array(bias, "b%d" % i))
        nodes.append(helper.make_node("MatMul", [x, "w%d" % i], ["mm%d" % i]))
        nodes.append(helper.make_node("Add", ["mm%d" % i, "b%d" % i], ["add%d" % i]))
        x = "add%d" % i
        if i + 1 < len(weights):
            nodes.append(helper.make_node("Relu", [x], ["relu%d" % i]))
            x = "relu%d" % i
    model = _model(nodes, "mlp", [helper.make_tensor_value_info("x", F32, [batch, dim])],
                   helper.make_tensor_value_info(x, F32, [batch, dim]), inits)
    return model  # not run through onnx.checker: a second copy of 256 MiB for no finding


# ---- the ~1 GiB chain of MatMuls with external weights ----

ONNX_ALIGN = 64 * 1024  # page/allocation-granularity aligned offsets, so onnxruntime may map them


def write_chain(folder, layers=16, dim=4096, seed=1):
    """Writes chain.mindir (+ chain_variables/data_0) and chain.onnx (+ chain.onnx.data) into
    folder: x [1, dim] through `layers` MatMuls with [dim, dim] weights. Returns a dict of the
    paths, the files each runtime reads, weight and activation byte counts."""
    rng = np.random.default_rng(seed)
    scale = np.float32(np.sqrt(3.0 / dim))
    weights = [rng.random((dim, dim), dtype=np.float32) * (2 * scale) - scale
               for _ in range(layers)]

    mindir = os.path.join(folder, "chain.mindir")
    b = mindir_builder.GraphBuilder("chain", style="2.x")
    x = b.input("x", [1, dim], np.float32)
    for i, w in enumerate(weights):
        x = b.op("MatMul", [x, b.param("w%d" % i, w)],
                 attrs={"transpose_a": False, "transpose_b": False},
                 abstract=(np.float32, [1, dim]))
    b.output(x)
    b.save(mindir, external_data=True)
    del b

    onnx_path = os.path.join(folder, "chain.onnx")
    data_name = "chain.onnx.data"
    inits, nodes, x = [], [], "x"
    with open(os.path.join(folder, data_name), "wb") as f:
        for i, w in enumerate(weights):
            offset = -(-f.tell() // ONNX_ALIGN) * ONNX_ALIGN
            f.seek(offset)
            f.write(w.tobytes())
            t = TensorProto(name="w%d" % i, data_type=F32, dims=w.shape,
                            data_location=TensorProto.EXTERNAL)
            for key, value in (("location", data_name), ("offset", offset),
                               ("length", w.nbytes)):
                t.external_data.add(key=key, value=str(value))
            inits.append(t)
            nodes.append(helper.make_node("MatMul", [x, t.name], ["y%d" % i]))
            x = "y%d" % i
    model = _model(nodes, "chain", [helper.make_tensor_value_info("x", F32, [1, dim])],
                   helper.make_tensor_value_info(x, F32, [1, dim]), inits)
    onnx.save_model(model, onnx_path)

    return {
        "shardlite": {"model": mindir,
                      "files": [mindir, os.path.join(folder, "chain_variables", "data_0")]},
        "ort": {"model": onnx_path, "files": [onnx_path, os.path.join(folder, data_name)]},
        "weight_bytes": sum(w.nbytes for w in weights),
        "activation_bytes": (layers + 1) * dim * 4,  # every value, none reused
        "dim": dim,
    }


# ---- the Megatron MLP, whole and split over ranks ----

def tp_mlp_weights(dim=4096, hidden=16384, seed=3):
    """(w1 [hidden, dim], b1, w2 [dim, hidden], b2): nn.Dense's [out, in] layout."""
    rng = np.random.default_rng(seed)
    s1, s2 = np.float32(np.sqrt(3.0 / dim)), np.float32(np.sqrt(3.0 / hidden))
    return (rng.random((hidden, dim), dtype=np.float32) * (2 * s1) - s1,
            rng.random(hidden, dtype=np.float32) * 0.2 - 0.1,
            rng.random((dim, hidden), dtype=np.float32) * (2 * s2) - s2,
            rng.random(dim, dtype=np.float32) * 0.2 - 0.1)


def tp_mlp_numpy(weights, x, rank=0, ranks=1):
    """y = relu(x W1^T + b1) W2^T + b2, or (ranks > 1) rank `rank`'s partial product + b2."""
    w1, b1, w2, b2 = weights
    lo, hi = w1.shape[0] * rank // ranks, w1.shape[0] * (rank + 1) // ranks
    return np.maximum(x @ w1[lo:hi].T + b1[lo:hi], 0) @ w2[:, lo:hi].T + b2


def write_tp_mlp(path, weights, rank=0, ranks=1, all_reduce=True):
    """Rank `rank`'s share of y = relu(x W1^T + b1) W2^T + b2 as Megatron splits it: W1 (and b1)
    by output columns, W2 by input rows, an AllReduce(sum) of the partial products (unless
    all_reduce is False: the rank's partial product alone), then b2.
    ranks=1: the whole model. The input is [-1, dim] (resized per batch)."""
    w1, b1, w2, b2 = weights
    hidden, dim = w1.shape
    lo, hi = hidden * rank // ranks, hidden * (rank + 1) // ranks
    b = mindir_builder.GraphBuilder("mlp", style="2.x")
    x = b.input("x", [-1, dim], np.float32)
    dense = {"transpose_a": False, "transpose_b": True}
    h = b.op("MatMul", [x, b.param("fc1.weight", w1[lo:hi])], attrs=dense)
    h = b.op("BiasAdd", [h, b.param("fc1.bias", b1[lo:hi])], attrs={"format": "NCHW"})
    h = b.op("ReLU", [h])
    y = b.op("MatMul", [h, b.param("fc2.weight", np.ascontiguousarray(w2[:, lo:hi]))],
             attrs=dense)
    if ranks > 1 and all_reduce:
        y = b.op("AllReduce", [y], attrs={"op": "sum", "group": "hccl_world_group", "fusion": 0})
    y = b.op("BiasAdd", [y, b.param("fc2.bias", b2)], attrs={"format": "NCHW"})
    b.output(y)
    b.save(str(path))
