"""The only module that knows the stage order.

decode -> detect (batched, every k-th frame) -> track -> smooth (look-ahead) -> align/warp
       -> restore (faces of several frames in one batch) [-> upscale, with --upscale] -> paste -> encode

Four threads (five with --upscale: the upsampler's own) joined by bounded queues (decode | analyse |
restore | paste+encode in the caller's thread), so decoding and encoding overlap the network and memory does not grow with video length.
"""
from __future__ import annotations

import queue
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .backends.base import RestoreBackend
from .config import RestoreConfig
from .errors import ConfigError
from .faces.align import alignments_for
from .faces.aligned import aligned_alignment, whole_frame
from .faces.detect import FaceDetector, RetinaFaceDetector, largest_faces
from .faces.ops import CpuImageOps, ImageOps
from .faces.parse import FaceParser
from .faces.select import FaceSelector
from .faces.smooth import LandmarkSmoother
from .faces.track import Tracker
from .ranges import FrameRange, RangeGate
from .report import BackendInfo, Progress, Report, merge_warnings  # Progress: public here too
from .stages import END, RunControl, StageClock, get, put, start_worker
from .types import Alignment, Frame, TrackedFace, TrackSummary
from .upscale.stage import FrameUpscaler, upscaled_matrices


@dataclass(frozen=True)
class _Work:
    """One frame on its way from analysis to paste."""
    frame: Frame
    alignments: tuple[Alignment, ...]
    crops: object | None              # aligned crops in the ImageOps' format, None without faces
    restored: object | None = None    # restored crops, same format
    masks: object | None = None       # per-crop paste masks (K,S,S) for --mask parse, else None
    detected: int = 0                 # faces found (before the min-face filter)
    faces: tuple[TrackedFace, ...] = ()  # the tracked faces the alignments were made from
    source_size: tuple[int, int] | None = None  # (w, h) the alignments refer to, once frame is upscaled


class _Analyser:
    """detect -> track -> smooth -> align, frame by frame in order, with bounded buffering.

    Frames are collected into chunks of ``detect.batch * detect.every`` so the detector sees
    batches; the smoother holds ``delay`` more frames for its look-ahead.
    """

    def __init__(self, config: RestoreConfig, detector: FaceDetector, ops: ImageOps,
                 clock: StageClock) -> None:
        self.config = config
        self.detector = detector
        self.ops = ops
        self.clock = clock
        self.tracker = Tracker(config=config.track)
        self.smoother = LandmarkSmoother(config=config.smooth)
        self.selector = FaceSelector(config=config.select)
        self._chunk: list[Frame] = []
        self._held: dict[int, tuple[Frame, int]] = {}   # frame index -> (frame, faces detected)
        self._chunk_len = config.detect.batch * config.detect.every
        self.faces_over_max = 0

    def push(self, frame: Frame) -> list[_Work]:
        if self.config.aligned:             # --aligned: every frame is one face crop, no detection
            al = aligned_alignment(frame.rgb.shape[1], frame.rgb.shape[0], self.config.align.crop_size)
            crops = self.ops.warp(frame.rgb, al.matrix[None], crop_size=al.crop_size)
            return [_Work(frame=frame, alignments=(al,), crops=crops)]
        self._chunk.append(frame)
        return self._run_chunk() if len(self._chunk) >= self._chunk_len else []

    def flush(self) -> list[_Work]:
        out = self._run_chunk()
        with self.clock.timed("smooth"):
            final = self.smoother.flush()
        return out + self._align(final)

    def _run_chunk(self) -> list[_Work]:
        chunk, self._chunk = self._chunk, []
        if not chunk:
            return []
        every = self.config.detect.every
        to_detect = [f for f in chunk if f.index % every == 0]
        with self.clock.timed("detect"):
            found = self.detector.detect([f.rgb for f in to_detect]) if to_detect else []
        by_index = {f.index: largest_faces(faces, self.config.detect.max_faces)   # bounded work per frame
                    for f, faces in zip(to_detect, found)}
        self.faces_over_max += sum(map(len, found)) - sum(map(len, by_index.values()))
        out: list[_Work] = []
        for frame in chunk:
            faces = by_index.get(frame.index)
            with self.clock.timed("track"):
                tracked = self.tracker.update(frame.index, faces)
                self.selector.observe(frame.index, tracked, frame.rgb.shape[1], frame.rgb.shape[0])
            self._held[frame.index] = (frame, len(faces) if faces is not None else 0)
            with self.clock.timed("smooth"):
                final = self.smoother.push(frame.index, tracked)
            out += self._align(final)
        return out

    def _align(self, final) -> list[_Work]:
        out = []
        for index, tracked in final:
            frame, detected = self._held.pop(index)
            with self.clock.timed("align"):
                aligns = tuple(alignments_for(self.selector.select(tracked), config=self.config.align))
                crops = None
                if aligns:
                    mats = np.stack([a.matrix for a in aligns])
                    crops = self.ops.warp(frame.rgb, mats, crop_size=self.config.align.crop_size)
            out.append(_Work(frame=frame, alignments=aligns, crops=crops, detected=detected,
                             faces=tuple(tracked)))
        return out

    def tracks(self) -> tuple[TrackSummary, ...]:
        jitter = self.smoother.jitter()
        return tuple(replace(s, raw_jitter_px=jitter.get(s.track_id, (None, None))[0],
                             smoothed_jitter_px=jitter.get(s.track_id, (None, None))[1])
                     for s in self.tracker.summaries())


def _restore_batch(items: list[_Work], backend: RestoreBackend, ops: ImageOps,
                   clock: StageClock, parser: FaceParser | None = None) -> list[_Work]:
    """Restore the faces of several frames in one backend call (and parse them, with a parser)."""
    with_faces = [w for w in items if w.crops is not None]
    if not with_faces:
        return items
    with clock.timed("restore"):
        x = torch.cat([ops.to_input(w.crops) for w in with_faces]).to(backend.device)
        y = backend.restore(x).to(ops.device)
    masks = None
    if parser is not None:
        with clock.timed("parse"):
            masks = parser.masks(y, [a.track_id for w in with_faces for a in w.alignments],
                                 [w.frame.index for w in with_faces for _ in w.alignments])
    out, k = [], 0
    for w in items:
        if w.crops is None:
            out.append(w)
        else:
            n = len(w.alignments)
            with clock.timed("restore"):
                restored = ops.from_output(y[k:k + n])
            out.append(replace(w, restored=restored, masks=None if masks is None else masks[k:k + n]))
            k += n
    return out


def _paste(work: _Work, config: RestoreConfig, ops: ImageOps, clock: StageClock) -> Frame:
    if work.restored is None:
        return work.frame
    with clock.timed("paste"):
        if config.aligned:
            return replace(work.frame, rgb=whole_frame(work.frame.rgb, work.restored, work.crops,
                                                       config=config.paste), rgb_hi=None)
        mats = np.stack([a.matrix for a in work.alignments])
        if work.source_size is not None:   # paste straight into the upscaled frame: M -> M . diag(1/S)
            mats = upscaled_matrices(mats, work.source_size, work.frame.rgb.shape[1::-1])
        rgb = ops.paste(work.frame.rgb, work.restored, mats, config=config.paste,
                        originals=work.crops, masks=work.masks)
        rgb_hi = work.frame.rgb_hi
        if rgb_hi is not None:   # the same faces into the full-precision plane, at its precision
            from .faces.paste import paste_faces_hi
            rgb_hi = paste_faces_hi(rgb_hi, work.restored, mats, config=config.paste, originals=work.crops,
                                    masks=work.masks, inplace=getattr(ops, "paste_inplace", False),
                                    interpolation=getattr(ops, "interpolation", "lanczos"))
    return replace(work.frame, rgb=rgb, rgb_hi=rgb_hi)


def _flush_due(pending: list[_Work], *, batch: int, idle: bool) -> bool:
    """Run the pending frames now? When ``batch`` faces wait, when none has a face, or when no more
    input is ready (``idle``: end of stream, or the analyser has nothing right now)."""
    faces = sum(len(w.alignments) for w in pending if w.crops is not None)
    return idle or (bool(pending) and (faces >= batch or faces == 0))


# ---------------------------------------------------------------------------------------------
def _restore_loop(q_in: queue.Queue, q_out: queue.Queue, backend: RestoreBackend, ops: ImageOps,
                  batch: int, clock: StageClock, ctl: RunControl, parser: FaceParser | None = None) -> None:
    """Batch faces across frames: take what is ready, run once `batch` faces are pending or the
    analyser has nothing more right now."""
    pending: list[_Work] = []
    faces = 0
    done = False
    while not done:
        item = get(q_in, ctl, block=not (pending and faces > 0))
        if item is END:
            done = True
        elif item is not None:
            pending.append(item)
            faces += len(item.alignments) if item.crops is not None else 0
        if _flush_due(pending, batch=batch, idle=done or item is None):
            for w in _restore_batch(pending, backend, ops, clock, parser):
                put(q_out, w, ctl)
            pending, faces = [], 0
    put(q_out, END, ctl)


def restore_video(input: str | Path, output: str | Path, config: RestoreConfig = RestoreConfig(),
                  restorer: Callable[[torch.Tensor], torch.Tensor] | None = None, *,
                  progress: Callable[[Progress], None] | None = None, detector: FaceDetector | None = None,
                  backend: RestoreBackend | None = None, backend_reason: str = "",
                  image_ops: ImageOps | None = None, parser: FaceParser | None = None,
                  frame_range: FrameRange | None = None) -> Report:
    """Restore every face of ``input`` into ``output`` (written atomically); returns the Report.

    ``restorer`` is any callable on (N,3,512,512) float tensors in [-1,1]; ``backend`` an already
    built RestoreBackend (both override ``config.model``); ``parser`` a FaceParser for ``--mask parse``
    (default: built from ``config.paste``); ``frame_range`` a part of the video (:mod:`.ranges`). Unless
    ``backend`` is given, the backend is chosen at once and built in the restore thread: decode/detect/
    track/align run while weights load and the export/session are made.
    """
    from .backends.factory import plan_backend
    from .media.endpoints import check_target, is_file, open_reader as open_source, open_writer, probe_output
    from .media.nvdec import open_reader

    in_spec, out_spec = input, output          # strings keep a sequence folder's trailing '/'
    input, output = Path(input), Path(output)
    check_target(out_spec, source=in_spec, encode=config.encode, overwrite=config.overwrite)
    t_start = time.perf_counter()
    # a broken input fails before the model loads
    reader = open_source(in_spec, config=config.decode, output=out_spec, encode=config.encode)
    try:
        gate = RangeGate(frame_range, reader)       # seeks the reader to the range
        plan = None if backend is not None else plan_backend(config.model, restorer=restorer)
        device, backend_reason = (backend.device, backend_reason) if plan is None else (plan.device, plan.reason)
        if device != "cpu" and frame_range is None and is_file(in_spec) and not (
                config.decode.full_depth and reader.info.bit_depth > 8):   # NVDEC frames are 8-bit
            # on a GPU, NVDEC when available: frames are decoded straight into device memory
            reader.close()
            reader = open_reader(input, config=config.decode, device=device, kernels=config.model.kernels)
        info = reader.info
        clock = StageClock()
        ops = image_ops or _image_ops_for(device, config, owns_frames=True)
        detector = detector or (None if config.aligned else _detector_for(ops, config))
        parser = _parser_for(device, config, parser)
        analyser = _Analyser(config, detector, ops, clock)
        upscaler = FrameUpscaler.for_video(config, info, device=ops.device)   # None without --upscale
        ctl = RunControl()
        q_frames: queue.Queue = queue.Queue(config.queue_size)
        q_work: queue.Queue = queue.Queue(config.queue_size)
        q_done: queue.Queue = queue.Queue(config.queue_size)

        def decode() -> None:
            it = iter(reader)
            while True:
                with clock.timed("decode"):
                    frame = next(it, None)
                    if frame is not None and ops.device != "cpu":
                        frame = replace(frame, rgb=ops.upload(frame.rgb))
                if frame is None or gate.done(frame.index):
                    break
                put(q_frames, frame, ctl)
            put(q_frames, END, ctl)

        def analyse() -> None:
            while (frame := get(q_frames, ctl)) is not END:
                for w in gate.feed(analyser, frame, _Work):
                    put(q_work, w, ctl)
            for w in gate.filter(analyser.flush(), _Work):
                put(q_work, w, ctl)
            put(q_work, END, ctl)

        def restore() -> None:
            nonlocal backend
            with clock.timed("backend build"):   # built here: the other stages are already running
                backend = backend if plan is None else plan.build()
            if getattr(backend, "calibration_source", None) == "":  # int8: what it calibrates on
                backend.calibration_source = f"first faces of {input.name}"
            _restore_loop(q_work, q_done, backend, ops, backend.max_batch, clock, ctl, parser)

        threads = [start_worker(decode, ctl), start_worker(analyse, ctl), start_worker(restore, ctl)]
        # restore -> upscale (its own thread: frame k upscales while faces of frame k+1 restore) -> paste
        q_paste = upscaler.start(q_done, clock, ctl, threads) if upscaler else q_done
        faces_per_frame: list[int] = []
        detected = 0
        written = 0
        try:
            with open_writer(out_spec, info=upscaler.output_info(info) if upscaler else info, reader=reader,
                             source=in_spec, config=config.encode, overwrite=config.overwrite,
                             trim_audio=frame_range is not None and not frame_range.keep_outside) as writer:
                while (work := get(q_paste, ctl)) is not END:
                    frame = _paste(work, config, ops, clock)
                    with clock.timed("encode"):
                        writer.write(replace(frame, rgb=ops.to_host(frame.rgb)))
                    written += 1
                    faces_per_frame.append(len(work.alignments))
                    detected += work.detected
                    if progress is not None:
                        progress(Progress(written, info.frame_count_estimate, time.perf_counter() - t_start))
                if ctl.error is not None:
                    raise ctl.error
                with clock.timed("encode"):
                    writer.commit()
        except BaseException as exc:
            ctl.fail(exc)
            raise
        finally:
            ctl.stop.set()
            for t in threads:
                t.join(timeout=10)
        enc_warn = dict(writer.stats.warnings)
    finally:
        reader.close()
    restored = sum(faces_per_frame)
    output_info = probe_output(out_spec)
    return Report(
        input=info, output=output, output_info=output_info,
        backend=BackendInfo(backend.name, backend.device, backend.precision, backend.max_batch,
                            backend_reason),
        frames_decoded=reader.stats.frames, frames_written=written,
        faces_per_frame=tuple(faces_per_frame), faces_detected=detected,
        faces_restored=restored, faces_skipped_small=max(detected - restored, 0),
        tracks=analyser.tracks(), stage_seconds=dict(clock.seconds),
        wall_seconds=time.perf_counter() - t_start,
        warnings=merge_warnings(dict(reader.stats.warnings), enc_warn, {"faces over --max-faces left alone":
                                analyser.faces_over_max} if analyser.faces_over_max else {}),
        seam_faces=gate.seam_faces,
        paste_mask=config.paste.mask, color_match=config.paste.color_match,
        upscale=upscaler.plan.to_dict() if upscaler else None, frames_lost=reader.stats.frames_lost,
        lost=tuple(reader.stats.lost), loss_text=reader.stats.loss_text() if reader.stats.frames_lost else "")


def _image_ops_for(device: str, config: RestoreConfig, *, owns_frames: bool = False) -> ImageOps:
    """Image work runs where the network runs (``device``): frames go to the GPU once and stay there.
    ``owns_frames``: the decoded frames are ours, so paste may blend into them in place."""
    if device.startswith("cuda"):
        from .faces.gpu_ops import GpuImageOps
        return GpuImageOps(device=device, kernels=config.model.kernels,
                           interpolation=config.align.interpolation)
    return CpuImageOps(paste_inplace=owns_frames, interpolation=config.align.interpolation)


def _parser_for(device: str, config: RestoreConfig, given: FaceParser | None = None) -> FaceParser | None:
    """The face parser of ``--mask parse`` (``given``, or one on the network's device), else None.
    Raises CheckpointError (exit 4) when its weights are missing and cannot be downloaded."""
    if config.paste.mask != "parse":
        return None
    return given if given is not None else FaceParser(config=config.paste, device=device)


def _detector_for(ops: ImageOps, config: RestoreConfig) -> FaceDetector:
    if ops.device.startswith("cuda"):
        from .faces.detect_torch import TorchRetinaFaceDetector
        return TorchRetinaFaceDetector(config=config.detect, device=ops.device)
    return RetinaFaceDetector(config=config.detect)


def __getattr__(name: str):
    """The frames API lives in :mod:`vidrestore.restorer`; ``from vidrestore.pipeline import Restorer``
    keeps working."""
    if name in ("Restorer", "FrameFaces", "FaceInfo"):
        from . import restorer
        return getattr(restorer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
