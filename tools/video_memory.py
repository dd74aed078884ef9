#!/usr/bin/env python
"""Peak memory of streaming a video through ``monai_ext.io.video``: does it grow with the video's length?

    python tools/video_memory.py [--durations 30 600] [--video FILE ...] [--json OUT.json]
                                 [--chunk 32] [--size 640x480] [--fps 25] [--threads 1] [--keep DIR]
                                 [--command "CMD {video} {out}"] [--skip-io]

For each video - a synthetic 480p one per ``--durations`` entry (moving shapes at ``--fps``, H.264,
made in a temporary folder, or kept in ``--keep DIR``), and each ``--video`` given - it measures, each
in a fresh subprocess so that one measurement does not inflate another:

* ``read``: :func:`monai_ext.io.video.iter_video_chunks` (``--chunk`` frames per chunk, float32, as the
  bundles read), every chunk dropped once its frames are summed;
* ``write``: the same reading plus a mask per chunk (the red shape, thresholded) written with
  :class:`~monai_ext.io.video.MaskVideoWriter` and its overlays
  (:func:`~monai_ext.io.overlay.iter_overlay_frames`) with :class:`~monai_ext.io.video.OverlayVideoWriter`;
* ``command`` (with ``--command``): any command, e.g. a whole bundle run, with ``{video}`` and ``{out}``
  (a fresh output folder) replaced; run by ``/bin/sh -c``.

The peak resident set size is the child's ``ru_maxrss`` from ``os.wait4`` (the child and the
descendants it waited for; no psutil needed), taken by a small wrapper interpreter: Linux counts a forked
child's copy of its parent's memory in its ``ru_maxrss``, so the parent's size must not leak in. ``baseline`` is the peak of a child that only imports
what the readers import (torch, MONAI, PyAV), so ``net_mb = peak - baseline`` is what the video costs.
With two or more videos the report gives, per measurement, the ratio of the longest video's peak to the
shortest's (``peak_ratio``) and whether it is within ``--tolerance`` (default 20 %).
Timings are single-threaded where the code allows (``OMP_NUM_THREADS=1``, ``--threads`` encoder threads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------- child work


def make_synthetic_video(path: Path, duration: float, fps: int = 25, size: tuple[int, int] = (480, 640), threads: int = 1) -> dict:
    """Write a synthetic video: a drifting gradient with a moving red disc and a bouncing green box (H.264, ultrafast)."""
    from fractions import Fraction

    import av
    import numpy as np

    height, width = size
    frames = int(round(duration * fps))
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.empty((height, width, 3), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"} if codec == "libx264" else {}
        stream.codec_context.thread_count = threads
        for t in range(frames):
            phase = t / fps
            base[..., 0] = ((xx + 40 * phase) % width * (200.0 / width)).astype(np.uint8)
            base[..., 1] = ((yy + 25 * phase) % height * (160.0 / height)).astype(np.uint8)
            base[..., 2] = 60
            cx = width / 2 + width / 3 * np.sin(phase * 0.9)
            cy = height / 2 + height / 3 * np.cos(phase * 0.7)
            r = 30 + 20 * np.sin(phase * 0.5) ** 2
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
            base[disc] = (250, 20, 20)
            bx = int((t * 3) % (2 * (width - 80)))
            bx = bx if bx < width - 80 else 2 * (width - 80) - bx
            base[40:120, bx : bx + 80] = (20, 220, 40)
            frame = av.VideoFrame.from_ndarray(base, format="rgb24")
            frame.pts = t
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return {"path": str(path), "frames": frames, "fps": fps, "size": [height, width], "file_mb": path.stat().st_size / 2**20}


def _child_baseline() -> dict:
    import av  # noqa: F401
    import torch  # noqa: F401

    import monai_ext.io.overlay  # noqa: F401
    import monai_ext.io.video  # noqa: F401

    return {}


def _child_read(video: str, chunk: int) -> dict:
    from monai_ext.io.video import iter_video_chunks

    frames, total, chunks = 0, 0.0, 0
    for c in iter_video_chunks(video, chunk_frames=chunk):
        frames += c.shape[-1]
        total += float(c.sum())
        chunks += 1
    return {"frames": frames, "chunks": chunks}


def _child_write(video: str, chunk: int, out: str, threads: int) -> dict:
    from monai_ext.io.overlay import iter_overlay_frames
    from monai_ext.io.video import MaskVideoWriter, OverlayVideoWriter, iter_video_chunks, probe_video

    info = probe_video(video)
    size = (info.height, info.width)
    out_dir = Path(out)
    frames = 0
    with MaskVideoWriter(out_dir / "mask.mp4", info.fps, size, threads=threads) as masks, OverlayVideoWriter(
        out_dir / "overlay.mp4", info.fps, size, threads=threads
    ) as overlays:
        for c in iter_video_chunks(video, chunk_frames=chunk):
            mask = ((c[0] > 200) & (c[1] < 80))[None]  # the red disc: (1, H, W, t)
            masks.write_frames(mask)
            for rgb in iter_overlay_frames(c, mask):
                overlays.write(rgb)
            frames += c.shape[-1]
    return {
        "frames": frames,
        "mask_video_mb": (out_dir / "mask.mp4").stat().st_size / 2**20,
        "overlay_video_mb": (out_dir / "overlay.mp4").stat().st_size / 2**20,
    }


def _child_main(argv: list[str]) -> None:
    kind = argv[0]
    if kind == "baseline":
        result = _child_baseline()
    elif kind == "read":
        result = _child_read(argv[1], int(argv[2]))
    elif kind == "write":
        result = _child_write(argv[1], int(argv[2]), argv[3], int(argv[4]))
    elif kind == "make":
        h, w = (int(v) for v in argv[4].split("x"))
        result = make_synthetic_video(Path(argv[1]), float(argv[2]), int(argv[3]), (h, w), int(argv[5]))
    else:
        raise SystemExit(f"unknown child task {kind!r}")
    print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------- measuring


# A tiny fresh interpreter runs the measured command and reports its rusage. Measuring from a small process
# matters: Linux counts a forked child's copy of its parent's memory in the child's ru_maxrss (kept across
# exec), so a command spawned straight from a process holding torch would never report less than that.
_WRAPPER = (
    "import json, os, subprocess, sys\n"
    "p = subprocess.Popen(json.loads(sys.argv[1]))\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "sys.stderr.write('\\nPEAK_RSS_KB %d %d\\n' % (usage.ru_maxrss, os.waitstatus_to_exitcode(status)))\n"
)


def peak_rss_of(cmd: list[str], env: dict | None = None, cwd: str | os.PathLike | None = None) -> dict:
    """
    Run ``cmd`` and return its peak resident memory in MB (``ru_maxrss`` of the command and the descendants it
    waited for, via ``os.wait4`` in a small wrapper process), wall time, return code and the
    ``RESULT {json}`` line it printed (if any).
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-S", "-c", _WRAPPER, json.dumps(cmd)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        text=True,
    )
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    peak_kb, returncode = None, proc.returncode
    for line in stderr.splitlines():
        if line.startswith("PEAK_RSS_KB "):
            peak_kb, returncode = (int(v) for v in line.split()[1:3])
    if peak_kb is None:
        raise RuntimeError(f"measuring {cmd} failed: {stderr[-2000:]}")
    if sys.platform == "darwin":
        peak_kb //= 1024  # bytes there
    result = None
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
    return {
        "peak_rss_mb": round(peak_kb / 1024.0, 1),
        "wall_s": round(wall, 2),
        "returncode": returncode,
        "result": result,
        "stderr_tail": stderr[-2000:] if returncode else "",
    }


def _child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _self(*args: object) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", *(str(a) for a in args)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", type=float, nargs="*", default=[30.0, 600.0], help="synthetic videos, seconds each")
    parser.add_argument("--video", nargs="*", default=[], help="existing videos to measure too")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the synthetic videos")
    parser.add_argument("--chunk", type=int, default=32, help="frames per chunk")
    parser.add_argument("--threads", type=int, default=1, help="encoder threads (synthetic video, writers)")
    parser.add_argument("--keep", help="make (or reuse) the synthetic videos in this folder instead of a temporary one")
    parser.add_argument("--command", help="also measure this shell command per video ({video}, {out} replaced)")
    parser.add_argument("--skip-io", action="store_true", help="measure only --command")
    parser.add_argument("--tolerance", type=float, default=0.20, help="allowed growth of the peak, longest vs shortest")
    parser.add_argument("--json", help="write the report here too")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    env = _child_env()

    with tempfile.TemporaryDirectory(prefix="video_memory_") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        videos: list[dict] = []
        for duration in args.durations:
            path = folder / f"synthetic_{width}x{height}_{args.fps}fps_{duration:g}s.mp4"
            if path.is_file():
                made = {"path": str(path), "reused": True}
            else:
                m = peak_rss_of(_self("make", path, duration, args.fps, f"{height}x{width}", args.threads), env)
                if m["returncode"]:
                    print(m["stderr_tail"], file=sys.stderr)
                    return 1
                made = {**m["result"], "make_wall_s": m["wall_s"]}
            videos.append({"video": str(path), "duration_s": duration, "synthetic": made})
        videos += [{"video": str(Path(v).resolve()), "duration_s": None} for v in args.video]

        report: dict = {
            "python": sys.version.split()[0],
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            "chunk_frames": args.chunk,
            "baseline": None if args.skip_io else peak_rss_of(_self("baseline"), env),
            "videos": videos,
        }
        base = report["baseline"]["peak_rss_mb"] if report["baseline"] else 0.0
        from monai_ext.io.video import probe_video

        for entry in videos:
            info = probe_video(entry["video"])
            entry["frames"], entry["fps"], entry["size"] = info.frames, info.fps, [info.height, info.width]
            entry["duration_s"] = entry["duration_s"] or info.duration
            measures = [] if args.skip_io else ["read", "write"]
            for name in measures:
                with tempfile.TemporaryDirectory(prefix="out_", dir=tmp) as out:
                    cmd = _self("read", entry["video"], args.chunk) if name == "read" else _self("write", entry["video"], args.chunk, out, args.threads)
                    m = peak_rss_of(cmd, env)
                m["net_mb"] = round(m["peak_rss_mb"] - base, 1)
                entry[name] = m
                print(f"{Path(entry['video']).name}: {name} peak {m['peak_rss_mb']} MB (net {m['net_mb']} MB), {m['wall_s']} s", file=sys.stderr)
            if args.command:
                with tempfile.TemporaryDirectory(prefix="cmd_", dir=tmp) as out:
                    cmd = args.command.replace("{video}", shlex.quote(entry["video"])).replace("{out}", shlex.quote(out))
                    m = peak_rss_of(["/bin/sh", "-c", cmd], env, cwd=REPO_ROOT)
                m["cmd"] = cmd
                entry["command"] = m
                print(f"{Path(entry['video']).name}: command peak {m['peak_rss_mb']} MB, {m['wall_s']} s, rc {m['returncode']}", file=sys.stderr)

        if len(videos) >= 2:
            by_length = sorted(videos, key=lambda e: e["frames"])
            short, long = by_length[0], by_length[-1]
            report["comparison"] = {"shortest": short["video"], "longest": long["video"], "tolerance": args.tolerance}
            for name in ("read", "write", "command"):
                if name in short and name in long and short[name]["peak_rss_mb"]:
                    ratio = long[name]["peak_rss_mb"] / short[name]["peak_rss_mb"]
                    report["comparison"][name] = {
                        "peak_ratio": round(ratio, 3),
                        "net_mb": [short[name].get("net_mb"), long[name].get("net_mb")],
                        "within_tolerance": abs(ratio - 1.0) <= args.tolerance,
                    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    failed = [k for k, v in report.get("comparison", {}).items() if isinstance(v, dict) and not v["within_tolerance"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
