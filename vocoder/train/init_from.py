"""Start a training run from a trained bundle's weights (``vocoder train --init-from``).

Fine-tuning a shipped model on one's own recordings, or growing a trained model (adding
the F0 excitation input), starts from weights that already model speech. The new run
has its own optimiser, schedule and step count; only the weights carry over:

* every tensor whose name and shape the source has is copied;
* the input layer of the frame-rate conditioning network, ``cond_in`` ``(C, D, 3)``, is
  matched to the dataset's features by name (:func:`inputs_by_name`): a feature the
  source read keeps its column, any other starts at zero. A dataset that appends
  features to the source's (a mel model given log-F0 and voicing) so starts out
  computing exactly what the source did;
* ``cond_proj.weight`` of a model that adds the F0 excitation to the source's
  architecture, ``(L * G, C + 2 * excitation, 1)`` against the source's ``(L * G, C, 1)``,
  takes the source's columns and zeros in the excitation's, so that the new model starts
  out computing exactly what the source did;
* anything else keeps its fresh initialisation and is reported (e.g. the speaker table
  of a dataset with other speakers).

The source must read the same features (names, hop, mel analysis) and tags as the new
dataset, or the dataset's features must begin with the source's (and the source have a
frame-rate conditioning network, ``cond_hidden``, whose input can widen): conditioning
weights learnt for other inputs would be silently wrong.

A **new conditioning** (``vocoder train --init-from BUNDLE --new-conditioning``) takes
only the source's autoregressive stack (:func:`stack_of`) to a model that reads other
inputs: another feature set or hop (a mel vocoder started from a linguistic model, whose
stack has already learnt to make voiced speech), other speakers or tags. The frame-rate
conditioning network, the speaker table and the global projection start fresh; the
projection of the conditioning into the gate biases (``cond_proj``) is kept where its
shape fits, and the source speakers' mean bias is folded into ``gate_bias``, so that the
stack starts from the average speaker's operating point. Features the dataset shares with
the source by name (``log_f0`` and ``vuv`` of a mel dataset built with ``--mel-f0``) keep
their input columns as above, so the new model starts as the source driven by the shared
features alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vocoder.errors import VocoderError

#: Model fields the dataset decides; a source bundle's values are not carried over.
DATA_FIELDS = ("cond_channels", "n_speakers", "gc_channels", "f0_feature", "vuv_feature",
               "log_f0_mean", "log_f0_std")
WIDENABLE = ("cond_proj.weight",)
#: What a new conditioning leaves fresh: the frame-rate conditioning network (its input
#: layer and upsampler) and the speaker and global-vector inputs.
CONDITIONING = ("cond_in.", "upsample.", "speaker_embed.", "gc_proj.")


@dataclass
class WeightTransfer:
    """What :func:`transfer_weights` did, by tensor name."""

    copied: list[str] = field(default_factory=list)
    widened: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.copied)} tensors copied"]
        if self.widened:
            parts.append(f"{', '.join(self.widened)} widened (new columns zero)")
        if self.fresh:
            parts.append(f"freshly initialised: {', '.join(self.fresh)}")
        if self.unused:
            parts.append(f"not used from the source: {', '.join(self.unused)}")
        return "; ".join(parts)


def transfer_weights(model: torch.nn.Module, source: dict[str, np.ndarray]
                     ) -> WeightTransfer:
    """Copy ``source`` (name -> array) into ``model`` in place by the rules above."""
    report = WeightTransfer()
    own = model.state_dict()
    with torch.no_grad():
        for name, target in own.items():
            src = source.get(name)
            if src is None:
                report.fresh.append(name)
                continue
            src_t = torch.from_numpy(np.array(src)).to(target.dtype)
            if tuple(src_t.shape) == tuple(target.shape):
                target.copy_(src_t)
                report.copied.append(name)
            elif (name in WIDENABLE and src_t.ndim == target.ndim
                  and src_t.shape[0] == target.shape[0] and src_t.shape[2:] == target.shape[2:]
                  and src_t.shape[1] < target.shape[1]):
                target.zero_()
                target[:, : src_t.shape[1]].copy_(src_t)
                report.widened.append(name)
            else:
                report.fresh.append(name)
    report.unused = sorted(set(source) - set(own))
    if not report.copied and not report.widened:
        raise VocoderError("--init-from: no tensor of the source bundle fits this model "
                           "(a different architecture?)")
    return report


def start_weights(bundle, names=(), new_conditioning: bool = False
                  ) -> dict[str, np.ndarray]:
    """The weights (name -> array) a run whose dataset has the features ``names`` starts
    from: the bundle's, or its stack alone (:func:`stack_of`) for a new conditioning,
    with ``cond_in`` matched to ``names`` (:func:`inputs_by_name`)."""
    weights = stack_of(bundle.weights) if new_conditioning else dict(bundle.weights)
    own = bundle.feature_spec.names if bundle.feature_spec is not None else ()
    weights.update(inputs_by_name(bundle.weights, own, names))
    return weights


def stack_of(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A source's weights without its conditioning inputs (:data:`CONDITIONING`), with the
    mean of its speaker table (n_speakers, L * G) added to ``gate_bias`` (L, G)."""
    out = {k: v for k, v in weights.items() if not k.startswith(CONDITIONING)}
    table = weights.get("speaker_embed.weight")
    if table is not None and "gate_bias" in out:
        bias = np.asarray(out["gate_bias"])
        out["gate_bias"] = bias + np.asarray(table).mean(axis=0).reshape(bias.shape)
    return out


def inputs_by_name(weights: dict[str, np.ndarray], source_names, names
                   ) -> dict[str, np.ndarray]:
    """``cond_in.weight`` (C, len(names), k) with the source's column for each feature of
    ``names`` it read (``source_names``) and zeros for the others, and its
    ``cond_in.bias``; empty when the source has no ``cond_in`` or shares no feature."""
    w = weights.get("cond_in.weight")
    source_names, names = list(source_names), list(names)
    if w is None or not set(names) & set(source_names):
        return {}
    w = np.asarray(w)
    cols = np.zeros((w.shape[0], len(names), w.shape[2]), w.dtype)
    for j, name in enumerate(names):
        if name in source_names:
            cols[:, j] = w[:, source_names.index(name)]
    return {"cond_in.weight": cols, "cond_in.bias": weights["cond_in.bias"]}


def source_model_fields(bundle) -> dict[str, Any]:
    """The source bundle's model config without the fields the dataset decides: the
    architecture a fine-tuning run keeps when no ``--config`` is given."""
    return {k: v for k, v in bundle.config.to_dict().items() if k not in DATA_FIELDS}


def check_same_inputs(bundle, spec, tags: list[str], data_dir: str | Path) -> None:
    """Refuse a source bundle that reads other features or tags than the dataset (which
    may append features to the bundle's: see the module docstring)."""
    src = bundle.feature_spec
    where = f"--init-from {bundle.path}"
    if (src is None) != (spec is None):
        raise VocoderError(f"{where}: the bundle reads {'no ' if src is None else ''}frame "
                           f"features but {data_dir} has {'none' if spec is None else 'some'}")
    if src is not None:
        names, own = tuple(spec.names), tuple(src.names)
        if names[: len(own)] == own and len(names) > len(own):
            if not bundle.config.cond_hidden:
                raise VocoderError(f"{where}: {data_dir} appends features "
                                   f"({', '.join(names[len(own):])}) to the bundle's, but "
                                   f"the bundle has no frame-rate conditioning network "
                                   f"(cond_hidden 0) whose input could widen")
        elif names != own:
            diff = next((f"feature {i}: {a!r} vs {b!r}" for i, (a, b)
                         in enumerate(zip(own, names)) if a != b),
                        f"{len(own)} vs {len(names)} features")
            raise VocoderError(f"{where}: the bundle reads other features than {data_dir} "
                               f"({diff})")
        if src.hop_length != spec.hop_length:
            raise VocoderError(f"{where}: the bundle's hop is {src.hop_length} samples, "
                               f"{data_dir}'s is {spec.hop_length}")
        if src.mel != spec.mel:
            raise VocoderError(f"{where}: the bundle's mel analysis differs from "
                               f"{data_dir}'s")
    if list(bundle.tags) != list(tags):
        raise VocoderError(f"{where}: the bundle's tags {list(bundle.tags)} differ from "
                           f"{data_dir}'s {list(tags)}")
