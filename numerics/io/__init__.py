"""Files and configuration: atomic writes, safe loaders for weight, MDP and
model files, training checkpoints, Gymnasium tables, command-line and TOML
options, reproduce commands and report writing."""
