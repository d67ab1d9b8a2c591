"""Convert a torch.export program to a LiteRT (TFLite) model: run by the studio in its LiteRT converter
environment (see studio/export/litert.py), which holds Google's litert-torch. It imports torch and the
converter only, never the studio, so that environment needs nothing else.

    python litert_convert.py --program model.pt2 --size 224 --out model.tflite [--int8]

--int8 stores the weights in 8 bits (dynamic-range quantization: activations stay float, so the model takes
and gives float32 like the float one). Prints one JSON line: the converter's versions.
"""
import argparse
import json
import os
import tempfile
from importlib.metadata import version

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--program", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--int8", action="store_true")
    args = parser.parse_args()
    import litert_torch
    module = torch.export.load(args.program).module()
    sample = (torch.zeros(1, 3, args.size, args.size),)
    used = {"litert-torch": version("litert-torch"), "torch": torch.__version__}
    if not args.int8:
        litert_torch.convert(module, sample).export(args.out)
    else:
        from ai_edge_quantizer import quantizer, recipe
        with tempfile.TemporaryDirectory() as scratch:
            float_model = os.path.join(scratch, "float.tflite")
            litert_torch.convert(module, sample).export(float_model)
            quantize = quantizer.Quantizer(float_model)
            quantize.load_quantization_recipe(recipe.dynamic_wi8_afp32())
            quantize.quantize().export_model(args.out, overwrite=True)
        used["ai-edge-quantizer"] = version("ai-edge-quantizer")
    print(json.dumps(used))


if __name__ == "__main__":
    main()
