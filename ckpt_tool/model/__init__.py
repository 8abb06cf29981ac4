"""The neutral model of a checkpoint: the ground floor every reader builds and every command
reads. Nothing here imports a reader, the pickle walk or the policy."""
