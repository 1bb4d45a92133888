"""FitNets and attention transfer: hand computations, hooks on named layers, wrong names,
adapters trained but not saved, and a combined loss through make_objective."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from distillcli.errors import OptionError
from distillcli.losses import make_objective
from distillcli.losses.at import ATOptions, AttentionTransfer, attention_map
from distillcli.losses.features import FeatureTap, find_layer
from distillcli.losses.specs import LossTerm
from distillcli.losses.terms import Outputs

pytestmark = pytest.mark.usefixtures("one_thread")


def net(width: int) -> nn.Module:
    torch.manual_seed(width)
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 4))


def terms(*raw: dict) -> list[LossTerm]:
    return [LossTerm.model_validate(t) for t in raw]


def test_attention_map_and_at_loss_by_hand():
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])  # (1, 2, 1, 2): channel mean of squares = [5, 2]
    expected = torch.tensor([[5.0, 2.0]]) / (29.0 ** 0.5)
    assert torch.allclose(attention_map(f, 2.0), expected)
    g = torch.tensor([[[[0.0, 1.0]], [[0.0, 1.0]]]])  # map [0, 1]
    term = AttentionTransfer.__new__(AttentionTransfer)
    term.student_layers, term.teacher_layers, term.p = ["a"], ["b"], 2.0
    out = Outputs(torch.zeros(1, 2), None, torch.zeros(1), {"a": f}, {"b": g})
    by_hand = 0.5 * ((expected - torch.tensor([[0.0, 1.0]])) ** 2).mean()
    assert torch.allclose(term(out), by_hand)


def test_fitnet_is_mse_after_the_adapter_pooled_to_the_smaller_map():
    student, teacher = net(4), net(6)
    spec = terms({"fitnet": {"weight": 1.0, "teacher_layer": "0", "student_layer": "2"}})
    objective = make_objective(spec, teacher, student=student, input_shape=(3, 8, 8))
    (adapter,) = objective.extra_modules()
    x = torch.randn(2, 3, 8, 8)
    loss, logits = objective(student, x, torch.tensor([0, 1]), torch.arange(2))
    with torch.no_grad():
        s = adapter(student[:3](x))  # 4x4 map, 4 -> 6 channels
        t = F.adaptive_avg_pool2d(teacher[0](x), 4)  # 8x8 pooled to 4x4
    assert torch.allclose(loss, (s - t).pow(2).mean(), atol=1e-6)
    assert logits.shape == (2, 4)
    loss.backward()
    assert adapter[0].weight.grad is not None and student[2].weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())


def test_hooks_read_named_layers_and_are_removed():
    model = net(4)
    with FeatureTap(model, ["1", "3"], "student") as feats:
        model(torch.randn(1, 3, 8, 8))
    assert feats["1"].shape == (1, 4, 8, 8) and feats["3"].shape == (1, 4, 4, 4)
    assert not model[1]._forward_hooks and not model[3]._forward_hooks


def test_a_wrong_layer_name_lists_the_valid_ones_closest_first():
    model = nn.Module()
    model.net = nn.Module()
    model.net.layer1, model.net.layer3, model.net.head = nn.Identity(), nn.Identity(), nn.Identity()
    with pytest.raises(OptionError) as info:
        find_layer(model, "net.layr3", "student")
    message = str(info.value)
    assert "the student has no layer 'net.layr3'; did you mean 'net.layer3'? its layers: net.layer3, net" in message
    assert info.value.hint


def test_a_wrong_layer_name_fails_when_the_objective_is_built():
    spec = terms({"at": {"teacher_layers": ["1"], "student_layers": ["9"]}})
    with pytest.raises(OptionError, match="student has no layer '9'"):
        make_objective(spec, net(6), student=net(4), input_shape=(3, 8, 8))


def test_ddp_style_wrapper_is_unwrapped():
    class Wrapper(nn.parallel.DistributedDataParallel):
        def __init__(self, module: nn.Module) -> None:  # no process group: only the .module attribute matters
            nn.Module.__init__(self)
            self.module = module

        def forward(self, x):
            return self.module(x)

    student, teacher = net(4), net(6)
    spec = terms({"ce": {}}, {"at": {"teacher_layers": ["1", "3"], "student_layers": ["1", "3"]}})
    objective = make_objective(spec, teacher, student=student, input_shape=(3, 8, 8))
    loss, _ = objective(Wrapper(student), torch.randn(2, 3, 8, 8), torch.tensor([0, 1]), torch.arange(2))
    assert torch.isfinite(loss) and loss.item() > 0


def test_at_layer_lists_must_pair():
    with pytest.raises(ValueError, match="2 teacher_layers but 1 student_layers"):
        ATOptions(teacher_layers=["a", "b"], student_layers=["a"])


def test_stages_pair_the_feature_stages_timm_models_declare_by_reduction():
    """`stages`: attention transfer between two timm models without naming a layer: each model's
    declared stages after the stem (feature_info), paired where they shrink the input alike."""
    import timm

    teacher, student = timm.create_model("resnet18", num_classes=4), timm.create_model("mobilenetv3_small_100",
                                                                                      num_classes=4)
    spec = terms({"kd": {}}, {"at": {"teacher_layers": "stages", "student_layers": "stages"}})
    objective = make_objective(spec, teacher, student=student, input_shape=(3, 32, 32))
    (at,) = [term for _, term in objective.terms if isinstance(term, AttentionTransfer)]
    assert at.teacher_layers == ["layer1", "layer2", "layer3", "layer4"]
    assert at.student_layers == ["blocks.0", "blocks.1", "blocks.3", "blocks.5"]
    loss, _ = objective(student, torch.randn(2, 3, 32, 32), torch.tensor([0, 1]), torch.arange(2))
    assert torch.isfinite(loss) and loss.item() > 0


@pytest.mark.parametrize("arch, size, stages", [
    ("resnet56", 32, ["net.layer1", "net.layer2", "net.layer3"]),
    ("vgg16_bn", 32, ["net.features.1.2", "net.features.3.2", "net.features.6.2", "net.features.9.2",
                      "net.features.12.2"]),  # the ReLU before each max-pool
    ("mobilenetv2", 32, ["net.blocks.2", "net.blocks.5", "net.blocks.12", "net.head"]),  # before each stride-2 block
    ("torchvision:resnet50", 64, ["net.relu", "net.layer1", "net.layer2", "net.layer3", "net.layer4"]),
])
def test_stages_of_a_model_that_declares_none_are_the_last_module_at_each_map_size(arch, size, stages):
    """Models without timm's feature_info (the built-in CNNs, torchvision's, a user's own): a dry
    forward finds each stage's output, not a layer inside the block that shrinks the map."""
    from distillcli.losses.features import feature_stages
    from distillcli.models.build import build_model
    from distillcli.models.handle import ArchSpec

    model = build_model(ArchSpec(arch, 10, 3, (0.5,) * 3, (0.25,) * 3, {}))
    found = feature_stages(model, "teacher", (3, size, size))
    assert list(found.values()) == stages and list(found) == sorted(found)


def test_stages_pair_a_vgg_teacher_with_a_resnet_student_and_train():
    from distillcli.models.build import build_model
    from distillcli.models.handle import ArchSpec

    def model(arch: str) -> nn.Module:
        torch.manual_seed(0)
        return build_model(ArchSpec(arch, 10, 3, (0.5,) * 3, (0.25,) * 3, {}))

    teacher, student = model("vgg16_bn").eval(), model("resnet20")
    spec = terms({"kd": {}}, {"at": {"teacher_layers": "stages", "student_layers": "stages"}})
    objective = make_objective(spec, teacher, student=student, input_shape=(3, 32, 32))
    (at,) = [term for _, term in objective.terms if isinstance(term, AttentionTransfer)]
    assert at.student_layers == ["net.layer1", "net.layer2", "net.layer3"]
    assert at.teacher_layers == ["net.features.1.2", "net.features.3.2", "net.features.6.2"]
    loss, _ = objective(student, torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]), torch.arange(4))
    loss.backward()
    assert torch.isfinite(loss) and student.get_submodule("net.layer1").get_parameter("0.conv1.weight").grad is not None


def test_stages_on_a_model_without_feature_maps_says_to_name_the_layers():
    plain = terms({"at": {"teacher_layers": "stages", "student_layers": "stages"}})
    objective = make_objective(plain, net(6), student=net(4), input_shape=(3, 8, 8))
    (at,) = [term for _, term in objective.terms if isinstance(term, AttentionTransfer)]
    assert at.student_layers == at.teacher_layers == ["1", "3"]  # each ReLU, at 8x8 and at 4x4
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    with pytest.raises(OptionError, match="the student gives no feature maps") as info:
        make_objective(plain, net(6), student=mlp, input_shape=(3, 8, 8))
    assert "name the layers instead" in info.value.hint
    with pytest.raises(ValueError, match="give `stages` for both"):
        ATOptions(teacher_layers="stages", student_layers=["a"])