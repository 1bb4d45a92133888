"""The KD job of ``scripts/bench_kd.py`` (ResNet-56 teacher -> ResNet-20 student, CIFAR-10,
batch 128, T=4, 0.9 soft / 0.1 hard, SGD) run by torchdistill, timed for throughput.

Run by bench_kd.py with the interpreter of an environment that has torchdistill 1.1.5 (it is
not a distillcli dependency; ``--torchdistill-python``). It uses torchdistill's own pieces
the way its image-classification example does: torchvision's CIFAR10 dataset and transforms,
its data-loader builder, a DistillationBox with its KDLoss, forward_process and
post_forward_process. Prints one JSON line: images/s over the timed batches.

torchdistill's CIFAR ResNets downsample with 1x1 convolutions where distillcli's (the
published akamaster ones) pad and subsample, so its models have slightly more MACs; the
teacher's weights are random (throughput does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torchvision.transforms as T
from torch.utils.data import RandomSampler
from torchvision.datasets import CIFAR10
from torchdistill.core.distillation import get_distillation_box
from torchdistill.models.classification.resnet import resnet20, resnet56


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data-root", required=True, help="folder holding cifar-10-batches-py")
    p.add_argument("--batches", type=int, default=40, help="timed batches")
    p.add_argument("--warmup", type=int, default=3, help="untimed batches first")
    p.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    args = p.parse_args()
    torch.manual_seed(0)
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])])
    datasets = {"cifar10/train": CIFAR10(args.data_root, train=True, download=False, transform=transform)}
    train_config = {
        "num_epochs": 1,
        "train_data_loader": {"dataset_id": "cifar10/train", "sampler": {"class_or_func": RandomSampler},
                              "kwargs": {"batch_size": 128, "num_workers": args.workers, "drop_last": True}},
        "teacher": {"forward_proc": "forward_batch_only", "sequential": [], "requires_grad": False,
                    "frozen_modules": []},
        "student": {"forward_proc": "forward_batch_only", "adaptations": None, "sequential": [],
                    "requires_grad": True, "frozen_modules": []},
        "optimizer": {"key": "SGD", "kwargs": {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}},
        "criterion": {"key": "WeightedSumLoss", "kwargs": {"sub_terms": {"kd": {
            "criterion": {"key": "KDLoss", "kwargs": {
                "student_module_path": ".", "student_module_io": "output", "teacher_module_path": ".",
                "teacher_module_io": "output", "temperature": 4.0, "alpha": 0.1, "reduction": "batchmean"}},
            "weight": 1.0}}}},
    }
    device = torch.device("cpu")
    box = get_distillation_box(resnet56(num_classes=10), resnet20(num_classes=10), datasets, train_config,
                               device, None, False, 1)
    box.pre_epoch_process(epoch=0)
    seen, t0 = 0, None
    for i, (x, y, supp) in enumerate(box.train_data_loader):
        if i == args.warmup:
            t0 = time.perf_counter()
        if i == args.warmup + args.batches:
            break
        loss = box.forward_process(x.to(device), y.to(device), supp)
        box.post_forward_process(loss=loss)
        if i >= args.warmup:
            seen += y.numel()
    seconds = time.perf_counter() - t0
    print(json.dumps({"images_per_s": seen / seconds, "batches": args.batches, "workers": args.workers,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
