"""Losses by name (torch-free): each is a term of an objective, a weighted sum of terms. An entry
says what the term reads, so a recipe whose terms cannot train the classifier, or that needs the
teacher's layers (which stored outputs cannot give), is caught before anything runs. The term's
class, ``Term(options, ctx)`` (``losses.terms``), is imported when the objective is built."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from distillcli.losses.options import ATOptions, CEOptions, DISTOptions, DKDOptions, FitNetOptions, KDTermOptions
from distillcli.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class LossEntry(Entry):
    options: type[BaseModel]
    labels: bool = False  # reads the hard labels
    teacher_logits: bool = False  # reads the teacher's outputs
    features: bool = False  # reads named layers of both models
    preset: tuple[str, ...] | None = None  # what `loss: <name>` expands to; None: write it as a term


LOSSES: Registry[LossEntry] = Registry("loss", LossEntry, [
    LossEntry(name="kd", target="distillcli.losses.kd:KDTerm", options=KDTermOptions, labels=True,
              teacher_logits=True, preset=("kd",), summary="Hinton KD (soft targets; labels through alpha)"),
    LossEntry(name="ce", target="distillcli.losses.classification:CETerm", options=CEOptions, labels=True,
              preset=("ce",), summary="hard-label cross-entropy"),
    LossEntry(name="dkd", target="distillcli.losses.dkd:DecoupledKD", options=DKDOptions, teacher_logits=True,
              preset=("ce", "dkd"), summary="Decoupled KD (Zhao et al. 2022)"),
    LossEntry(name="dist", target="distillcli.losses.dist:DIST", options=DISTOptions, teacher_logits=True,
              preset=("ce", "dist"), summary="DIST, correlation of predictions (Huang et al. 2022)"),
    LossEntry(name="fitnet", target="distillcli.losses.fitnet:FitNetHint", options=FitNetOptions, features=True,
              summary="FitNets hint on one layer pair (Romero et al. 2015)"),
    LossEntry(name="at", target="distillcli.losses.at:AttentionTransfer", options=ATOptions, features=True,
              summary="attention transfer on layer pairs (Zagoruyko & Komodakis 2017)"),
], group="distillcli.losses")
