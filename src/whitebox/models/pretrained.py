"""Published backbone weights (config.yaml ``pretrained_weights``) loaded into a model."""

from __future__ import annotations

import sys
from pathlib import Path

from torch import nn

from whitebox.errors import ConfigError


def load_pretrained(net: nn.Module, entry: dict | None, mirror: Path | None,
                    where: str = "pretrained") -> dict | None:
    """Load ``entry``'s weights ({name, url, file, fallback, check_hash}) into ``net.backbone``;
    what was loaded, for metrics.json (None without an entry).

    Weights that cannot be found stop the run (one line), unless the entry's fallback is
    ``scratch``: then the backbone keeps its random initialisation and a warning says so.
    ``where`` names the config key in messages.
    """
    if entry is None:
        return None
    from whitebox.data.weights import WeightsUnavailable, fetch_weights, load_state_dict_file
    from whitebox.models.backbones import backbone_state_dict

    backbone = getattr(net, "backbone", None)
    if backbone is None:
        raise ConfigError(f"config error at {where}: the model has no backbone to load "
                          "pretrained weights into")
    try:
        path = fetch_weights(entry["url"], entry["file"], mirror,
                             check_hash=entry.get("check_hash", True))
    except WeightsUnavailable as error:
        if entry.get("fallback", "error") != "scratch":
            raise
        print(f"warning: {error}; {where}: the model trains its backbone from scratch",
              file=sys.stderr)
        return {"name": entry["name"], "file": entry["file"], "loaded": False}
    try:
        state = backbone_state_dict(backbone, load_state_dict_file(path))
    except ValueError as error:
        raise ConfigError(f"config error at {where}: {path} does not fit the backbone "
                          f"({error})") from None
    backbone.load_state_dict(state)
    return {"name": entry["name"], "file": entry["file"], "loaded": True}
