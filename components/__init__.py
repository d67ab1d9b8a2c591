"""Transfer Studio's Gradio UI: one module per wizard step, assembled by `app`.

UI modules turn engine results into components and events; they hold no
training math (that lives in `studio/`).
"""
