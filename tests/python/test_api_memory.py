"""Memory: many predicts on one model do not grow the process (measured in a fresh interpreter,
after a warm-up, from /proc/self/statm)."""

import json

import numpy as np

from conftest import matmul_builder, run_python

LOOP_PROBE = """
import json, os, sys
import numpy as np
import shardlite as mslite

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

model = mslite.Model()
model.build_from_file(sys.argv[1], mslite.ModelType.MINDIR)
x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8

def once(i):
    # alternate the ways users feed a model: numpy arrays, fresh Tensors, the bound inputs
    if i % 3 == 0:
        outs = model.predict([x])
    elif i % 3 == 1:
        outs = model.predict([mslite.Tensor(x)])
    else:
        inputs = model.get_inputs()
        inputs[0].set_data_from_numpy(x)
        outs = model.predict(inputs)
    return outs[0].get_data_to_numpy()

for i in range(1000):
    once(i)
before = rss()
for i in range(10000):
    y = once(i)
after = rss()
print(json.dumps({"before": before, "after": after, "y": y.tolist()}))
"""


def test_ten_thousand_predicts_do_not_grow_rss(mslite, tmp_path):
    w = np.random.default_rng(31).uniform(-1, 1, (4, 3)).astype(np.float32)
    bias = np.array([0.5, -0.5, 1.0], np.float32)
    path = tmp_path / "small.mindir"
    matmul_builder(w, bias=bias).save(path)
    proc = run_python(None, args=["-c", LOOP_PROBE, str(path)])
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
    np.testing.assert_allclose(res["y"], x @ w + bias, rtol=1e-5, atol=1e-6)
    growth = res["after"] - res["before"]
    assert growth < 8 << 20, "RSS grew by %.1f MiB over 10000 predicts" % (growth / (1 << 20))
