"""Peak memory of what a web process does with a picture and a cpu worker with a
dataset, for the inputs that used to cost hundreds of MB: a 170 KB PNG of 6300x6300
pixels (six at once), the largest picture still accepted, a large JPEG, and fine-tuning
datasets with one 50 MB and one 100 MB line.

Each case runs in a fresh Python process (Django set up, as in the web or the worker),
which reports its RSS before the case and its peak RSS during it (VmHWM, reset first). "before the fix" runs
the code as it was (thumbnail without the header check; a dataset read line by line).

    make bench ARGS="upload_memory"
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import sys, io, json
import bench  # Django set up, as in a web process or a worker
from pathlib import Path
def peak():
    # VmHWM: the highest RSS since the last reset below (ru_maxrss cannot be reset).
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
case, path, copies = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
data = path.read_bytes() if case.startswith("picture") else None
import gc; gc.collect()
Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the RSS now
start = peak()
outcome = "ok"
if case == "picture":
    from assistants_app.images import ImageRejected, _inspect, _thumbnail
    for n in range(copies):
        try:
            _inspect(data, f"p{n}.png")
            _thumbnail(data)
        except ImageRejected as error:
            outcome = str(error)
elif case == "picture-before":
    from PIL import Image
    for n in range(copies):
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data)) as picture:
            picture.thumbnail((480, 480))
elif case == "dataset":
    from jobs_app.finetune.validation import bounded_lines, validate_lines
    with path.open("rb") as stream:
        report = validate_lines(bounded_lines(stream), method="supervised", model_id="gpt-4.1-mini")
    outcome = json.dumps(report["error_counts"])
elif case == "dataset-before":
    from jobs_app.finetune.validation import validate_lines
    with path.open("rb") as stream:
        report = validate_lines(iter(stream), method="supervised", model_id="gpt-4.1-mini")
    outcome = json.dumps(report["error_counts"])
print(json.dumps({"start_mb": round(start), "peak_mb": round(peak()), "outcome": outcome[:100]}))
'''


def measure(case: str, path: Path, copies: int = 1) -> dict[str, object]:
    result = subprocess.run([PYTHON, "-c", CHILD, case, str(path), str(copies)], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1:]}
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def _png(path: Path, size: tuple[int, int]) -> Path:
    from PIL import Image

    Image.new("RGB", size, (255, 255, 255)).save(path, "PNG", optimize=True)
    return path


def _jpeg(path: Path, size: tuple[int, int]) -> Path:
    from PIL import Image

    Image.new("RGB", size, (120, 160, 200)).save(path, "JPEG", quality=60)
    return path


def _dataset(path: Path, long_line_mb: int) -> Path:
    example = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    with path.open("wb") as out:
        for _ in range(20):
            out.write(json.dumps(example).encode() + b"\n")
        out.write(b'{"messages": [{"role": "user", "content": "' + b"a" * (long_line_mb * 1024 * 1024) + b'"}, '
                  b'{"role": "assistant", "content": "ok"}]}\n')
    return path


def main(argv: list[str]) -> int:
    folder = Path(tempfile.mkdtemp(prefix="upload-memory-"))
    bomb = _png(folder / "bomb.png", (6300, 6300))
    largest = _png(folder / "largest.png", (4096, 4096))
    photo = _jpeg(folder / "photo.jpg", (8000, 6000))
    print(f"files: 6300x6300 PNG {bomb.stat().st_size // 1024} KB, 4096x4096 PNG {largest.stat().st_size // 1024} KB, "
          f"8000x6000 JPEG {photo.stat().st_size // 1024} KB")
    cases = [
        ("6300x6300 PNG, before the fix", "picture-before", bomb, 1),
        ("6300x6300 PNG, now (refused from its header)", "picture", bomb, 1),
        ("six 6300x6300 PNGs, before the fix", "picture-before", bomb, 6),
        ("six 6300x6300 PNGs, now", "picture", bomb, 6),
        ("4096x4096 PNG (the largest accepted), now", "picture", largest, 1),
        ("8000x6000 JPEG (draft-decoded), now", "picture", photo, 1),
    ]
    for megabytes in (50, 100):
        dataset = _dataset(folder / f"line{megabytes}.jsonl", megabytes)
        cases += [(f"dataset with a {megabytes} MB line, before the fix", "dataset-before", dataset, 1),
                  (f"dataset with a {megabytes} MB line, now", "dataset", dataset, 1)]
    for label, case, path, copies in cases:
        figures = measure(case, path, copies)
        print(f"{label}: {figures}", flush=True)
    return 0
