"""plainsight: a pytest evaluation suite comparing VLMs with their own vision encoders."""

__version__ = "0.1.0"
