"""The runtime: ring buffers, sampling, backends, folding and streaming.

Runs without torch for backends that don't need it (ONNX Runtime, TensorRT).
"""
