"""The Ray driver: start or join a cluster, start the workers, hand out chunks, record and join them.

Workers: one actor per GPU (``num_gpus=1``) when the cluster has GPUs and the model is not forced onto
the CPU, else one per ``CPUs / workers`` threads (``num_cpus`` = its threads). Each worker runs one chunk
at a time (memory bounded like a single run); a worker that dies is restarted by Ray and its chunk
retried (``max_restarts``/``max_task_retries``). INT8 calibration and TensorRT engines are built by the
first chunk alone, into a cache every worker shares (``<job root>/cache`` unless ``cache_dir`` is set),
before the other workers start on theirs.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable

from ..config import RestoreConfig
from ..errors import VidRestoreError
from .plan import chunk_codec, plan_chunks, settings_hash
from .runner import InputState, import_ray
from .summary import BatchReport, InputResult

MAX_RETRIES = 3


def default_job_root(pairs: list[tuple[Path, Path]]) -> Path:
    out = pairs[0][1]
    if len(pairs) == 1:
        return out.parent / f".{out.name}.vidrestore-job"
    return out.parent / ".vidrestore-job"


def run_chunked(pairs, config: RestoreConfig, *, workers: int, ray_address: str | None,
                chunk_seconds: float, job_dir, resume: bool, progress: Callable | None,
                t0: float) -> BatchReport:
    ray = import_ray()
    root = Path(job_dir) if job_dir is not None else default_job_root(pairs)
    if config.model.cache_dir is None:
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, cache_dir=root / "cache"))
    states = [_prepare(i, o, config, root, chunk_seconds, resume) for i, o in pairs]
    started = _init_ray(ray, ray_address)
    try:
        return _schedule(ray, states, config, workers, ray_address, progress, t0)
    finally:
        if started:
            ray.shutdown()


def _init_ray(ray, address: str | None) -> bool:
    if ray.is_initialized():
        return False
    if address is None:     # a local runtime of our own: no token left over from another run
        import vidrestore
        env = {"RAY_AUTH_MODE": "disabled",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(vidrestore.__file__).parents[1]),
                                                           os.environ.get("PYTHONPATH")]))}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    else:
        ray.init(address=None if address == "auto" else address, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    return True


def _prepare(input: Path, output: Path, config: RestoreConfig, root: Path, chunk_seconds: float,
             resume: bool) -> InputState:
    from ..media.decode import probe
    from ..media.output import check_output_path
    from ..media.index import scan_frames
    from .jobdir import JobDir, job_folder
    from .plan import chunk_suffix, input_identity
    st = InputState(input=input, output=output)
    try:
        st.output = check_output_path(output, source=input, overwrite=config.overwrite)
        st.info = probe(input)
        st.index = scan_frames(input)
        st.direct = st.info.is_image or not st.index.exact
        st.chunks = plan_chunks(st.index, config, 0 if st.direct else chunk_seconds)
        if not st.direct:
            hashed = dataclasses.replace(config, model=dataclasses.replace(config.model, cache_dir=None))
            st.job = JobDir(job_folder(root, input), identity=input_identity(input, st.index),
                            settings=settings_hash(hashed, chunk_seconds), suffix=chunk_suffix(config))
            st.job.open(resume=resume)
            for c in st.chunks:
                e = st.job.finished(c)
                if e is not None:
                    st.done[c.number] = e["result"]
                    st.resumed += 1
    except VidRestoreError as e:
        st.error = e
    return st


def _chunk_config(config: RestoreConfig) -> RestoreConfig:
    codec = chunk_codec(config)
    enc = config.encode if codec == config.encode.codec else dataclasses.replace(
        config.encode, codec=codec, crf=None, preset=None, pix_fmt=None)
    return dataclasses.replace(config, encode=dataclasses.replace(enc, copy_audio=False), overwrite=True)


def _jobs(st: InputState, config: RestoreConfig):
    from ..ranges import chunk_range, warmup_frames
    from .worker import ChunkJob
    if st.direct:
        yield None, ChunkJob(input=st.input, output=st.output, attempts_dir=None,
                             number=0, frame_range=None, config=config)
        return
    cc = _chunk_config(config)
    for c in st.chunks:
        if c.number not in st.done:
            yield c, ChunkJob(input=st.input, output=st.job.chunk_file(c),
                              attempts_dir=st.job.path / "attempts", number=c.number,
                              frame_range=chunk_range(st.index, config, c.start, c.end,
                                                     seam=warmup_frames(config)), config=cc)


def _start_workers(ray, config: RestoreConfig, workers: int, address: str | None, counter):
    from .worker import ChunkWorker
    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0)) if config.model.device != "cpu" else 0
    cpus = int(res.get("CPU", 1))
    if gpus:
        n = workers if workers > 1 else gpus
        opts, threads = {"num_gpus": 1, "num_cpus": 1}, 0
    else:
        n = workers if (workers > 1 or address is None) else max(1, cpus // 4)
        threads = max(1, cpus // n) if address is None else max(1, min(4, cpus // n))
        opts = {"num_cpus": threads}
    cls = ray.remote(ChunkWorker).options(max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES, **opts)
    return [cls.remote(config, threads=threads, progress=counter) for _ in range(n)]


def _schedule(ray, states: list[InputState], config: RestoreConfig, workers: int, address,
              progress, t0: float) -> BatchReport:
    from ..pipeline import Progress
    from .worker import ProgressCounter
    counter = ray.remote(ProgressCounter).options(num_cpus=0).remote()
    pending = collections.deque((st, c, job) for st in states if st.error is None
                                for c, job in _jobs(st, config))
    actors = _start_workers(ray, config, workers, address, counter) if pending else []
    first_alone = config.model.precision == "int8" or config.model.backend in ("tensorrt", "torch-tensorrt")
    total = sum(len(st.index) for st in states if st.index is not None)
    resumed_frames = sum(c.frames for st in states for c in st.chunks if c.number in st.done)
    free, inflight, any_done = list(actors), {}, False
    for st in states:
        _maybe_finish(st, config)
    while pending or inflight:
        while pending and free and (any_done or not first_alone or not inflight):
            st, c, job = pending.popleft()
            if st.error is not None:
                continue
            actor = free.pop(0)
            inflight[actor.run.remote(job)] = (actor, st, c, job)
        ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.3)
        if progress is not None:
            done = resumed_frames + ray.get(counter.get.remote())
            progress(Progress(done, total, time.perf_counter() - t0))
        for ref in ready:
            actor, st, c, job = inflight.pop(ref)
            free.append(actor)
            any_done = True
            try:
                res = ray.get(ref)
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if isinstance(getattr(e, "cause", None), VidRestoreError) else None
                st.error = cause or VidRestoreError(f"chunk {getattr(c, 'number', 0)} failed: "
                                                    f"{' '.join(str(e).split())[-300:]}", path=st.input)
                continue
            except ray.exceptions.RayActorError as e:
                free.remove(actor)
                st.error = VidRestoreError(f"worker died {MAX_RETRIES + 1} times on chunk "
                                           f"{getattr(c, 'number', 0)} ({type(e).__name__})", path=st.input)
                continue
            if c is None:
                st.done[0] = res
            else:
                from .jobdir import sha256_file
                st.job.record(c, sha256=sha256_file(job.output), result=res)
                st.done[c.number] = res
            _maybe_finish(st, config)
    for st in states:
        _maybe_finish(st, config)
    return _report(states, len(actors) or workers, t0)


def _maybe_finish(st: InputState, config: RestoreConfig) -> None:
    """Join an input whose chunks are all done (or record its failure) exactly once."""
    if st.result is not None:
        return
    if st.error is not None:
        st.result = InputResult(input=st.input, output=None, ok=False, error=str(st.error),
                                exit_code=st.error.exit_code, chunks=len(st.chunks),
                                chunks_resumed=st.resumed, retries=_retries(st))
        return
    if len(st.done) < max(len(st.chunks), 1):
        return
    from .tracks import reconcile
    warnings: dict[str, int] = {}
    try:
        if not st.direct:
            from .join import join_chunks
            warnings.update(join_chunks(st.input, st.output, [(c, st.job.chunk_file(c)) for c in st.chunks],
                                        index=st.index, info=st.info, config=config))
    except VidRestoreError as e:
        st.error = e
        return _maybe_finish(st, config)
    results = [st.done[c.number] for c in st.chunks] if not st.direct else [st.done[0]]
    for r in results:
        for k, v in r.get("warnings", {}).items():
            warnings[k] = warnings.get(k, 0) + v
    tracks = reconcile([(c.start, c.end, st.done[c.number]) for c in st.chunks]) if not st.direct \
        else results[0]["tracks"]
    st.result = InputResult(input=st.input, output=st.output, ok=True,
                            frames=sum(r["frames_written"] for r in results), chunks=len(st.chunks),
                            chunks_resumed=st.resumed, retries=_retries(st),
                            faces_restored=sum(r["faces_restored"] for r in results),
                            tracks=tuple(tracks), warnings=warnings)
    if st.job is not None:
        st.job.remove()
        try:
            st.job.path.parent.rmdir()     # the job root, when no other input uses it any more
        except OSError:
            pass


def _retries(st: InputState) -> int:
    if st.job is None:
        return 0
    return sum(max(st.job.attempts(c) - 1, 0) for c in st.chunks)


def _report(states: list[InputState], workers: int, t0: float) -> BatchReport:
    stages: dict[str, dict[str, float]] = {}
    for st in states:
        for r in st.done.values():
            w = stages.setdefault(r["worker"], {})
            for k, v in r.get("stage_seconds", {}).items():
                w[k] = round(w.get(k, 0.0) + v, 4)
    results = tuple(st.result for st in states)
    return BatchReport(inputs=results, workers=workers, chunks=sum(r.chunks for r in results),
                       chunks_resumed=sum(r.chunks_resumed for r in results),
                       retries=sum(r.retries for r in results), stage_seconds=stages,
                       wall_seconds=time.perf_counter() - t0)
