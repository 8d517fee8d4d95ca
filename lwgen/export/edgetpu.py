"""Static Edge TPU compatibility report for a ``.tflite`` model, plus the compiler log if available.

The report lists every operator of the main subgraph in execution order with its tensors (dtype,
shape, constant or not) and checks it against the Coral Edge TPU's documented requirements
(https://coral.ai/docs/edgetpu/models-intro/#supported-operations, compiler/runtime 16):

* every tensor is 8-bit quantized (``int8``/``uint8``; ``int32`` only for constant biases and shape
  or axis parameters);
* tensor sizes are constant at compile time (no ``-1`` in a shape signature);
* tensors are 1-, 2- or 3-dimensional, or only their 3 innermost dimensions are larger than 1;
* the operator type is in the supported list and meets that operator's documented limitation.

The Edge TPU compiler makes one Edge TPU segment: it maps operators in order up to the first one
that cannot run on the Edge TPU, and that operator and everything after it run on the CPU. A
``QUANTIZE`` of a float graph input and a ``DEQUANTIZE`` into a float graph output are the
float-IO boundary: they run on the CPU without ending the segment (export with
``--quant=int8_io`` to drop them). The model is read with ``ai_edge_litert``'s flatbuffer
utilities, so models the interpreter cannot load (float or custom ops) can be reported too.

This is a static check; op versions and on-chip memory limits are not checked, so when
``edgetpu_compiler`` is on ``PATH`` its own log (``compile_model``) is the authority.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.tools import flatbuffer_utils

from lwgen.errors import ExportError, MissingFileError

SOURCE = "https://coral.ai/docs/edgetpu/models-intro/#supported-operations (compiler 16)"
# Per-model bundle files: NAME + suffix (the compiler itself names its output NAME_edgetpu.tflite).
REPORT_SUFFIX = "_edgetpu_report.json"
COMPILER_LOG_SUFFIX = "_edgetpu_compiler.log"
COMPILED_MODEL_SUFFIX = "_edgetpu.tflite"
COMPILER = "edgetpu_compiler"
QUANTIZED_TYPES = ("INT8", "UINT8")
PARAM_TYPES = ("INT32",)
_NUMPY_INT = {"INT32": np.int32, "INT64": np.int64}

# TFLite builtin name -> documented limitation ("" when none is documented).
SUPPORTED_OPS = {
    "ADD": "",
    "AVERAGE_POOL_2D": "No fused activation function.",
    "CONCATENATION": "No fused activation function. A constant input is allowed only as one of "
    "2 inputs and must be all zeros.",
    "CONV_2D": "Must use the same dilation in x and y dimensions.",
    "DEPTHWISE_CONV_2D": "Must use the same dilation in x and y dimensions.",
    "EXPAND_DIMS": "",
    "FULLY_CONNECTED": "Only the default weights format. Output tensor is one-dimensional.",
    "L2_NORMALIZATION": "",
    "LOGISTIC": "",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "Unidirectional LSTM only.",
    "MAXIMUM": "",
    "MAX_POOL_2D": "No fused activation function.",
    "MEAN": "No reduction in the batch dimension.",
    "MINIMUM": "",
    "MUL": "",
    "PACK": "No packing in the batch dimension.",
    "PAD": "No padding in the batch dimension.",
    "PRELU": "Alpha must be 1-dimensional.",
    "QUANTIZE": "",
    "REDUCE_MAX": "Cannot operate on the batch dimension.",
    "REDUCE_MIN": "Cannot operate on the batch dimension.",
    "RELU": "",
    "RELU6": "",
    "RELU_N1_TO_1": "",
    "RESHAPE": "Certain reshapes might not be mapped for large tensor sizes.",
    "RESIZE_BILINEAR": "Input/output is a 3-dimensional tensor; may stay on the CPU to avoid "
    "loss of precision.",
    "RESIZE_NEAREST_NEIGHBOR": "Input/output is a 3-dimensional tensor; may stay on the CPU to "
    "avoid loss of precision.",
    "RSQRT": "",
    "SLICE": "",
    "SOFTMAX": "Only a 1-D input tensor with at most 16,000 elements.",
    "SPACE_TO_DEPTH": "",
    "SPLIT": "No splitting in the batch dimension.",
    "SQUARED_DIFFERENCE": "",
    "SQUEEZE": "",
    "STRIDED_SLICE": "Only with all strides equal to 1.",
    "SUB": "",
    "SUM": "Cannot operate on the batch dimension.",
    "TANH": "",
    "TRANSPOSE": "",
    "TRANSPOSE_CONV": "",
}
SOFTMAX_MAX_ELEMENTS = 16000


def _tensor_info(model: Any, subgraph: Any, index: int, produced: set[int]) -> dict[str, Any]:
    tensor = subgraph.tensors[index]
    buffer = model.buffers[tensor.buffer]
    data = buffer.data if buffer.data is not None and len(buffer.data) else None
    signature = tensor.shapeSignature
    return {
        "index": index,
        "name": tensor.name.decode(errors="replace"),
        "dtype": flatbuffer_utils.type_to_name(tensor.type),
        "shape": [int(d) for d in tensor.shape],
        "static": signature is None or all(int(d) >= 0 for d in signature),
        "constant": index not in produced and (data is not None or bool(buffer.offset)),
        "_data": data,
    }


def _constant_values(tensor: dict[str, Any]) -> np.ndarray | None:
    dtype = _NUMPY_INT.get(tensor["dtype"])
    if tensor["_data"] is None or dtype is None:
        return None
    return np.frombuffer(bytes(tensor["_data"]), dtype=dtype).reshape(tensor["shape"])


def _effective_rank(shape: list[int]) -> int:
    return sum(d > 1 for d in shape)


def _tensor_problem(tensor: dict[str, Any]) -> str | None:
    """Why a tensor keeps its op off the Edge TPU, or None."""
    allowed = QUANTIZED_TYPES + (PARAM_TYPES if tensor["constant"] else ())
    if tensor["dtype"] not in allowed:
        return f"tensor {tensor['name']!r} is {tensor['dtype']}, not 8-bit quantized"
    if not tensor["static"]:
        return f"tensor {tensor['name']!r} has a dynamic shape"
    shape = tensor["shape"]
    if not tensor["constant"] and len(shape) > 3 and any(d > 1 for d in shape[:-3]):
        return (
            f"tensor {tensor['name']!r} has shape {shape}: only the 3 innermost dimensions "
            "may be larger than 1"
        )
    return None


def _fused_activation(op: Any, inputs: list, outputs: list) -> str | None:
    if getattr(op.builtinOptions, "fusedActivationFunction", 0):
        return "has a fused activation function"
    return None


def _concat_constants(op: Any, inputs: list, outputs: list) -> str | None:
    constants = [t for t in inputs if t["constant"]]
    if not constants:
        return None
    data = constants[0]["_data"]
    zeros = data is not None and not np.any(data)
    if len(inputs) != 2 or len(constants) != 1 or not zeros:
        return "a constant input is allowed only as one of 2 inputs and must be all zeros"
    return None


def _one_dimensional_output(op: Any, inputs: list, outputs: list) -> str | None:
    if _effective_rank(outputs[0]["shape"]) > 1:
        return f"output shape {outputs[0]['shape']} is not one-dimensional"
    return None


def _three_dimensional(op: Any, inputs: list, outputs: list) -> str | None:
    for tensor in (inputs[0], outputs[0]):
        if len(tensor["shape"]) == 4 and tensor["shape"][0] != 1:
            return f"tensor shape {tensor['shape']} is not 3-dimensional (batch > 1)"
    return None


def _softmax_size(op: Any, inputs: list, outputs: list) -> str | None:
    shape = inputs[0]["shape"]
    if _effective_rank(shape) > 1 or int(np.prod(shape)) > SOFTMAX_MAX_ELEMENTS:
        return f"input shape {shape} is not 1-D with <= {SOFTMAX_MAX_ELEMENTS} elements"
    return None


def _unit_strides(op: Any, inputs: list, outputs: list) -> str | None:
    strides = _constant_values(inputs[3]) if len(inputs) > 3 else None
    if strides is None or np.any(strides != 1):
        return "strides are not all 1"
    return None


def _batch_axis(axis_input: int) -> Callable[[Any, list, list], str | None]:
    def check(op: Any, inputs: list, outputs: list) -> str | None:
        axes = _constant_values(inputs[axis_input])
        rank = len(inputs[1 - axis_input]["shape"])
        if axes is None or np.any(np.mod(axes, rank) == 0):
            return "operates on the batch dimension"
        return None

    return check


def _pad_batch(op: Any, inputs: list, outputs: list) -> str | None:
    paddings = _constant_values(inputs[1])
    if paddings is None or np.any(paddings[0] != 0):
        return "pads the batch dimension"
    return None


def _pack_batch(op: Any, inputs: list, outputs: list) -> str | None:
    if getattr(op.builtinOptions, "axis", 0) == 0:
        return "packs along the batch dimension"
    return None


_OP_CHECKS = {
    "AVERAGE_POOL_2D": (_fused_activation,),
    "MAX_POOL_2D": (_fused_activation,),
    "CONCATENATION": (_fused_activation, _concat_constants),
    "FULLY_CONNECTED": (_one_dimensional_output,),
    "RESIZE_BILINEAR": (_three_dimensional,),
    "RESIZE_NEAREST_NEIGHBOR": (_three_dimensional,),
    "SOFTMAX": (_softmax_size,),
    "STRIDED_SLICE": (_unit_strides,),
    "MEAN": (_batch_axis(1),),
    "SUM": (_batch_axis(1),),
    "REDUCE_MAX": (_batch_axis(1),),
    "REDUCE_MIN": (_batch_axis(1),),
    "SPLIT": (_batch_axis(0),),
    "PAD": (_pad_batch,),
    "PACK": (_pack_batch,),
}


def _op_problem(name: str, op: Any, inputs: list, outputs: list) -> str | None:
    """Why an operator cannot run on the Edge TPU, or None."""
    if name not in SUPPORTED_OPS:
        return f"{name} is not a supported Edge TPU operation"
    for tensor in inputs + outputs:
        problem = _tensor_problem(tensor)
        if problem:
            return problem
    for check in _OP_CHECKS.get(name, ()):
        problem = check(op, inputs, outputs)
        if problem:
            return f"{name}: {problem} ({SUPPORTED_OPS[name]})"
    return None


def _is_io_boundary(name: str, inputs: list, outputs: list, graph_io: set[int]) -> bool:
    if name == "QUANTIZE":
        return inputs[0]["index"] in graph_io and inputs[0]["dtype"] not in QUANTIZED_TYPES
    if name == "DEQUANTIZE":
        return outputs[0]["index"] in graph_io
    return False


def _public(tensor: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in tensor.items() if not k.startswith("_") and k != "index"}


def _place(ops: list[dict[str, Any]]) -> None:
    """Sets each op's ``placement``: one Edge TPU segment up to the first unsupported op."""
    fallen_back = False
    for op in ops:
        if op["io_boundary"]:
            op["placement"] = "cpu"
            op["reason"] = "float input/output conversion at the graph boundary runs on the CPU"
            continue
        fallen_back = fallen_back or not op["supported"]
        op["placement"] = "cpu" if fallen_back else "edgetpu"
        if fallen_back and op["supported"]:
            op["reason"] = "after the first unsupported op: the compiler maps only one segment"


def edgetpu_report(tflite_path: str | Path) -> dict[str, Any]:
    """Checks a ``.tflite`` model against the Edge TPU's documented requirements.

    Args:
      tflite_path: path to the model (ideally full-integer ``int8_io``).

    Returns:
      A JSON-serialisable dict: ``model``, ``source`` (the documentation it checks against),
      ``num_ops``; ``ops`` (one entry per op in execution order: ``index``, ``op``, ``inputs`` and
      ``outputs`` as ``{"name", "dtype", "shape", "static", "constant"}``, ``supported``,
      ``placement`` ("edgetpu" or "cpu") and ``reason``); ``coverage`` (fraction of ops that
      would run on the Edge TPU); ``supported_fraction`` (fraction individually supported);
      ``unsupported`` (``{"index", "op", "reason"}`` of each op that cannot run there, float-IO
      boundary conversions excluded); ``first_cpu_fallback`` (the first of those, where the
      Edge TPU segment ends, or None); ``edgetpu_ops``, ``cpu_ops``.

    Raises:
      MissingFileError: if ``tflite_path`` does not exist.
      ExportError: if the file is not a TFLite flatbuffer or has no operators.
    """
    path = Path(tflite_path)
    if not path.is_file():
        raise MissingFileError(f"TFLite model {path} not found")
    try:
        model = flatbuffer_utils.read_model(str(path))
    except Exception as e:  # the flatbuffer reader raises assorted errors on garbage
        raise ExportError(f"{path} is not a readable TFLite model: {e}") from None
    if not model.subgraphs or not model.subgraphs[0].operators:
        raise ExportError(f"{path} has no operators in its main subgraph")
    subgraph = model.subgraphs[0]
    graph_io = {int(i) for i in subgraph.inputs} | {int(i) for i in subgraph.outputs}
    produced = {int(i) for op in subgraph.operators for i in op.outputs} | {
        int(i) for i in subgraph.inputs
    }
    ops = []
    for index, op in enumerate(subgraph.operators):
        name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
        inputs = [_tensor_info(model, subgraph, int(i), produced) for i in op.inputs if i >= 0]
        outputs = [_tensor_info(model, subgraph, int(i), produced) for i in op.outputs]
        problem = _op_problem(name, op, inputs, outputs)
        ops.append(
            {
                "index": index,
                "op": name,
                "inputs": [_public(t) for t in inputs],
                "outputs": [_public(t) for t in outputs],
                "supported": problem is None,
                "io_boundary": _is_io_boundary(name, inputs, outputs, graph_io),
                "reason": problem or "mapped to the Edge TPU",
            }
        )
    _place(ops)
    unsupported = [
        {"index": op["index"], "op": op["op"], "reason": op["reason"]}
        for op in ops
        if not op["supported"] and not op["io_boundary"]
    ]
    on_tpu = sum(op["placement"] == "edgetpu" for op in ops)
    return {
        "model": str(path),
        "source": SOURCE,
        "num_ops": len(ops),
        "ops": ops,
        "coverage": on_tpu / len(ops),
        "supported_fraction": sum(op["supported"] for op in ops) / len(ops),
        "unsupported": unsupported,
        "first_cpu_fallback": unsupported[0] if unsupported else None,
        "edgetpu_ops": on_tpu,
        "cpu_ops": len(ops) - on_tpu,
    }


def compile_model(
    tflite_path: str | Path, timeout_s: float = 300.0
) -> tuple[str, bytes | None] | None:
    """Runs ``edgetpu_compiler -s`` on the model if it is on ``PATH``.

    Args:
      tflite_path: the model to compile.
      timeout_s: limit for the compiler run in seconds.

    Returns:
      ``(log, compiled)``: the compiler's exit status, stdout/stderr and the ``.log`` files it
      wrote, and the bytes of the ``*_edgetpu.tflite`` it produced (None if it produced none);
      or None if ``edgetpu_compiler`` is not on ``PATH``.
    """
    compiler = shutil.which(COMPILER)
    if compiler is None:
        return None
    with tempfile.TemporaryDirectory() as out_dir:
        try:
            done = subprocess.run(
                [compiler, "-s", "-o", out_dir, str(tflite_path)],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
            parts = [f"$ {COMPILER} -s {Path(tflite_path).name}", f"exit status {done.returncode}"]
            parts += [done.stdout, done.stderr]
        except subprocess.TimeoutExpired:
            parts = [f"{COMPILER} did not finish within {timeout_s:.0f} s"]
        parts += [log.read_text(errors="replace") for log in sorted(Path(out_dir).glob("*.log"))]
        compiled = sorted(Path(out_dir).glob("*_edgetpu.tflite"))
        model = compiled[0].read_bytes() if compiled else None
    return "\n".join(part for part in parts if part), model


def bundle_files(name: str, model_path: Path) -> dict[str, bytes]:
    """A bundle model's Edge TPU files: its report and, if the compiler ran, its log and model.

    For model ``NAME``: ``NAME_edgetpu_report.json`` (`edgetpu_report`), and where
    ``edgetpu_compiler`` is on ``PATH`` ``NAME_edgetpu_compiler.log`` and the compiled
    ``NAME_edgetpu.tflite`` (which ``export/pi_infer.py --edgetpu`` runs). Their sha256 go into
    the model's ``extra_files`` in ``bundle.json``.

    Args:
      name: the model's name in the bundle.
      model_path: the staged ``NAME.tflite`` (see ``lwgen.export.bundle.write_bundle``).

    Returns:
      ``{file name: bytes}``.
    """
    report = json.dumps(edgetpu_report(model_path), indent=2) + "\n"
    files = {name + REPORT_SUFFIX: report.encode()}
    compiled = compile_model(model_path)
    if compiled is not None:
        log, model = compiled
        files[name + COMPILER_LOG_SUFFIX] = log.encode()
        if model is not None:
            files[name + COMPILED_MODEL_SUFFIX] = model
    return files
