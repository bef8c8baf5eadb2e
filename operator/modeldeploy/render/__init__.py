"""Pure rendering: a ModelDeployment spec in, Kubernetes manifests and runtime configs out."""
