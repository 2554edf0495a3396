"""Stage 7 and beyond: a trained model written as ONNX, SavedModel or LiteRT, checked against Keras, with a model card."""
