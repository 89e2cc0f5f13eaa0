"""The training layer: configuration, the training loop, the checkpoint file, file -> trainer -> file."""
