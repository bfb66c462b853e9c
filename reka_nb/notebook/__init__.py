"""What a notebook user touches: the streaming display, the %reka magics and the upload panel.

Nothing here is imported by ``import reka_nb``: IPython and ipywidgets load on first use.
"""
