"""``ckpt convert``: safetensors without torch, renamed copies, legacy rewrites, and back.

``core.convert_file`` converts one file; ``jobs.run_jobs`` many; ``options`` holds the records.
Nothing is imported here, so the CLI starts without numpy or safetensors.
"""
