"""TinyTorch milestones: landmark results of the field, re-run on TinyTorch, and the ``tito`` command."""
