"""imgcap-desktop: offline image captioning on the CPU."""

__version__ = "0.1.0"
