"""Transfer Studio engine: data, backbones, training, evaluation, export, runs.

Nothing in this package imports Gradio; the UI in `components/` and the CLI in
`studio.cli` are both thin layers over these modules.
"""

__version__ = "0.1.0"
