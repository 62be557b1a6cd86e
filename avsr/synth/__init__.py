"""A synthetic audio-visual speech corpus from real face photos and espeak-ng: ``avsr synth``.

text (sentences) -> tts (speech with word and phone timings) -> visemes (mouth shapes over time)
-> face_rig (a photo animated by them) -> utterance (one mp4 + timing file) -> corpus (speakers,
splits, manifests).
"""

VARIETY_KINDS = ("skin", "lips", "hair", "mouth_width", "aspect", "teeth")
"""The kinds of identity variety a training speaker's face can get (``avsr synth --face-variety``,
:meth:`avsr.synth.face_rig.FaceLook.vary`)."""
