"""Pack what scripts/gpu_check.sh needs on a lent GPU machine that has no internet and no ../shared.

    python scripts/gpu_pack.py [--data-root ../shared/data/cifar10] [--teacher ../shared/weights/...th]

Writes, in this checkout (both ignored by git through .git/info/exclude, so they travel only when
the device call carries them: ``carry: [".whl", ".gpudata"]``):

- ``.gpudata/cifar10/cifar-10-batches-py/``: a real CIFAR-10 subset in the official on-disk format
  (the first 6,000 images of batch 1, 1,000 of each other batch, 4,000 test images), about 45 MB,
  since the whole set (178 MB) is over the 64 MiB a device call may carry; and the ResNet-56 weights.
- ``.whl/``: wheels for Python 3.12 of the packages distillcli needs that the machine's image lacks
  or holds too old (the image has torch, torchvision, numpy, pyyaml, onnx), at the versions this
  environment has (the ones the tests ran with).

Top-1 on the subset is for comparing runs with each other (fp32 against bf16), not with CIFAR-10
figures on the full set; images/s do not depend on it.
"""
from __future__ import annotations

import argparse
import pickle
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

KEEP = {"data_batch_1": 6000, "data_batch_2": 1000, "data_batch_3": 1000, "data_batch_4": 1000,
        "data_batch_5": 1000, "test_batch": 4000}
WHEELS = ["pydantic", "pydantic_core", "annotated-types", "typing-inspection", "typing_extensions", "torch-pruning",
          "typer", "rich"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def pack_data(root: Path, teacher: Path, out: Path) -> None:
    src, dst = root / "cifar-10-batches-py", out / "cifar10" / "cifar-10-batches-py"
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "batches.meta", dst / "batches.meta")
    for name, count in KEEP.items():
        with (src / name).open("rb") as f:
            batch = pickle.load(f, encoding="latin1")
        small = {k: v[:count] if k in ("data", "labels", "filenames") else v for k, v in batch.items()}
        with (dst / name).open("wb") as f:
            pickle.dump(small, f)
    shutil.copy(teacher, out / teacher.name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default="../shared/data/cifar10")
    p.add_argument("--teacher", default="../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet56-4bfd9763.th")
    args = p.parse_args()
    pack_data(Path(args.data_root), Path(args.teacher), Path(".gpudata"))
    platforms = [a for plat in PLATFORMS for a in ("--platform", plat)]
    pinned = [f"{name}=={version(name)}" for name in WHEELS]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", ".whl", *pinned],
                   check=True)
    exclude = Path(".git/info/exclude")
    exclude.parent.mkdir(parents=True, exist_ok=True)
    lines = exclude.read_text().splitlines() if exclude.exists() else []
    exclude.write_text("\n".join(lines + [x for x in ("/.whl/", "/.gpudata/") if x not in lines]) + "\n")
    print("packed .gpudata/ and .whl/; carry both: carry=[\".whl\", \".gpudata\"]")


if __name__ == "__main__":
    main()
