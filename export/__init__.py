"""Export: torch weights -> ``condition.onnx`` + ``step.onnx`` (the step contract)."""
