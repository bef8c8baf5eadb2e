"""Command-line entry points: `modeldeploy` and `kubectl-modeldeploy`."""
