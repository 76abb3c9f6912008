"""A small pure-Python MindIR writer: builds models op by op (for tests, examples and users who
want a model without MindSpore), independent of shardlite's C loader and writer.

It encodes the protobuf (proto2) wire format by hand from the MindIR field numbers and copies
the encodings of real MindSpore exports:

    b = GraphBuilder("g", style="2.x")      # "2.x": op_type "REF::<Prim>:<n>" + primitives table
                                            # "1.x": bare op_type, attributes on the node with
                                            #        ref_attr_name ("scalar:value0", ...)
    x = b.input("x", [1, 4], np.float32)    # -1 dims allowed; returns the value name
    w = b.param("w", array)                 # GraphProto.parameter "<graph>:w", ref_key "w"
    c = b.const(value)                      # Constant node (array, int, float, bool, tuple, None)
    t = b.const_type(np.float32)            # Constant holding a data type (Cast's target)
    y = b.op("MatMul", [x, w], attrs={"transpose_b": True}, abstract=(np.float32, [1, 3]))
    a, c = b.op("Split", [x], attrs={"axis": 1, "output_num": 2}, n_out=2)
    b.output(y)  /  b.output(y1, y2)        # several -> one MakeTuple node is the graph output
    data = b.serialize(packed=False); b.save(path, external_data=False, packed=False)

`abstract` (optional) writes the node's "shape" attribute the way exports do: (dtype, dims) for
a tensor, (dtype, "scalar") for a scalar, or a list of those for a tuple output.
Repeated scalars are written unpacked like MindSpore; packed=True packs them instead.
"""

import os
import struct

import numpy as np

# TensorProto data_type numbers
DTYPE_CODES = {
    np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int8): 3,
    np.dtype(np.uint16): 4, np.dtype(np.int16): 5, np.dtype(np.int32): 6,
    np.dtype(np.int64): 7, np.dtype(np.bool_): 9, np.dtype(np.float16): 10,
    np.dtype(np.float64): 11, np.dtype(np.uint32): 12, np.dtype(np.uint64): 13,
}
# AttributeType numbers
T_FLOAT, T_INT64, T_STRING, T_BOOL, T_DOUBLE, T_UINT32 = 1, 7, 8, 9, 11, 12
T_TENSORS, T_TUPLE, T_LIST, T_UMONAD, T_NONE, T_SCALAR = 19, 20, 21, 23, 25, 39


def dtype_code(dtype):
    return DTYPE_CODES[np.dtype(dtype)]


# ---- wire format ----

def _varint(v):
    if v < 0:
        v += 1 << 64  # negative int64: ten bytes, two's complement
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class Msg:
    """Accumulates the fields of one message in the order they are added."""

    def __init__(self, packed=False):
        self.parts = []
        self.packed = packed

    def _key(self, num, wt):
        self.parts.append(_varint(num << 3 | wt))

    def varint(self, num, v):
        self._key(num, 0)
        self.parts.append(_varint(int(v)))
        return self

    def lendelim(self, num, data):
        if isinstance(data, Msg):
            data = data.bytes()
        elif isinstance(data, str):
            data = data.encode("utf-8")
        self._key(num, 2)
        self.parts.append(_varint(len(data)))
        self.parts.append(bytes(data))
        return self

    def float(self, num, v):
        self._key(num, 5)
        self.parts.append(struct.pack("<f", v))
        return self

    def rep_varint(self, num, values):
        values = [int(v) for v in values]
        if self.packed and values:
            self.lendelim(num, b"".join(_varint(v) for v in values))
        else:
            for v in values:
                self.varint(num, v)
        return self

    def rep_float(self, num, values):
        if self.packed and values:
            self.lendelim(num, struct.pack("<%df" % len(values), *values))
        else:
            for v in values:
                self.float(num, v)
        return self

    def bytes(self):
        return b"".join(self.parts)


class _Node:
    def __init__(self, name, op_type, inputs, outputs, attrs, domain=None):
        self.name = name
        self.op_type = op_type
        self.inputs = inputs
        self.outputs = outputs
        self.attrs = attrs  # list of callables (packed) -> Msg of an AttributeProto
        self.domain = domain


class GraphBuilder:
    def __init__(self, name="g", style="2.x", producer_version=None):
        if style not in ("1.x", "2.x"):
            raise ValueError("style must be '1.x' or '2.x'")
        self.name = name
        self.style = style
        self.producer_version = producer_version or ("2.2.0" if style == "2.x" else "1.5.0")
        self.inputs = []       # (name, dims, dtype)
        self.params = []       # (name, key, array)
        self.nodes = []
        self.prims = []        # (key, op, attrs)
        self._prim_keys = {}   # (op, repr(attrs)) -> key
        self.outputs = []      # (name, abstract)
        self.abstracts = {}    # value name -> abstract
        self._counter = 0

    # ---- naming ----
    def _next(self):
        self._counter += 1
        return self._counter

    def _full(self, name):
        return "%s:%s" % (self.name, name)

    # ---- graph building ----
    def input(self, name, dims, dtype):
        full = self._full(name)
        self.inputs.append((full, [int(d) for d in dims], np.dtype(dtype)))
        self.abstracts[full] = (np.dtype(dtype), list(dims))
        return full

    def param(self, name, array):
        array = np.ascontiguousarray(array)
        full = self._full(name)
        self.params.append((full, name, array))
        self.abstracts[full] = (array.dtype, list(array.shape))
        return full

    def const(self, value, name=None):
        name = name or "const_%d" % self._next()
        self.nodes.append(_Node(name, "Constant", [], [name],
                                [lambda packed, v=value: self._attr("value", v, packed)]))
        if isinstance(value, np.ndarray):
            self.abstracts[name] = (value.dtype, list(value.shape))
        return name

    def const_type(self, dtype, name=None):
        """A Constant holding a data type (as exports write Cast's target): TENSORS whose one
        tensor has a data_type and neither dims nor data."""
        name = name or "type_%d" % self._next()

        def make(packed, code=dtype_code(dtype)):
            a = Msg(packed).lendelim(1, "value")
            a.lendelim(12, Msg(packed).varint(2, code))
            if self.style == "1.x":
                a.lendelim(15, "type:value0")
            return a.varint(16, T_TENSORS)

        self.nodes.append(_Node(name, "Constant", [], [name], [make]))
        return name

    def op(self, prim, inputs, attrs=None, n_out=1, abstract=None, name=None):
        """Adds a node; returns its output name, or n_out TupleGetItem outputs when n_out > 1."""
        attrs = dict(attrs or {})
        idx = self._next()
        out = name or self._full("%s_%d" % (prim, idx))
        if self.style == "2.x":
            op_type = "REF::" + self._prim(prim, attrs)
            node_attrs = []
        else:
            op_type = "S-Prim-" + prim if prim == "MakeTuple" else prim
            node_attrs = [lambda packed, k=k, v=v: self._attr(k, v, packed)
                          for k, v in attrs.items()]
        if abstract is not None:
            node_attrs.append(lambda packed, a=abstract: self._shape_attr(a, packed))
            self.abstracts[out] = abstract
        self.nodes.append(_Node(out, op_type, list(inputs), [out], node_attrs,
                                domain="Default/%s-op%d" % (prim, idx)))
        if n_out == 1:
            return out
        outs = []
        for i in range(n_out):
            sub = None
            if isinstance(abstract, list):
                sub = abstract[i]
            outs.append(self.op("TupleGetItem", [out, self.const(i)], abstract=sub))
        return outs

    def output(self, *names):
        if len(names) == 1:
            self.outputs = [(names[0], self.abstracts.get(names[0]))]
            return names[0]
        subs = [self.abstracts.get(n) for n in names]
        tup = self.op("MakeTuple", list(names),
                      abstract=subs if all(s is not None for s in subs) else None)
        self.outputs = [(tup, None)]
        return tup

    def _prim(self, prim, attrs):
        key = (prim, repr(sorted(attrs.items())))
        if key not in self._prim_keys:
            name = "%s:%d" % (prim, self._next())
            self._prim_keys[key] = name
            self.prims.append((name, prim, attrs))
        return self._prim_keys[key]

    # ---- encoding ----
    def _tensor(self, array, packed, name=None, ext=None):
        t = Msg(packed)
        t.rep_varint(1, array.shape)
        t.varint(2, dtype_code(array.dtype))
        if name is not None:
            t.lendelim(7, name)
        if ext is None:
            t.lendelim(9, array.astype(array.dtype.newbyteorder("<")).tobytes())
        else:
            e = Msg(packed).lendelim(1, ext[0]).varint(2, ext[1]).varint(3, ext[2])
            t.lendelim(12, e)
        return t

    def _abstract_msg(self, abstract, packed, name=None):
        a = Msg(packed)
        if name is not None:
            a.lendelim(1, name)
        if isinstance(abstract, list):
            a.varint(16, T_TUPLE)
            for sub in abstract:
                a.lendelim(17, self._abstract_msg(sub, packed))
            return a
        dtype, dims = abstract
        t = Msg(packed)
        t.rep_varint(1, [0] if dims == "scalar" else dims).varint(2, dtype_code(dtype))
        a.lendelim(12, t)
        a.varint(16, T_SCALAR if dims == "scalar" else T_TENSORS)
        return a

    def _shape_attr(self, abstract, packed):
        if self.style == "2.x":
            return self._abstract_msg(abstract, packed, name="shape")
        # 1.x: an unnamed attribute, tensors named shape1.., ref_attr_name "shape:shape1,..."
        subs = abstract if isinstance(abstract, list) else [abstract]
        a = Msg(packed)
        refs = []
        for i, (dtype, dims) in enumerate(subs):
            t = Msg(packed)
            t.rep_varint(1, [] if dims == "scalar" else dims).varint(2, dtype_code(dtype))
            t.lendelim(7, "shape%d" % (i + 1))
            a.lendelim(12, t)
            refs.append("shape%d," % (i + 1))
        a.lendelim(15, "shape:" + "".join(refs))
        return a

    def _attr(self, name, value, packed):
        a = Msg(packed)
        a.lendelim(1, name)
        if self.style == "1.x":
            self._value_1x(a, value, packed)
        else:
            self._value_2x(a, value, packed)
        return a

    def _value_2x(self, a, value, packed):
        if value is None:
            a.varint(16, T_NONE)
        elif isinstance(value, np.ndarray):
            a.lendelim(12, self._tensor(value, packed, name="value0"))
            a.varint(16, T_TENSORS)
        elif isinstance(value, (bool, np.bool_)):
            a.varint(3, int(value)).varint(16, T_BOOL)
        elif isinstance(value, (int, np.integer)):
            a.varint(3, int(value)).varint(16, T_INT64)
        elif isinstance(value, (float, np.floating)):
            a.float(2, float(value)).varint(16, T_FLOAT)
        elif isinstance(value, str):
            a.lendelim(5, value).varint(16, T_STRING)
        elif isinstance(value, (list, tuple)):
            a.varint(16, T_TUPLE)
            for v in value:
                e = Msg(packed)
                if isinstance(v, (bool, np.bool_)):
                    e.rep_varint(10, [int(v)]).varint(16, T_BOOL)
                elif isinstance(v, np.uint32):  # as MindSpore writes UInt32Imm (group_rank_ids)
                    e.varint(3, int(v)).varint(16, T_UINT32)
                elif isinstance(v, (int, np.integer)):
                    e.rep_varint(10, [int(v)]).varint(16, T_INT64)
                elif isinstance(v, (float, np.floating)):
                    e.rep_float(8, [float(v)]).varint(16, T_FLOAT)
                elif isinstance(v, str):
                    e.lendelim(11, v).varint(16, T_STRING)
                else:
                    raise TypeError("unsupported tuple element %r" % (v,))
                a.lendelim(17, e)
        else:
            raise TypeError("unsupported attribute value %r" % (value,))

    def _value_1x(self, a, value, packed):
        # fields in number order: payload, ref_attr_name (15), type (16)
        if value is None:
            a.lendelim(15, "none").varint(16, T_NONE)
        elif isinstance(value, np.ndarray):
            a.lendelim(12, self._tensor(value, packed, name="value0"))
            a.lendelim(15, "tensor:value0").varint(16, T_TENSORS)
        elif isinstance(value, (bool, np.bool_)):
            a.varint(3, int(value)).lendelim(15, "scalar:value0").varint(16, T_BOOL)
        elif isinstance(value, (int, np.integer)):
            a.varint(3, int(value)).lendelim(15, "scalar:value0").varint(16, T_INT64)
        elif isinstance(value, (float, np.floating)):
            a.float(2, float(value)).lendelim(15, "scalar:value0").varint(16, T_FLOAT)
        elif isinstance(value, str):
            a.lendelim(5, value).lendelim(15, "scalar:value0").varint(16, T_STRING)
        elif isinstance(value, (list, tuple)):
            if value and all(isinstance(v, (bool, np.bool_)) for v in value):
                a.rep_varint(10, [int(v) for v in value])
                typ = T_BOOL
            elif all(isinstance(v, (int, np.integer)) for v in value):
                a.rep_varint(10, value)
                typ = T_INT64
            elif all(isinstance(v, (float, np.floating, int)) for v in value):
                a.rep_float(8, [float(v) for v in value])
                typ = T_FLOAT
            elif all(isinstance(v, str) for v in value):
                for v in value:
                    a.lendelim(11, v)
                typ = T_STRING
            else:
                raise TypeError("unsupported sequence %r" % (value,))
            names = "".join("value%d," % (i + 1) for i in range(len(value)))
            kind = "List" if isinstance(value, list) else "Tuple"
            a.lendelim(15, "scalar:%s[%s]," % (kind, names)).varint(16, typ)
        else:
            raise TypeError("unsupported attribute value %r" % (value,))

    def _value_info(self, name, abstract, packed):
        vi = Msg(packed).lendelim(1, name)
        subs = abstract if isinstance(abstract, list) else ([abstract] if abstract else [])
        for dtype, dims in subs:
            t = Msg(packed)
            t.rep_varint(1, [] if dims == "scalar" else dims).varint(2, dtype_code(dtype))
            vi.lendelim(2, t)
        return vi

    def serialize(self, packed=False, _external=None):
        """The ModelProto bytes. _external: {param name: (location, offset, length)}."""
        if not self.outputs:
            raise ValueError("no output")
        g = Msg(packed)
        for n in self.nodes:
            nm = Msg(packed)
            for i in n.inputs:
                nm.lendelim(1, i)
            for o in n.outputs:
                nm.lendelim(2, o)
            nm.lendelim(3, n.name)
            nm.lendelim(4, n.op_type)
            for make in n.attrs:
                nm.lendelim(5, make(packed))
            if n.domain and self.style == "2.x":
                nm.lendelim(7, n.domain)
            g.lendelim(1, nm)
        g.lendelim(2, self.name)
        for full, key, array in self.params:
            ext = (_external or {}).get(full)
            t = self._tensor(array, packed, name=full, ext=ext)
            t.lendelim(13, key)
            g.lendelim(3, t)
        for full, dims, dtype in self.inputs:
            vi = Msg(packed).lendelim(1, full)
            vi.lendelim(2, Msg(packed).rep_varint(1, dims).varint(2, dtype_code(dtype)))
            g.lendelim(5, vi)
        for name, abstract in self.outputs:
            g.lendelim(6, self._value_info(name, abstract, packed))

        m = Msg(packed)
        m.lendelim(1, "0.1.1" if self.style == "2.x" else "0.1.0")
        m.lendelim(2, "MindSpore")
        m.lendelim(5, self.producer_version)
        m.lendelim(7, g)
        if self.style == "2.x":
            m.varint(10, 1)
            for key, prim, attrs in self.prims:
                p = Msg(packed).lendelim(1, key).lendelim(2, prim)
                for k, v in attrs.items():
                    p.lendelim(3, self._attr(k, v, packed))
                m.lendelim(12, p)
            m.varint(13, 1)
        return m.bytes()

    def save(self, path, external_data=False, packed=False, location=None):
        """Writes the model; external_data puts the parameters into "<stem>_variables/data_0"
        (location overrides the name written into the model, for tests of bad locations)."""
        path = str(path)
        external = None
        if external_data:
            stem = os.path.splitext(os.path.basename(path))[0]
            location = location or "%s_variables/data_0" % stem
            folder = os.path.join(os.path.dirname(os.path.abspath(path)), "%s_variables" % stem)
            os.makedirs(folder, exist_ok=True)
            blob = bytearray(64)
            blob[0] = 1  # little-endian
            external = {}
            for full, _key, array in self.params:
                data = array.astype(array.dtype.newbyteorder("<")).tobytes()
                external[full] = (location, len(blob), len(data))
                blob += data
                blob += bytes(-len(blob) % 64)
            with open(os.path.join(folder, "data_0"), "wb") as f:
                f.write(bytes(blob))
        data = self.serialize(packed=packed, _external=external)
        with open(path, "wb") as f:
            f.write(data)
        return path
