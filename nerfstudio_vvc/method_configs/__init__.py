"""method_configs."""
