"""The starter recipes `distill init --template NAME` writes: data, not code. Each text is a
``string.Template``: ``$file`` is the recipe's path, ``$stem`` the run name made from it."""

from __future__ import annotations

from dataclasses import dataclass

_HEAD = """\
# `distill validate $file` checks this recipe; `distill run $file` runs it.
# Every key is listed by `distill schema`; `--set key=value` overrides any of them.
# Relative paths are relative to this file.
"""
_CPU = """\
# The schedules are CPU budgets (12-20 epochs); published accuracies take 100-200 epochs on a GPU:
# raise `epochs` and run with --device cuda. KD's alpha 0.5 (the default) beat 0.9 on held-out
# images at 15 epochs (3 seeds, docs/benchmarks.md); long schedules were not measured, and the
# papers' 0.9 is the usual choice there.
"""
_RUN = """\
name: $stem
seed: 0
device: auto                  # auto | cpu | cuda | cuda:N | mps
"""
_TAIL = """\
report: {latency_batches: [1, 64]}  # latency measured at batch 1 and 64 after every step
checkpoint: {every_epochs: 1}  # `distill resume RUN_DIR` continues from the last one
"""
_IMAGENET_NORM = """\
  mean: [0.485, 0.456, 0.406]   # the normalisation its ImageNet weights were trained with
  std: [0.229, 0.224, 0.225]
"""
_PHOTOS = """\
data:
  name: imagefolder
  root: photos/               # photos/train/<class>/<image> and photos/val/<class>/<image>
  image_size: 96              # resized to 96x96: ImageNet models see 224, at about 5x the CPU time
  batch_size: 64
  workers: 2                  # loader processes decoding the images
"""


@dataclass(frozen=True)
class Template:
    summary: str  # one line: what the recipe does
    text: str  # the recipe
    before: str = ""  # what must be in place before it validates


DIGITS = Template("scikit-learn's handwritten digits, offline", """\
# A starter recipe: `distill validate $file` checks it, `distill run $file` runs it.
# It works offline (scikit-learn's handwritten digits) in about a minute on a laptop CPU.
# Every key is listed by `distill schema`; `--set key=value` overrides any of them.
name: $stem
seed: 0
device: auto                  # auto | cpu | cuda | cuda:N | mps
data:
  name: digits                # cifar10 | cifar100 | imagefolder | digits | synthetic
  image_size: 32
  batch_size: 64
  # name: cifar10
  # root: data/cifar10        # the folder holding cifar-10-batches-py/
  # download: true            # fetch it when missing (needs internet)
teacher: {arch: resnet20}     # or a trained model: {checkpoint: runs/x/models/teacher.pt}
student: {arch: resnet8, args: {width: 0.5}}
steps:
  - train: {model: teacher, epochs: 3, lr: 0.1, warmup_epochs: 1}
  - distill: {epochs: 3, lr: 0.1, temperature: 4, alpha: 0.9}
  # - prune: {method: channel, target_mac_reduction: 2, finetune: {epochs: 3}}  # round_to: auto, this CPU's multiple
  # - quantize: {method: static}
  - evaluate: {}
report: {latency_batches: [1, 64]}
checkpoint: {every_epochs: 1}  # `distill resume RUN_DIR` continues from the last one
""")

CIFAR = Template("CIFAR-10, the teacher trained first", _HEAD + """\
# CIFAR-10: 50,000 training and 10,000 test images, 32x32, 10 classes. Its python version
# (cifar-10-batches-py/, about 170 MB, from https://www.cs.toronto.edu/~kriz/cifar.html) goes into
# data.root; or set `download: true` and the first run fetches it there.
""" + _CPU + _RUN + """\
data:
  name: cifar10               # or cifar100 (100 classes; cifar-100-python/ in root)
  root: data/cifar10          # the folder holding cifar-10-batches-py/
  download: false             # true: download it into root when missing (needs internet)
  batch_size: 128
teacher: {arch: resnet56}     # CIFAR ResNets: `distill list models resnet`
student: {arch: resnet20}     # about 3x fewer parameters and MACs
steps:
  - train: {model: teacher, epochs: 15, lr: 0.1, warmup_epochs: 1}   # the teacher, from scratch
  - distill: {epochs: 15, lr: 0.1, warmup_epochs: 1, temperature: 4, alpha: 0.5}  # the student learns from it
  - evaluate: {}              # both models on the test set
""" + _TAIL, "put CIFAR-10's cifar-10-batches-py/ in data/cifar10/ beside the recipe (or set data.download: true)")

IMAGEFOLDER = Template("your images, a folder per class", _HEAD + """\
# Your images, a folder per class, in a training and a validation split with the same class folders:
#   photos/train/cat/001.jpg  photos/train/dog/002.png ...  photos/val/cat/...  photos/val/dog/...
# (.jpg .jpeg .png .bmp .ppm .pgm .tif .webp). The number of classes is the number of folders.
""" + _CPU + _RUN + """\
data:
  name: imagefolder
  root: photos/               # the folder holding train/ and val/
  image_size: 64              # every image is resized to 64x64: small is fast on a CPU
  batch_size: 64
  workers: 2                  # loader processes decoding the images
teacher: {arch: resnet20}     # `distill list models` shows the others
student: {arch: resnet8, args: {width: 0.5}}
steps:
  - train: {model: teacher, epochs: 20, lr: 0.1, warmup_epochs: 1}   # the teacher, from scratch
  - distill: {epochs: 20, lr: 0.1, warmup_epochs: 1, temperature: 4, alpha: 0.5}
  # A few hundred images per class? There KD alone lost 1.7 pt on CIFAR-10 (500 per class, 3 seeds)
  # and KD + attention transfer on the models' stages gained 6.7 (docs/benchmarks.md). Use instead:
  # - distill: {epochs: 20, lr: 0.1, warmup_epochs: 1, temperature: 4, alpha: 0.9,   # as measured
  #             loss: [kd, {at: {teacher_layers: stages, student_layers: stages}}]}
  - evaluate: {}              # both models on photos/val
""" + _TAIL, "put your images in photos/train/<class>/ and photos/val/<class>/ beside the recipe")

CHECKPOINT = Template("a trained teacher's weights file, CIFAR-10", _HEAD + """\
# The teacher is already trained: akamaster's CIFAR-10 ResNet-56 (93.39 % in its README), from
#   https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet56-4bfd9763.th
# saved into weights/ beside this file. Any state_dict file (.pth/.pt/.th, .safetensors) of the
# named arch works the same way, as does a model file written by distill (it records its own arch).
# CIFAR-10 goes into data.root as in `distill init --template cifar`.
""" + _CPU + _RUN + """\
data:
  name: cifar10
  root: data/cifar10          # the folder holding cifar-10-batches-py/
  download: false             # true: download it into root when missing (needs internet)
  batch_size: 128
teacher:
  arch: resnet56              # the architecture the weights were saved from
  checkpoint: weights/resnet56-4bfd9763.th
  strip_prefix: "module."     # saved from nn.DataParallel: "module.conv1.weight" is read as "conv1.weight"
  # key_map: {fc: linear}     # rename other key prefixes, old: new
""" + _IMAGENET_NORM + """\
student: {arch: resnet20}
steps:
  - evaluate: {model: teacher}  # the loaded teacher's accuracy: a wrong key or normalisation shows here
  - distill: {epochs: 15, lr: 0.1, warmup_epochs: 1, temperature: 4, alpha: 0.5}
  - evaluate: {}
""" + _TAIL, "put the teacher's weights at weights/resnet56-4bfd9763.th and CIFAR-10 in data/cifar10/ beside the "
             "recipe")

def _pretrained(zoo: str, weights: str, cache: str, teacher: str, student: str) -> Template:
    """Your images with an ImageNet-pretrained teacher from a model zoo (torchvision, timm)."""
    return Template(f"your images, an ImageNet-pretrained {zoo} teacher", _HEAD + f"""\
# {zoo} models on your images (laid out as in `distill init --template imagefolder`). The teacher
# starts from ImageNet weights: `{weights}` downloads them once into {cache} (needs internet that
# first time), or give the path of a local checkpoint of the unmodified model (offline). Its
# classifier is resized to your classes and fine-tuned first.
""" + _CPU + _RUN + """\
""" + _PHOTOS + f"""\
teacher:
  arch: "{zoo}:{teacher}"  # any {zoo} model: `distill list models {zoo}:`
  args: {{{weights}}}
""" + _IMAGENET_NORM + f"""\
student:
  arch: "{zoo}:{student}"  # from scratch; args: {{{weights}}} starts it pretrained too
steps:
  - train: {{model: teacher, epochs: 12, lr: 0.01, warmup_epochs: 1}}  # fine-tune: a lower lr keeps the weights
  - distill: {{epochs: 20, lr: 0.1, warmup_epochs: 1, temperature: 4, alpha: 0.5}}
  - evaluate: {{}}
""" + _TAIL, "put your images in photos/train/<class>/ and photos/val/<class>/ beside the recipe")


TORCHVISION = _pretrained("torchvision", "weights: DEFAULT", "the torch hub cache (~/.cache/torch/hub)", "resnet18",
                          "mobilenet_v3_small")
TIMM = _pretrained("timm", "pretrained: true", "the Hugging Face cache (~/.cache/huggingface)", "resnet18",
                   "mobilenetv3_small_100")

TEMPLATES = {"digits": DIGITS, "cifar": CIFAR, "imagefolder": IMAGEFOLDER, "checkpoint": CHECKPOINT,
             "torchvision": TORCHVISION, "timm": TIMM}
