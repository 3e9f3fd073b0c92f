"""Support for users' own tests (Hypothesis strategies for MDPs, features,
windows, prompts and weights)."""
