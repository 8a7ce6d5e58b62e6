"""Short real clips cut from the test corpus by stream copy (the original bitstream, no re-encode),
for tests that need many cheap runs (failure injection, fuzzing)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import av


def remux_head(src: Path, dst: Path, *, frames: int, audio: bool = True,
               damage: Callable[[int, bytes], bytes] | None = None, faststart: bool = False,
               all_audio: bool = False) -> Path:
    """Copy the first ``frames`` video packets (decode order, from the first keyframe) and the audio
    packets up to the same time into ``dst`` (container from its extension). ``damage(i, data)``
    may replace the payload of video packet ``i``; ``faststart`` puts an MP4's index first;
    ``all_audio``: read on to the end of the file for audio packets stored after the cut (otherwise
    reading stops at the first video packet past it)."""
    opts = {"movflags": "faststart"} if faststart else {}
    with av.open(str(src)) as inp, av.open(str(dst), "w", options=opts) as out:
        v = inp.streams.video[0]
        streams = [v] + ([inp.streams.audio[0]] if audio and inp.streams.audio else [])
        mapping = {s.index: out.add_stream_from_template(s) for s in streams}
        n, end = 0, None
        for pkt in inp.demux(*streams):
            if pkt.dts is None or pkt.size == 0:
                continue
            target = mapping[pkt.stream.index]
            if pkt.stream.index == v.index:
                if n >= frames:
                    end = float(pkt.dts * v.time_base) if end is None else end
                    if not all_audio:
                        break
                    continue
                if damage is not None:
                    new = av.Packet(damage(n, bytes(pkt)))
                    new.pts, new.dts, new.time_base = pkt.pts, pkt.dts, pkt.time_base
                    new.is_keyframe = pkt.is_keyframe
                    pkt = new
                n += 1
            elif end is not None and pkt.dts * pkt.time_base > end:
                continue
            pkt.stream = target
            out.mux(pkt)
    return dst
