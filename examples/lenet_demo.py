"""Runs LeNet (a real MindSpore 2.0 export) through shardlite's MindSpore-Lite-style API and
prints each output the way MindSpore Lite's distributed sample does."""
import os
import sys

import numpy as np

import shardlite as mslite

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.environ.get("SL_FIXTURES", os.path.join(HERE, "..", "..", "shared", "fixtures", "mindir"))


def main():
    model_path = os.path.join(FIXTURES, "ori_net.mindir")
    if not os.path.exists(model_path):
        sys.exit(f"LeNet model not found at {model_path} (set SL_FIXTURES to the fixtures folder)")
    context = mslite.Context()
    context.target = ["cpu"]
    context.cpu.thread_num = 2
    model = mslite.Model()
    model.build_from_file(model_path, mslite.ModelType.MINDIR, context)

    inputs = model.get_inputs()
    rng = np.random.default_rng(0)
    for input_i in inputs:
        input_i.set_data_from_numpy(rng.standard_normal(input_i.shape).astype(np.float32))
    outputs = model.predict(inputs)

    for output in outputs:
        name = output.name.rstrip()
        print("tensor's name is:%s data size is:%s tensor elements num is:%s"
              % (name, output.data_size, output.element_num))
        data = output.get_data_to_numpy().flatten()
        print("output data is:", " ".join(str(v) for v in data[:10]))
        print("predicted class:", int(np.argmax(data)))


if __name__ == "__main__":
    main()
