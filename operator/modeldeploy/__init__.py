"""modeldeploy: a Kubernetes operator that serves models on GPUs and rolls them out as canaries."""

__version__ = "0.1.0"
