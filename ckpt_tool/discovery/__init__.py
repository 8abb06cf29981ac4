"""Which files a command reads: folder walks with default excludes, ``--exclude`` patterns and
``.gitignore``, shared by every command that takes a folder."""
