"""Phone error rate of a vocoder's speech, judged by the speech-recognition WaveNet.

    python -m bench.asr_of_generated --vocoder models/demo --asr models/asr-demo \\
        --data data/espeak [--n 8] [--backend native] [--switch-penalty 8]

For each of the first ``n`` test utterances the vocoder synthesises the audio from the
utterance's features, and the recogniser reads both that and the recording; each is
scored against the phones the features were made from (the corpus alignment), so the gap
between the two PERs is what the vocoder loses. Writes ``asr-of-generated-<date>.json``
into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

import numpy as np

from bench import RESULTS
from bench.report import stamped, write_json


def measure(vocoder_path, asr_path, data, n: int = 8, backend: str = "native",
            switch_penalty: float = 8.0, seed: int = 0) -> dict[str, Any]:
    from vocoder.api import Vocoder
    from vocoder.asr.bundle import load_asr_bundle
    from vocoder.asr.data import audio_classes, load_asr_data
    from vocoder.asr.recognize import score
    from vocoder.data.corpus import load_manifest

    asr = load_asr_bundle(asr_path)
    labelled = load_asr_data(data, asr.config, phones=asr.phones, splits=("test",),
                             max_test=n).test
    ds = load_manifest(data)
    entries = {e.id: e for e in ds.split("test")}
    generated = []
    with Vocoder.load(vocoder_path, backend=backend) as voc:
        for k, utt in enumerate(labelled):
            entry = entries[utt.id]
            audio, feats = ds.load(entry)
            speaker = entry.speaker if voc.config.n_speakers else None
            gen = voc.synthesize(feats, speaker=speaker, seed=seed + k)
            # The recording's length: the frame grid (and so the labels) are the same.
            gen = np.pad(gen, (0, max(0, len(audio) - len(gen))))[:len(audio)]
            generated.append(dataclasses.replace(utt, classes=audio_classes(gen, asr.config)))
    ref = score(asr.model, asr.phones, labelled, switch_penalty)
    gen = score(asr.model, asr.phones, generated, switch_penalty)
    return {"benchmark": "asr_of_generated", "vocoder": str(vocoder_path),
            "asr": str(asr_path), "data": str(data), "split": "test",
            "utterances": len(labelled), "backend": backend, "seed": seed,
            "switch_penalty": switch_penalty,
            "recordings": {k: ref[k] for k in ("frame_accuracy", "per", "reference_phones")},
            "generated": {k: gen[k] for k in ("frame_accuracy", "per", "reference_phones")},
            "per_ratio": gen["per"] / ref["per"] if ref["per"] else None,
            "per_utterance": [{"id": a["id"], "per_recording": a["per"],
                               "per_generated": b["per"]}
                              for a, b in zip(ref["per_utterance"], gen["per_utterance"])]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.asr_of_generated", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocoder", required=True)
    p.add_argument("--asr", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--backend", default="native")
    p.add_argument("--switch-penalty", type=float, default=8.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    res = measure(args.vocoder, args.asr, args.data, args.n, args.backend,
                  args.switch_penalty, args.seed)
    write_json(res, stamped(args.out, "asr-of-generated"))
    r, g = res["recordings"], res["generated"]
    print(f"{res['utterances']} test utterances, switch penalty {res['switch_penalty']:g}")
    print(f"recordings  frame accuracy {100 * r['frame_accuracy']:.1f} %, "
          f"PER {100 * r['per']:.1f} %")
    print(f"generated   frame accuracy {100 * g['frame_accuracy']:.1f} %, "
          f"PER {100 * g['per']:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
