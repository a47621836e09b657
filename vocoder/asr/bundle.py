"""The speech-recognition bundle: a directory with ``config.json`` (format
``vocoder-asr-bundle``: the :class:`~vocoder.asr.config.ASRConfig`, training provenance,
the weights' sha256), ``model.safetensors`` and ``phones.txt`` (the inventory, one phone a
line, class 0 = silence). Loading needs nothing else.

The file names are the vocoder bundle's, and each loader names the other kind when given
it, so a bundle handed to the wrong command says what it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vocoder.asr.config import ASRConfig
from vocoder.asr.labels import SILENCE
from vocoder.bundle import ASR_FORMAT as FORMAT
from vocoder.bundle import CONFIG_FILE, WEIGHTS_FILE
from vocoder.bundle import FORMAT as VOCODER_FORMAT
from vocoder.errors import VocoderError
from vocoder.fileio import atomic_path, sha256_file, write_text_atomic

FORMAT_VERSION = 1
PHONES_FILE = "phones.txt"


@dataclass
class ASRBundle:
    """A loaded bundle; ``model`` is an :class:`~vocoder.asr.model.ASRWaveNet` in eval
    mode on the CPU."""

    path: Path
    config: ASRConfig
    phones: list[str]
    model: Any
    training: dict[str, Any] = field(default_factory=dict)



def save_asr_bundle(model, phones: list[str], path: str | Path,
                    training: dict[str, Any] | None = None) -> Path:
    """Write weights, phone list and config (in that order, each atomically: a config is
    never beside half-written weights)."""
    from safetensors.torch import save_file

    cfg: ASRConfig = model.cfg
    if len(phones) != cfg.n_phones or phones[0] != SILENCE:
        raise VocoderError(f"save_asr_bundle: {len(phones)} phones (first {phones[:1]}) for "
                           f"n_phones={cfg.n_phones}; class 0 must be silence {SILENCE!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").float().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    write_text_atomic(path / PHONES_FILE, "".join(p + "\n" for p in phones))
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": cfg.to_dict(),
           "phones": PHONES_FILE, "training": training or {},
           "weights": {"file": WEIGHTS_FILE, "sha256": sha256_file(path / WEIGHTS_FILE)}}
    write_text_atomic(path / CONFIG_FILE, json.dumps(doc, indent=2) + "\n")
    return path


def load_asr_bundle(path: str | Path) -> ASRBundle:
    """Read and check a bundle; every problem is a VocoderError naming the file."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from vocoder.asr.model import ASRWaveNet

    path = Path(path)
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise VocoderError(f"{path}: not a speech-recognition bundle (no {CONFIG_FILE}; "
                           f"`vocoder train-asr` writes one into RUN/bundle)")
    try:
        doc = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VocoderError(f"{cfg_path}: not valid JSON ({e})") from None
    kind = doc.get("format") if isinstance(doc, dict) else None
    if kind == VOCODER_FORMAT:
        raise VocoderError(f"{path} is a vocoder (speech synthesis) bundle; this command "
                           f"needs a speech-recognition bundle from `vocoder train-asr`")
    if kind != FORMAT:
        raise VocoderError(f"{cfg_path}: not a speech-recognition bundle (expected "
                           f"\"format\": \"{FORMAT}\", got {kind!r})")
    if not isinstance(doc.get("format_version"), int) or doc["format_version"] > FORMAT_VERSION:
        raise VocoderError(f"{cfg_path}: format_version {doc.get('format_version')!r} is not "
                           f"one this vocoder reads (<= {FORMAT_VERSION})")
    try:
        cfg = ASRConfig.from_dict(doc.get("model"))
    except VocoderError as e:
        raise VocoderError(f"{cfg_path}: {e}") from None
    phones_path = path / str(doc.get("phones", PHONES_FILE))
    try:
        phones = phones_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise VocoderError(f"{phones_path}: cannot read the phone list ({e})") from None
    if len(phones) != cfg.n_phones or not phones or phones[0] != SILENCE \
            or len(set(phones)) != len(phones):
        raise VocoderError(f"{phones_path}: expected {cfg.n_phones} distinct phones with "
                           f"silence {SILENCE!r} first, got {len(phones)}")
    weights = doc.get("weights") if isinstance(doc.get("weights"), dict) else {}
    weights_path = path / str(weights.get("file", WEIGHTS_FILE))
    if not weights_path.is_file():
        raise VocoderError(f"{weights_path}: missing; a bundle needs its weights")
    if weights.get("sha256") not in (None, sha256_file(weights_path)):
        raise VocoderError(f"{weights_path}: contents do not match the sha256 in "
                           f"{CONFIG_FILE} (changed or truncated after the bundle was written)")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise VocoderError(f"{weights_path}: unreadable safetensors file ({e})") from None
    model = ASRWaveNet(cfg)
    try:
        model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    except RuntimeError as e:
        raise VocoderError(f"{weights_path}: tensors do not match the config "
                           f"({str(e).splitlines()[0]})") from None
    return ASRBundle(path, cfg, phones, model.eval(), doc.get("training") or {})
