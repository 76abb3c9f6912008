"""A small pure-Python MindIR decoder used by the tests as an independent reference.

It shares no code with shardlite: it decodes the protobuf (proto2) wire format by hand from the
field numbers in the MindIR schema, accepts packed and unpacked repeated scalars, and turns a
file into plain dicts and numpy arrays:

    m = read_model(path)          # or read_model(bytes)
    m["graph"]["inputs"]          # [{"name", "dims", "dtype"}] (dtype None: no tensor given)
    m["graph"]["output_info"]     # the same for GraphProto.output
    m["graph"]["parameters"]      # {full name: numpy array}  (also m["params_by_key"])
    m["graph"]["nodes"]           # [{"name", "op_type", "op", "inputs", "outputs", "attrs"}]
    m["constants"]                # {output name: value} for Constant nodes
    m["primitives"]               # {name: {"op_type", "attrs", "prim_type", "instance_name"}}

"op" is the primitive name an op_type resolves to ("REF::MatMul:3" -> "MatMul" through the
primitives table; bare 1.x names stay as they are; "S-Prim-"/"S_Prim_" prefixes are dropped).
"""

import os
import struct

import numpy as np

# ---- wire format ----

VARINT, I64, LEN, I32 = 0, 1, 2, 5


def _varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint too long")


def iter_fields(buf):
    """Yields (field number, wire type, value) for one message; LEN values are bytes."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise ValueError("field number 0")
        if wt == VARINT:
            val, pos = _varint(buf, pos)
        elif wt == I64:
            if pos + 8 > end:
                raise ValueError("truncated fixed64")
            val = bytes(buf[pos:pos + 8])
            pos += 8
        elif wt == I32:
            if pos + 4 > end:
                raise ValueError("truncated fixed32")
            val = bytes(buf[pos:pos + 4])
            pos += 4
        elif wt == LEN:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise ValueError("truncated length-delimited field")
            val = bytes(buf[pos:pos + n])
            pos += n
        else:
            raise ValueError("unsupported wire type %d" % wt)
        yield num, wt, val


def _signed64(v):
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


# Scalar kinds: how to turn one wire value into a Python value, and the packed element format.
def _scalar(kind, wt, val):
    if kind in ("int64", "int32", "enum"):
        if wt != VARINT:
            raise ValueError("expected varint for %s" % kind)
        v = _signed64(val)
        return v
    if kind == "uint64":
        return val
    if kind == "bool":
        return bool(val)
    if kind == "float":
        if wt != I32:
            raise ValueError("expected fixed32 float")
        return struct.unpack("<f", val)[0]
    if kind == "double":
        if wt != I64:
            raise ValueError("expected fixed64 double")
        return struct.unpack("<d", val)[0]
    if kind == "string":
        return val.decode("utf-8")
    if kind == "bytes":
        return val
    raise AssertionError(kind)


def _unpack_packed(kind, data):
    if kind == "float":
        return list(struct.unpack("<%df" % (len(data) // 4), data))
    if kind == "double":
        return list(struct.unpack("<%dd" % (len(data) // 8), data))
    out = []
    pos = 0
    while pos < len(data):
        v, pos = _varint(data, pos)
        out.append(_scalar(kind, VARINT, v))
    return out


# Schema: message -> {field number: (name, kind, repeated)}; kind is a scalar kind or a message.
R = True
SCHEMA = {
    "ModelProto": {
        1: ("ir_version", "string", 0), 2: ("producer_name", "string", 0),
        3: ("producer_version", "string", 0), 4: ("domain", "string", 0),
        5: ("model_version", "string", 0), 6: ("doc_string", "string", 0),
        7: ("graph", "GraphProto", 0), 8: ("functions", "GraphProto", R),
        10: ("little_endian", "bool", 0), 12: ("primitives", "PrimitiveProto", R),
        13: ("mind_ir_version", "int64", 0), 14: ("user_info", "StringMapEntry", R),
    },
    "StringMapEntry": {1: ("key", "string", 0), 2: ("value", "string", 0)},
    "GraphProto": {
        1: ("node", "NodeProto", R), 2: ("name", "string", 0),
        3: ("parameter", "TensorProto", R), 4: ("doc_string", "string", 0),
        5: ("input", "ValueInfoProto", R), 6: ("output", "ValueInfoProto", R),
        7: ("bprop_hash", "string", 0), 8: ("attribute", "AttributeProto", R),
        9: ("bprop_filepath", "string", 0),
    },
    "NodeProto": {
        1: ("input", "string", R), 2: ("output", "string", R), 3: ("name", "string", 0),
        4: ("op_type", "string", 0), 5: ("attribute", "AttributeProto", R),
        6: ("doc_string", "string", 0), 7: ("domain", "string", 0),
        8: ("node_attr", "AttributeProto", R), 9: ("primal_attr", "AttributeProto", R),
    },
    "AttributeProto": {
        1: ("name", "string", 0), 2: ("f", "float", 0), 3: ("i", "int64", 0),
        4: ("d", "double", 0), 5: ("s", "bytes", 0), 6: ("t", "TensorProto", 0),
        7: ("g", "GraphProto", 0), 8: ("floats", "float", R), 9: ("doubles", "double", R),
        10: ("ints", "int64", R), 11: ("strings", "bytes", R),
        12: ("tensors", "TensorProto", R), 13: ("graphs", "GraphProto", R),
        14: ("doc_string", "string", 0), 15: ("ref_attr_name", "string", 0),
        16: ("type", "enum", 0), 17: ("values", "AttributeProto", R),
        18: ("seq_info", "SeqInfo", 0), 19: ("functor", "Functor", 0),
    },
    "SeqInfo": {1: ("is_dyn_len", "bool", 0), 2: ("tuple_elem_item", "AttributeProto", 0)},
    "Functor": {1: ("type", "enum", 0), 2: ("name", "string", 0),
                3: ("values", "AttributeProto", R)},
    "ValueInfoProto": {
        1: ("name", "string", 0), 2: ("tensor", "TensorProto", R),
        3: ("doc_string", "string", 0), 4: ("denotation", "string", 0),
    },
    "TensorProto": {
        1: ("dims", "int64", R), 2: ("data_type", "int32", 0), 3: ("float_data", "float", R),
        4: ("int32_data", "int32", R), 5: ("string_data", "bytes", R),
        6: ("int64_data", "int64", R), 7: ("name", "string", 0),
        8: ("doc_string", "string", 0), 9: ("raw_data", "bytes", 0),
        10: ("double_data", "double", R), 11: ("uint64_data", "uint64", R),
        12: ("external_data", "ExternalData", 0), 13: ("ref_key", "string", 0),
        14: ("min_dims", "int64", R), 15: ("max_dims", "int64", R),
        16: ("compression_type", "enum", 0),
    },
    "ExternalData": {1: ("location", "string", 0), 2: ("offset", "int64", 0),
                     3: ("length", "int64", 0)},
    "PrimitiveProto": {
        1: ("name", "string", 0), 2: ("op_type", "string", 0),
        3: ("attribute", "AttributeProto", R), 4: ("instance_name", "string", 0),
        5: ("prim_type", "enum", 0),
    },
}


def decode(buf, msg="ModelProto"):
    """Decodes one message into a dict (repeated fields -> lists; unknown fields ignored)."""
    schema = SCHEMA[msg]
    out = {}
    for num, wt, val in iter_fields(buf):
        spec = schema.get(num)
        if spec is None:
            continue
        name, kind, rep = spec
        if kind in SCHEMA:
            if wt != LEN:
                raise ValueError("%s.%s: expected a message" % (msg, name))
            v = [decode(val, kind)]
        elif wt == LEN and kind not in ("string", "bytes"):
            v = _unpack_packed(kind, val)  # packed repeated scalars
        else:
            v = [_scalar(kind, wt, val)]
        if rep:
            out.setdefault(name, []).extend(v)
        else:
            out[name] = v[-1]
    return out


# ---- MindIR semantics ----

# TensorProto data_type -> numpy dtype
TENSOR_DTYPES = {
    1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
    7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64,
    14: np.complex64, 15: np.complex128, 17: np.float64,
}
# AttributeType numbers
A_FLOAT, A_UINT8, A_INT8, A_UINT16, A_INT16, A_INT32, A_INT64, A_STRING, A_BOOL = range(1, 10)
A_FLOAT16, A_DOUBLE, A_UINT32, A_UINT64 = 10, 11, 12, 13
A_TENSOR, A_GRAPH, A_TENSORS, A_TUPLE, A_LIST, A_DICT = 17, 18, 19, 20, 21, 22
A_UMONAD, A_IOMONAD, A_NONE = 23, 24, 25
A_TYPE_NULL, A_SCALAR = 36, 39
_INT_TYPES = {A_UINT8, A_INT8, A_UINT16, A_INT16, A_INT32, A_INT64, A_UINT32, A_UINT64}


class Abstract(dict):
    """A "shape" attribute: {"dtype": numpy dtype or None, "dims": [...]} (a tuple -> list)."""


def tensor_to_numpy(t, base_dir=None):
    """A TensorProto (decoded dict) -> numpy array (raw_data, typed fields or external data)."""
    dtype = TENSOR_DTYPES.get(t.get("data_type", 0))
    if dtype is None:
        raise ValueError("unsupported tensor data_type %r" % t.get("data_type"))
    dims = [int(d) for d in t.get("dims", [])]
    count = int(np.prod(dims)) if dims else 1
    if "raw_data" in t:
        raw = t["raw_data"]
    elif "external_data" in t:
        ext = t["external_data"]
        if base_dir is None:
            raise ValueError("external data needs the model's folder")
        with open(os.path.join(base_dir, ext["location"]), "rb") as f:
            f.seek(ext.get("offset", 0))
            raw = f.read(ext["length"])
    else:
        for field in ("float_data", "double_data", "int32_data", "int64_data", "uint64_data"):
            if field in t:
                return np.array(t[field], dtype=dtype).reshape(dims)
        raw = b""
    arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
    if arr.size != count:
        raise ValueError("tensor %r: %d elements for dims %r" % (t.get("name"), arr.size, dims))
    return arr.astype(dtype).reshape(dims)


def _abstract_of_tensor(t):
    return Abstract(dtype=TENSOR_DTYPES.get(t.get("data_type", 0)),
                    dims=[int(d) for d in t.get("dims", [])])


def _scalar_of_type(a, typ):
    # a plain attribute keeps its scalar in f/d/i/s; a TUPLE element in floats[0]/ints[0]/...
    def pick(single, rep, default):
        if single in a:
            return a[single]
        return a[rep][0] if a.get(rep) else default

    if typ == A_FLOAT:
        return pick("f", "floats", 0.0)
    if typ == A_DOUBLE:
        return pick("d", "doubles", 0.0)
    if typ == A_BOOL:
        return bool(pick("i", "ints", 0))
    if typ in _INT_TYPES:
        return pick("i", "ints", 0)
    if typ == A_STRING:
        return pick("s", "strings", b"").decode("utf-8")
    raise KeyError(typ)


def attr_value(a, base_dir=None):
    """Decodes one AttributeProto (dict) into a Python value.

    Scalars -> bool/int/float/str; TUPLE/LIST -> list; TENSORS -> numpy array, or an Abstract
    when the tensor carries no data (a "shape" attribute); NONE -> None; 1.x ref_attr_name
    encodings ("scalar:value0", "scalar:Tuple[...]", "tensor:...", "shape:...", "type:...").
    """
    ref = a.get("ref_attr_name")
    if ref is not None:
        return _attr_value_1x(a, ref, base_dir)
    typ = a.get("type", 0)
    if typ in (A_TUPLE, A_LIST):
        return [attr_value(v, base_dir) for v in a.get("values", [])]
    if typ == A_DICT:
        return {v.get("name"): attr_value(v, base_dir) for v in a.get("values", [])}
    if typ == A_NONE:
        return None
    if typ in (A_UMONAD, A_IOMONAD):
        return ("monad", typ)
    if typ in (A_TENSORS, A_TENSOR):
        ts = a.get("tensors") or ([a["t"]] if "t" in a else [])
        if not ts:
            return None
        t = ts[0]
        if "raw_data" in t or "external_data" in t or any(
                k in t for k in ("float_data", "double_data", "int32_data", "int64_data")):
            return tensor_to_numpy(t, base_dir)
        return _abstract_of_tensor(t)
    if typ == A_SCALAR or typ == A_TYPE_NULL:
        # an abstract of a scalar value: the element type sits in tensors[0] or in i
        ts = a.get("tensors")
        if ts:
            return Abstract(dtype=TENSOR_DTYPES.get(ts[0].get("data_type", 0)), dims=[],
                            scalar=True)
        return Abstract(dtype=None, dims=[], scalar=True, type=a.get("i"))
    try:
        return _scalar_of_type(a, typ)
    except KeyError:
        return ("attr", typ, a)


def _attr_value_1x(a, ref, base_dir):
    typ = a.get("type", 0)
    if ref.startswith("scalar:"):
        if "[" in ref:  # Tuple[...] / List[...]: payload in the repeated fields
            for field in ("ints", "floats", "doubles"):
                if field in a:
                    vals = a[field]
                    if typ == A_BOOL:
                        return [bool(v) for v in vals]
                    return list(vals)
            if "strings" in a:
                return [s.decode("utf-8") for s in a["strings"]]
            return []
        return _scalar_of_type(a, typ)
    if ref.startswith("tensor:"):
        return tensor_to_numpy(a["tensors"][0], base_dir)
    if ref.startswith("shape:"):
        ts = a.get("tensors", [])
        if len(ts) == 1:
            return _abstract_of_tensor(ts[0])
        return [_abstract_of_tensor(t) for t in ts]
    if ref.startswith("type:"):
        return ("type", a.get("i"))
    if ref == "none":
        return None
    return ("attr", ref, a)


def _attrs(attr_list, base_dir):
    out = {}
    for i, a in enumerate(attr_list):
        # 1.x "shape" attributes are written without a name
        name = a.get("name") or ("shape" if a.get("ref_attr_name", "").startswith("shape:")
                                 else "#%d" % i)
        out[name] = attr_value(a, base_dir)
    return out


def _strip_prim(op):
    for prefix in ("S-Prim-", "S_Prim_"):
        if op.startswith(prefix):
            return op[len(prefix):]
    return op


def _graph(g, prims, base_dir):
    graph = {
        "name": g.get("name", ""),
        "inputs": [],
        "outputs": [o.get("name", "") for o in g.get("output", [])],
        "parameters": {},
        "param_keys": {},
        "nodes": [],
    }
    for field, key in (("input", "inputs"), ("output", "output_info")):
        graph.setdefault(key, [])
        for vi in g.get(field, []):
            t = (vi.get("tensor") or [{}])[0]
            graph[key].append({"name": vi.get("name", ""),
                               "dims": [int(d) for d in t.get("dims", [])],
                               "dtype": TENSOR_DTYPES.get(t.get("data_type", 0))})
    for p in g.get("parameter", []):
        arr = tensor_to_numpy(p, base_dir)
        graph["parameters"][p.get("name", "")] = arr
        graph["param_keys"][p.get("name", "")] = p.get("ref_key")
    for n in g.get("node", []):
        op_type = n.get("op_type", "")
        op = op_type
        prim = None
        if op_type.startswith("REF::"):
            key = op_type[len("REF::"):]
            prim = prims.get(key)
            op = prim["op_type"] if prim is not None else key
        op = _strip_prim(op)
        attrs = _attrs(n.get("attribute", []), base_dir)
        prim_attrs = dict(prim["attrs"]) if prim is not None else {}
        graph["nodes"].append({
            "name": n.get("name", ""),
            "op_type": op_type,
            "op": op,
            "inputs": list(n.get("input", [])),
            "outputs": list(n.get("output", [])),
            "attrs": attrs,
            "prim_attrs": prim_attrs,
            "node_attrs": _attrs(n.get("node_attr", []), base_dir),
        })
    return graph


def read_model(src, base_dir=None):
    """Reads a MindIR file (path) or bytes into dicts; see the module docstring."""
    if isinstance(src, (bytes, bytearray)):
        data = bytes(src)
    else:
        base_dir = base_dir or os.path.dirname(os.path.abspath(src))
        with open(src, "rb") as f:
            data = f.read()
    if data[:4] in (b"\xd8\x5e\x3a\x7f", b"\x7f\x3a\x5e\xd8", b"\xd9\x5e\x3a\x7f",
                    b"\x7f\x3a\x5e\xd9", b"\xda\x5e\x3a\x7f", b"\x7f\x3a\x5e\xda"):
        raise ValueError("encrypted model")
    m = decode(data, "ModelProto")
    prims = {}
    for p in m.get("primitives", []):
        prims[p.get("name", "")] = {
            "op_type": p.get("op_type", ""),
            "attrs": _attrs(p.get("attribute", []), base_dir),
            "prim_type": p.get("prim_type"),
            "instance_name": p.get("instance_name"),
        }
    graph = _graph(m.get("graph", {}), prims, base_dir)
    model = {
        "ir_version": m.get("ir_version"),
        "producer_name": m.get("producer_name"),
        "producer_version": m.get("producer_version"),
        "mind_ir_version": m.get("mind_ir_version", 0),
        "primitives": prims,
        "graph": graph,
        "functions": [_graph(f, prims, base_dir) for f in m.get("functions", [])],
        "raw": m,
    }
    model["constants"] = {n["outputs"][0]: n["attrs"].get("value")
                          for n in graph["nodes"] if n["op"] == "Constant" and n["outputs"]}
    model["params_by_key"] = {graph["param_keys"][k] or k: v
                              for k, v in graph["parameters"].items()}
    return model


def node_by_output(model, name):
    for n in model["graph"]["nodes"]:
        if n["outputs"] and n["outputs"][0] == name:
            return n
    raise KeyError(name)


def op_attrs(node):
    """The attributes that describe the op: primitive-table ones (2.x) or the node's (1.x)."""
    out = dict(node["prim_attrs"])
    out.update({k: v for k, v in node["attrs"].items() if k != "shape"})
    return out
