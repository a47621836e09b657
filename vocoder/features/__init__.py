"""Frame-rate conditioning features: eSpeak NG phones, log-F0 and voicing, HTS labels.

Submodules have one job each: ``espeak`` (the ctypes binding), ``f0`` (pyworld),
``linguistic`` (phone alignment -> frame features), ``hts`` (HTS labels -> frame
features), ``hts_questions`` (HTS question files), ``frontend`` (text -> features for
synthesis). Import them directly; nothing heavy is loaded here so that
``import vocoder.features`` works without eSpeak or pyworld.
"""
