"""The runtime: ring buffers, sampling, backends, folding and streaming.

The onnxruntime and native backends run without torch; the torch backend and the GPU
backends (cuda, triton, tensorrt: device memory, the loop and the conditioning are
torch's) need it.
"""
