"""A synthetic audio-visual speech corpus from real face photos and espeak-ng: ``avsr synth``.

text (sentences) -> tts (speech with word and phone timings) -> visemes (mouth shapes over time)
-> face_rig (a photo animated by them) -> utterance (one mp4 + timing file) -> corpus (speakers,
splits, manifests).
"""

VARIETY_KINDS = ("skin", "lips", "hair", "mouth_width", "aspect", "teeth")
"""The kinds of identity variety a training speaker's face can get (``avsr synth --face-variety``,
:meth:`avsr.synth.face_look.FaceLook.vary`)."""

ENGLISH_VOICES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc")
"""espeak-ng's English base voices, the default of ``avsr synth --voices``."""

VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
"""espeak-ng voice variants a synthetic speaker draws from."""
