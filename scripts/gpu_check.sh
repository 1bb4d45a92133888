#!/usr/bin/env bash
# GPU check: one prepared script (at most 9.1 minutes of parts on one H200) for a machine lent with a GPU.
#
#   PY=.venv/bin/python OUT=gpu_out bash scripts/gpu_check.sh
#   GPU_CHECK_TINY=1 PY=.venv/bin/python OUT=/tmp/g bash scripts/gpu_check.sh   # dry run on the CPU, tiny data
#   on a lent machine (python scripts/gpu_pack.py here first; the tool library's device, carry .whl and .gpudata):
#   PY=python3 OUT=$OUT/gc bash scripts/gpu_check.sh; tar czf $OUT/gc.tgz -C $OUT gc
#   (a call brings back at most 8 files and no deep folders: the tarball carries the rest)
#
# Parts, each under its own time limit so that one failing part does not lose the others:
#   1. the VGG16 recipe (recipes/vgg16_cifar10.yaml) for a few epochs, same seed: fp32, bf16 autocast,
#      bf16 with NCHW instead of channels_last, and fp32 and bf16 at batch 512: images/s per training step
#      and top-1 of each (the evidence for, or against, bf16 and channels_last as CUDA's defaults)
#   2. the bf16 run's model files measured by `distill eval --device cuda` in fresh processes, and its
#      student as .pt2 programs made on the GPU (fp16, computing in float16; fp32 export), likewise
#   3. the KD benchmark's rows (scripts/bench_kd.py) for one epoch
#   4. a torchrun run of the VGG16 recipe on every GPU there (bf16, one epoch per training step)
# Prints a summary and writes it to $OUT/gpu_check.txt and $OUT/gpu_check.json, with each part's log
# in $OUT/logs/ and each run's metrics.json and report.md in $OUT/runs/. Model files and checkpoints
# stay in a scratch folder (they are large and not needed here).
# Data: real CIFAR-10 and the pretrained ResNet-56 from shared/ or ../shared (or DATA_ROOT, TEACHER), else
# .gpudata/ (what a lent machine gets: a real CIFAR-10 subset and the weights, carried beside the tree,
# since ../shared does not travel). Python packages the machine lacks travel as wheels in .whl/.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-gpu_check_out}
TINY=${GPU_CHECK_TINY:-0}
mkdir -p "$OUT/logs" "$OUT/runs"
OUT=$(cd "$OUT" && pwd)
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this working tree's distillcli, whatever is installed
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
STATUS="$OUT/status.tsv"
: > "$STATUS"

first_dir() { for d in "$@"; do if [ -e "$d" ]; then (cd "$(dirname "$d")" && echo "$PWD/$(basename "$d")"); return; fi; done; echo ""; }
DATA_ROOT=${DATA_ROOT:-$(first_dir shared/data/cifar10 ../shared/data/cifar10 .gpudata/cifar10)}
TEACHER=${TEACHER:-$(first_dir shared/weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet56-4bfd9763.th \
                               ../shared/weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet56-4bfd9763.th \
                               .gpudata/resnet56-4bfd9763.th)}
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site \
    .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/gpu_check_site" || echo "installing .whl/ failed"
fi

# part NAME SECONDS COMMAND...: run under a time limit, log to $OUT/logs/NAME.log, record the exit status
part() {
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  echo "== $name (limit ${limit}s)"
  if timeout --kill-after=10 "$limit" "$@" > "$OUT/logs/$name.log" 2>&1; then rc=0; else rc=$?; fi
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - start ))" >> "$STATUS"
  [ "$rc" = 0 ] || { echo "   failed (exit $rc; 124 = time limit); last lines:"; tail -n 5 "$OUT/logs/$name.log" | sed 's/^/   /'; }
}

keep_run() {  # the run's small files into $OUT/runs/NAME
  mkdir -p "$OUT/runs/$1"
  cp "$SCRATCH/$1"/{metrics.json,report.md,run.log} "$OUT/runs/$1/" 2>/dev/null || true
}

if [ "$TINY" = 1 ]; then
  EPOCHS=1; NPROC=1; DEVICE=cpu
  SHRINK=(--device cpu --set data.train_subset=256 --set data.val_subset=128 --set data.batch_size=64
          --set report.latency=false)
  KD_ARGS=(--device cpu --train-subset 256 --val-subset 128 --batches 2 --repeats 1)
  LIMITS=(60 240 240 240 240 240)  # setup, each VGG variant, eval-fresh, kd-bench, torchrun, programs
else
  EPOCHS=${GPU_CHECK_EPOCHS:-6}; NPROC=$("$PY" -c "import torch; print(max(1, torch.cuda.device_count()))" 2>/dev/null || echo 1)
  SHRINK=(--device cuda); DEVICE=cuda
  KD_ARGS=(--device cuda)
  LIMITS=(40 50 40 80 75 60)  # 545 s in all
fi

# ---------------------------------------------------------------- 0. setup
part setup "${LIMITS[0]}" bash -c "
  $PY -c 'import distillcli' 2>/dev/null || $PY -m pip install --no-deps --no-build-isolation -e . >/dev/null
  $PY -m distillcli --version
  $PY -m distillcli doctor || true
  $PY -c 'import onnxruntime as o; print(\"onnxruntime\", o.__version__, o.get_available_providers())' || true
  $PY -c 'import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda); \
print(\"gpus\", torch.cuda.device_count(), [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]); \
print(\"bf16\", torch.cuda.is_available() and torch.cuda.is_bf16_supported())'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  test -n '$DATA_ROOT' || { echo 'no CIFAR-10 under shared/ or ../shared (set DATA_ROOT)'; exit 1; }
"

VGG=(-m distillcli run recipes/vgg16_cifar10.yaml "${SHRINK[@]}" --quiet --force
     --set "data.root=$DATA_ROOT" --set data.download=false --set report.save_models=false
     --set "steps.0.epochs=$EPOCHS" --set "steps.2.epochs=$EPOCHS")

# ---------------------------------------------------------------- 1. VGG16 recipe: precision, memory format, batch
for variant in fp32 bf16 bf16-nchw fp32-b512 bf16-b512; do
  precision=${variant%%-*}
  extra=(--set "steps.0.precision=$precision" --set "steps.2.precision=$precision")
  [ "$variant" = bf16-nchw ] && extra+=(--set channels_last=false)
  [ "${variant#*-}" = b512 ] && extra+=(--set data.batch_size=512)
  [ "$variant" = bf16 ] && extra+=(--set report.save_models=true)
  part "vgg-$variant" "${LIMITS[1]}" "$PY" "${VGG[@]}" "${extra[@]}" --out "$SCRATCH/vgg-$variant"
  keep_run "vgg-$variant"
done

# ---------------------------------------------------------------- 2. the bf16 run's files, fresh processes
part eval-fresh "${LIMITS[2]}" bash -c "
  for m in teacher student; do
    $PY -m distillcli eval '$SCRATCH/vgg-bf16/models/'\$m.pt --device $DEVICE --data-root '$DATA_ROOT' --quiet --json \
      > '$OUT/eval-'\$m.json || exit 1
  done
"

# the student as programs made in this run's device: fp16 (float16 compute on a GPU) and an fp32 export
part programs "${LIMITS[5]}" bash -c "
  student='$SCRATCH/vgg-bf16/models/student.pt'
  $PY -m distillcli quantize \$student --method fp16 --device $DEVICE --data-root '$DATA_ROOT' --no-latency --quiet \
    --out '$SCRATCH/student-fp16.pt2' || exit 1
  $PY -m distillcli export \$student --format pt2 --data-root '$DATA_ROOT' --quiet --out '$SCRATCH/student-fp32.pt2' || exit 1
  for f in fp16 fp32; do
    $PY -m distillcli eval '$SCRATCH/student-'\$f.pt2 --device $DEVICE --data-root '$DATA_ROOT' --quiet --json \
      > '$OUT/eval-student-'\$f.pt2.json || exit 1
  done
"

# ---------------------------------------------------------------- 3. the KD benchmark's rows, one epoch
part kd-bench "${LIMITS[3]}" "$PY" scripts/bench_kd.py "${KD_ARGS[@]}" --epochs 1 --data-root "$DATA_ROOT" \
  --teacher "$TEACHER" --out "$SCRATCH/kd.json"
cp "$SCRATCH/kd.json" "$OUT/kd.json" 2>/dev/null || true

# ---------------------------------------------------------------- 4. torchrun on the GPUs
TORCHRUN=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" "${VGG[@]}"
          --set steps.0.epochs=1 --set steps.2.epochs=1 --out "$SCRATCH/vgg-torchrun")
[ "$TINY" = 1 ] || TORCHRUN+=(--set steps.0.precision=bf16 --set steps.2.precision=bf16)
part torchrun "${LIMITS[4]}" "${TORCHRUN[@]}"
keep_run vgg-torchrun

# ---------------------------------------------------------------- summary
"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
summary = {"parts": [dict(zip(("part", "exit", "seconds"), l.split("\t"))) for l in (out / "status.tsv").read_text().splitlines()],
           "setup": (out / "logs" / "setup.log").read_text().strip().splitlines() if (out / "logs" / "setup.log").exists() else [],
           "runs": {}, "kd": None}
lines = ["# GPU check", *summary["setup"], ""]
lines += [f"part {p['part']}: exit {p['exit']} in {p['seconds']} s" for p in summary["parts"]]
for run in sorted((out / "runs").glob("*/metrics.json")):
    record = json.loads(run.read_text())
    info = record["run"]
    rows = []
    for s in record["steps"]:
        curve = s["curve"]
        seconds = sum(r["seconds"] for r in curve)
        row = {"step": s["index"], "kind": s["kind"], "model": s["target"], "top1": s["measures"]["top1"]}
        if curve:
            teacher = [r["teacher_seconds"] for r in curve if r.get("teacher_seconds") is not None]
            row.update(epochs=len(curve), precision=curve[-1].get("precision"), seconds=round(seconds, 1),
                       images_per_s=round(sum(r["images_per_s"] * r["seconds"] for r in curve) / max(seconds, 1e-9)),
                       teacher_share=round(sum(teacher) / seconds, 3) if teacher and seconds else None)
        rows.append(row)
    summary["runs"][run.parent.name] = {"status": info["status"], "device": info["device"],
                                        "processes": info["world_size"], "seconds": round(info["seconds"]), "steps": rows}
    lines += ["", f"## {run.parent.name}: {info['status']} on {info['device']} x{info['world_size']}, {info['seconds']:.0f} s"]
    for r in rows:
        top1 = "-" if r["top1"] is None else f"{r['top1']:.2f} %"
        speed = (f"  {r['images_per_s']} images/s over {r['epochs']} epochs ({r['precision']}"
                 + (f", teacher {100 * r['teacher_share']:.0f} % of the time" if r.get("teacher_share") is not None else "")
                 + ")") if "images_per_s" in r else ""
        lines.append(f"step {r['step']} {r['kind']} [{r['model']}]: top-1 {top1}{speed}")
evals = sorted(out.glob("eval-*.json"))
if evals:
    lines += ["", "## the bf16 run's files, `distill eval` in fresh processes"]
for path in evals:
    e = json.loads(path.read_text())
    summary.setdefault("eval", {})[path.stem] = e
    if "measures" not in e:  # the command's error report
        lines.append(f"{path.stem[5:]}: failed: {e.get('message')}")
        continue
    m = e["measures"]
    ms = ", ".join(f"b{b} {v:.2f} ms" for b, v in (m.get("latency_ms") or {}).items())
    lines.append(f"{path.stem[5:]} ({e['arch']}, {e['format']}, {e['precision']}) on {m['device']}: "
                 f"top-1 {m['top1']:.2f} % of {m['samples']}, {ms}")
kd = out / "kd.json"
if kd.exists():
    summary["kd"] = json.loads(kd.read_text())
    o = summary["kd"]["overhead"]
    lines += ["", "## KD benchmark", f"loop overhead: hand {o['hand_images_per_s']:.0f} images/s, Trainer "
              f"{o['pipeline_images_per_s']:.0f} images/s ({o['overhead_percent']:+.1f} %)"]
    for r in summary["kd"].get("runs", []):
        lines.append(f"{r['run']}: top-1 {r['top1']:.2f} %, {r['images_per_s']:.0f} images/s")
text = "\n".join(lines) + "\n"
(out / "gpu_check.txt").write_text(text)
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
print(text)
PYEOF
rm -rf "$SCRATCH"
