"""The extension survives hostile use from Python: saving while another thread predicts, shape
lists that change while they are read, and Tensors whose fields were replaced by arbitrary
objects. Each case runs in a child process, so a crash or a hang fails the test instead of
taking pytest down."""

import subprocess
import sys

import pytest

PREAMBLE = """
import sys, threading
import numpy as np
from shardlite import _shardlite as S
m = S.Model()
m.build(sys.argv[1], 1)
"""

CASES = {
    "save_while_predicting": """
stop = False
def loop():
    while not stop:
        m.predict()
t = threading.Thread(target=loop)
t.start()
try:
    for _ in range(300):
        m.save(sys.argv[2])
finally:
    stop = True
    t.join()
print("done")
""",
    "shapes_changed_while_read": """
shapes = None
def gen():
    shapes.clear()
    [object() for _ in range(1000)]
    yield 1; yield 1; yield 2; yield 2
shapes = [gen(), [1, 1, 2, 2]] + [[1]] * 50
try:
    m.resize(shapes)
except (RuntimeError, ValueError, TypeError) as e:
    pass
print("done")
""",
    "tensor_with_foreign_dtype": """
t = S.TensorBase()
class D:
    def __index__(self):
        m.predict()  # would need the model's lock, held by run()
        return 43
t._data = np.ones((1, 1, 2, 2), np.float32)
t._dtype = D()
try:
    m.run([t])
except RuntimeError as e:
    assert "without valid data" in str(e), e
print("done")
""",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_survives(mslite, fixtures_dir, tmp_path, case):
    proc = subprocess.run([sys.executable, "-c", PREAMBLE + CASES[case],
                           str(fixtures_dir / "relu.mindir"), str(tmp_path / "out.mindir")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["done"]
