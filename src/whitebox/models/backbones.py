"""Feature extractors for the CUB stage (log, 01.07-15.07.2024): ResNet34 and BagNet.

Each maps images ``(N, 3, H, W)`` to a feature map ``(N, out_channels, h, w)`` and names its
parameters like the published ImageNet weights, so a pretrained file loads with
``load_state_dict(backbone_state_dict(backbone, file))`` (nothing is downloaded here).

The log's point: a ResNet's 7x7 map is "49 views of the whole image" (huge receptive fields),
while a BagNet (Brendel & Bethge 2019, arXiv 1904.00760) sees only 33, 17 or 9 px per unit, so
its map is a map of local features -- a better encoder for part prototypes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import nn

from whitebox.io import plain_state_dict


class ResNet34Features(nn.Module):
    """torchvision's ResNet34 without its average pool and fc: 224 px -> (N, 512, 7, 7).

    The submodules keep torchvision's names (conv1, bn1, relu, maxpool, layer1..layer4), so the
    ImageNet state dict without ``fc.*`` loads strictly.
    """

    out_channels = 512

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        from torchvision.models import resnet34  # here: torchvision takes seconds to import

        net = resnet34(weights=None)
        if in_channels != 3:  # no pretrained weights fit then; the layout is kept
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class BagNetBottleneck(nn.Module):
    """ResNet bottleneck (1x1 -> kxk -> 1x1, expansion 4) without padding, as in BagNet.

    Unpadded convolutions shrink the map, so the shortcut is cropped at the bottom/right to the
    output's size before the addition (the authors' code does the same).
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, kernel_size: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size, stride=stride, padding=0, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                         nn.BatchNorm2d(out_channels))
                           if stride != 1 or in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        diff = residual.shape[-1] - out.shape[-1]
        if diff:
            residual = residual[:, :, :-diff, :-diff]
        return self.relu(out + residual)


# Which layers open with a 3x3 block: 3x3 convs of stride 1, 2, 2, 2, 1 grow the receptive
# field 1 -> 3 -> 5 -> 9 -> 17 -> 33; every 1x1 instead stops the growth at that stage.
BAGNET_KERNEL3 = {33: (1, 1, 1, 1), 17: (1, 1, 1, 0), 9: (1, 1, 0, 0)}
BAGNET_BLOCKS = (3, 4, 6, 3)
BAGNET_STRIDES = (2, 2, 2, 1)


class BagNetFeatures(nn.Module):
    """BagNet-33/17/9 (Brendel & Bethge 2019) without its classifier: (N, 2048, h, w).

    ResNet-50's bottleneck layout [3, 4, 6, 3] with strides [2, 2, 2, 1], unpadded convolutions
    and most 3x3 convolutions replaced by 1x1, so every output unit sees exactly
    ``receptive_field`` x ``receptive_field`` pixels (224 px -> 24x24 map for BagNet-33).
    Parameter names equal the authors' checkpoints (bagnet32/16/8.pth.tar, without ``fc.*``).
    """

    out_channels = 512 * BagNetBottleneck.expansion

    def __init__(self, receptive_field: int = 33, in_channels: int = 3) -> None:
        super().__init__()
        if receptive_field not in BAGNET_KERNEL3:
            raise ValueError(f"BagNet receptive_field must be one of "
                             f"{', '.join(map(str, sorted(BAGNET_KERNEL3)))}, got {receptive_field}")
        self.receptive_field = receptive_field
        self.jump = 8  # input pixels between neighbouring map cells (strides 2 x 2 x 2)
        self.conv1 = nn.Conv2d(in_channels, 64, 1, bias=False)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=0.001)
        self.relu = nn.ReLU(inplace=True)
        channels = 64
        for i, (planes, blocks, stride, kernel3) in enumerate(zip(
                (64, 128, 256, 512), BAGNET_BLOCKS, BAGNET_STRIDES, BAGNET_KERNEL3[receptive_field],
                strict=True)):
            layer = []
            for block in range(blocks):
                layer.append(BagNetBottleneck(channels, planes, stride if block == 0 else 1,
                                              kernel_size=3 if block < kernel3 else 1))
                channels = planes * BagNetBottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        for module in self.modules():  # the authors' initialisation
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv2(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def extra_repr(self) -> str:
        return f"receptive_field={self.receptive_field}"


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "resnet34": ResNet34Features,
    "bagnet33": lambda in_channels=3: BagNetFeatures(33, in_channels),
    "bagnet17": lambda in_channels=3: BagNetFeatures(17, in_channels),
    "bagnet9": lambda in_channels=3: BagNetFeatures(9, in_channels),
}


def _check_name(name: str) -> None:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid: {', '.join(sorted(BACKBONES))}")


def make_backbone(name: str, in_channels: int = 3) -> nn.Module:
    """The named backbone (see BACKBONES), randomly initialised; it has ``out_channels``."""
    _check_name(name)
    return BACKBONES[name](in_channels=in_channels)


def backbone_state_dict(backbone: nn.Module, state: Mapping) -> dict[str, torch.Tensor]:
    """The part of a published checkpoint that ``backbone`` loads strictly.

    Accepts the torchvision ResNet34 state dict or the authors' BagNet ``.pth.tar`` contents
    (a ``{"state_dict": ...}`` wrapper and DataParallel's ``module.`` prefix are removed); drops
    the classifier ``fc.*``. BatchNorm ``num_batches_tracked`` counters, absent from files saved
    by old PyTorch versions, are filled with 0. Raises ValueError naming the first missing,
    unexpected or wrongly shaped key when the file does not fit the backbone.
    """
    name = type(backbone).__name__
    state = plain_state_dict(dict(state))
    expected = backbone.state_dict()
    weights = {key: value for key, value in state.items() if not key.startswith("fc.")}
    for key, value in weights.items():
        if key not in expected:
            raise ValueError(f"checkpoint does not fit backbone {name!r}: unexpected key {key!r}")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(f"checkpoint does not fit backbone {name!r}: {key!r} has shape "
                             f"{tuple(value.shape)}, the backbone {tuple(expected[key].shape)}")
    for key in expected:
        if key not in weights:
            if key.endswith("num_batches_tracked"):
                weights[key] = torch.zeros((), dtype=torch.long)
            else:
                raise ValueError(f"checkpoint does not fit backbone {name!r}: missing key {key!r}")
    return {key: weights[key] for key in expected}
