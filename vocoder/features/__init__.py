"""Frame-rate conditioning features: eSpeak NG phones, log-F0 and voicing, HTS labels, mels.

Submodules have one job each: ``espeak`` (the ctypes binding), ``f0`` (pyworld),
``linguistic`` (phone alignment -> frame features), ``hts`` (HTS labels -> frame
features), ``hts_questions`` (HTS question files), ``frontend`` (text -> features for
synthesis), ``mel`` (log mel spectrograms: configs, presets, librosa analysis),
``analysis`` (audio -> a mel model's frames). Import them directly; nothing heavy is
loaded here so that ``import vocoder.features`` works without eSpeak, pyworld or librosa.
"""
