"""Pure shared types: config file models, desired and observed workspaces, plans and results."""
