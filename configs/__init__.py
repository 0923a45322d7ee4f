"""Configs as code: one file per recipe; ``--config=configs/<name>.py[:args]``."""
