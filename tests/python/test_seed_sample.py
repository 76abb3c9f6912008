"""The seed's distributed sample (examples/distributed_main.py: the MindSpore Lite docs' script
with only the import and the target changed) runs as a single rank on a MatMul model."""

import re

import numpy as np

from conftest import REPO, launcher_free_env, matmul_builder, run_python


def test_distributed_sample_runs_on_one_rank(mslite, tmp_path):
    w = np.random.default_rng(41).uniform(-1, 1, (4, 3)).astype(np.float32)
    matmul_builder(w, [2, 4]).save(tmp_path / "Matmul0.mindir")
    # no launcher variables: rank 0 of 1, so the script loads Matmul0.mindir
    proc = run_python(None, args=[REPO / "examples" / "distributed_main.py",
                                  "--model_path=%s" % (tmp_path / "Matmul.mindir")],
                      env=launcher_free_env())
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 2, proc.stdout
    m = re.fullmatch(r"tensor's name is:(\S+) data size is:(\d+) tensor elements num is:(\d+)",
                     lines[0])
    assert m, lines[0]
    assert int(m.group(2)) == 2 * 3 * 4 and int(m.group(3)) == 6
    assert lines[1].startswith("output data is:")
    values = [float(v) for v in lines[1][len("output data is:"):].split()]
    want = (np.ones((2, 4), np.float32) @ w).ravel()
    assert len(values) == 6
    np.testing.assert_allclose(values, want, rtol=1e-5, atol=1e-6)


def test_distributed_sample_picks_the_rank_file(mslite, tmp_path):
    """Launched as rank 1 of 2 (shardlite's own variables), the script loads Matmul1.mindir."""
    w1 = np.full((4, 3), 2.0, np.float32)
    matmul_builder(w1, [2, 4]).save(tmp_path / "Matmul1.mindir")
    proc = run_python(None, args=[REPO / "examples" / "distributed_main.py",
                                  "--model_path=%s" % (tmp_path / "Matmul.mindir")],
                      env=launcher_free_env(SHARDLITE_RANK=1, SHARDLITE_WORLD_SIZE=2))
    values = [float(v) for v in proc.stdout.strip().splitlines()[-1].split(":", 1)[1].split()]
    np.testing.assert_allclose(values, np.full(6, 8.0))
