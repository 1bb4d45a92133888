"""A pruned candidate that just missed the allowed drop is tried again pruned less, once."""

from __future__ import annotations

import pytest

from distillcli.auto.space import milder


def test_the_milder_target_follows_pruning_share_of_the_loss():
    combo = {"mac_reduction": 2.0, "guide": "layer", "epochs": 9, "quantize": "static"}
    # the capped-AVX2 run: 2x prune + KD + int8 lost 0.56 pt (limit 0.5), int8 alone gained
    ask = milder(combo, 2.0, 0.56, -0.08, 0.5)
    assert ask == {**combo, "mac_reduction": pytest.approx(2 ** (0.4 / 0.56), abs=1e-3)}
    assert 1.6 < ask["mac_reduction"] < 1.7
    # int8 alone cost 0.2 of the 0.4 aimed at: pruning keeps less room
    assert milder(combo, 2.0, 0.56, 0.2, 0.5)["mac_reduction"] < ask["mac_reduction"]


@pytest.mark.parametrize("drop, precision, why", [(0.4, 0.0, "within the drop"), (1.2, 0.0, "far over"),
                                                  (0.6, 0.45, "the precision alone fills the aim")])
def test_no_milder_candidate_when_it_cannot_help(drop, precision, why):
    assert milder({"mac_reduction": 2.0, "guide": "layer", "epochs": 9, "quantize": "static"},
                  2.0, drop, precision, 0.5) is None, why


def test_a_near_miss_is_queued_once_with_its_parent_named():
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState, create_trial

    from distillcli.auto.study import candidate, queue_milder
    from distillcli.progress import SilentProgress

    study = optuna.create_study(direction="minimize")
    dists = {"mac_reduction": FloatDistribution(1.0, 4.0, log=True),
             "quantize": CategoricalDistribution(["none", "static"]),
             "guide": CategoricalDistribution(["layer", "global"]), "epochs": CategoricalDistribution([1, 3, 9])}

    def add(choice: dict, drop: float) -> None:
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=1.0, params=choice,
                                     distributions={k: dists[k] for k in choice},
                                     user_attrs={"choice": choice, "drop": drop, "feasible": drop <= 0.5}))

    add({"mac_reduction": 1.0, "quantize": "static"}, 0.1)
    add({"mac_reduction": 2.0, "guide": "layer", "epochs": 9, "quantize": "none"}, 0.38)
    add({"mac_reduction": 2.0, "guide": "layer", "epochs": 9, "quantize": "static"}, 0.56)
    for t in study.get_trials():
        queue_milder(study, candidate(t), 0.5, SilentProgress())
    queue_milder(study, candidate(study.get_trials()[2]), 0.5, SilentProgress())  # once per candidate
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1
    (queued,) = waiting
    assert queued.user_attrs["milder_of"] == 2
    asked = queued.system_attrs["fixed_params"]  # what the next ask() takes
    assert asked["mac_reduction"] == pytest.approx(2 ** ((0.4 - 0.1) / (0.56 - 0.1)), abs=1e-3)
    assert {k: asked[k] for k in ("guide", "epochs", "quantize")} == {"guide": "layer", "epochs": 9,
                                                                             "quantize": "static"}
