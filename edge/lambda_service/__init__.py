"""Lambda's function management: versions, aliases and gradual deployments."""
