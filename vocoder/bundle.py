"""The model bundle: a directory with ``config.json``, ``model.safetensors`` and, after
``vocoder export``, ``condition.onnx`` and ``step.onnx`` (and ``context_step.onnx`` for a
model with a context stack).

Reading it needs numpy and safetensors only (no torch), so the runtime can load it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vocoder.config import CONFIG_VERSION, WaveNetConfig
from vocoder.errors import VocoderError
from vocoder.features.spec import FeatureSpec
from vocoder.fileio import atomic_path, sha256_file, write_text_atomic

FORMAT = "vocoder-bundle"
FORMAT_VERSION = 1
#: The speech-recognition model's bundle (:mod:`vocoder.asr.bundle`): same file names.
ASR_FORMAT = "vocoder-asr-bundle"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CONDITION_ONNX = "condition.onnx"
STEP_ONNX = "step.onnx"
#: The context stack's step (only for models with ``context_pool`` > 0).
CONTEXT_ONNX = "context_step.onnx"


def graph_names(config: WaveNetConfig) -> tuple[str, ...]:
    """The exported graphs a bundle of this config has."""
    return (CONDITION_ONNX, STEP_ONNX) + ((CONTEXT_ONNX,) if config.context_pool else ())


@dataclass(frozen=True)
class SamplingDefaults:
    """How the bundle's model is meant to be sampled (``config.json`` "sampling"): the
    temperature, a different one in voiced frames (None: the same everywhere), and the
    passes of the mel post-filter applied after sampling."""

    temperature: float = 1.0
    voiced_temperature: float | None = None
    #: Passes of the mel post-filter (:mod:`vocoder.postfilter`; mel bundles; 0 = off).
    postfilter: int = 0

    @classmethod
    def from_dict(cls, d: Any, where) -> SamplingDefaults:
        from vocoder.config import dataclass_from_dict

        try:
            out = dataclass_from_dict(cls, d or {}, "sampling defaults")
            for v in (out.temperature, out.voiced_temperature):
                if v is not None and not (isinstance(v, (int, float)) and 0 <= v < 1e9):
                    raise VocoderError(f"temperatures must be numbers >= 0, got {v!r}")
            from vocoder.postfilter import check_passes

            check_passes(out.postfilter)
        except VocoderError as e:
            raise VocoderError(f"{where}: {e}") from None
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {"temperature": self.temperature, "voiced_temperature": self.voiced_temperature}
        if self.postfilter:  # absent when off, so older bundles' documents stay as they were
            d["postfilter"] = self.postfilter
        return d


@dataclass
class Bundle:
    """A loaded bundle. ``weights`` maps tensor names to float32 numpy arrays."""

    path: Path
    config: WaveNetConfig
    feature_spec: FeatureSpec | None
    weights: dict[str, np.ndarray]
    weights_sha256: str
    training: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)
    sampling: SamplingDefaults = field(default_factory=lambda: SamplingDefaults())
    #: Names of the gc vector's entries (multi-hot tags, :mod:`vocoder.tags`); () if none.
    tags: tuple[str, ...] = ()
    #: (config, weights) of the mel predictor (:mod:`vocoder.mel_predictor`), or None.
    mel_predictor: tuple[Any, dict[str, np.ndarray]] | None = None

    def build_model(self):
        """A torch :class:`~vocoder.model.WaveNet` with these weights, in eval mode."""
        import torch

        from vocoder.model import WaveNet

        # Names and shapes were checked against the config by load_bundle.
        model = WaveNet(self.config)
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.weights.items()})
        return model.eval()

    def exported(self, *names: str) -> dict[str, Path]:
        """Paths of the exported graphs ``names`` (default: every graph of this bundle's
        config, :func:`graph_names`); a VocoderError saying how to create them when any is
        missing. ``context_step.onnx`` is refused for a model without a context stack."""
        names = names or graph_names(self.config)
        if CONTEXT_ONNX in names and not self.config.context_pool:
            raise VocoderError(f"{self.path}: this model has no context stack "
                               f"(context_pool = 0), so no {CONTEXT_ONNX}")
        paths = {n: self.path / n for n in names}
        missing = [n for n, p in paths.items() if not p.is_file()]
        if missing:
            raise VocoderError(f"{self.path}: no {' / '.join(missing)}; create them with "
                               f"`vocoder export {self.path}`")
        return paths

    def check_fresh(self, graph: Path, weights_sha256: str | None) -> None:
        """Refuse an exported graph whose recorded ``weights_sha256`` (from its metadata)
        is not this bundle's: it was exported before the weights last changed."""
        if weights_sha256 != self.weights_sha256:
            raise VocoderError(
                f"{graph} is stale: it was exported from other weights than "
                f"model.safetensors; re-run `vocoder export {self.path}`")


def save_bundle(model, config: WaveNetConfig, path: str | Path,
                feature_spec: FeatureSpec | None = None,
                training: dict[str, Any] | None = None,
                sampling: SamplingDefaults | None = None,
                tags: Sequence[str] | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into directory ``path``.

    ``tags`` names the ``gc_channels`` entries of the global vector (a tag-conditioned
    model), so that synthesis can take tag names.

    Each file is written to a temporary name and renamed, weights first, so a crash never
    leaves a config that points at half-written weights. ONNX files from an earlier export
    are left in place; their recorded weights hash tells the runtime whether they are stale.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if config != model.cfg:
        raise VocoderError("save_bundle: config differs from the model's own config")
    if config.cond_channels:
        if feature_spec is None:
            feature_spec = FeatureSpec.identity(config.cond_channels, config.hop_length)
        if feature_spec.dim != config.cond_channels:
            raise VocoderError(f"feature spec has {feature_spec.dim} features, the model "
                               f"expects cond_channels={config.cond_channels}")
        if feature_spec.hop_length != config.hop_length:
            raise VocoderError(f"feature spec hop {feature_spec.hop_length} != model hop "
                               f"{config.hop_length} (product of upsample_scales)")
        check_excitation_spec(config, feature_spec, "save_bundle")
        check_mel_spec(config, feature_spec, "save_bundle")
    if tags:
        tags = _check_tags(tags, config, "save_bundle")
    state = {k: v.detach().to("cpu").float().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config_version": CONFIG_VERSION,
        "model": config.to_dict(),
        "features": feature_spec.to_dict() if feature_spec is not None else None,
        "training": training or {},
        "sampling": (sampling or SamplingDefaults()).to_dict(),
        "weights": {"file": WEIGHTS_FILE, "sha256": sha256_file(path / WEIGHTS_FILE)},
    }
    if tags:
        doc["tags"] = list(tags)
    write_text_atomic(path / CONFIG_FILE, json.dumps(doc, indent=2) + "\n")
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    """The parsed and checked ``config.json`` of a bundle directory."""
    path = Path(path)
    if not path.is_dir():
        raise VocoderError(f"{path}: not a bundle directory (expected a folder with "
                           f"{CONFIG_FILE} and {WEIGHTS_FILE})")
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise VocoderError(f"{cfg_path}: missing; a bundle needs {CONFIG_FILE}")
    try:
        doc = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VocoderError(f"{cfg_path}: not valid JSON ({e})") from None
    if isinstance(doc, dict) and doc.get("format") == ASR_FORMAT:
        raise VocoderError(f"{path} is a speech-recognition bundle (for `vocoder recognize` "
                           f"and `vocoder evaluate-asr`), not a vocoder bundle")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise VocoderError(f"{cfg_path}: not a vocoder bundle config "
                           f"(expected \"format\": \"{FORMAT}\")")
    version = doc.get("format_version")
    if not isinstance(version, int):
        raise VocoderError(f"{cfg_path}: format_version missing or not an int")
    if version > FORMAT_VERSION:
        raise VocoderError(f"{cfg_path}: bundle format version {version} is newer than this "
                           f"vocoder reads ({FORMAT_VERSION}); upgrade the vocoder package")
    for key in ("model", "weights"):
        if not isinstance(doc.get(key), dict):
            raise VocoderError(f"{cfg_path}: missing the {key!r} section")
    return doc


def load_bundle(path: str | Path) -> Bundle:
    """Read and check a bundle directory. Raises :class:`VocoderError` naming the file."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    doc = read_config(path)
    cfg_path = path / CONFIG_FILE
    try:
        config = WaveNetConfig.from_dict(doc["model"])
    except VocoderError as e:
        raise VocoderError(f"{cfg_path}: {e}") from None
    spec = None
    if doc.get("features") is not None:
        try:
            spec = FeatureSpec.from_dict(doc["features"])
        except VocoderError as e:
            raise VocoderError(f"{cfg_path}: {e}") from None
        if config.cond_channels and spec.dim != config.cond_channels:
            raise VocoderError(f"{cfg_path}: feature spec has {spec.dim} features but the model "
                               f"has cond_channels={config.cond_channels}")
        check_excitation_spec(config, spec, cfg_path)
        check_mel_spec(config, spec, cfg_path)
    weights_path = path / doc["weights"].get("file", WEIGHTS_FILE)
    if not weights_path.is_file():
        raise VocoderError(f"{weights_path}: missing; a bundle needs its weights")
    try:
        weights = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise VocoderError(f"{weights_path}: unreadable safetensors file ({e})") from None
    digest = sha256_file(weights_path)
    if doc["weights"].get("sha256") not in (None, digest):
        raise VocoderError(f"{weights_path}: contents do not match the sha256 in {CONFIG_FILE} "
                           "(the file was changed or truncated after the bundle was written)")
    _check_shapes(config, weights, weights_path)
    sampling = SamplingDefaults.from_dict(doc.get("sampling"), cfg_path)
    tags = _check_tags(doc["tags"], config, cfg_path) if doc.get("tags") is not None else ()
    predictor = (_load_mel_predictor(path, doc["mel_predictor"], config, cfg_path)
                 if doc.get("mel_predictor") is not None else None)
    return Bundle(path, config, spec, weights, digest, doc.get("training") or {},
                  doc.get("export") or {}, sampling, tags, predictor)


def _load_mel_predictor(path: Path, entry: Any, config: WaveNetConfig, where):
    """The bundle's mel predictor (config, weights), checked against the model."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from vocoder import mel_predictor as mp

    if not isinstance(entry, dict):
        raise VocoderError(f"{where}: 'mel_predictor' must be an object")
    try:
        cfg = mp.MelPredictorConfig.from_dict(entry.get("config"))
    except VocoderError as e:
        raise VocoderError(f"{where}: {e}") from None
    if (cfg.in_channels, cfg.n_speakers, cfg.mel.sample_rate, cfg.mel.hop_length) != (
            config.cond_channels, config.n_speakers, config.sample_rate, config.hop_length):
        raise VocoderError(f"{where}: the mel predictor reads {cfg.in_channels} features "
                           f"and {cfg.n_speakers} speakers at {cfg.mel.sample_rate} Hz, hop "
                           f"{cfg.mel.hop_length}; the model {config.cond_channels}, "
                           f"{config.n_speakers}, {config.sample_rate} Hz, hop "
                           f"{config.hop_length}")
    file = path / entry.get("file", mp.WEIGHTS_FILE)
    try:
        weights = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise VocoderError(f"{file}: missing or unreadable ({e})") from None
    if entry.get("sha256") not in (None, sha256_file(file)):
        raise VocoderError(f"{file}: contents do not match the sha256 in {CONFIG_FILE}")
    mp.check_weights(cfg, weights, file)
    return cfg, weights


def set_mel_predictor(path: str | Path, cfg, weights: dict[str, np.ndarray],
                      training: dict[str, Any] | None = None,
                      postfilter: int | None = None) -> None:
    """Store a mel predictor in the bundle at ``path`` (weights first, then config.json,
    each atomically), replacing any earlier one; ``postfilter`` also sets the bundle's
    default passes of the mel post-filter."""
    from safetensors.numpy import save_file

    from vocoder import mel_predictor as mp
    from vocoder.postfilter import check_passes

    path = Path(path)
    doc = read_config(path)
    mp.check_weights(cfg, weights, "set_mel_predictor")
    with atomic_path(path / mp.WEIGHTS_FILE) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(tmp))
    doc["mel_predictor"] = {"file": mp.WEIGHTS_FILE,
                            "sha256": sha256_file(path / mp.WEIGHTS_FILE),
                            "config": cfg.to_dict(), "training": training or {}}
    if postfilter is not None:
        doc.setdefault("sampling", {})["postfilter"] = check_passes(postfilter)
    write_text_atomic(path / CONFIG_FILE, json.dumps(doc, indent=2) + "\n")


def _check_tags(tags, config: WaveNetConfig, where) -> tuple[str, ...]:
    from vocoder.tags import check_tag_names

    tags = check_tag_names(list(tags) if isinstance(tags, tuple) else tags, f"{where}")
    if len(tags) != config.gc_channels:
        raise VocoderError(f"{where}: {len(tags)} tag names for gc_channels="
                           f"{config.gc_channels}")
    return tags


def expected_shapes(cfg: WaveNetConfig) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of every weight of a :class:`~vocoder.model.WaveNet`."""
    R, G, S, A, L = (cfg.residual_channels, cfg.gate_channels, cfg.skip_channels,
                     cfg.quantization_channels, cfg.layers)
    shapes: dict[str, tuple[int, ...]] = {"embed.weight": (A, R), "gate_bias": (L, G),
                                          "head1.weight": (S, S, 1), "head1.bias": (S,),
                                          "head2.weight": (A, S, 1), "head2.bias": (A,)}
    for i in range(L):
        shapes[f"dilated.{i}.weight"] = (G, R, 2)
        shapes[f"skip.{i}.weight"] = (S, G // 2, 1)
        shapes[f"skip.{i}.bias"] = (S,)
        if i < L - 1:
            shapes[f"residual.{i}.weight"] = (R, G // 2, 1)
            shapes[f"residual.{i}.bias"] = (R,)
    if cfg.cond_channels:
        C = cfg.cond_hidden or cfg.cond_channels
        if cfg.cond_hidden:
            shapes["cond_in.weight"] = (C, cfg.cond_channels, 3)
            shapes["cond_in.bias"] = (C,)
        for i, s in enumerate(cfg.upsample_scales):
            shapes[f"upsample.convs.{i}.weight"] = (C, C, 2 * s)
            shapes[f"upsample.convs.{i}.bias"] = (C,)
        shapes["cond_proj.weight"] = (L * G, C + 2 * cfg.excitation, 1)
    if cfg.n_speakers:
        shapes["speaker_embed.weight"] = (cfg.n_speakers, L * G)
    if cfg.gc_channels:
        shapes["gc_proj.weight"] = (L * G, cfg.gc_channels)
    if cfg.context_pool:
        P, Rc = cfg.context_pool, cfg.context_channels
        shapes["context.embed.weight"] = (Rc, P)
        shapes["context.embed.bias"] = (Rc,)
        for i in range(cfg.context_layers):
            shapes[f"context.taps.{i}.weight"] = (2 * Rc, 2 * Rc)
            shapes[f"context.taps.{i}.bias"] = (2 * Rc,)
            shapes[f"context.residual.{i}.weight"] = (Rc, Rc)
            shapes[f"context.residual.{i}.bias"] = (Rc,)
        shapes["context.proj.weight"] = (L * G, Rc)
    return shapes


def check_excitation_spec(cfg: WaveNetConfig, spec: FeatureSpec | None, where) -> None:
    """The excitation reads log-F0 from raw features with the spec's normalisation and
    from normalised ones with the config's: both must be the same."""
    if not cfg.excitation or spec is None:
        return
    i = cfg.f0_feature
    if not (np.isclose(spec.mean[i], cfg.log_f0_mean, rtol=1e-6, atol=1e-9)
            and np.isclose(spec.std[i], cfg.log_f0_std, rtol=1e-6, atol=1e-9)):
        raise VocoderError(f"{where}: the excitation's log-F0 normalisation "
                           f"({cfg.log_f0_mean}, {cfg.log_f0_std}) differs from the feature "
                           f"spec's for {spec.names[i]!r} ({spec.mean[i]}, {spec.std[i]})")


def check_mel_spec(cfg: WaveNetConfig, spec: FeatureSpec | None, where) -> None:
    """A mel-conditioned model must run at its mels' sample rate and hop."""
    if spec is None or spec.mel is None:
        return
    mel = spec.mel
    if (mel.sample_rate, mel.hop_length) != (cfg.sample_rate, cfg.hop_length):
        raise VocoderError(f"{where}: the mel analysis is at {mel.sample_rate} Hz, hop "
                           f"{mel.hop_length}; the model at {cfg.sample_rate} Hz, hop "
                           f"{cfg.hop_length} (product of upsample_scales "
                           f"{list(cfg.upsample_scales)})")


def _check_shapes(cfg: WaveNetConfig, weights: dict[str, np.ndarray], where: Path) -> None:
    expected = expected_shapes(cfg)
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise VocoderError(f"{where}: tensors do not match the config (missing {missing[:5]}, "
                           f"unexpected {extra[:5]})")
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape:
            raise VocoderError(f"{where}: tensor {name!r} has shape "
                               f"{tuple(weights[name].shape)}, the config needs {shape}")
        if weights[name].dtype != np.float32:
            raise VocoderError(f"{where}: tensor {name!r} is {weights[name].dtype}, "
                               "expected float32")


def update_export_record(path: str | Path, record: dict[str, Any]) -> None:
    """Merge ``record`` into config.json's ``export`` section (atomically)."""
    path = Path(path)
    doc = read_config(path)
    doc.setdefault("export", {}).update(record)
    write_text_atomic(path / CONFIG_FILE, json.dumps(doc, indent=2) + "\n")
