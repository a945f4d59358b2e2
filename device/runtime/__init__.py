"""The imperative shell: the core loop, the effect runner, the assembly root, the control handlers."""
