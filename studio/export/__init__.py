"""Exports: a run's model in the formats people deploy, checked against the trained model before download.

    formats      the registry: one `Format` per format (files, writer, runtime, tolerance, words)
    writers      each format's writer: the steps that make its model files
    converters   TorchScript, ONNX and int8 ONNX conversion, each file written atomically
    runtimes     opens any model file the studio wrote with the runtime its format is meant for
    parity       compares an exported file with the trained model on the run's validation photos
    modelcard    the model card (README.md)
    hub          the timm / Hugging Face Hub files: config.json, model.safetensors, README.md with its YAML
    bundle       `export_run`: the export folder (model files, model.json, card, predict.py) and its zip
    templates/   predict.py, copied into every export

Import the module you need (`from studio.export import bundle`); this package imports nothing
itself, so `formats` loads without torch.
"""
