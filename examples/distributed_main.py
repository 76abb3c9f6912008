"""MindSpore Lite's cloud-side distributed inference sample (MindSpore docs, "Performing
Cloud-side Distributed Inference Using Python Interface", GPU flavour), its fragments put
together as one script. Against the reference, two changes: `import mindspore_lite as mslite`
became `import shardlite as mslite`, and the target is the CPU (the reference cannot run
distributed inference on CPUs; its `["gpu"]` runs too, on the CPU, with a RuntimeWarning that
says so). What the fragments leave to the reader is filled in plainly:
the arguments (`--model_path`, `--config_file`), the rank's file name (`os.path.splitext`
rather than `str.replace`, so that a folder named like the model is left alone), and printing
at most 10 values of a smaller output.

Launch one process per rank, e.g. `mpirun -n 2 python3 distributed_main.py
--model_path=/path/to/Matmul.mindir`: rank r loads /path/to/Matmul{r}.mindir.
"""
import argparse
import os

import numpy as np

import shardlite as mslite

parser = argparse.ArgumentParser(description="distributed inference sample")
parser.add_argument("--model_path", type=str, required=True)
parser.add_argument("--config_file", type=str, default="")
args = parser.parse_args()

# init context
context = mslite.Context()
# set target and distributed info (the reference sample: context.target = ["gpu"])
context.target = ["cpu"]
context.gpu.device_id = context.gpu.rank_id
context.gpu.provider = "tensorrt"

# each rank loads its own slice: Matmul.mindir -> Matmul{rank}.mindir
stem, ext = os.path.splitext(args.model_path)
model_path = f"{stem}{context.gpu.rank_id}{ext}"

# create Model and build Model
model = mslite.Model()
model.build_from_file(model_path, mslite.ModelType.MINDIR, context, args.config_file)

# set model input as ones
inputs = model.get_inputs()
for input_i in inputs:
    input_i.set_data_from_numpy(np.ones(input_i.shape, dtype=np.float32))

# execute inference
outputs = model.predict(inputs)

# get output and print
for output in outputs:
    name = output.name.rstrip()
    data_size = output.data_size
    element_num = output.element_num
    print("tensor's name is:%s data size is:%s tensor elements num is:%s" %
          (name, data_size, element_num))
    data = output.get_data_to_numpy()
    data = data.flatten()
    print("output data is:", end=" ")
    for i in range(min(10, data.size)):
        print(data[i], end=" ")
    print("")
