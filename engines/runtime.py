"""Run a serialized TensorRT engine on torch CUDA tensors (TensorRT 10.x / 11.x name-based API).

No copies and no private streams: the input tensor's memory is bound as ``input``, a torch tensor
allocated here as ``output`` (``set_tensor_address``), and ``execute_async_v3`` is enqueued on torch's
*current* CUDA stream, so the result is ordered with whatever the caller does next on that stream.
Batches larger than the profile's max are split; a chunk smaller than the profile's min is padded.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from vidrestore.errors import BackendUnavailable

from .build_trt import import_tensorrt
from .engine_cache import BatchProfile
from .onnx_contract import INPUT_NAME, OUTPUT_NAME

_TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16}


class LoadedEngine:
    """A deserialized engine with one execution context on one CUDA device: what every runner starts
    from (the GFP-GAN :class:`EngineRunner`, the upsampler's ``UpsamplerEngineRunner``). ``profile_shapes``
    is the input's (min, opt, max) shape of profile 0; ``what`` names the runner in errors."""

    def __init__(self, engine_path: str | os.PathLike[str], *, device: str | torch.device = "cuda",
                 what: str = "the TensorRT backend") -> None:
        trt = import_tensorrt()
        if not torch.cuda.is_available():
            raise BackendUnavailable(f"{what} needs a CUDA GPU and torch sees none")
        self.path = Path(engine_path)
        self.device = torch.device(device)
        if self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(self.device):
            self._runtime = trt.Runtime(self._logger)   # kept: the engine must not outlive its runtime
            self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise BackendUnavailable("TensorRT could not load this engine (built by another TensorRT "
                                         "version or GPU?): delete it and rebuild", path=self.path)
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if sorted(names) != sorted([INPUT_NAME, OUTPUT_NAME]):
            raise BackendUnavailable(f"engine tensors are {names}, expected {INPUT_NAME!r} and "
                                     f"{OUTPUT_NAME!r}", path=self.path)
        self.profile_shapes = tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(INPUT_NAME, 0))
        self.input_dtype = _torch_dtype(self.engine.get_tensor_dtype(INPUT_NAME))
        self.output_dtype = _torch_dtype(self.engine.get_tensor_dtype(OUTPUT_NAME))


class EngineRunner(LoadedEngine):
    """One deserialized GFP-GAN engine and one execution context on one CUDA device."""

    def __init__(self, engine_path: str | os.PathLike[str], *, device: str | torch.device = "cuda") -> None:
        super().__init__(engine_path, device=device, what="the TensorRT backend")
        low, opt, high = self.profile_shapes
        self.profile = BatchProfile(low[0], opt[0], high[0])
        self.image_size = int(high[2])

    def check(self, batch: torch.Tensor) -> None:
        """Raise ValueError for a batch the engine can never run (shape/device), before any work."""
        shape = tuple(batch.shape)
        if batch.ndim != 4 or shape[1:] != (3, self.image_size, self.image_size):
            raise ValueError(f"engine {self.path.name} takes (N, 3, {self.image_size}, {self.image_size}) "
                             f"batches, got {shape}")
        if batch.device.type != "cuda":
            raise ValueError(f"the TensorRT backend takes CUDA tensors, got one on {batch.device}")

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        """Any N >= 1: split into profile-sized chunks, each run on the current stream."""
        self.check(batch)
        outs = [self._run_chunk(batch[start:start + n])
                for start, n in _offsets(self.profile.chunks(batch.shape[0]))]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _run_chunk(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        run_n = self.profile.padded(n)
        x = x.to(self.device, self.input_dtype)
        if run_n != n:
            x = torch.cat([x, x.new_zeros((run_n - n, *x.shape[1:]))])
        x = x.contiguous()
        if not self.context.set_input_shape(INPUT_NAME, tuple(x.shape)):
            raise ValueError(f"engine {self.path.name} rejected input shape {tuple(x.shape)} "
                             f"(profile {self.profile.min}..{self.profile.max})")
        y = torch.empty(tuple(self.context.get_tensor_shape(OUTPUT_NAME)), dtype=self.output_dtype,
                        device=self.device)
        self.context.set_tensor_address(INPUT_NAME, x.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, y.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT execution failed for engine {self.path.name}")
        # x and y stay valid: the caching allocator only reuses their memory for work queued later on
        # this same stream.
        return y[:n] if run_n != n else y


def _offsets(sizes: list[int]):
    start = 0
    for n in sizes:
        yield start, n
        start += n


def _torch_dtype(trt_dtype) -> torch.dtype:
    name = getattr(trt_dtype, "name", str(trt_dtype)).split(".")[-1].upper()
    if name not in _TORCH_DTYPES:
        raise BackendUnavailable(f"unsupported engine I/O type {name}")
    return _TORCH_DTYPES[name]
